// The drain storm: many stomp.js clients on a history topic, all on node 1
// of three, while a publisher on node 2 keeps sending. Node 1 is drained
// (SIGTERM); every client reconnects to the other nodes through the resume
// module and must end with exactly the messages the history kept (read
// back at the end), in order. Prints the time from SIGTERM until the last
// client had resumed (its RECEIPT, sent once its history was delivered)
// and until every client had every message.
//
// STORM_CLIENTS (default 200) and STORM_RATE (messages per second, default
// 100) scale it; STORM_WORKERS (default 1, or 4 from 1,000 clients) worker
// threads run the clients, so that they use more than one core;
// STORM_DEFLATE=1 lets them negotiate permessage-deflate (ws inflates each
// message asynchronously, ten at a time per process: with hundreds of
// clients that dominates). A stomp.js client costs about 40 us of CPU per
// MESSAGE here, so the issue's 2,000 clients at 500 msg/s (a million
// deliveries a second, 7 million in the 7 s of publishing) cannot be read
// live on two cores: that is 280 s of client CPU, and on the shared
// machine (load average 30 to 36) the clients had not caught up within
// the four minutes this test waits.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { Broker, Client, WebSocket, deferred, withTimeout } from '../lib/harness.mjs';

const CLIENTS = Number(process.env.STORM_CLIENTS ?? 200);
const RATE = Number(process.env.STORM_RATE ?? 100);
const WORKERS = Number(process.env.STORM_WORKERS ?? (CLIENTS >= 1000 ? 4 : 1));

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

