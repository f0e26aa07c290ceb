// Topic history and resume, driven through the project's JS module
// (webclient/src/resume.js) on @stomp/stompjs: what a client missed while
// disconnected arrives after it reconnects, on the same node or another,
// in order, without gaps or duplicates, and a gap is reported only when the
// history no longer reaches back.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Broker, Scope, Client, WebSocket, Collector, deferred, withTimeout, publishSync, DEFAULT_TIMEOUT } from '../lib/harness.mjs';
import { ResumableSubscriptions } from '../../../webclient/src/resume.js';

const HISTORY = '/topic/chat.#=100000,/topic/short.#=5';

// resumable opens a stompjs client on url with the resume module; the
// caller activates it. onMessage gets (message, info).
function resumable(url, destination, onMessage, opts = {}) {
  const client = new Client({
    webSocketFactory: () => new WebSocket(url.current, ['v12.stomp']),
    reconnectDelay: 50,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
  });
  const subs = new ResumableSubscriptions(client);
  const sub = subs.subscribe(destination, onMessage, opts);
  return { client, sub };
}

// receipts collects the x-stream-recovered values of the module's
// (re)subscriptions.
function receipts() {
  const c = new Collector('receipts');
  return { c, onReceipt: (recovered) => c.push(recovered) };
}

