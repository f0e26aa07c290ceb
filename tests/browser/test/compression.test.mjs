// Chromium offers permessage-deflate on every WebSocket: the broker accepts
// it without context takeover, and a page exchanges STOMP frames (a 10 KB
// body among them) over the compressed connection.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Broker, launchBrowser, TIMEOUT } from '../lib/harness.mjs';

let broker;
let browser;

before(async () => {
  broker = await new Broker().start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await broker?.close();
});

test('Chromium negotiates permessage-deflate and receives a 10 KB MESSAGE intact', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${broker.url}healthz`);
  const got = await page.evaluate(async ({ url, timeout }) => {
    const big = JSON.stringify({ items: Array.from({ length: 120 }, (_, i) => ({ id: i, name: `Item ${i}`, price: i * 1.25 })) });
    const ws = new WebSocket(url, ['v12.stomp']);
    const frames = [];
    let buf = '';
    const done = new Promise((resolve, reject) => {
      setTimeout(() => reject(new Error(`timeout; frames: ${frames.map((f) => f.slice(0, 40)).join(' | ')}`)), timeout);
      ws.onmessage = (e) => {
        buf += e.data;
        let i;
        while ((i = buf.indexOf('\0')) >= 0) {
          const f = buf.slice(0, i).replace(/^[\r\n]+/, '');
          buf = buf.slice(i + 1);
          frames.push(f);
          if (f.startsWith('CONNECTED')) {
            ws.send('SUBSCRIBE\nid:1\ndestination:/topic/zip\nreceipt:s\n\n\0');
          } else if (f.startsWith('RECEIPT')) {
            ws.send(`SEND\ndestination:/topic/zip\ncontent-type:application/json\n\n${big}\0`);
          } else if (f.startsWith('MESSAGE')) {
            resolve({ extensions: ws.extensions, body: f.slice(f.indexOf('\n\n') + 2), big });
          } else if (f.startsWith('ERROR')) {
            reject(new Error(f));
          }
        }
      };
      ws.onerror = () => reject(new Error('websocket error'));
    });
    ws.onopen = () => ws.send('CONNECT\naccept-version:1.2\nhost:x\n\n\0');
    try {
      return await done;
    } finally {
      ws.close();
    }
  }, { url: `ws://${broker.httpAddr}/ws`, timeout: TIMEOUT });
  assert.match(got.extensions, /permessage-deflate/);
  assert.match(got.extensions, /server_no_context_takeover/);
  assert.match(got.extensions, /client_no_context_takeover/);
  assert.equal(got.body, got.big);
  await context.close();
});
