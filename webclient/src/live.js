// The live view: polls GET /api/v1/stats and draws the last minutes of
// connections, subscriptions and message rates, one line per node.
//
//   {"node":"n1","time":"RFC3339","uptime_seconds":N,
//    "connections":{"ws":N,"tcp":N},"subscriptions":N,
//    "published":{"topic":N,"queue":N,"user":N},
//    "delivered":{"topic":N,"queue":N,"user":N},
//    "nodes":[ ...the same fields for each node of the cluster... ]}
//
// Counters are monotonic; rates are computed here from two samples. A
// counter that went down (a node restarted) gives no rate for that step.
import { LineChart, formatNumber } from './chart.js';
import { $, h, fill, clockTime, duration } from './dom.js';

export const STATS_URL = '/api/v1/stats';
const WINDOW_MS = 5 * 60 * 1000;
const EVERY_MS = 2000;
const EVERY_WHEN_MISSING_MS = 10000;

const sum3 = (o) => (o ? (Number(o.topic) || 0) + (Number(o.queue) || 0) + (Number(o.user) || 0) : 0);

// nodeSamples turns one stats response into per-node raw values.
export function nodeSamples(body) {
  const list = Array.isArray(body.nodes) && body.nodes.length ? body.nodes : [body];
  return list.filter((n) => n && typeof n === 'object').map((n) => ({
    node: String(n.node ?? body.node ?? 'node'),
    time: Date.parse(n.time ?? body.time ?? '') || null,
    uptime: Number(n.uptime_seconds) || 0,
    ws: Number(n.connections?.ws) || 0,
    tcp: Number(n.connections?.tcp) || 0,
    subs: Number(n.subscriptions) || 0,
    pub: sum3(n.published),
    del: sum3(n.delivered),
  }));
}

// rate between two samples of a monotonic counter, per second, or null.
// The time between them is the node's own uptime difference (a monotonic
// clock with millisecond precision), else the stats' time stamps, else
// when the answers arrived here.
export function rate(prev, cur, field) {
  if (!prev) return null;
  let dt = 0;
  if (prev.uptime > 0 && cur.uptime > 0) {
    if (cur.uptime < prev.uptime) return null; // the node restarted
    dt = (cur.uptime - prev.uptime) * 1000;
  } else if (prev.time && cur.time) {
    dt = cur.time - prev.time;
  }
  if (!(dt > 0)) dt = cur.t - prev.t;
  const dv = cur[field] - prev[field];
  if (dt <= 0 || dv < 0) return null;
  return (dv * 1000) / dt;
}

export class LiveView {
  constructor({ fetchImpl = (...a) => fetch(...a), headers = () => ({}) } = {}) {
    this.fetch = fetchImpl;
    this.headers = headers;
    this.nodes = new Map(); // node -> [{ t, ...raw, pubRate, delRate }]
    this.visible = false;
    this.timer = null;
    this.last = null;
    this.self = null;
    this.el = {
      status: $('live-status'),
      summary: $('live-summary'),
      charts: $('live-charts'),
      tbody: document.querySelector('#live-table tbody'),
    };
    this.charts = {
      conns: new LineChart({ id: 'chart-connections', title: 'Connections', integer: true }),
      subs: new LineChart({ id: 'chart-subscriptions', title: 'Subscriptions', integer: true }),
      pub: new LineChart({ id: 'chart-published', title: 'Messages published', unit: '/s' }),
      del: new LineChart({ id: 'chart-delivered', title: 'Messages delivered', unit: '/s' }),
    };
    for (const c of Object.values(this.charts)) this.el.charts.append(c.el);
    if (typeof ResizeObserver === 'function') {
      new ResizeObserver(() => {
        if (this.visible) this.render();
      }).observe(this.el.charts);
    }
  }

  start() {
    if (this.timer !== null) return;
    const tick = async () => {
      const ok = await this.poll();
      this.timer = setTimeout(tick, ok === 'missing' ? EVERY_WHEN_MISSING_MS : EVERY_MS);
    };
    this.timer = setTimeout(tick, 0);
  }

  setVisible(v) {
    this.visible = v;
    if (v) this.render();
  }

