// Heart-beating in both directions, against a broker whose own heart-beat
// is 1 s (its default, 10 s, would make these tests take most of a minute).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useBroker, subscribeSync, publishSync, withTimeout, deferred, Collector } from '../lib/harness.mjs';

const HEART_BEAT = 1000; // ms: the broker's -heart-beat, offered and asked for in CONNECTED
const GRACE = 2; // the broker's -heart-beat-grace: client periods of silence before a drop

const run = useBroker(['-heart-beat', `${HEART_BEAT}ms`, '-heart-beat-grace', String(GRACE)]);

describe('heart-beats', () => {
  it('a stompjs client with 1000,1000 heart-beats stays connected through >= 4 s of silence', run(async (s) => {
    const beats = new Collector('server heart-beats');
    const trouble = deferred();
    trouble.promise.catch(() => {}); // also settled by the close at the end of the test
    let lost = 0;
    let closed = false;
    const c = await s.stomp({
      heartbeatIncoming: 1000,
      heartbeatOutgoing: 1000,
      onHeartbeatLost: () => {
        lost += 1;
        trouble.reject(new Error('stompjs saw the server heart-beats go missing'));
      },
      onHeartbeatReceived: () => beats.push(Date.now()),
    }, 'hb');
    const connectedAt = Date.now();
    c.closed.then((evt) => {
      closed = true;
      trouble.reject(new Error(`connection closed during the silence (code ${evt.code})`));
    });
    const [sx, sy] = c.connected.headers['heart-beat'].split(',').map(Number);
    assert.deepEqual([sx, sy], [HEART_BEAT, HEART_BEAT], 'CONNECTED heart-beat is the broker\'s -heart-beat both ways');
    // Negotiated periods (STOMP 1.2): server->client max(sx, cy), client->server
    // max(cx, sy). The silence under test is twice the longer drop window: the
    // broker's (GRACE client periods) and stompjs's (2 server periods).
    const outPeriod = Math.max(1000, sx);
    const inPeriod = Math.max(1000, sy);
    const idle = Math.max(4000, 2 * Math.max(GRACE * inPeriod, 2 * outPeriod));
    // The event awaited: a server heart-beat arriving after that silence.
    await Promise.race([
      beats.until((ts) => ts.length >= 2 && ts[ts.length - 1] - connectedAt >= idle, idle + 3 * outPeriod,
        `a server heart-beat ${idle} ms after CONNECTED (period ${outPeriod} ms)`),
      trouble.promise,
    ]);
    assert.equal(closed, false, 'connection still open after the silence');
    assert.equal(lost, 0, 'stompjs never saw the server heart-beats go missing');
    assert.ok(beats.items.length >= 2, `server heart-beats received during ${idle} ms of silence: ${beats.items.length}`);
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
    // drops a client silent for GRACE periods. Bound: one more period and 2 s.
    const period = Math.max(500, sy);
    const bound = (GRACE + 1) * period + 2000;
    const info = await withTimeout(raw.closed, bound, `the broker to close a silent connection (negotiated period ${period} ms)`);
    const elapsed = Date.now() - connectedAt;
    assert.ok(elapsed >= GRACE * period, `closed after ${elapsed} ms, not before ${GRACE} heart-beat periods (${period} ms)`);
    assert.ok(info, `closed: ${JSON.stringify(info)}`);
    const err = raw.frames.items.find((x) => x.command === 'ERROR');
    assert.ok(err, `an ERROR frame before the close: ${JSON.stringify(raw.frames.items.map((x) => x.command))}`);
    assert.match(err.headers.message ?? '', /heart-beat/, `ERROR says why: ${JSON.stringify(err.headers)}`);
  }));
});
