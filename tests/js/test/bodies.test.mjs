// Bodies and headers: binary, UTF-8, header escaping, frames split over WebSocket messages.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useBroker, subscribeSync, publishSync } from '../lib/harness.mjs';

const run = useBroker();

describe('bodies and headers', () => {
  it('binary body with every byte value 0..255 round-trips exactly', run(async (s) => {
    const dest = '/topic/binary';
    const sub = await s.stomp({}, 'sub');
    const { messages } = await subscribeSync(s, sub, dest);
    // a raw WebSocket subscriber too, to see the WebSocket message type the broker uses
    const raw = await s.raw(['v12.stomp']);
    await raw.connect();
    raw.send('SUBSCRIBE', { id: 'raw-1', destination: dest, receipt: 'raw-sub' });
    await raw.nextFrame('RECEIPT');

    const bytes = new Uint8Array(256 * 2);
    for (let i = 0; i < bytes.length; i++) bytes[i] = i % 256;
    const pub = await s.stomp({}, 'pub');
    await publishSync(s, pub, {
      destination: dest,
      binaryBody: bytes,
      headers: { 'content-type': 'application/octet-stream' },
    });

    const [m] = await messages.count(1);
    assert.equal(m.isBinaryBody, true);
    assert.deepEqual(Buffer.from(m.binaryBody), Buffer.from(bytes), 'binary body round-trip');
    assert.equal(m.headers['content-type'], 'application/octet-stream');
    assert.equal(m.headers['content-length'], String(bytes.length));

    const rf = await raw.nextFrame('MESSAGE');
    assert.deepEqual(rf.body, Buffer.from(bytes), 'raw subscriber body');
    const wsMsg = raw.messages.find((x) => x.data.subarray(0, 8).toString('latin1') === 'MESSAGE\n');
    assert.ok(wsMsg, 'MESSAGE arrived in its own WebSocket message');
    assert.equal(wsMsg.isBinary, true, 'a MESSAGE with a binary body is sent as a binary WebSocket message');
  }));

  it('text body with multi-byte UTF-8 round-trips', run(async (s) => {
    const dest = '/topic/utf8';
    const text = 'héllo wörld — Καλημέρα — 日本語テキスト — emoji 🎉🚀 — ∑∞≠ — ',
      body = text.repeat(3);
    const sub = await s.stomp({}, 'sub');
    const { messages } = await subscribeSync(s, sub, dest);
    const raw = await s.raw(['v12.stomp']);
    await raw.connect();
    raw.send('SUBSCRIBE', { id: 'raw-1', destination: dest, receipt: 'raw-sub' });
    await raw.nextFrame('RECEIPT');
    const pub = await s.stomp({}, 'pub');
    await publishSync(s, pub, { destination: dest, body, headers: { 'content-type': 'text/plain;charset=utf-8' } });
    const [m] = await messages.count(1);
    assert.equal(m.body, body);
    const rf = await raw.nextFrame('MESSAGE');
    assert.equal(rf.body.toString('utf8'), body);
    assert.equal(rf.body.length, Buffer.byteLength(body, 'utf8'));
    if (rf.headers['content-length'] !== undefined) {
      assert.equal(rf.headers['content-length'], String(Buffer.byteLength(body, 'utf8')), 'content-length counts bytes');
    }
    const wsMsg = raw.messages.find((x) => x.data.subarray(0, 8).toString('latin1') === 'MESSAGE\n');
    assert.equal(wsMsg.isBinary, false, 'a MESSAGE with a text body is sent as a text WebSocket message');
  }));

  it('STOMP 1.2 header escaping: values with ":", "\\n", "\\\\" and "\\r" arrive unchanged', run(async (s) => {
    const dest = '/topic/escaping';
    // Note: stompjs 7 un-escapes with sequential replaces, so a value with a
    // backslash followed by "n", "r" or "c" would be mangled by the client
    // itself; the values below avoid that combination.
    const headers = {
      'x-colon': 'a:b:c',
      'x-newline': 'line1\nline2',
      'x-backslash': 'back\\slash\\\\double',
      'x-cr': 'carriage\rreturn',
      'x-all': 'k:v\nk2:v2\r\\end',
      'x-url': 'http://example.test:8080/p?q=1',
    };
    const sub = await s.stomp({}, 'sub');
    const { messages } = await subscribeSync(s, sub, dest);
    // raw subscriber sees the escaped wire form
    const raw = await s.raw(['v12.stomp']);
    await raw.connect();
    raw.send('SUBSCRIBE', { id: 'raw-1', destination: dest, receipt: 'raw-sub' });
    await raw.nextFrame('RECEIPT');

    const pub = await s.stomp({}, 'pub');
    await publishSync(s, pub, { destination: dest, body: 'escaped headers', headers });
    const [m] = await messages.count(1);
    for (const [k, v] of Object.entries(headers)) {
      assert.equal(m.headers[k], v, `header ${k}`);
    }
    const rf = await raw.nextFrame('MESSAGE');
    assert.equal(rf.headers['x-colon'], 'a\\cb\\cc', 'wire form of ":" is \\c');
    assert.equal(rf.headers['x-newline'], 'line1\\nline2', 'wire form of LF is \\n');
    assert.equal(rf.headers['x-cr'], 'carriage\\rreturn', 'wire form of CR is \\r');
    assert.equal(rf.headers['x-backslash'], 'back\\\\slash\\\\\\\\double', 'wire form of \\ is \\\\');
  }));

  it('a 100 KB frame split into 1 KB WebSocket messages arrives intact', run(async (s) => {
    const dest = '/topic/large';
    const sub = await s.stomp({}, 'sub');
    const { messages } = await subscribeSync(s, sub, dest);
    const pub = await s.stomp({ splitLargeFrames: true, maxWebSocketChunkSize: 1024 }, 'pub');
    let body = '';
    for (let i = 0; body.length < 100 * 1024; i++) body += `${String(i).padStart(6, '0')}:abcdefghijklmnopqrstuvwxyz|`;
    body = body.slice(0, 100 * 1024);
    await publishSync(s, pub, { destination: dest, body });
    const [m] = await messages.count(1, 15_000);
    assert.equal(m.body.length, body.length);
    assert.ok(m.body === body, 'large body intact');
    // and a small frame right after it still works (parser state is clean)
    await publishSync(s, pub, { destination: dest, body: 'small' });
    const got = await messages.count(2);
    assert.equal(got[1].body, 'small');
  }));

  it('several frames in one WebSocket message are all handled', run(async (s) => {
    const dest = '/topic/batched';
    const sub = await s.stomp({}, 'sub');
    const { messages } = await subscribeSync(s, sub, dest);
    const raw = await s.raw(['v12.stomp']);
    await raw.connect();
    const { encodeFrame } = await import('../lib/harness.mjs');
    raw.sendRaw(Buffer.concat([
      encodeFrame('SEND', { destination: dest }, 'one'),
      encodeFrame('SEND', { destination: dest }, 'two'),
      encodeFrame('SEND', { destination: dest, receipt: 'batch' }, 'three'),
    ]));
    await raw.nextFrame('RECEIPT');
    const got = await messages.count(3);
    assert.deepEqual(got.map((m) => m.body), ['one', 'two', 'three']);
  }));
});
