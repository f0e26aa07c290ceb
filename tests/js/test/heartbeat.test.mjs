// Heart-beating in both directions.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useBroker, subscribeSync, publishSync, withTimeout, DEFAULT_TIMEOUT } from '../lib/harness.mjs';
import { setTimeout as delay } from 'node:timers/promises';

const run = useBroker();

describe('heart-beats', () => {
  it('a stompjs client with 1000,1000 heart-beats stays connected through 4.5 s of silence', run(async (s) => {
    let lost = 0;
    let received = 0;
    let closed = false;
    const c = await s.stomp({
      heartbeatIncoming: 1000,
      heartbeatOutgoing: 1000,
      onHeartbeatLost: () => { lost += 1; },
      onHeartbeatReceived: () => { received += 1; },
    }, 'hb');
    c.closed.then(() => { closed = true; });
    const [sx, sy] = c.connected.headers['heart-beat'].split(',').map(Number);
    assert.ok(sx > 0, `server offers to send heart-beats (CONNECTED heart-beat:${sx},${sy}) to a client asking for 1000 ms`);
    assert.ok(sx <= 1000 * 1.5, `server heart-beat period ${sx} ms fits a client that wants one every 1000 ms`);
    // Deliberate idle period (this is the thing under test, not a synchronisation wait).
    await delay(4500);
    assert.equal(closed, false, 'connection still open after the idle period');
    assert.equal(lost, 0, 'stompjs never saw the server heart-beats go missing');
    assert.ok(received >= 2, `server heart-beats received during the idle period: ${received}`);
    assert.equal(c.client.connected, true);
    const { messages } = await subscribeSync(s, c, '/topic/hb');
    await publishSync(s, c, { destination: '/topic/hb', body: 'still alive' });
    const [m] = await messages.count(1);
    assert.equal(m.body, 'still alive');
  }));

  it('a raw client that promises heart-beats (500,0) and goes silent is disconnected', run(async (s) => {
    const raw = await s.raw(['v12.stomp']);
    const connectedAt = Date.now();
    const f = await raw.connect({ 'heart-beat': '500,0' });
    const [sx, sy] = (f.headers['heart-beat'] ?? '0,0').split(',').map(Number);
    assert.ok(sy > 0, `server expects the client's heart-beats (CONNECTED heart-beat:${sx},${sy})`);
    const period = Math.max(500, sy);
    const bound = Math.min(3 * period + 2000, 10_000);
    const info = await withTimeout(raw.closed, bound, `the broker to close a silent connection (negotiated period ${period} ms)`);
    const elapsed = Date.now() - connectedAt;
    assert.ok(elapsed >= period, `closed after ${elapsed} ms, not before one heart-beat period (${period} ms)`);
    assert.ok(info, `closed: ${JSON.stringify(info)}`);
  }));

  it('a raw client that keeps sending heart-beats (500,0) stays connected', run(async (s) => {
    const raw = await s.raw(['v12.stomp']);
    const f = await raw.connect({ 'heart-beat': '500,0' });
    const [, sy] = (f.headers['heart-beat'] ?? '0,0').split(',').map(Number);
    const period = Math.max(500, sy);
    const timer = setInterval(() => raw.ws.send('\n'), Math.floor(period / 2));
    try {
      await delay(Math.min(3 * period + 2000, 10_000));
      assert.equal(raw.closeInfo, null, 'connection still open');
      raw.send('SUBSCRIBE', { id: 's1', destination: '/topic/hb-raw', receipt: 'r1' });
      await raw.nextFrame('RECEIPT', 0, DEFAULT_TIMEOUT);
    } finally {
      clearInterval(timer);
    }
  }));
});
