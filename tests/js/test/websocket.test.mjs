// WebSocket subprotocol negotiation and bad input.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useBroker, subscribeSync, publishSync, withTimeout, DEFAULT_TIMEOUT } from '../lib/harness.mjs';

const run = useBroker();

describe('websocket', () => {
  it('subprotocol: offering v10, v11 and v12 gets v12.stomp', run(async (s) => {
    const raw = await s.raw(['v10.stomp', 'v11.stomp', 'v12.stomp']);
    assert.equal(raw.ws.protocol, 'v12.stomp');
    const f = await raw.connect({ 'accept-version': '1.0,1.1,1.2' });
    assert.equal(f.headers.version, '1.2');
  }));

  it('subprotocol: offering only v11.stomp gets v11.stomp', run(async (s) => {
    const raw = await s.raw(['v11.stomp']);
    assert.equal(raw.ws.protocol, 'v11.stomp');
    const f = await raw.connect({ 'accept-version': '1.1' });
    assert.equal(f.headers.version, '1.1');
  }));

  it('subprotocol: offering v12 first and v10 last still gets v12.stomp', run(async (s) => {
    const raw = await s.raw(['v12.stomp', 'v11.stomp', 'v10.stomp']);
    assert.equal(raw.ws.protocol, 'v12.stomp');
  }));

  it('subprotocol: a handshake with none succeeds with no protocol and speaks STOMP 1.2', run(async (s) => {
    // `ws` fails the handshake itself if the server answers with a protocol that was not offered
    const raw = await s.raw(null);
    assert.equal(raw.ws.protocol, '');
    const f = await raw.connect({ 'accept-version': '1.0,1.1,1.2' });
    assert.equal(f.headers.version, '1.2');
    raw.send('SUBSCRIBE', { id: 's', destination: '/topic/noproto', receipt: 'r' });
    const r = await raw.nextFrame('RECEIPT');
    assert.equal(r.headers['receipt-id'], 'r');
  }));

  it('garbage after CONNECT gets an ERROR with a message header, then the socket closes; others keep working', run(async (s) => {
    const dest = '/topic/bad-input';
    const good = await s.stomp({}, 'good');
    const { messages } = await subscribeSync(s, good, dest);
    await publishSync(s, good, { destination: dest, body: 'before' });
    await messages.count(1);

    const bad = await s.raw(['v12.stomp']);
    await bad.connect();
    bad.sendRaw('FOO\n\n\0');
    const err = await bad.nextFrame('ERROR');
    assert.ok(err.headers.message && err.headers.message.length > 0, `ERROR has a message header: ${JSON.stringify(err.headers)}`);
    const info = await withTimeout(bad.closed, DEFAULT_TIMEOUT, 'the broker to close the socket after ERROR');
    assert.ok(info);

    await publishSync(s, good, { destination: dest, body: 'after' });
    const got = await messages.count(2);
    assert.deepEqual(got.map((m) => m.body), ['before', 'after']);
    assert.equal(good.client.connected, true);
  }));

  it('a bad frame that asked for a receipt gets ERROR with receipt-id', run(async (s) => {
    const bad = await s.raw(['v12.stomp']);
    await bad.connect();
    // SEND without a destination is invalid
    bad.send('SEND', { receipt: 'bad-send' }, 'no destination');
    const err = await bad.nextFrame('ERROR');
    assert.ok(err.headers.message, `ERROR has a message header: ${JSON.stringify(err.headers)}`);
    assert.equal(err.headers['receipt-id'], 'bad-send');
    await withTimeout(bad.closed, DEFAULT_TIMEOUT, 'the broker to close the socket after ERROR');
  }));

  it('garbage before CONNECT gets an ERROR and a close', run(async (s) => {
    const bad = await s.raw(['v12.stomp']);
    bad.sendRaw('HELLO\nfoo:bar\n\nbody\0');
    const err = await bad.nextFrame('ERROR');
    assert.ok(err.headers.message, `ERROR has a message header: ${JSON.stringify(err.headers)}`);
    await withTimeout(bad.closed, DEFAULT_TIMEOUT, 'the broker to close the socket after ERROR');
  }));
});
