// The page's logic that needs no browser: rates from monotonic counters,
// stats parsing, chart scale, presence bookkeeping. Imports the page's own
// modules from webclient/src.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeSamples, rate } from '../../../webclient/src/live.js';
import { niceCeil, niceCeilCount, formatNumber } from '../../../webclient/src/chart.js';
import { Presence } from '../../../webclient/src/presence.js';

test('rate: per second between two samples, none across a counter reset', () => {
  const a = { t: 1000, time: 10_000, uptime: 50, pub: 100 };
  const b = { t: 3500, time: 12_000, uptime: 52.5, pub: 150 };
  assert.equal(rate(a, b, 'pub'), 20, 'the node\'s uptime is the clock');
  const noUp = (x) => ({ ...x, uptime: 0 });
  assert.equal(rate(noUp(a), noUp(b), 'pub'), 25, 'then the stats\' time');
  assert.equal(rate({ ...noUp(a), time: null }, { ...noUp(b), time: null }, 'pub'), 20, 'then arrival time');
  assert.equal(rate(null, b, 'pub'), null);
  assert.equal(rate(b, { t: 5000, time: 14_000, uptime: 1, pub: 3 }, 'pub'), null, 'restarted node (uptime went down)');
  assert.equal(rate(b, { ...b, t: 6000, uptime: 55, pub: 3 }, 'pub'), null, 'counter went down');
  assert.equal(rate(a, { ...a }, 'pub'), null, 'no time passed');
});

test('nodeSamples: single node, cluster list, missing fields', () => {
  const one = nodeSamples({ node: 'n1', time: '2026-01-01T00:00:00Z', uptime_seconds: 5, connections: { ws: 2, tcp: 1 }, subscriptions: 3, published: { topic: 1, queue: 2, user: 3 }, delivered: { topic: 4 } });
  assert.deepEqual(one, [{ node: 'n1', time: Date.parse('2026-01-01T00:00:00Z'), uptime: 5, ws: 2, tcp: 1, subs: 3, pub: 6, del: 4 }]);
  const many = nodeSamples({ node: 'n1', nodes: [{ node: 'n1' }, { node: 'n2', connections: { ws: 7 } }] });
  assert.deepEqual(many.map((s) => [s.node, s.ws, s.pub]), [['n1', 0, 0], ['n2', 7, 0]]);
  assert.equal(nodeSamples({ node: 'x', nodes: [] })[0].node, 'x', 'empty nodes list means just this node');
});

test('chart scale and number format', () => {
  assert.deepEqual([0, 0.3, 1, 7, 11, 240, 251, 999].map(niceCeil), [1, 0.5, 1, 10, 20, 250, 500, 1000]);
  // counts: whole-number top and middle tick
  const counts = [0, 1, 2, 3, 5, 7, 11, 35, 45, 55, 999, 1001];
  assert.deepEqual(counts.map((v) => niceCeilCount(v)), [2, 2, 2, 4, 6, 8, 20, 40, 50, 60, 1000, 2000]);
  for (const v of counts) assert.ok(Number.isInteger(niceCeilCount(v) / 2) && niceCeilCount(v) >= v, `niceCeilCount(${v})`);
  assert.deepEqual([null, 0, 3, 2.5, 12.34, 150.4, 12_345, 2_500_000].map(formatNumber), ['–', '0', '3', '2.50', '12.3', '150', '12.3k', '2.5M']);
});

function fakeFetch(answers) {
  const calls = [];
  const fn = async (url, init) => {
    calls.push({ url, init });
    const a = answers.length > 1 ? answers.shift() : answers[0];
    if (a instanceof Error) throw a;
    return { ok: a.status === 200, status: a.status, json: async () => a.body };
  };
  fn.calls = calls;
  return fn;
}

test('presence: snapshot, then per-user join and leave events', async () => {
  const f = fakeFetch([{ status: 200, body: { users: [{ user: 'ann', sessions: 2, nodes: ['n1', 'n2'] }] } }]);
  const p = new Presence({ fetchImpl: f, headers: () => ({ authorization: 'Basic x' }) });
  await p.reconcile();
  assert.equal(f.calls[0].init.headers.authorization, 'Basic x');
  assert.deepEqual(p.list(), [{ user: 'ann', sessions: 2, nodes: ['n1', 'n2'] }]);
  p.apply({ type: 'join', user: 'bob', node: 'n2' });
  p.apply({ type: 'join', user: 'ann', node: 'n3' });
  assert.deepEqual(p.list().map((u) => [u.user, u.sessions, u.nodes.join()]), [['ann', 2, 'n1,n2,n3'], ['bob', 1, 'n2']]);
  // leave is a user's last session gone, whatever the count said
  p.apply({ type: 'leave', user: 'ann', node: 'n1' });
  assert.deepEqual(p.list().map((u) => u.user), ['bob']);
  p.apply({ type: 'leave', user: 'nobody' });
  p.apply({ type: 'bogus', user: 'x' });
  p.apply({ user: '' });
  assert.deepEqual(p.list().map((u) => u.user), ['bob']);
  p.stop();
});

test('presence: a snapshot that changes nothing fires no change (the list is not rebuilt under a tap)', async () => {
  const same = { status: 200, body: { users: [{ user: 'ann', sessions: 1, nodes: ['n1'] }] } };
  const f = fakeFetch([same, same, { status: 200, body: { users: [{ user: 'ann', sessions: 2, nodes: ['n1'] }] } }]);
  const p = new Presence({ fetchImpl: f });
  let changes = 0;
  p.addEventListener('change', () => { changes += 1; });
  await p.reconcile();
  assert.equal(changes, 1, 'the first snapshot is news');
  await p.reconcile();
  assert.equal(changes, 1, 'the same snapshot again is not');
  await p.reconcile();
  assert.equal(changes, 2, 'a new session count is');
  p.stop();
});

test('presence: a broker without the endpoint leaves an event-built list', async () => {
  const f = fakeFetch([{ status: 404 }]);
  const p = new Presence({ fetchImpl: f });
  let changes = 0;
  p.addEventListener('change', () => { changes += 1; });
  await p.reconcile();
  assert.equal(p.available, false);
  p.ensure('me');
  p.apply({ type: 'join', user: 'you' });
  assert.deepEqual(p.list().map((u) => u.user), ['me', 'you']);
  assert.ok(changes >= 3);
  // no snapshot is asked for again after events
  assert.equal(f.calls.length, 1);
  p.stop();
});

test('presence: an older snapshot answering late does not win', async () => {
  let release;
  const slow = new Promise((r) => { release = r; });
  let n = 0;
  const f = async () => {
    n += 1;
    if (n === 1) {
      await slow;
      return { ok: true, status: 200, json: async () => ({ users: [{ user: 'stale', sessions: 1, nodes: [] }] }) };
    }
    return { ok: true, status: 200, json: async () => ({ users: [{ user: 'fresh', sessions: 1, nodes: [] }] }) };
  };
  const p = new Presence({ fetchImpl: f });
  const first = p.reconcile();
  await p.reconcile();
  release();
  await first;
  assert.deepEqual(p.list().map((u) => u.user), ['fresh']);
  p.stop();
});
