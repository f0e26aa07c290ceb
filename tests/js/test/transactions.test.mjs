// BEGIN / COMMIT / ABORT.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useBroker, subscribeSync, publishSync } from '../lib/harness.mjs';

const run = useBroker();

describe('transactions', () => {
  it('messages sent in a transaction are delivered on COMMIT, in order, and not before', run(async (s) => {
    const dest = '/topic/tx';
    const sub = await s.stomp({}, 'sub');
    const { messages } = await subscribeSync(s, sub, dest);
    const pub = await s.stomp({}, 'pub');

    const tx = pub.client.begin();
    for (const b of ['tx-1', 'tx-2', 'tx-3']) {
      pub.client.publish({ destination: dest, body: b, headers: { transaction: tx.id } });
    }
    // a message outside the transaction, sent after the transacted ones on the
    // same connection: if the transacted ones leaked, they would arrive first
    await publishSync(s, pub, { destination: dest, body: 'outside-1' });
    const first = await messages.count(1);
    assert.deepEqual(first.map((m) => m.body), ['outside-1'], 'nothing from the open transaction is delivered');

    tx.commit();
    const got = await messages.count(4);
    assert.deepEqual(got.map((m) => m.body), ['outside-1', 'tx-1', 'tx-2', 'tx-3']);
    for (const m of got) assert.equal(m.headers.transaction, undefined, 'MESSAGE carries no transaction header');
  }));

  it('an aborted transaction delivers nothing', run(async (s) => {
    const dest = '/topic/tx-abort';
    const sub = await s.stomp({}, 'sub');
    const { messages } = await subscribeSync(s, sub, dest);
    const pub = await s.stomp({}, 'pub');

    const tx = pub.client.begin();
    for (const b of ['ab-1', 'ab-2', 'ab-3']) {
      pub.client.publish({ destination: dest, body: b, headers: { transaction: tx.id } });
    }
    tx.abort();
    await publishSync(s, pub, { destination: dest, body: 'marker' });
    const got = await messages.count(1);
    assert.equal(got[0].body, 'marker', 'the marker is the first thing received');
    // one more round trip to be sure nothing trails the marker
    await publishSync(s, pub, { destination: dest, body: 'marker-2' });
    const after = await messages.count(2);
    assert.deepEqual(after.map((m) => m.body), ['marker', 'marker-2']);
  }));

  it('queue messages in a transaction: commit delivers, abort does not', run(async (s) => {
    const dest = '/queue/tx';
    const sub = await s.stomp({}, 'sub');
    const { messages } = await subscribeSync(s, sub, dest);
    const pub = await s.stomp({}, 'pub');
    const tx1 = pub.client.begin();
    pub.client.publish({ destination: dest, body: 'aborted', headers: { transaction: tx1.id } });
    tx1.abort();
    const tx2 = pub.client.begin();
    pub.client.publish({ destination: dest, body: 'committed', headers: { transaction: tx2.id } });
    tx2.commit();
    await publishSync(s, pub, { destination: dest, body: 'marker' });
    const got = await messages.count(2);
    assert.deepEqual(got.map((m) => m.body), ['committed', 'marker']);
  }));
});