  async poll() {
    let res;
    try {
      res = await this.fetch(STATS_URL, { headers: { accept: 'application/json', ...this.headers() }, cache: 'no-store' });
    } catch {
      this.gap();
      this.setStatus('Broker unreachable; trying again.', 'down');
      return 'down';
    }
    if (res.status === 404) {
      this.setStatus(`This broker does not serve ${STATS_URL} (HTTP 404): nothing to chart.`, 'missing');
      return 'missing';
    }
    if (res.status === 401 || res.status === 403) {
      this.gap();
      this.setStatus(`The broker wants a login for ${STATS_URL} (HTTP ${res.status}): join the chat with your login first.`, 'auth');
      return 'error';
    }
    if (!res.ok) {
      this.gap();
      this.setStatus(`Stats answered HTTP ${res.status}; trying again.`, 'error');
      return 'error';
    }
    let body;
    try {
      body = await res.json();
    } catch {
      this.setStatus('Stats answer was not JSON; trying again.', 'error');
      return 'error';
    }
    this.add(body, Date.now());
    const n = this.nodes.size;
    this.setStatus(`Updated ${clockTime(new Date())} from node ${body.node ?? '?'}${n > 1 ? ` · ${n} nodes` : ''} · every ${EVERY_MS / 1000} s`, 'ok');
    if (this.visible) this.render();
    return 'ok';
  }

  setStatus(text, state) {
    fill(this.el.status, text);
    this.el.status.dataset.state = state;
  }

  // gap puts a break into every line (the broker could not be asked).
  gap() {
    const t = Date.now();
    for (const arr of this.nodes.values()) {
      if (arr.length && !arr[arr.length - 1].gap) arr.push({ t, gap: true });
    }
  }

  add(body, t) {
    this.self = body.node ?? null;
    this.last = { body, t };
    const seen = new Set();
    for (const s of nodeSamples(body)) {
      seen.add(s.node);
      let arr = this.nodes.get(s.node);
      if (!arr) {
        arr = [];
        this.nodes.set(s.node, arr);
      }
      let prev = null;
      for (let i = arr.length - 1; i >= 0; i--) {
        if (!arr[i].gap) {
          prev = arr[i];
          break;
        }
      }
      const cur = { t, ...s };
      cur.pubRate = rate(prev, cur, 'pub');
      cur.delRate = rate(prev, cur, 'del');
      arr.push(cur);
    }
    for (const [node, arr] of this.nodes) {
      if (!seen.has(node) && arr.length && !arr[arr.length - 1].gap) arr.push({ t, gap: true });
      while (arr.length && arr[0].t < t - WINDOW_MS - 10000) arr.shift();
      if (!arr.some((x) => !x.gap)) this.nodes.delete(node);
    }
  }

  series(field) {
    return [...this.nodes.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, arr]) => ({
        name,
        points: arr.map((p) => ({ t: p.t, v: p.gap ? null : field(p) })),
      }));
  }

  latest() {
    const out = [];
    for (const [node, arr] of [...this.nodes.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      const last = arr[arr.length - 1];
      if (last && !last.gap) out.push({ node, ...last });
    }
    return out;
  }

  render() {
    const now = Date.now();
    // the window grows with the history, from one minute up to five
    let first = now;
    for (const arr of this.nodes.values()) if (arr.length && arr[0].t < first) first = arr[0].t;
    const windowMs = Math.min(WINDOW_MS, Math.max(60000, Math.ceil((now - first) / 60000) * 60000));
    const opts = { now, windowMs };
    this.charts.conns.update(this.series((p) => p.ws + p.tcp), opts);
    this.charts.subs.update(this.series((p) => p.subs), opts);
    this.charts.pub.update(this.series((p) => p.pubRate), opts);
    this.charts.del.update(this.series((p) => p.delRate), opts);

    const rows = this.latest();
    const total = (f) => rows.reduce((a, r) => a + (f(r) ?? 0), 0);
    const selfRow = rows.find((r) => r.node === this.self) || rows[0];
    const cards = [
      ['Nodes', String(rows.length)],
      ['Connections', `${formatNumber(total((r) => r.ws + r.tcp))}`],
      ['Subscriptions', formatNumber(total((r) => r.subs))],
      ['Published/s', formatNumber(total((r) => r.pubRate))],
      ['Delivered/s', formatNumber(total((r) => r.delRate))],
      ['Uptime', selfRow ? duration(selfRow.uptime * 1000) : '–'],
    ];
    fill(this.el.summary, cards.map(([k, v]) => h('div', null, h('dt', null, k), h('dd', null, v))));
    fill(this.el.tbody, rows.map((r) => h('tr', { dataset: { node: r.node } },
      h('th', { scope: 'row' }, r.node === this.self ? `${r.node} (this page's node)` : r.node),
      h('td', null, duration(r.uptime * 1000)),
      h('td', null, formatNumber(r.ws)),
      h('td', null, formatNumber(r.tcp)),
      h('td', null, formatNumber(r.subs)),
      h('td', null, formatNumber(r.pubRate)),
      h('td', null, formatNumber(r.delRate)))));
  }
}
