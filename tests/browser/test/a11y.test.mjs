// Accessibility: axe-core's WCAG 2 A/AA rules over the login form, the
// chat with messages, and the live view, in light and dark colour schemes.
// The test context bypasses the page's CSP only to inject axe itself.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { Broker, ChatPage, launchBrowser } from '../lib/harness.mjs';

const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
let broker;
let browser;

before(async () => {
  broker = await new Broker().start();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (broker) await broker.close();
});

async function audit(page, what) {
  await page.addScriptTag({ path: axePath });
  const res = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => `${n.target.join(' ')}: ${n.failureSummary}`) }));
  });
  assert.deepEqual(res, [], `${what}: axe violations\n${JSON.stringify(res, null, 2)}`);
}

for (const colorScheme of ['light', 'dark']) {
  test(`no WCAG A/AA violations (${colorScheme})`, async () => {
    const mk = async (name) => {
      const p = new ChatPage(browser, broker, name);
      const orig = p.browser.newContext.bind(p.browser);
      p.browser = { newContext: (o) => orig({ ...o, colorScheme, bypassCSP: true }) };
      return p;
    };
    const a = await mk(`ann-${colorScheme}`);
    await a.load();
    await audit(a.page, 'login form');
    await a.page.getByLabel('Your name').fill(`ann-${colorScheme}`);
    await a.page.getByRole('button', { name: 'Join' }).click();
    await a.waitConnected();
    await a.waitRoomReady('general');
    const b = await mk(`ben-${colorScheme}`);
    await b.open();
    await b.send('a message for the audit');
    await a.waitMessage('room:general', 'a message for the audit');
    await a.openPrivate(`ben-${colorScheme}`);
    await a.send('and a private one');
    await b.waitMessage(`dm:ann-${colorScheme}`, 'and a private one');
    await b.page.locator(`.conv[data-conv="room:general"]`).click();
    await audit(b.page, 'chat');
    await b.page.getByRole('tab', { name: 'Live view' }).click();
    await b.page.locator('#live-table tbody tr').first().waitFor();
    await audit(b.page, 'live view');
    await a.close();
    await b.close();
  });
}
