// A worker thread of the drain storm (test/drain-storm.test.mjs): it runs
// some of the storm's stomp.js clients on its own event loop, so that the
// clients of one test use more than one core. Each client subscribes to
// the history topic through the resume module on node 1 and, once its
// connection closes (node 1 drained), reconnects to node 2 or 3.
//
// workerData: { urls: [node1, node2, node3], dest, first, count, deflate }.
// It posts { type: 'status', complete, least } every second once told
// { type: 'total', total } (clients holding at least total messages, and
// the fewest any client holds). Messages from the test: { type: 'check',
// truth } is answered with { type: 'result', bad, samples, resumed,
// lastResume } (clients whose messages differ from truth, the first few
// differences, clients that resumed after the drain and when the last of
// them got its RECEIPT, ms since the epoch); { type: 'stop' } deactivates
// the clients and ends the worker.
import { parentPort, workerData } from 'node:worker_threads';
import WebSocket from 'ws';
import { Client } from '@stomp/stompjs';
import { ResumableSubscriptions } from '../../../webclient/src/resume.js';

const { urls, dest, first, count, deflate } = workerData;
const clients = [];
let subscribed = 0;

for (let k = 0; k < count; k++) {
  const i = first + k;
  let url = urls[0];
  const client = new Client({
    // ws inflates each compressed message asynchronously, ten at a time
    // across all connections: with hundreds of clients that, not the
    // parsing, is what a Node process spends its time on.
    webSocketFactory: () => new WebSocket(url, ['v12.stomp'], deflate ? {} : { perMessageDeflate: false }),
    reconnectDelay: 200,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
  });
  const c = { client, got: [], connects: 0, resumedAt: 0 };
  // after node 1 closes, a load balancer sends the client elsewhere
  client.onWebSocketClose = () => {
    url = urls[1 + (i % 2)];
  };
  client.onConnect = () => {
    c.connects += 1;
  };
  const subs = new ResumableSubscriptions(client);
  subs.subscribe(dest, (m) => c.got.push(Number(m.body)), {
    onReceipt: () => {
      if (c.connects === 1) {
        subscribed += 1;
        if (subscribed === count) parentPort.postMessage({ type: 'subscribed' });
      } else {
        c.resumedAt = Date.now();
      }
    },
  });
  client.activate();
  clients.push(c);
}

parentPort.on('message', async (msg) => {
  switch (msg.type) {
    case 'total': {
      const report = () => {
        let least = Infinity;
        let complete = 0;
        for (const c of clients) {
          least = Math.min(least, c.got.length);
          if (c.got.length >= msg.total) complete += 1;
        }
        parentPort.postMessage({ type: 'status', complete, least });
      };
      report();
      setInterval(report, 1000).unref();
      break;
    }
    case 'check': {
      const { truth } = msg;
      let bad = 0;
      const samples = [];
      for (const [k, c] of clients.entries()) {
        const wrong = c.got.length !== truth.length ? Math.min(c.got.length, truth.length) : c.got.findIndex((v, j) => v !== truth[j]);
        if (wrong >= 0 || c.got.length !== truth.length) {
          bad += 1;
          if (samples.length < 3) samples.push(`client ${first + k}: ${c.got.length} of ${truth.length} messages, first wrong at ${wrong}`);
        }
      }
      const resumed = clients.filter((c) => c.resumedAt);
      parentPort.postMessage({ type: 'result', bad, samples, resumed: resumed.length, lastResume: Math.max(0, ...resumed.map((c) => c.resumedAt)) });
      break;
    }
    case 'stop':
      await Promise.all(clients.map((c) => c.client.deactivate()));
      parentPort.close();
      break;
    default:
  }
});