async function freePort() {
  for (let tries = 0; tries < 200; tries++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const ok = await new Promise((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free port');
}

// ready polls the node's /readyz (bounded) until its cluster and history
// serve.
async function ready(b, ms = 60_000) {
  const until = Date.now() + ms;
  for (;;) {
    try {
      const res = await fetch(`http://${b.httpAddr}/readyz`);
      if (res.status === 200) return;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > until) throw new Error(`${b.httpAddr} not ready within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function publishRange(pub, dest, from, to, prefix = 'm') {
  for (let i = from; i < to; i++) pub.client.publish({ destination: dest, body: `${prefix}${i}` });
}

describe('topic history, one node', () => {
  const broker = new Broker();
  before(async () => {
    await broker.start(['-topic-history', HISTORY]);
    await ready(broker);
  });
  after(() => broker.stop());
  const run = (fn) => async (t) => {
    const s = new Scope(broker);
    const own = [];
    try {
      await fn(s, own);
    } catch (e) {
      console.error(`\n##### test "${t.name}" failed: ${e.stack}\n${s.dump()}\n#####`);
      throw e;
    } finally {
      await Promise.all(own.map((c) => c.deactivate()));
      await s.close();
    }
  };

  it('receive 10, disconnect, 500 published, reconnect: exactly those 500 in order, then live', run(async (s, own) => {
    const dest = '/topic/chat.js-resume';
    const got = new Collector('resumed');
    const r = receipts();
    const url = { current: broker.wsUrl };
    const { client, sub } = resumable(url, dest, (m, info) => got.push({ body: m.body, gap: info.gap, offset: info.offset }), { onReceipt: r.onReceipt });
    own.push(client);
    client.activate();
    await r.c.count(1);
    const pub = await s.stomp({}, 'pub');
    await publishRange(pub, dest, 0, 10);
    await got.count(10);
    await client.deactivate();
    await publishRange(pub, dest, 10, 510);
    await publishSync(s, pub, { destination: dest, body: 'm510' });
    client.activate();
    await got.count(511, 20_000);
    assert.deepEqual(got.items.map((x) => x.body), Array.from({ length: 511 }, (_, i) => `m${i}`));
    assert.ok(got.items.every((x, i) => i === 0 || x.offset === got.items[i - 1].offset + 1), 'offsets consecutive');
    assert.ok(got.items.every((x) => !x.gap), 'no gap reported');
    await r.c.count(2);
    assert.deepEqual(r.c.items, [true, true], 'RECEIPTs say x-stream-recovered:true');
    pub.client.publish({ destination: dest, body: 'live' });
    await got.count(512);
    assert.equal(got.items[511].body, 'live');
    assert.equal(sub.position.offset, got.items[511].offset);
  }));

  it('history too short: x-stream-gap:true on the first message, RECEIPT x-stream-recovered:false', run(async (s, own) => {
    const dest = '/topic/short.js-gap';
    const got = new Collector('gap');
    const r = receipts();
    const url = { current: broker.wsUrl };
    const { client } = resumable(url, dest, (m, info) => got.push({ body: m.body, gap: info.gap }), { onReceipt: r.onReceipt });
    own.push(client);
    client.activate();
    await r.c.count(1);
    const pub = await s.stomp({}, 'pub');
    await publishRange(pub, dest, 0, 1);
    await got.count(1);
    await client.deactivate();
    await publishRange(pub, dest, 1, 19);
    await publishSync(s, pub, { destination: dest, body: 'm19' });
    client.activate();
    await got.count(6);
    assert.deepEqual(got.items.map((x) => x.body), ['m0', 'm15', 'm16', 'm17', 'm18', 'm19'], 'the 5 kept after the gap');
    assert.deepEqual(got.items.map((x) => x.gap), [false, true, false, false, false, false], 'gap on the first after the hole only');
    await r.c.count(2);
    assert.equal(r.c.items[1], false, 'RECEIPT says x-stream-recovered:false');
  }));

  it('resume while a publisher sends at full rate: every sequence number once, in order', run(async (s, own) => {
    const dest = '/topic/chat.js-rate';
    const N = 5000;
    const got = new Collector('rate');
    const url = { current: broker.wsUrl };
    const r = receipts();
    const { client } = resumable(url, dest, (m) => got.push(Number(m.body)), { onReceipt: r.onReceipt });
    own.push(client);
    client.activate();
    await r.c.count(1);
    const pub = await s.stomp({}, 'pub');
    await publishSync(s, pub, { destination: dest, body: '-1' }); // known to reach the subscription
    await got.count(1);
    let drops = 0;
    const sending = (async () => {
      for (let i = 0; i < N; i++) {
        const headers = i % 100 === 99 ? { receipt: s.uid('r') } : {};
        if (headers.receipt) {
          const d = deferred();
          pub.client.watchForReceipt(headers.receipt, () => d.resolve());
          pub.client.publish({ destination: dest, body: String(i), headers });
          await withTimeout(d.promise, 20_000, `receipt ${i}`);
        } else {
          pub.client.publish({ destination: dest, body: String(i) });
        }
        if (i % 1000 === 500) {
          client.forceDisconnect(); // drops the WebSocket; stompjs reconnects, the module resumes
          drops++;
        }
      }
    })();
    await sending;
    await got.count(N + 1, 60_000);
    const seq = got.items.slice(1);
    for (let i = 0; i < seq.length; i++) {
      if (seq[i] !== i) assert.fail(`message ${i} is ${seq[i]} (around: ${seq.slice(Math.max(0, i - 3), i + 3)})`);
    }
    assert.equal(seq.length, N, 'no duplicates');
    assert.ok(drops >= 4, `dropped the connection ${drops} times`);
    assert.ok(r.c.items.length >= 2 && r.c.items.every((x) => x), `every resume recovered: ${r.c.items}`);
  }));
});

describe('topic history, two nodes', () => {
  const b1 = new Broker();
  const b2 = new Broker();
  before(async () => {
    const [p1, p2] = [await freePort(), await freePort()];
    await Promise.all([
      b1.start(['-node', 'n1', '-topic-history', HISTORY, '-cluster-listen', `127.0.0.1:${p1}`, '-cluster-routes', `nats-route://127.0.0.1:${p2}`]),
      b2.start(['-node', 'n2', '-topic-history', HISTORY, '-cluster-listen', `127.0.0.1:${p2}`, '-cluster-routes', `nats-route://127.0.0.1:${p1}`]),
    ]);
    for (const b of [b1, b2]) await ready(b);
  });
  after(() => Promise.all([b1.stop(), b2.stop()]));

  it('leave node 1, come back on node 2: exactly the 500 missed, in order, then live', async (t) => {
    const s1 = new Scope(b1);
    const s2 = new Scope(b2);
    const dest = '/topic/chat.js-nodes';
    const got = new Collector('nodes');
    const url = { current: b1.wsUrl };
    const r = receipts();
    const { client } = resumable(url, dest, (m, info) => got.push({ body: m.body, gap: info.gap }), { onReceipt: r.onReceipt });
    try {
      client.activate();
      await r.c.count(1, 60_000);
      const pub1 = await s1.stomp({}, 'pub1');
      // the subscription on node 1 is known to receive once its own node's publisher reaches it
      await publishRange(pub1, dest, 0, 10);
      await got.count(10, 30_000);
      await client.deactivate();
      const pub2 = await s2.stomp({}, 'pub2');
      await publishRange(pub1, dest, 10, 260);
      await publishSync(s1, pub1, { destination: dest, body: 'm260' });
      await publishRange(pub2, dest, 261, 509);
      await publishSync(s2, pub2, { destination: dest, body: 'm509' });
      url.current = b2.wsUrl; // come back on node 2
      client.activate();
      await got.count(510, 30_000);
      assert.deepEqual(got.items.map((x) => x.body), Array.from({ length: 510 }, (_, i) => `m${i}`));
      assert.ok(got.items.every((x) => !x.gap), 'no gap');
      await r.c.count(2);
      assert.equal(r.c.items[1], true, 'recovered on node 2');
      pub1.client.publish({ destination: dest, body: 'live-from-node-1' });
      await got.count(511, 30_000);
      assert.equal(got.items[510].body, 'live-from-node-1');
    } catch (e) {
      console.error(`\n##### test "${t.name}" failed: ${e.stack}\n${s1.dump()}\n${s2.dump()}\n#####`);
      throw e;
    } finally {
      await client.deactivate();
      await s1.close();
      await s2.close();
    }
  });
});
