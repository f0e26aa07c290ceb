// The page against a broker that requires login (-users): a wrong password
// is refused and shown on the login form without a reconnect loop; the
// right one gets in as that user.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Broker, ChatPage, launchBrowser, TIMEOUT } from '../lib/harness.mjs';

// bcrypt (cost 10) of "open-sesame"
const HASH = '$2a$10$bkPdDHH2Fr5YtzVDllo8SeHCqjLGumuwTKdTbXBaw2y8TYwJVeghu';
let broker;
let browser;
let dir;
const pages = [];

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompbus-browser-users-'));
  const users = path.join(dir, 'users');
  fs.writeFileSync(users, `# test users\nkeymaster:${HASH}\ngatekeeper:${HASH}\n`);
  broker = await new Broker(['-users', users]).start();
  browser = await launchBrowser();
});

after(async () => {
  for (const p of pages) await p.close();
  if (browser) await browser.close();
  if (broker) await broker.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function attempt(name, password) {
  const p = new ChatPage(browser, broker, name);
  pages.push(p);
  await p.load();
  await p.page.getByLabel('Your name').fill(name);
  await p.page.getByLabel('Password').fill(password);
  await p.page.getByRole('button', { name: 'Join' }).click();
  return p;
}

test('a refused login is shown on the form and not retried', async () => {
  const p = await attempt('keymaster', 'wrong');
  const err = p.page.locator('#login-error');
  await err.waitFor({ timeout: TIMEOUT });
  assert.match(await err.textContent(), /refused/i);
  assert.equal(await p.page.locator('#status').getAttribute('data-state'), 'failed');
  assert.equal(await p.page.locator('#login').isVisible(), true);
  // and the password field was cleared, ready for another try
  assert.equal(await p.page.getByLabel('Password').inputValue(), '');
  await p.close();
});

test('the right password gets in as that user', async () => {
  const a = await attempt('keymaster', 'open-sesame');
  await a.waitConnected();
  assert.equal(await a.page.locator('#status-text').textContent(), 'Connected as keymaster');
  await a.waitRoomReady('general');
  const b = await attempt('gatekeeper', 'open-sesame');
  await b.waitConnected();
  await b.waitRoomReady('general');
  await a.send('are you the gatekeeper?');
  const m = await b.waitMessage('room:general', 'are you the gatekeeper?');
  assert.equal(await m.locator('.author').textContent(), 'keymaster');
  await b.openPrivate('keymaster');
  await b.send('are you the keymaster?');
  await a.waitMessage('dm:gatekeeper', 'are you the keymaster?');
  for (const p of [a, b]) assert.deepEqual(p.errors, []);
  await a.close();
  await b.close();
});

test('the author shown is the user the broker authenticated, whatever the body claims', async () => {
  const b = await attempt('gatekeeper', 'open-sesame');
  await b.waitConnected();
  await b.waitRoomReady('general');
  // keymaster, through the HTTP API, sends a chat message claiming to be
  // from gatekeeper; the broker stamps user-id: keymaster on it
  const forged = JSON.stringify({ type: 'chat', id: 'forged-1', room: 'general', from: 'gatekeeper', text: 'I am the gatekeeper, honest', time: new Date().toISOString() });
  const res = await fetch(new URL('/api/v1/publish?destination=/topic/chat.general', broker.url), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from('keymaster:open-sesame').toString('base64')}` },
    body: forged,
  });
  assert.equal(res.status, 202);
  const m = await b.waitMessage('room:general', 'I am the gatekeeper, honest');
  assert.equal(await m.locator('.author').textContent(), 'keymaster');
  assert.deepEqual(b.errors, []);
  await b.close();
});