async function ready(b, ms = 90_000) {
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

describe('drain storm', () => {
  const nodes = [new Broker(), new Broker(), new Broker()];
  before(async () => {
    const ports = [await freePort(), await freePort(), await freePort()];
    await Promise.all(nodes.map((b, i) => b.start([
      '-node', `n${i + 1}`, '-topic-history', '/topic/chat.#=100000',
      '-drain-retry-window', '1s', '-max-connections-per-ip', String(CLIENTS + 100),
      '-cluster-listen', `127.0.0.1:${ports[i]}`,
      '-cluster-routes', ports.filter((_, j) => j !== i).map((p) => `nats-route://127.0.0.1:${p}`).join(','),
    ])));
    for (const b of nodes) await ready(b);
  });
  after(() => Promise.all(nodes.map((b) => b.stop())));

  it(`${CLIENTS} clients on a drained node miss nothing (publisher at ${RATE} msg/s)`, { timeout: 420_000 }, async (t) => {
    const dest = '/topic/chat.storm';
    const urls = nodes.map((b) => b.wsUrl);
    const workers = [];
    const replies = [];
    let pub = null;
    const status = []; // the latest { complete, least } of each worker
    const ask = (msg, type) => Promise.all(workers.map((w, k) => {
      const d = deferred();
      replies[k].set(type, d);
      w.postMessage(msg);
      return withTimeout(d.promise, 90_000, `worker ${k}: ${type}`);
    }));
    const t0 = Date.now();
    const note = (what) => console.log(`drain storm +${((Date.now() - t0) / 1000).toFixed(1)} s: ${what} (load ${os.loadavg()[0].toFixed(1)})`);
    try {
      const subscribed = [];
      for (let k = 0; k < WORKERS; k++) {
        const first = Math.floor((k * CLIENTS) / WORKERS);
        const count = Math.floor(((k + 1) * CLIENTS) / WORKERS) - first;
        const w = new Worker(new URL('../lib/storm-worker.mjs', import.meta.url), {
          workerData: { urls, dest, first, count, deflate: Boolean(process.env.STORM_DEFLATE) },
        });
        const r = new Map();
        const sub = deferred();
        r.set('subscribed', sub);
        status.push(null);
        w.on('message', (m) => {
          if (m.type === 'status') {
            status[k] = m;
            return;
          }
          const d = r.get(m.type);
          r.delete(m.type);
          if (d) d.resolve(m);
        });
        w.on('error', (e) => {
          console.error(`worker ${k}: ${e.stack}`);
          sub.reject(e);
        });
        workers.push(w);
        replies.push(r);
        subscribed.push(sub.promise);
      }
      await withTimeout(Promise.all(subscribed), 120_000, 'every client subscribed');
      note('every client subscribed');

      // The publisher reconnects if a SEND is refused (a stream leader
      // moving away from the drained node): what was not stored is not
      // in the history read back at the end, so no client owes it.
      let n = 0;
      let skipped = 0;
      pub = new Client({
        webSocketFactory: () => new WebSocket(urls[1], ['v12.stomp']),
        reconnectDelay: 200,
        heartbeatIncoming: 0,
        heartbeatOutgoing: 0,
      });
      const connected = deferred();
      pub.onConnect = () => connected.resolve();
      pub.activate();
      await withTimeout(connected.promise, 10_000, 'publisher CONNECTED');
      const tick = 50; // ms
      const publishFor = (ms) => new Promise((resolve) => {
        const until = Date.now() + ms;
        const start = Date.now();
        let ticks = 0;
        const iv = setInterval(() => {
          // Catch up with the clock when the loop was late.
          const due = Math.round(((Date.now() - start) * RATE) / 1000) - ticks;
          ticks += due;
          for (let k = 0; k < due; k++) {
            if (pub.connected) pub.publish({ destination: dest, body: String(n++) });
            else skipped++;
          }
          if (Date.now() >= until) {
            clearInterval(iv);
            resolve();
          }
        }, tick);
      });
      const started = Date.now();
      await publishFor(3000);
      const sigtermAt = Date.now();
      note(`SIGTERM to node 1 after ${n} messages`);
      const drained = nodes[0].stop();
      await publishFor(4000);
      const published = Date.now() - started;
      // The last SEND with a receipt: everything before it is stored.
      for (let tries = 0; ; tries++) {
        const receipt = `last-${tries}`;
        const got = deferred();
        pub.watchForReceipt(receipt, () => got.resolve());
        try {
          if (!pub.connected) throw new Error('publisher not connected');
          pub.publish({ destination: dest, body: String(n++), headers: { receipt } });
          await withTimeout(got.promise, 10_000, 'RECEIPT of the last SEND');
          break;
        } catch (e) {
          if (tries >= 5) throw e;
          await new Promise((r) => setTimeout(r, 500));
        }
      }
      note(`${n} messages sent`);
      await drained;
      note('node 1 stopped');

      // What history kept is what every client must have.
      const truth = await readHistory(urls[1], dest);
      note(`${truth.length} messages kept`);
      for (const w of workers) w.postMessage({ type: 'total', total: truth.length });
      const deadline = Date.now() + 240_000;
      let lastNote = 0;
      for (;;) {
        const complete = status.reduce((a, m) => a + (m?.complete ?? 0), 0);
        if (complete === CLIENTS || Date.now() > deadline) break;
        if (Date.now() - lastNote > 10_000 && status.every((m) => m)) {
          lastNote = Date.now();
          note(`${complete} clients have every message, the furthest behind ${Math.min(...status.map((m) => m.least))}`);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      const completeAt = Date.now();
      const results = await ask({ type: 'check', truth }, 'result');
      const bad = results.reduce((a, m) => a + m.bad, 0);
      for (const line of results.flatMap((m) => m.samples).slice(0, 3)) console.error(line);
      const resumed = results.reduce((a, m) => a + m.resumed, 0);
      const lastResume = Math.max(...results.map((m) => m.lastResume));
      const load = os.loadavg().map((x) => x.toFixed(1)).join(' ');
      console.log(`drain storm: ${CLIENTS} clients (${WORKERS} worker threads), ${truth.length} messages kept of ${n} sent (${skipped} skipped while the publisher reconnected) in ${(published / 1000).toFixed(1)} s (asked ${RATE} msg/s), missed or out of order: ${bad} clients, ${resumed} resumed, last RECEIPT ${((lastResume - sigtermAt) / 1000).toFixed(1)} s and every client had every message ${((completeAt - sigtermAt) / 1000).toFixed(1)} s after SIGTERM; load average ${load}`);
      assert.equal(bad, 0, 'every client has every kept message once, in order');
      assert.equal(resumed, CLIENTS, 'every client resumed on another node');
    } catch (e) {
      console.error(`\n##### test "${t.name}" failed: ${e.stack}\n${nodes.map((b, i) => b.dump(`node ${i + 1}`, 60)).join('\n')}\n#####`);
      throw e;
    } finally {
      await Promise.all(workers.map(async (w, k) => {
        try {
          w.postMessage({ type: 'stop' });
          await withTimeout(new Promise((r) => w.once('exit', r)), 30_000, `worker ${k} exit`);
        } catch {
          await w.terminate();
        }
      }));
      if (pub) await pub.deactivate();
    }
  });
});

// readHistory returns the bodies of every message dest keeps, read with
// x-stream-offset:first up to the SUBSCRIBE's RECEIPT.
async function readHistory(url, dest) {
  const bodies = [];
  const done = deferred();
  const client = new Client({
    webSocketFactory: () => new WebSocket(url, ['v12.stomp'], { perMessageDeflate: false }),
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
  });
  client.onConnect = () => {
    client.watchForReceipt('history', () => done.resolve());
    client.subscribe(dest, (m) => bodies.push(Number(m.body)), { 'x-stream-offset': 'first', receipt: 'history' });
  };
  client.onStompError = (f) => done.reject(new Error(`ERROR ${JSON.stringify(f.headers)}`));
  client.activate();
  try {
    await withTimeout(done.promise, 60_000, 'the kept history read back');
  } finally {
    await client.deactivate();
  }
  return bodies;
}
