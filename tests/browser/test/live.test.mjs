// The live view: charts of connections, subscriptions and message rates
// from GET /api/v1/stats, drawn per node.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Broker, ChatPage, launchBrowser, screenshotPath, TIMEOUT } from '../lib/harness.mjs';

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

// nextSample waits until the live view has taken one more stats sample.
async function nextSample(page) {
  const before = await page.locator('#live-status').textContent();
  await page.waitForFunction((prev) => {
    const el = document.getElementById('live-status');
    return el.dataset.state === 'ok' && el.textContent !== prev;
  }, before, { timeout: TIMEOUT });
}

test('the live view charts the broker it was served from', async () => {
  const alice = new ChatPage(browser, broker, 'watcher');
  const bob = new ChatPage(browser, broker, 'talker');
  await alice.open({ room: 'busy' });
  await bob.open({ room: 'busy' });
  open.push(alice, bob);
  const page = alice.page;

  // switch with the keyboard: focus the selected tab, arrow right
  await page.getByRole('tab', { name: 'Chat' }).focus();
  await page.keyboard.press('ArrowRight');
  const liveTab = page.getByRole('tab', { name: 'Live view' });
  assert.equal(await liveTab.getAttribute('aria-selected'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'tab-live');
  await page.locator('#view-live').waitFor();

  // traffic between samples, so the rate charts have something to show
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 5; i++) await bob.send(`traffic ${round}.${i}`);
    await alice.waitMessage('room:busy', `traffic ${round}.4`);
    await nextSample(page);
  }

  const row = page.locator('#live-table tbody tr[data-node="n1"]');
  await row.waitFor();
  const cells = await row.locator('td').allTextContents();
  assert.ok(Number(cells[1]) >= 2, `WebSocket connections ${cells[1]} >= 2`);
  assert.ok(Number(cells[3]) >= 2, `subscriptions ${cells[3]} >= 2`);
  for (const id of ['chart-connections', 'chart-subscriptions', 'chart-published', 'chart-delivered']) {
    const n = await page.locator(`#${id} svg path.series`).count();
    assert.ok(n >= 1, `${id} draws a line`);
    const label = await page.locator(`#${id} svg`).getAttribute('aria-label');
    assert.match(label, /n1 \d/, `${id} aria-label names the node's value`);
  }
  // messages went through: the published rate was above zero at some point
  const maxPublished = await page.evaluate(() => {
    const ys = [...document.querySelectorAll('#chart-published path.series')]
      .flatMap((p) => [...p.getAttribute('d').matchAll(/[ML][\d.]+,([\d.]+)/g)].map((m) => Number(m[1])));
    const base = Number(document.querySelector('#chart-published line.grid').getAttribute('y1'));
    return Math.max(...ys.map((y) => base - y));
  });
  assert.ok(maxPublished > 0, 'published rate line rises above zero');
  await page.screenshot({ path: screenshotPath('live.png'), fullPage: true });
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(alice.consoleErrors(), []);
});

// A cluster's stats list several nodes. The page draws one line per node
// and computes rates from the counters; here the stats answers come from
// the test (page.route) so the numbers, and so the rates, are known.
test('the live view draws one series per node and computes rates', async () => {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  open.push(context);
  const page = await context.newPage();
  let n = 0;
  const t0 = Date.parse('2026-01-01T00:00:00Z');
  await page.route('**/api/v1/stats', (route) => {
    n += 1;
    const node = (name, i) => ({
      node: name,
      time: new Date(t0 + n * 2000).toISOString(),
      uptime_seconds: 3600 + n * 2,
      connections: { ws: 10 * (i + 1) + n, tcp: i },
      subscriptions: 100 * (i + 1),
      // +20 per 2 s sample on every node, times (i+1): rates 10, 20, 30/s
      published: { topic: n * 20 * (i + 1), queue: 0, user: 0 },
      delivered: { topic: n * 40 * (i + 1), queue: 0, user: 0 },
    });
    const nodes = ['n1', 'n2', 'n3'].map(node);
    void route.fulfill({ contentType: 'application/json', body: JSON.stringify({ ...nodes[0], nodes }) });
  });
  await page.goto(`${broker.url}#live`);
  await page.locator('#live-table tbody tr[data-node="n3"] td').nth(4).filter({ hasText: /^30$/ }).waitFor({ timeout: TIMEOUT });
  const rates = await page.locator('#live-table tbody tr').evaluateAll((rows) => rows.map((r) => [r.dataset.node, r.cells[5].textContent, r.cells[6].textContent]));
  assert.deepEqual(rates, [['n1', '10', '20'], ['n2', '20', '40'], ['n3', '30', '60']]);
  for (const id of ['chart-connections', 'chart-published']) {
    assert.equal(await page.locator(`#${id} svg path.series`).count(), 3, `${id}: a line per node`);
    assert.deepEqual(await page.locator(`#${id} .legend li`).allTextContents().then((l) => l.map((x) => x.split(':')[0])), ['n1', 'n2', 'n3']);
  }
  assert.equal(await page.locator('#live-summary dd').first().textContent(), '3');
  await page.screenshot({ path: screenshotPath('live-nodes.png'), fullPage: true });
});
