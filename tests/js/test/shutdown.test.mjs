// SIGTERM drain: clients get an ERROR saying the node is going down, what was
// accepted is delivered first, the sockets close and the process exits 0.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Broker, Scope, withTimeout, DEFAULT_TIMEOUT } from '../lib/harness.mjs';

describe('shutdown', () => {
  it('SIGTERM: accepted messages first, then ERROR with a message, close, exit 0 within 10 s', async (t) => {
    const broker = new Broker();
    await broker.start();
    const s = new Scope(broker);
    try {
      const dest = '/topic/drain';
      const sub = await s.raw(['v12.stomp'], 'subscriber');
      await sub.connect();
      sub.send('SUBSCRIBE', { id: 's1', destination: dest, receipt: 'sub' });
      await sub.nextFrame('RECEIPT');
      const tcpLike = await s.stomp({}, 'stompjs');
      const stompjsError = new Promise((resolve) => {
        tcpLike.client.onStompError = (f) => resolve(f);
      });

      const pub = await s.raw(['v12.stomp'], 'publisher');
      await pub.connect();
      const N = 50;
      for (let i = 0; i < N; i++) {
        pub.send('SEND', i === N - 1 ? { destination: dest, receipt: 'last' } : { destination: dest }, `drain-${i}`);
      }
      await pub.nextFrame('RECEIPT');

      const t0 = Date.now();
      broker.proc.kill('SIGTERM');

      const err = await sub.nextFrame('ERROR', 0, 12_000);
      assert.match(err.headers.message ?? '', /\S/, `ERROR carries a message: ${JSON.stringify(err.headers)}`);
      const frames = sub.frames.items;
      const errAt = frames.indexOf(err);
      const before = frames.slice(0, errAt).filter((f) => f.command === 'MESSAGE').map((f) => f.body.toString());
      assert.deepEqual(before, Array.from({ length: N }, (_, i) => `drain-${i}`), 'every accepted message is delivered before the ERROR');
      await withTimeout(sub.closed, DEFAULT_TIMEOUT, 'subscriber socket close after the ERROR');

      const f = await withTimeout(stompjsError, 12_000, 'stompjs client ERROR');
      assert.match(f.headers.message ?? '', /\S/);
      await withTimeout(tcpLike.closed, DEFAULT_TIMEOUT, 'stompjs socket close');

      const exit = await withTimeout(broker.exited, 12_000, 'broker exit after SIGTERM');
      const took = Date.now() - t0;
      assert.equal(exit.code, 0, `exit status ${JSON.stringify(exit)}`);
      assert.ok(took <= 10_000, `exited ${took} ms after SIGTERM`);
    } catch (e) {
      console.error(`\n##### test "${t.name}" failed: ${e && e.stack ? e.stack : e}\n${s.dump()}\n#####`);
      throw e;
    } finally {
      await s.close();
      await broker.stop();
    }
  });
});
