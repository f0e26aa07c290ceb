// Two clustered nodes (embedded NATS): a page on each node chats with the
// other, sees the other user online with their node, and the live view
// draws both nodes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Broker, ChatPage, freePort, launchBrowser, screenshotPath, until, TIMEOUT } from '../lib/harness.mjs';

let n1;
let n2;
let browser;
const pages = [];

before(async () => {
  const [r1, r2] = [await freePort(), await freePort()];
  n1 = new Broker(['-cluster-listen', `127.0.0.1:${r1}`, '-cluster-routes', `nats-route://127.0.0.1:${r2}`], { node: 'n1' });
  n2 = new Broker(['-cluster-listen', `127.0.0.1:${r2}`, '-cluster-routes', `nats-route://127.0.0.1:${r1}`], { node: 'n2' });
  await Promise.all([n1.start(), n2.start()]);
  await Promise.all([n1.ready(), n2.ready()]);
  browser = await launchBrowser();
});

after(async () => {
  for (const p of pages) await p.close();
  if (browser) await browser.close();
  await Promise.all([n1?.close(), n2?.close()]);
});

test('pages on two nodes chat, see each other online, and the live view shows both nodes', async (t) => {
  const alice = new ChatPage(browser, n1, 'ada');
  const bob = new ChatPage(browser, n2, 'bert');
  pages.push(alice, bob);
  try {
    await alice.open({ room: 'cluster' });
    await bob.open({ room: 'cluster' });

    await alice.send('from n1 to n2');
    await bob.waitMessage('room:cluster', 'from n1 to n2');
    await bob.send('from n2 to n1');
    await alice.waitMessage('room:cluster', 'from n2 to n1');
    await bob.openPrivate('ada');
    await bob.send('private across nodes');
    await alice.waitMessage('dm:bert', 'private across nodes');

    // presence is cluster-wide, with the node each user is on
    await until(async () => (await alice.online()).includes('bert'), 'ada sees bert online', TIMEOUT);
    await alice.page.locator('#online-list li[data-user="bert"] .meta', { hasText: 'n2' }).waitFor();
    await alice.page.locator('.conv[data-conv="room:cluster"]').click();
    await alice.page.screenshot({ path: screenshotPath('chat-cluster.png') });

    await alice.page.getByRole('tab', { name: 'Live view' }).click();
    for (const node of ['n1', 'n2']) await alice.page.locator(`#live-table tbody tr[data-node="${node}"]`).waitFor();
    // wait for a sample taken after both pages connected (the first ones
    // may predate them): one WebSocket connection on each node
    const wsPerNode = () => alice.page.locator('#live-table tbody tr').evaluateAll((rows) => rows.map((r) => [r.dataset.node, Number(r.cells[2].textContent)]));
    await until(async () => JSON.stringify(await wsPerNode()) === JSON.stringify([['n1', 1], ['n2', 1]]), 'one WebSocket connection per node in the live table', TIMEOUT);
    assert.equal(await alice.page.locator('#chart-connections path.series').count(), 2, 'a connections line per node');
    const legend = await alice.page.locator('#chart-connections .legend li').allTextContents();
    assert.deepEqual(legend, ['n1: 1', 'n2: 1']);
    await alice.page.screenshot({ path: screenshotPath('live-cluster.png'), fullPage: true });

    // closing bob's page: he leaves ada's list
    await bob.close();
    await until(async () => !(await alice.online()).includes('bert'), 'bert to leave ada\'s list', TIMEOUT);
  } catch (e) {
    console.error(`##### ${t.name} failed\n${alice.dump()}\n${bob.dump()}\n${n1.dump()}\n${n2.dump()}`);
    throw e;
  }
});
