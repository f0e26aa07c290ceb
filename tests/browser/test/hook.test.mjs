// The page logs in through the application's own session: an app (a
// node:http server standing for the team's backend) logs the user in with
// a session cookie, and the broker, started with -hook-url, asks it about
// every CONNECT with the WebSocket upgrade's cookie. The page needs no
// token: the browser sends the cookie with the upgrade, as it does to any
// page of the same host.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { Broker, ChatPage, launchBrowser, TIMEOUT } from '../lib/harness.mjs';

let broker;
let browser;
let app;
const pages = [];
// sessions maps the app's session ids to its users; connects records what
// the broker asked.
const sessions = new Map();
const connects = [];

function body(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sessionOf(cookieHeader) {
  for (const part of (cookieHeader || '').split(';')) {
    const [k, v] = part.trim().split('=');
    if (k === 'app_session' && sessions.has(v)) return sessions.get(v);
  }
  return null;
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://app');
  if (req.method === 'GET' && url.pathname === '/login') {
    // The application's login (its password check is not the point
    // here): a session cookie, then on to the chat.
    const id = crypto.randomBytes(16).toString('hex');
    sessions.set(id, url.searchParams.get('user'));
    res.writeHead(302, { 'set-cookie': `app_session=${id}; Path=/; HttpOnly; SameSite=Lax`, location: broker.url });
    return res.end();
  }
  if (req.method === 'POST' && url.pathname.startsWith('/stomp/')) {
    const call = JSON.parse(await body(req));
    if (url.pathname === '/stomp/connect') {
      connects.push(call);
      const user = sessionOf(call.http_headers && call.http_headers.cookie);
      res.writeHead(user ? 200 : 401, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(user ? { user, roles: ['member'] } : { error: 'not logged in' }));
    }
    res.writeHead(200, { 'content-type': 'application/json' }); // members may subscribe and send
    return res.end('{}');
  }
  res.writeHead(404);
  res.end();
}

before(async () => {
  app = http.createServer((req, res) => {
    handle(req, res).catch((e) => {
      res.writeHead(500);
      res.end(String(e));
    });
  });
  await new Promise((resolve, reject) => {
    app.listen(0, '127.0.0.1', resolve);
    app.on('error', reject);
  });
  const hook = `http://127.0.0.1:${app.address().port}/stomp`;
  broker = await new Broker(['-hook-url', hook, '-hook-timeout', '5s']).start();
  browser = await launchBrowser();
});

after(async () => {
  for (const p of pages) await p.close();
  if (browser) await browser.close();
  if (broker) await broker.close();
  if (app) {
    app.closeAllConnections();
    app.close();
  }
});

// join fills the join form with a name (which the app's session
// overrides) and clicks Join.
async function join(p, name) {
  await p.page.getByLabel('Your name').fill(name);
  await p.page.getByRole('button', { name: 'Join' }).click();
}

test('logged into the app, the page joins as the app\'s user, through the session cookie', async () => {
  const p = new ChatPage(browser, broker, 'ann');
  pages.push(p);
  await p.load();
  // The app's login sets its cookie and sends the browser to the chat.
  await p.page.goto(`http://127.0.0.1:${app.address().port}/login?user=ann`);
  assert.equal(new URL(p.page.url()).origin, new URL(broker.url).origin);
  await join(p, 'typed-name');
  await p.waitConnected();
  assert.equal(await p.page.locator('#status-text').textContent(), 'Connected as ann');
  const c = connects.at(-1);
  assert.equal(c.transport, 'ws');
  assert.match(c.http_headers.cookie, /app_session=[0-9a-f]{32}/);
  assert.equal(c.http_headers.origin, new URL(broker.url).origin);
  assert.equal(c.login, 'typed-name');

  await p.waitRoomReady('general');
  await p.send('hello from the app session');
  // The broker delivered it back: no longer pending.
  const m = p.log('room:general').locator('.msg:not(.pending)').filter({ hasText: 'hello from the app session' });
  await m.waitFor({ state: 'attached', timeout: TIMEOUT });
  assert.equal(await m.locator('.author').textContent(), 'ann');
  assert.deepEqual(p.errors, []);
});

test('without the app\'s session the backend refuses the page, which shows it on the form', async () => {
  const p = new ChatPage(browser, broker, 'stranger');
  pages.push(p);
  await p.load(); // a fresh context: no cookie
  await join(p, 'stranger');
  const err = p.page.locator('#login-error');
  await err.waitFor({ timeout: TIMEOUT });
  assert.match(await err.textContent(), /refused/i);
  assert.equal(await p.state(), 'failed');
  assert.equal(connects.at(-1).http_headers.cookie, '');
});
