// The chat page in headless Chromium against a real broker: two users
// exchanging messages, private messages, user text shown as text, the
// online list, and surviving a broker restart.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Broker, ChatPage, launchBrowser, screenshotPath, until, TIMEOUT } from '../lib/harness.mjs';

let broker;
let browser;
const pages = [];

before(async () => {
  broker = await new Broker().start();
  browser = await launchBrowser();
});

after(async () => {
  for (const p of pages) await p.close();
  if (browser) await browser.close();
  if (broker) await broker.close();
});

async function user(name, opts) {
  const p = new ChatPage(browser, broker, name);
  pages.push(p);
  await p.open(opts);
  return p;
}

// wrap prints the pages' console and the broker's log when a test fails
function wrap(fn) {
  return async (t) => {
    try {
      await fn(t);
    } catch (e) {
      console.error(`##### ${t.name} failed\n${pages.map((p) => p.dump()).join('\n')}\n${broker.dump()}`);
      throw e;
    }
  };
}

test('two pages join a room and exchange messages both ways', wrap(async () => {
  const alice = await user('alice', { room: 'lobby' });
  const bob = await user('bob', { room: 'lobby' });

  await alice.send('hello bob, this is alice');
  const got = await bob.waitMessage('room:lobby', 'hello bob, this is alice');
  assert.equal(await got.locator('.author').textContent(), 'alice');
  const when = await got.locator('time').getAttribute('datetime');
  assert.ok(Math.abs(Date.parse(when) - Date.now()) < 60_000, `message time ${when} is now`);

  await bob.send('hi alice, bob here');
  const back = await alice.waitMessage('room:lobby', 'hi alice, bob here');
  assert.equal(await back.locator('.author').textContent(), 'bob');

  // each sender's own copy came back from the broker: no longer pending
  await alice.message('room:lobby', 'hello bob, this is alice').and(alice.page.locator('.msg:not(.pending)')).waitFor();
  await bob.message('room:lobby', 'hi alice, bob here').and(bob.page.locator('.msg:not(.pending)')).waitFor();
  // exactly once on each side
  assert.equal(await bob.message('room:lobby', 'hello bob, this is alice').count(), 1);
  assert.equal(await alice.message('room:lobby', 'hello bob, this is alice').count(), 1);

  // Shift+Enter is a new line, Enter sends the two lines as one message
  const box = alice.page.locator('#composer-text');
  await box.fill('line one');
  await box.press('Shift+Enter');
  await box.pressSequentially('line two');
  await box.press('Enter');
  const multi = await bob.waitMessage('room:lobby', 'line two');
  assert.equal(await multi.locator('.text').textContent(), 'line one\nline two');

  // a room message lands only in its room
  await bob.page.getByLabel('Join a room').fill('other');
  await bob.page.getByLabel('Join a room').press('Enter');
  await bob.waitRoomReady('other');
  await bob.send('only in other');
  await bob.waitMessage('room:other', 'only in other');
  assert.equal(await alice.page.locator('.msg .text', { hasText: 'only in other' }).count(), 0);

  await alice.page.screenshot({ path: screenshotPath('chat.png') });
  await bob.page.setViewportSize({ width: 390, height: 844 });
  await bob.page.locator('.conv[data-conv="room:lobby"]').click();
  await bob.page.screenshot({ path: screenshotPath('chat-narrow.png'), fullPage: true });
  for (const p of [alice, bob]) {
    assert.deepEqual(p.errors, [], `${p.name}: no page errors`);
    assert.deepEqual(p.consoleErrors(), [], `${p.name}: no console errors (CSP violations would show here)`);
  }
  await alice.close();
  await bob.close();
}));

