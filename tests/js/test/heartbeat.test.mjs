// Heart-beating in both directions.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useBroker, subscribeSync, publishSync, withTimeout, DEFAULT_TIMEOUT } from '../lib/harness.mjs';
import { setTimeout as delay } from 'node:timers/promises';

const run = useBroker();

describe('heart-beats', () => {
  it('a stompjs client with 1000,1000 heart-beats stays connected through >= 4 s of silence', run(async (s) => {
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
    assert.ok(sx > 0, `server offers to send heart-beats (CONNECTED heart-beat:${sx},${sy}) to a client asking for them every 1000 ms`);
    assert.ok(sy > 0, `server asks for the client's heart-beats (CONNECTED heart-beat:${sx},${sy})`);
    // Negotiated server->client period (STOMP 1.2: max(sx, cy)). The idle
    // period is long enough for at least two server heart-beats, and at least
    // 4.5 s. It is the thing under test, not a synchronisation wait.
    const period = Math.max(1000, sx);
    const idle = Math.max(4500, Math.ceil(2.5 * period));
    await delay(idle);
    assert.equal(closed, false, 'connection still open after the idle period');
    assert.equal(lost, 0, 'stompjs never saw the server heart-beats go missing');
    assert.ok(received >= 2, `server heart-beats received during ${idle} ms idle (period ${period} ms): ${received}`);
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
    // Negotiated client->server period (STOMP 1.2: max(cx, sy)); the broker
    // may allow some grace, the spec suggests tolerance, so allow 3 periods.
    const period = Math.max(500, sy);
    const bound = 3 * period + 2000;
    const info = await withTimeout(raw.closed, bound, `the broker to close a silent connection (negotiated period ${period} ms)`);
    const elapsed = Date.now() - connectedAt;
    assert.ok(elapsed >= period, `closed after ${elapsed} ms, not before one heart-beat period (${period} ms)`);
    assert.ok(info, `closed: ${JSON.stringify(info)}`);
  }));
});
