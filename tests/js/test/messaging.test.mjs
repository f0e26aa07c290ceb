// Topic fan-out, queue distribution, receipts and the CONNECTED frame.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useBroker, subscribeSync, publishSync, deferred, withTimeout, DEFAULT_TIMEOUT } from '../lib/harness.mjs';

const run = useBroker();

describe('messaging', () => {
  it('CONNECTED carries version, heart-beat, session and server stompbus/<version>', run(async (s) => {
    const c = await s.stomp();
    const h = c.connected.headers;
    assert.equal(h.version, '1.2', `CONNECTED headers: ${JSON.stringify(h)}`);
    assert.match(h['heart-beat'] ?? '', /^\d+,\d+$/, `heart-beat header: ${JSON.stringify(h)}`);
    assert.ok(h.session && h.session.length > 0, `session header: ${JSON.stringify(h)}`);
    assert.ok((h.server ?? '').startsWith('stompbus/'), `server header: ${JSON.stringify(h)}`);
    // two sessions get distinct session ids
    const c2 = await s.stomp();
    assert.notEqual(c2.connected.headers.session, h.session);
  }));

  it('topic fan-out: 3 subscribers each receive all 200 messages in order', run(async (s) => {
    const dest = '/topic/t';
    const subs = [];
    for (let i = 0; i < 3; i++) {
      const c = await s.stomp({}, `sub${i}`);
      subs.push(await subscribeSync(s, c, dest));
    }
    const pub = await s.stomp({}, 'pub');
    const N = 200;
    for (let i = 0; i < N; i++) {
      pub.client.publish({ destination: dest, body: `msg-${i}` });
    }
    for (const [i, sub] of subs.entries()) {
      const got = await sub.messages.count(N, 20_000);
      const bodies = got.map((m) => m.body);
      assert.deepEqual(bodies.slice(0, N), Array.from({ length: N }, (_, k) => `msg-${k}`), `subscriber ${i} order`);
      for (const m of got) {
        assert.equal(m.headers.destination, dest);
        assert.ok(m.headers['message-id'], 'MESSAGE has message-id');
        assert.equal(m.headers.subscription, sub.sub.id);
      }
    }
    // no extra copies: a marker published afterwards is the next (201st) message everywhere
    pub.client.publish({ destination: dest, body: 'marker' });
    for (const [i, sub] of subs.entries()) {
      const got = await sub.messages.count(N + 1);
      assert.equal(got.length, N + 1, `subscriber ${i} count`);
      assert.equal(got[N].body, 'marker', `subscriber ${i}: message after the 200`);
    }
  }));

  it('queue: 200 messages to two auto-ack consumers are delivered exactly once, to both', run(async (s) => {
    const dest = '/queue/q';
    const seen = new Map();
    const perConsumer = [0, 0];
    const all = [];
    const done = deferred();
    const N = 200;
    const onMsg = (idx) => (m) => {
      perConsumer[idx] += 1;
      all.push(m.body);
      seen.set(m.body, (seen.get(m.body) || 0) + 1);
      if (seen.size >= N) done.resolve();
    };
    const c1 = await s.stomp({}, 'consumer1');
    const c2 = await s.stomp({}, 'consumer2');
    await subscribeSync(s, c1, dest, { ack: 'auto' }, onMsg(0));
    await subscribeSync(s, c2, dest, { ack: 'auto' }, onMsg(1));
    const pub = await s.stomp({}, 'pub');
    for (let i = 0; i < N; i++) pub.client.publish({ destination: dest, body: `q-${i}` });
    await withTimeout(done.promise, 20_000, `all ${N} distinct queue messages (have ${seen.size})`);
    const dupes = [...seen.entries()].filter(([, n]) => n > 1);
    assert.deepEqual(dupes, [], 'messages delivered more than once');
    assert.equal(all.length, N);
    for (let i = 0; i < N; i++) assert.ok(seen.has(`q-${i}`), `q-${i} delivered`);
    assert.ok(perConsumer[0] > 0 && perConsumer[1] > 0, `both consumers got messages: ${perConsumer}`);
  }));

  it('receipts for SEND, SUBSCRIBE, UNSUBSCRIBE and DISCONNECT', run(async (s) => {
    const dest = '/topic/receipts';
    const c = await s.stomp({}, 'c');
    const waitReceipt = (id) => {
      const d = deferred();
      c.client.watchForReceipt(id, (f) => d.resolve(f));
      return withTimeout(d.promise, DEFAULT_TIMEOUT, `RECEIPT ${id}`);
    };
    // SUBSCRIBE
    const subR = s.uid('r-sub');
    const subGot = waitReceipt(subR);
    const got = [];
    const first = deferred();
    const sub = c.client.subscribe(dest, (m) => { got.push(m.body); first.resolve(); }, { receipt: subR });
    const f1 = await subGot;
    assert.equal(f1.command, 'RECEIPT');
    assert.equal(f1.headers['receipt-id'], subR);
    // SEND
    const sendR = s.uid('r-send');
    const sendGot = waitReceipt(sendR);
    c.client.publish({ destination: dest, body: 'hello', headers: { receipt: sendR } });
    const f2 = await sendGot;
    assert.equal(f2.headers['receipt-id'], sendR);
    await withTimeout(first.promise, DEFAULT_TIMEOUT, 'message on the subscription');
    assert.deepEqual(got, ['hello']);
    // UNSUBSCRIBE
    const unsubR = s.uid('r-unsub');
    const unsubGot = waitReceipt(unsubR);
    sub.unsubscribe({ receipt: unsubR });
    const f3 = await unsubGot;
    assert.equal(f3.headers['receipt-id'], unsubR);
    // after the UNSUBSCRIBE receipt nothing more arrives on it: a second subscription
    // (subscribed after the publish below is irrelevant) sees the marker, the old one not
    const other = await subscribeSync(s, c, dest);
    await publishSync(s, c, { destination: dest, body: 'after-unsubscribe' });
    await other.messages.count(1);
    assert.equal(other.messages.items[0].body, 'after-unsubscribe');
    assert.deepEqual(got, ['hello'], 'unsubscribed subscription received nothing more');
    // DISCONNECT with receipt (stompjs deactivate sends DISCONNECT receipt:close-N and waits for it)
    const disc = deferred();
    c.client.onDisconnect = (f) => disc.resolve(f);
    await c.client.deactivate();
    const f4 = await withTimeout(disc.promise, DEFAULT_TIMEOUT, 'RECEIPT for DISCONNECT');
    assert.equal(f4.command, 'RECEIPT');
    assert.match(f4.headers['receipt-id'], /^close-/);
  }));
});
