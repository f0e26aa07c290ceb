// Dead letters with @stomp/stompjs: NACK requeue:false, the delivery limit,
// a queue policy's dead-letter destination and ttl, and max-length's ERROR.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useBroker, subscribeSync, publishSync, deferred, withTimeout, DEFAULT_TIMEOUT } from '../lib/harness.mjs';

const TTL_MS = 300;
const run = useBroker([
  '-queue-max-deliveries', '2',
  '-queue-policies',
  `/queue/js-orders.*=dead-letter:/queue/js-failed,/queue/js-ttl=ttl:${TTL_MS}ms,/queue/js-short=max-length:2`,
]);

function receiptWaiter(entry, id) {
  const d = deferred();
  entry.client.watchForReceipt(id, (f) => d.resolve(f));
  return withTimeout(d.promise, DEFAULT_TIMEOUT, `RECEIPT ${id} (${entry.name})`);
}

// nack sends NACK (with requeue when given) and waits for its RECEIPT.
async function nack(s, entry, m, requeue) {
  const r = s.uid('nack');
  const got = receiptWaiter(entry, r);
  m.nack(requeue === undefined ? { receipt: r } : { receipt: r, requeue });
  await got;
}

// deadLetter takes the next message of dlq and checks where it came from.
async function deadLetter(s, dlq, body, from, reason, count) {
  const c = await s.stomp({}, `dlq ${dlq}`);
  const { messages } = await subscribeSync(s, c, dlq, { ack: 'client-individual' });
  const [m] = await messages.count(1);
  const h = m.headers;
  assert.equal(m.body, body, `dead letter in ${dlq}: ${JSON.stringify(h)}`);
  assert.equal(h['x-dead-letter-reason'], reason, JSON.stringify(h));
  assert.equal(h['x-original-destination'], from, JSON.stringify(h));
  assert.equal(h.destination, dlq, JSON.stringify(h));
  if (count !== undefined) assert.equal(h['x-delivery-count'], count, JSON.stringify(h));
  m.ack();
}

describe('dead letters', () => {
  it('NACK requeue:false sends the message to /queue/<name>.dlq, not back to its queue', run(async (s) => {
    const dest = '/queue/js-rejected';
    const pub = await s.stomp({}, 'pub');
    await publishSync(s, pub, { destination: dest, body: 'bad' });
    const c = await s.stomp({}, 'consumer');
    const { messages } = await subscribeSync(s, c, dest, { ack: 'client-individual' });
    const [m] = await messages.count(1);
    await nack(s, c, m, 'false');
    await publishSync(s, pub, { destination: dest, body: 'next' });
    const got = await messages.count(2);
    assert.deepEqual(got.map((x) => x.body), ['bad', 'next'], 'the rejected message is not delivered again');
    got[1].ack();
    await deadLetter(s, `${dest}.dlq`, 'bad', dest, 'rejected', '1');
  }));

  it('a message NACKed -queue-max-deliveries times is dead-lettered with reason delivery-limit', run(async (s) => {
    const dest = '/queue/js-poison';
    const pub = await s.stomp({}, 'pub');
    await publishSync(s, pub, { destination: dest, body: 'poison' });
    const c = await s.stomp({}, 'consumer');
    const { messages } = await subscribeSync(s, c, dest, { ack: 'client-individual', 'prefetch-count': '1' });
    await nack(s, c, (await messages.count(1))[0]);
    await nack(s, c, (await messages.count(2))[1]);
    await publishSync(s, pub, { destination: dest, body: 'next' });
    const got = await messages.count(3);
    assert.deepEqual(got.map((x) => x.body), ['poison', 'poison', 'next']);
    got[2].ack();
    await deadLetter(s, `${dest}.dlq`, 'poison', dest, 'delivery-limit', '2');
  }));

  it("a queue policy's dead-letter destination takes the dead letters of every matching queue", run(async (s) => {
    const pub = await s.stomp({}, 'pub');
    const c = await s.stomp({}, 'consumer');
    for (const dest of ['/queue/js-orders.eu', '/queue/js-orders.us']) {
      await publishSync(s, pub, { destination: dest, body: `from ${dest}` });
      const { messages } = await subscribeSync(s, c, dest, { ack: 'client-individual' });
      await nack(s, c, (await messages.count(1))[0], 'false');
    }
    const d = await s.stomp({}, 'failed');
    const { messages } = await subscribeSync(s, d, '/queue/js-failed', { ack: 'client-individual' });
    const got = await messages.count(2);
    assert.deepEqual(got.map((m) => m.headers['x-original-destination']).sort(), ['/queue/js-orders.eu', '/queue/js-orders.us']);
    for (const m of got) {
      assert.equal(m.body, `from ${m.headers['x-original-destination']}`);
      assert.equal(m.headers['x-dead-letter-reason'], 'rejected');
      m.ack();
    }
  }));

  it('a message older than its policy ttl is dead-lettered (expired) instead of delivered', run(async (s) => {
    const dest = '/queue/js-ttl';
    const pub = await s.stomp({}, 'pub');
    await publishSync(s, pub, { destination: dest, body: 'stale' });
    // The message's age is what is tested.
    await new Promise((r) => setTimeout(r, TTL_MS + 100));
    await publishSync(s, pub, { destination: dest, body: 'fresh' });
    const c = await s.stomp({}, 'consumer');
    const { messages } = await subscribeSync(s, c, dest, { ack: 'client-individual' });
    const [m] = await messages.count(1);
    assert.equal(m.body, 'fresh', 'the expired message is not delivered');
    m.ack();
    await deadLetter(s, `${dest}.dlq`, 'stale', dest, 'expired');
  }));

  it('a SEND to a queue at its policy max-length gets ERROR queue full with its receipt-id', run(async (s) => {
    const dest = '/queue/js-short';
    const pub = await s.stomp({}, 'pub');
    await publishSync(s, pub, { destination: dest, body: '1' });
    await publishSync(s, pub, { destination: dest, body: '2' });
    const err = deferred();
    pub.client.onStompError = (f) => err.resolve(f);
    pub.client.publish({ destination: dest, body: '3', headers: { receipt: 'third' } });
    const f = await withTimeout(err.promise, DEFAULT_TIMEOUT, 'ERROR for the 3rd SEND');
    assert.equal(f.headers.message, 'queue full', JSON.stringify(f.headers));
    assert.equal(f.headers['receipt-id'], 'third', JSON.stringify(f.headers));
    const c = await s.stomp({}, 'consumer');
    const { messages } = await subscribeSync(s, c, dest, { ack: 'auto' });
    assert.deepEqual((await messages.count(2)).map((m) => m.body), ['1', '2']);
  }));
});
