// SEND rate limits (-rate-limit-connection, -rate-limit-wait) with
// stomp.js over WebSocket: a client over its limit is slowed down by not
// being read, and one that keeps flooding gets ERROR rate limit with
// retry-after; both are counted in /metrics.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useBroker, subscribeSync, publishSync, withTimeout, DEFAULT_TIMEOUT } from '../lib/harness.mjs';

const run = useBroker(['-rate-limit-connection', '/topic/rl.#=20/s', '-rate-limit-wait', '1s']);

async function metric(s, line) {
  const res = await fetch(`http://${s.broker.httpAddr}/metrics`);
  const text = await res.text();
  const m = text.split('\n').find((l) => l.startsWith(`${line} `));
  return m ? Number(m.slice(line.length + 1)) : NaN;
}

describe('rate limits', () => {
  it('a burst over the limit is slowed down, not refused; other destinations are not limited', run(async (s) => {
    const a = await s.stomp({}, 'bursty');
    const dest = `/topic/rl.${s.uid('burst')}`;
    const { messages } = await subscribeSync(s, a, dest);
    const t0 = Date.now();
    for (let i = 0; i < 30; i++) a.client.publish({ destination: dest, body: `m${i}` });
    await publishSync(s, a, { destination: dest, body: 'last' });
    await messages.count(31);
    // 20 in the burst, the other 11 at 20 a second.
    assert.ok(Date.now() - t0 >= 450, `31 messages at 20/s after a burst of 20 took ${Date.now() - t0} ms`);
    assert.deepEqual(messages.items.map((m) => m.body), [...Array.from({ length: 30 }, (_, i) => `m${i}`), 'last']);
    assert.equal(a.errors.length, 0);
    assert.ok(await metric(s, 'stompbus_rate_limit_delays_total{scope="connection"}') >= 1);
    // A destination no rule matches is not held back.
    const free = `/topic/free.${s.uid('f')}`;
    const f = await subscribeSync(s, a, free);
    const t1 = Date.now();
    for (let i = 0; i < 100; i++) a.client.publish({ destination: free, body: `f${i}` });
    await f.messages.count(100);
    assert.ok(Date.now() - t1 < 5000);
  }));

  it('a client that keeps flooding gets ERROR rate limit with retry-after, and is closed', run(async (s) => {
    const a = await s.stomp({}, 'flooder');
    const dest = `/topic/rl.${s.uid('flood')}`;
    const sink = await s.stomp({}, 'sink');
    const { messages } = await subscribeSync(s, sink, dest);
    const t0 = Date.now();
    for (let i = 0; i < 500; i++) a.client.publish({ destination: dest, body: `m${i}` });
    await withTimeout(a.closed, DEFAULT_TIMEOUT, 'the flooder closed');
    assert.equal(a.errors.length, 1);
    const e = a.errors[0];
    assert.equal(e.headers.message, 'rate limit');
    assert.ok(Number(e.headers['retry-after']) >= 1, `retry-after ${e.headers['retry-after']}`);
    assert.ok(Date.now() - t0 >= 1000, `refused after ${Date.now() - t0} ms, before -rate-limit-wait`);
    // What was acted on before the ERROR: the burst and 20 a second.
    assert.ok(messages.items.length < 100, `${messages.items.length} of 500 delivered`);
    assert.equal(await metric(s, 'stompbus_rate_limit_refusals_total{scope="connection"}'), 1);
    assert.equal(await metric(s, 'stompbus_limit_hits_total{limit="rate"}'), 1);
  }));
});
