// client-individual acknowledgement, NACK redelivery and redelivery on disconnect.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useBroker, subscribeSync, publishSync, deferred, withTimeout, DEFAULT_TIMEOUT } from '../lib/harness.mjs';

const run = useBroker();

function receiptWaiter(entry, id) {
  const d = deferred();
  entry.client.watchForReceipt(id, (f) => d.resolve(f));
  return withTimeout(d.promise, DEFAULT_TIMEOUT, `RECEIPT ${id} (${entry.name})`);
}

describe('acknowledgement', () => {
  it('client-individual: NACKed message is redelivered with redelivered:true, ACK ends it', run(async (s) => {
    const dest = '/queue/r';
    const consumer = await s.stomp({}, 'consumer');
    const { messages } = await subscribeSync(s, consumer, dest, { ack: 'client-individual' });
    const pub = await s.stomp({}, 'pub');
    await publishSync(s, pub, { destination: dest, body: 'first' });

    const [m1] = await messages.count(1);
    assert.equal(m1.body, 'first');
    assert.ok(m1.headers.ack, `MESSAGE on a client-individual subscription carries an ack header: ${JSON.stringify(m1.headers)}`);
    assert.equal(m1.headers.redelivered, 'false', `first delivery says redelivered:false: ${JSON.stringify(m1.headers)}`);

    const nackR = s.uid('nack');
    const nackGot = receiptWaiter(consumer, nackR);
    m1.nack({ receipt: nackR });
    await nackGot;

    const items = await messages.count(2);
    const m2 = items[1];
    assert.equal(m2.body, 'first', 'the NACKed message is delivered again');
    assert.equal(m2.headers.redelivered, 'true', `redelivery headers: ${JSON.stringify(m2.headers)}`);
    assert.ok(m2.headers.ack, 'redelivery carries an ack header');

    const ackR = s.uid('ack');
    const ackGot = receiptWaiter(consumer, ackR);
    m2.ack({ receipt: ackR });
    await ackGot;

    // no further redelivery: a marker sent now is the next message to arrive
    await publishSync(s, pub, { destination: dest, body: 'marker' });
    const after = await messages.count(3);
    assert.equal(after[2].body, 'marker', `3rd delivery: ${after.map((m) => m.body)}`);
    after[2].ack();
    assert.equal(after.length, 3);
  }));

  it('client-individual: ACK of one message does not ack the others', run(async (s) => {
    const dest = '/queue/r-individual';
    const consumer = await s.stomp({}, 'consumer');
    const { messages } = await subscribeSync(s, consumer, dest, { ack: 'client-individual' });
    const pub = await s.stomp({}, 'pub');
    await publishSync(s, pub, { destination: dest, body: 'a' });
    await publishSync(s, pub, { destination: dest, body: 'b' });
    const got = await messages.count(2);
    assert.deepEqual(got.map((m) => m.body), ['a', 'b']);
    const r = s.uid('ack-b');
    const w = receiptWaiter(consumer, r);
    got[1].ack({ receipt: r });
    await w;
    // drop the consumer without acking 'a': only 'a' must come back
    consumer.client.forceDisconnect();
    await withTimeout(consumer.closed, DEFAULT_TIMEOUT, 'consumer socket close');
    const c2 = await s.stomp({}, 'consumer2');
    const second = await subscribeSync(s, c2, dest, { ack: 'client-individual' });
    const re = await second.messages.count(1);
    assert.equal(re[0].body, 'a');
    re[0].ack();
    await publishSync(s, pub, { destination: dest, body: 'marker' });
    const after = await second.messages.count(2);
    assert.equal(after[1].body, 'marker', `deliveries: ${after.map((m) => m.body)}`);
  }));

  it('an unacked message goes to a second consumer when the first connection closes', run(async (s) => {
    const dest = '/queue/r2';
    const c1 = await s.stomp({}, 'consumer1');
    const first = await subscribeSync(s, c1, dest, { ack: 'client-individual' });
    const pub = await s.stomp({}, 'pub');
    await publishSync(s, pub, { destination: dest, body: 'unacked' });
    const [m] = await first.messages.count(1);
    assert.equal(m.body, 'unacked');

    const c2 = await s.stomp({}, 'consumer2');
    const second = await subscribeSync(s, c2, dest, { ack: 'client-individual' });
    // close the first consumer's connection without ACK or DISCONNECT
    c1.client.forceDisconnect();
    await withTimeout(c1.closed, DEFAULT_TIMEOUT, 'consumer1 socket close');

    const [r] = await second.messages.count(1, 15_000);
    assert.equal(r.body, 'unacked');
    r.ack();
  }));
});