test('a private message reaches only its target', wrap(async () => {
  const alice = await user('alice2');
  const bob = await user('bob2');
  const carol = await user('carol2');

  await alice.openPrivate('bob2');
  await alice.send('psst bob2, a secret');
  const got = await bob.waitMessage('dm:alice2', 'psst bob2, a secret');
  assert.equal(await got.locator('.author').textContent(), 'alice2');
  assert.ok(await got.evaluate((el) => el.classList.contains('private')));
  // the conversation shows up for bob with an unread badge
  await bob.page.locator('.conv[data-conv="dm:alice2"] .badge:not([hidden])').waitFor();

  // bob answers in the same conversation
  await bob.page.locator('.conv[data-conv="dm:alice2"]').click();
  await bob.send('got it');
  await alice.waitMessage('dm:bob2', 'got it');
  await bob.page.screenshot({ path: screenshotPath('chat-private.png') });

  // a later room message from alice reaches carol: by then the private one
  // would have too, had it been sent to her
  await alice.page.locator('.conv[data-conv="room:general"]').click();
  await alice.send('barrier for carol');
  await carol.waitMessage('room:general', 'barrier for carol');
  assert.equal(await carol.page.locator('.msg', { hasText: 'a secret' }).count(), 0, 'carol saw the private message');
  assert.equal(await carol.page.locator('.conv[data-conv^="dm:"]').count(), 0, 'carol got a private conversation');
  // and it did not land in the room for anyone
  assert.equal(await bob.message('room:general', 'psst bob2, a secret').count(), 0);
  for (const p of [alice, bob, carol]) await p.close();
}));

test('user text is shown as text, never as HTML', wrap(async () => {
  const alice = await user('mallory', { room: 'xss' });
  const bob = await user('victim', { room: 'xss' });
  const evil = '<img src=x onerror=alert(1)>';
  const evil2 = '<script>alert(2)</script><b>bold?</b>';
  await alice.send(evil);
  await alice.send(evil2);
  const m = await bob.waitMessage('room:xss', '<img');
  assert.equal(await m.locator('.text').textContent(), evil);
  const m2 = await bob.waitMessage('room:xss', 'bold?');
  assert.equal(await m2.locator('.text').textContent(), evil2);
  for (const p of [alice, bob]) {
    assert.equal(await p.log('room:xss').locator('img, script, b').count(), 0, `${p.name}: markup became elements`);
  }
  // a name with markup in a private message travels as text too
  await bob.openPrivate('mallory');
  await bob.send('<i>reply</i>');
  const r = await alice.waitMessage('dm:victim', '<i>reply</i>');
  assert.equal(await r.locator('i').count(), 0);
  // the onerror handler would have run by now had the img been parsed:
  // both pages have since rendered later messages
  for (const p of [alice, bob]) assert.deepEqual(p.dialogs, [], `${p.name}: a dialog fired`);
  for (const p of [alice, bob]) await p.close();
}));

test('the online list updates when a page closes', wrap(async () => {
  const alice = await user('olivia');
  const bob = await user('oscar');
  await until(async () => (await alice.online()).includes('oscar') && (await alice.online()).includes('olivia'),
    'alice lists oscar and herself as online', TIMEOUT);
  assert.ok((await bob.online()).includes('olivia'), 'bob lists olivia');
  await bob.close();
  await until(async () => !(await alice.online()).includes('oscar'), 'oscar to leave alice\'s online list', TIMEOUT);
  assert.ok((await alice.online()).includes('olivia'));
  await alice.close();
}));

