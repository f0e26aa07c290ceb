// Backend hooks (-hook-url): a small Express app, the application's
// backend, decides who may CONNECT, SUBSCRIBE and SEND. stomp.js clients
// over WebSocket are told what it decided.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import express from 'express';
import { useBroker, subscribeSync, publishSync, withTimeout, DEFAULT_TIMEOUT } from '../lib/harness.mjs';

// The application: users with their passwords, and what each may do.
const passwords = { ann: 'ann-secret', reader: 'reader-secret' };
const calls = [];
const app = express();
app.use(express.json());
app.post('/stomp/connect', (req, res) => {
  calls.push({ path: 'connect', body: req.body });
  const { login, passcode } = req.body;
  if (passwords[login] === undefined || passwords[login] !== passcode) return res.status(403).json({ error: 'bad credentials' });
  // The application names the user: its own id, not the login.
  return res.json({ user: `app-${login}`, roles: login === 'reader' ? ['reader'] : ['writer'] });
});
app.post('/stomp/subscribe', (req, res) => {
  calls.push({ path: 'subscribe', body: req.body });
  res.sendStatus(req.body.destination.startsWith('/topic/secret.') ? 403 : 200);
});
app.post('/stomp/publish', (req, res) => {
  calls.push({ path: 'publish', body: req.body });
  res.sendStatus(req.body.user === 'app-reader' ? 403 : 200);
});
const server = await new Promise((resolve, reject) => {
  const srv = app.listen(0, '127.0.0.1', () => resolve(srv));
  srv.on('error', reject);
});
after(() => {
  server.closeAllConnections(); // the broker keeps its hook connections alive
  server.close();
});
const hookURL = `http://127.0.0.1:${server.address().port}/stomp`;

// The decisions are not cached, so every frame asks the backend.
const run = useBroker(['-hook-url', hookURL, '-hook-cache-ttl', '0']);

// Resolves with the ERROR frame a client that may not connect receives.
function refusedConnect(s, headers, name) {
  return withTimeout(s.stomp({ connectHeaders: headers }, name).then(
    () => { throw new Error(`${name} connected`); },
    () => s.clients.find((c) => c.name === name),
  ), DEFAULT_TIMEOUT, `${name} refused`);
}

describe('backend hooks with an Express backend', () => {
  it('the backend accepts a CONNECT and names the user; MESSAGE carries that user-id', run(async (s) => {
    const ann = await s.stomp({ connectHeaders: { login: 'ann', passcode: 'ann-secret', 'x-app': 'web' } }, 'ann');
    assert.equal(ann.connected.headers['user-name'], 'app-ann');
    const c = calls.findLast((x) => x.path === 'connect' && x.body.login === 'ann');
    assert.equal(c.body.transport, 'ws');
    assert.equal(c.body.passcode, 'ann-secret');
    assert.equal(c.body.headers['x-app'], 'web');
    assert.match(c.body.remote, /^127\.0\.0\.1:\d+$/);
    assert.equal(typeof c.body.http_headers, 'object', 'a WebSocket CONNECT shows the upgrade\'s headers');

    const dest = `/topic/${s.uid('room')}`;
    const { messages } = await subscribeSync(s, ann, dest);
    await publishSync(s, ann, { destination: dest, body: 'hello', headers: { 'user-id': 'forged' } });
    const [m] = await messages.count(1);
    assert.equal(m.body, 'hello');
    assert.equal(m.headers['user-id'], 'app-ann');
    const sub = calls.findLast((x) => x.path === 'subscribe' && x.body.destination === dest);
    const pub = calls.findLast((x) => x.path === 'publish' && x.body.destination === dest);
    assert.equal(sub.body.user, 'app-ann');
    assert.equal(pub.body.user, 'app-ann');
    assert.equal(pub.body.session, sub.body.session);
    assert.ok(pub.body.session.length > 0);
  }));

  it('the backend refuses a CONNECT with a wrong passcode: ERROR, then the socket closes', run(async (s) => {
    const entry = await refusedConnect(s, { login: 'ann', passcode: 'guess' }, 'intruder');
    assert.equal(entry.errors.length, 1);
    assert.match(entry.errors[0].headers.message, /authentication failed/);
    await withTimeout(entry.closed, DEFAULT_TIMEOUT, 'close after the refused CONNECT');
  }));

  it('the backend refuses a SUBSCRIBE: ERROR access refused', run(async (s) => {
    const ann = await s.stomp({ connectHeaders: { login: 'ann', passcode: 'ann-secret' } }, 'ann');
    ann.client.subscribe('/topic/secret.plans', () => {}, { receipt: 'r1' });
    await withTimeout(ann.closed, DEFAULT_TIMEOUT, 'close after the refused SUBSCRIBE');
    assert.equal(ann.errors.length, 1);
    assert.equal(ann.errors[0].headers.message, 'access refused');
    assert.equal(ann.errors[0].headers['receipt-id'], 'r1');
  }));

  it('the backend refuses a SEND by a reader; nothing reaches the subscribers', run(async (s) => {
    const ann = await s.stomp({ connectHeaders: { login: 'ann', passcode: 'ann-secret' } }, 'ann');
    const dest = `/topic/${s.uid('news')}`;
    const { messages } = await subscribeSync(s, ann, dest);
    const reader = await s.stomp({ connectHeaders: { login: 'reader', passcode: 'reader-secret' } }, 'reader');
    await subscribeSync(s, reader, dest); // reading is allowed
    reader.client.publish({ destination: dest, body: 'not allowed' });
    await withTimeout(reader.closed, DEFAULT_TIMEOUT, 'close after the refused SEND');
    assert.equal(reader.errors[0].headers.message, 'access refused');
    // ann's own message is the first her subscription sees.
    await publishSync(s, ann, { destination: dest, body: 'allowed' });
    const [m] = await messages.count(1);
    assert.equal(m.body, 'allowed');
  }));
});
