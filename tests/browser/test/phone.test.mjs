// The page on a phone: 390 px wide (an iPhone 12 to 15 in portrait), the
// chat with its Online list, and the live view's status and charts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Broker, ChatPage, launchBrowser, screenshotPath, TIMEOUT } from '../lib/harness.mjs';

const PHONE = { width: 390, height: 844 };
let broker;
let browser;
const open = [];

before(async () => {
  broker = await new Broker().start();
  browser = await launchBrowser();
});

after(async () => {
  for (const c of open) await c.close().catch(() => {});
  if (browser) await browser.close();
  if (broker) await broker.close();
});

// reachable reports whether a user can see and tap el: once scrolled to,
// it lies inside the viewport and nothing covers or clips its centre.
async function reachable(locator) {
  await locator.scrollIntoViewIfNeeded();
  return locator.evaluate((el) => {
    const r = el.getBoundingClientRect();
    const x = r.left + r.width / 2;
    const y = r.top + r.height / 2;
    if (r.width === 0 || r.height === 0 || x < 0 || y < 0 || x > innerWidth || y > innerHeight) {
      return `outside the viewport: ${JSON.stringify(r)} in ${innerWidth}x${innerHeight}`;
    }
    const top = document.elementFromPoint(x, y);
    return top && (el === top || el.contains(top)) ? true : `covered or clipped by ${top && top.outerHTML.slice(0, 120)}`;
  });
}

test('at phone width the Online list is there to pick someone from', async () => {
  const alice = new ChatPage(browser, broker, 'alice390');
  const bob = new ChatPage(browser, broker, 'bob390');
  await alice.open({ room: 'phone', viewport: PHONE });
  await bob.open({ room: 'phone', viewport: PHONE });
  open.push(alice, bob);
  const page = alice.page;
  await page.locator('#dm-empty').filter({ hasText: 'Online' }).waitFor();
  const entry = page.locator('#online-list li[data-user="bob390"] button');
  await entry.waitFor();
  // The panel shows all it holds: nothing of it is cut off (a panel
  // squeezed to a sliver scrolls inside itself and shows one line).
  const panel = page.locator('aside.online');
  const cut = await panel.evaluate((el) => ({ hidden: el.scrollHeight - el.clientHeight, height: el.clientHeight }));
  assert.ok(cut.hidden <= 1, `the Online panel hides ${cut.hidden}px of its ${cut.hidden + cut.height}px`);
  // and once scrolled to, its heading and the people under it are seen
  // together
  await panel.scrollIntoViewIfNeeded();
  assert.equal(await reachable(page.locator('#online-heading')), true, 'the Online heading can be seen');
  assert.equal(await reachable(entry), true, 'bob390 under Online can be tapped');
  assert.equal(await page.locator('#online-heading').evaluate((el) => el.getBoundingClientRect().top >= 0), true,
    'the heading stays in view with the entry');
  // the page is no wider than the phone: nothing is cut off at the side
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
  assert.ok(overflow <= 0, `page is ${overflow}px wider than the screen`);
  await page.screenshot({ path: screenshotPath('phone-chat.png'), fullPage: true });
  await entry.tap().catch(() => entry.click());
  await page.locator('.conv[data-conv="dm:bob390"][aria-current="true"]').waitFor();
  // the conversation is in view again to write in
  assert.equal(await reachable(page.locator('#composer-text')), true, 'the composer can be reached');
  assert.deepEqual(alice.errors, []);
});

test('the live view does not say "Not connected" while it updates', async () => {
  const context = await browser.newContext({ viewport: PHONE });
  open.push(context);
  const page = await context.newPage();
  await page.goto(`${broker.url}#live`);
  await page.locator('#live-status[data-state="ok"]').waitFor({ timeout: TIMEOUT });
  const status = (await page.locator('#status').innerText()).trim();
  assert.doesNotMatch(status, /not connected/i, `header status "${status}" while the live view updates`);
  // what the header status shows is about the chat, and says so
  assert.match(status, /chat/i, `header status "${status}" names what it is about`);
  await page.screenshot({ path: screenshotPath('phone-live.png'), fullPage: true });
});

// stats answers from the test (page.route): three nodes with equal values,
// one connection and no subscriptions.
async function liveWithStats(viewport) {
  const context = await browser.newContext({ viewport });
  open.push(context);
  const page = await context.newPage();
  let n = 0;
  const t0 = Date.parse('2026-01-01T00:00:00Z');
  await page.route('**/api/v1/stats', (route) => {
    n += 1;
    const node = (name) => ({
      node: name,
      time: new Date(t0 + n * 2000).toISOString(),
      uptime_seconds: 60 + n * 2,
      connections: { ws: 1, tcp: 0 },
      subscriptions: 0,
      published: { topic: 0, queue: 0, user: 0 },
      delivered: { topic: 0, queue: 0, user: 0 },
    });
    const nodes = ['n1', 'n2', 'n3'].map(node);
    void route.fulfill({ contentType: 'application/json', body: JSON.stringify({ ...nodes[0], nodes }) });
  });
  await page.goto(`${broker.url}#live`);
  // two samples: every chart has lines of two points
  await page.waitForFunction(() => document.querySelectorAll('#chart-connections path.series').length === 3 &&
    [...document.querySelectorAll('#chart-connections path.series')].every((p) => /L/.test(p.getAttribute('d'))), null, { timeout: TIMEOUT });
  return page;
}

test('equal values on several nodes: every node\'s line can be seen', async () => {
  const page = await liveWithStats(PHONE);
  for (const id of ['chart-connections', 'chart-subscriptions', 'chart-published']) {
    await page.locator(`#${id} svg`).scrollIntoViewIfNeeded();
    const seen = await page.locator(`#${id} svg`).evaluate((svg) => [...svg.querySelectorAll('path.series')].map((p) => {
      // a point on the line, in the page: what is drawn on top there?
      const len = p.getTotalLength();
      const pt = p.getPointAtLength(len * 0.75);
      const m = p.getScreenCTM();
      const x = pt.x * m.a + pt.y * m.c + m.e;
      const y = pt.x * m.b + pt.y * m.d + m.f;
      const top = document.elementFromPoint(x, y);
      return top === p;
    }));
    assert.deepEqual(seen, [true, true, true], `${id}: each of the three lines is on top somewhere along it`);
  }
  await page.screenshot({ path: screenshotPath('phone-live-equal.png'), fullPage: true });
});

test('counts are labelled with whole numbers', async () => {
  for (const viewport of [PHONE, { width: 1100, height: 900 }]) {
    const page = await liveWithStats(viewport);
    for (const id of ['chart-connections', 'chart-subscriptions']) {
      const ticks = await page.locator(`#${id} svg text.axis`).allTextContents();
      const numbers = ticks.filter((t) => /\d/.test(t) && !/min|now/.test(t));
      assert.ok(numbers.length >= 2, `${id}: ticks ${JSON.stringify(ticks)}`);
      for (const t of numbers) assert.match(t, /^\d+$/, `${id} (${viewport.width}px): tick "${t}" is not a whole number`);
    }
  }
});
