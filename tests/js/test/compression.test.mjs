// permessage-deflate (RFC 7692) with the `ws` package, which offers it by
// default as browsers do.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useBroker, subscribeSync, publishSync, WebSocket } from '../lib/harness.mjs';

const run = useBroker();
const off = useBroker(['-ws-compression', 'off']);

const chat = JSON.stringify({ room: 'general', user: 'ann', text: 'Has anyone seen the release notes for today\'s build?', ts: 1765112345123 });
const big = JSON.stringify({ items: Array.from({ length: 120 }, (_, i) => ({ id: i, sku: `SKU-${i * 37}`, name: `Item ${i}`, price: i * 1.25, tags: [`t${i % 5}`] })) });

describe('websocket compression', () => {
  it('stomp.js with perMessageDeflate negotiates it, sends compressed and receives every body intact', run(async (s) => {
    let sock;
    let accepted = '';
    const opts = {
      webSocketFactory: () => {
        // threshold 0: the client compresses every frame it sends
        sock = new WebSocket(s.broker.wsUrl, ['v12.stomp'], { perMessageDeflate: { threshold: 0 } });
        sock.on('upgrade', (res) => (accepted = res.headers['sec-websocket-extensions'] || ''));
        return sock;
      },
    };
    const a = await s.stomp(opts, 'deflate');
    assert.match(sock.extensions, /permessage-deflate/);
    assert.match(accepted, /server_no_context_takeover/);
    assert.match(accepted, /client_no_context_takeover/);
    const dest = `/topic/${s.uid('z')}`;
    const { messages } = await subscribeSync(s, a, dest);
    await publishSync(s, a, { destination: dest, body: chat, headers: { 'content-type': 'application/json' } });
    await publishSync(s, a, { destination: dest, body: big, headers: { 'content-type': 'application/json' } });
    await publishSync(s, a, { destination: dest, body: 'hi' });
    const got = await messages.count(3);
    assert.deepEqual(got.map((m) => m.body), [chat, big, 'hi']);
  }));

  it('a compressed subscriber reads far fewer bytes than a plain one for the same 10 KB message', run(async (s) => {
    const z = await s.raw(['v12.stomp'], 'z');
    const p = await s.raw(['v12.stomp'], 'plain', { perMessageDeflate: false });
    assert.match(z.ws.extensions, /permessage-deflate/);
    assert.equal(p.ws.extensions, '');
    const dest = `/topic/${s.uid('z')}`;
    for (const r of [z, p]) {
      await r.connect();
      r.send('SUBSCRIBE', { id: 's', destination: dest, receipt: 'r' });
      await r.nextFrame('RECEIPT');
    }
    const before = [z.ws._socket.bytesRead, p.ws._socket.bytesRead];
    z.send('SEND', { destination: dest, 'content-type': 'application/json' }, big);
    const mz = await z.nextFrame('MESSAGE');
    const mp = await p.nextFrame('MESSAGE');
    assert.equal(mz.body.toString(), big);
    assert.equal(mp.body.toString(), big);
    const read = [z.ws._socket.bytesRead - before[0], p.ws._socket.bytesRead - before[1]];
    assert.ok(read[1] > big.length, `plain read ${read[1]} bytes`);
    assert.ok(read[0] < read[1] / 2, `compressed read ${read[0]} bytes, plain ${read[1]}`);
  }));

  it('with -ws-compression off the offer is declined and everything still works', off(async (s) => {
    let sock;
    const a = await s.stomp({ webSocketFactory: () => (sock = new WebSocket(s.broker.wsUrl, ['v12.stomp'], { perMessageDeflate: { threshold: 0 } })) }, 'off');
    assert.equal(sock.extensions, '');
    const dest = `/topic/${s.uid('z')}`;
    const { messages } = await subscribeSync(s, a, dest);
    await publishSync(s, a, { destination: dest, body: big });
    const got = await messages.count(1);
    assert.equal(got[0].body, big);
  }));
});