test('the page reconnects after a broker restart and can chat again', wrap(async () => {
  const alice = await user('rita', { room: 'restart' });
  const bob = await user('rob', { room: 'restart' });
  await alice.send('before restart');
  await bob.waitMessage('room:restart', 'before restart');

  await broker.stop();
  // the drain's ERROR frame carried retry-after: the page waits that long
  const waits = [];
  const untils = [];
  for (const p of [alice, bob]) {
    await p.page.locator('#status[data-state="waiting"]').waitFor();
    waits.push(Number(await p.page.locator('#status').getAttribute('data-retry-ms')));
    untils.push(Number(await p.page.locator('#status').getAttribute('data-retry-until')));
  }
  await alice.page.locator('.notice', { hasText: 'Connection lost' }).first().waitFor();
  await alice.page.locator('.notice', { hasText: 'Reconnecting in' }).first().waitFor();
  await alice.page.screenshot({ path: screenshotPath('chat-reconnecting.png') });

  // written while offline: goes out after the reconnect
  await alice.send('written while offline');
  await alice.message('room:restart', 'written while offline').and(alice.page.locator('.msg.pending')).waitFor();

  await broker.start();
  // sent while the pages still wait out retry-after: the rooms keep
  // history, so both get it when they resume (or live, if they were quick)
  const missed = JSON.stringify({ type: 'chat', id: 'missed-1', room: 'restart', from: 'api', text: 'sent before they were back', time: new Date().toISOString() });
  const res = await fetch(new URL('/api/v1/publish?destination=/topic/chat.restart', broker.url), {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: missed,
  });
  assert.equal(res.status, 202);
  const maxWait = Math.max(...waits);
  for (const [i, p] of [alice, bob].entries()) {
    await p.waitConnected(maxWait + 20_000);
    // CONNECTED came no earlier than the end of the wait the broker asked for
    const connectedAt = Number(await p.page.locator('#status').getAttribute('data-since'));
    assert.ok(connectedAt >= untils[i], `${p.name} reconnected ${untils[i] - connectedAt} ms before the broker's retry-after (${waits[i]} ms) ran out`);
  }
  for (const p of [alice, bob]) await p.waitRoomReady('restart');

  // what was sent meanwhile is there, with no "missed" notice (nothing
  // was), and the offline message is delivered once
  for (const p of [alice, bob]) await p.waitMessage('room:restart', 'sent before they were back');
  await alice.message('room:restart', 'written while offline').and(alice.page.locator('.msg:not(.pending)')).waitFor();
  for (const p of [alice, bob]) {
    assert.equal(await p.page.locator('.log[data-conv="room:restart"] .notice', { hasText: 'could not be recovered' }).count(), 0, `${p.name}: no missed-messages notice`);
    assert.equal(await p.page.locator('.log[data-conv="room:restart"] .notice', { hasText: 'Back online after' }).count(), 0, `${p.name}: rooms resume, no outage notice`);
  }

  await alice.send('after restart from rita');
  await bob.waitMessage('room:restart', 'after restart from rita');
  await bob.send('after restart from rob');
  await alice.waitMessage('room:restart', 'after restart from rob');
  for (const p of [alice, bob]) {
    assert.deepEqual(p.errors, [], `${p.name}: no page errors`);
    assert.deepEqual(p.consoleErrors(), [], `${p.name}: no console errors`);
  }
  for (const p of [alice, bob]) await p.close();
}));

test('after a crash (no ERROR frame) the page retries with backoff until the broker is back', wrap(async () => {
  const alice = await user('cara', { room: 'crash' });
  const bob = await user('cody', { room: 'crash' });
  await broker.kill();
  // no retry-after: the page keeps trying, backing off, while it is down
  await alice.page.locator('#status[data-state="waiting"]').waitFor();
  assert.equal(await alice.page.locator('.notice', { hasText: 'shutting down' }).count(), 0);
  await broker.start();
  for (const p of [alice, bob]) {
    await p.waitConnected(30_000);
    await p.waitRoomReady('crash');
  }
  await bob.send('still here after the crash');
  await alice.waitMessage('room:crash', 'still here after the crash');
  // the room resumed from its history: nothing was missed, no notice
  assert.equal(await alice.page.locator('.log[data-conv="room:crash"] .notice', { hasText: 'could not be recovered' }).count(), 0);
  for (const p of [alice, bob]) await p.close();
}));

test('the login form refuses names that make no destination', wrap(async () => {
  const p = new ChatPage(browser, broker, 'x y');
  pages.push(p);
  await p.load();
  await p.page.getByLabel('Your name').fill('a/b');
  await p.page.getByRole('button', { name: 'Join' }).click();
  await p.page.locator('#login-error').waitFor();
  assert.equal(await p.page.getByLabel('Your name').getAttribute('aria-invalid'), 'true');
  assert.equal(await p.state(), 'idle');
  // Enter in the form submits it too, and a good name gets in
  await p.page.getByLabel('Your name').fill('zoë');
  await p.page.getByLabel('Your name').press('Enter');
  await p.waitConnected();
  assert.equal(await p.page.locator('#status-text').textContent(), 'Connected as zoë');
  await p.close();
}));
