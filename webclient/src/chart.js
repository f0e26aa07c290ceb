// LineChart draws a small time-series chart as SVG: one line per series
// (a node), the last `windowMs` of time on the x axis, zero-based y axis
// with a rounded top (and whole-number ticks for charts of counts). Lines
// are drawn SPREAD px apart, so nodes with equal values show side by side
// instead of one line hiding the others. The figure carries a text legend
// with each series' current value, and the SVG an aria-label saying the
// same, so the exact numbers are there, also for readers who cannot see
// the lines.
import { h, svg, fill } from './dom.js';

const PAD = { left: 40, right: 8, top: 8, bottom: 18 };
// SPREAD is the vertical distance between the lines of several series, in
// px: more than the stroke width (2), so that equal values never overlap.
export const SPREAD = 3;

export function niceCeil(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// niceCeilCount is niceCeil for counts: a top of at least 2 whose half
// (the middle tick) is a whole number too.
export function niceCeilCount(v) {
  const c = Math.max(2, Math.ceil(Number(v) || 0));
  const p = 10 ** Math.floor(Math.log10(c));
  for (const m of [1, 2, 4, 5, 6, 8, 10]) if (m * p >= c && Number.isInteger((m * p) / 2)) return m * p;
  return 10 * p;
}

export function formatNumber(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1e9) return `${(v / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${(v / 1e3).toFixed(1)}k`;
  if (a >= 100 || Number.isInteger(v)) return String(Math.round(v));
  if (a >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

export class LineChart {
  // integer: the values are counts (connections, subscriptions), so ticks
  // are whole numbers.
  constructor({ id, title, unit = '', integer = false }) {
    this.title = title;
    this.unit = unit;
    this.integer = integer;
    this.now = h('span', { class: 'now' });
    this.svg = svg('svg', { role: 'img', 'aria-label': title, preserveAspectRatio: 'none' });
    this.legend = h('ul', { class: 'legend' });
    this.el = h('figure', { class: 'chart', id, dataset: { chart: id } },
      h('figcaption', null, h('span', null, title), this.now), this.svg, this.legend);
  }

  // series: [{ name, points: [{ t, v }] }], v === null breaks the line.
  update(series, { now = Date.now(), windowMs = 5 * 60 * 1000 } = {}) {
    const width = Math.max(200, Math.round(this.svg.clientWidth || 320));
    const height = Math.max(80, Math.round(this.svg.clientHeight || 135));
    const t0 = now - windowMs;
    let max = 0;
    for (const s of series) for (const p of s.points) if (p.t >= t0 && p.v !== null && p.v > max) max = p.v;
    const top = this.integer ? niceCeilCount(max) : niceCeil(max);
    const plotW = width - PAD.left - PAD.right;
    const plotH = height - PAD.top - PAD.bottom;
    const x = (t) => PAD.left + ((t - t0) / windowMs) * plotW;
    const y = (v) => PAD.top + plotH - (v / top) * plotH;

    const parts = [];
    for (const frac of [0, 0.5, 1]) {
      const yy = y(top * frac);
      parts.push(svg('line', { class: 'grid', x1: PAD.left, x2: width - PAD.right, y1: yy, y2: yy }));
      parts.push(svg('text', { class: 'axis', x: PAD.left - 6, y: yy + 3, 'text-anchor': 'end' }, formatNumber(top * frac)));
    }
    const mins = Math.round(windowMs / 60000);
    parts.push(svg('text', { class: 'axis', x: PAD.left, y: height - 4, 'text-anchor': 'start' }, `${mins} min ago`));
    parts.push(svg('text', { class: 'axis', x: width - PAD.right, y: height - 4, 'text-anchor': 'end' }, 'now'));

    const current = [];
    series.forEach((s, i) => {
      const cls = `s${i % 6}`;
      // series i sits (i - middle) * SPREAD px off its values
      const dy = (i - (series.length - 1) / 2) * SPREAD;
      const ys = (v) => y(v) + dy;
      const runs = [];
      let run = [];
      for (const p of s.points) {
        if (p.t < t0 - 5000) continue;
        if (p.v === null || p.v === undefined) {
          if (run.length) runs.push(run);
          run = [];
          continue;
        }
        run.push(p);
      }
      if (run.length) runs.push(run);
      for (const r of runs) {
        const d = r.map((p, j) => `${j ? 'L' : 'M'}${x(Math.max(p.t, t0)).toFixed(1)},${ys(p.v).toFixed(1)}`).join('');
        if (series.length === 1 && r.length > 1) {
          const area = `${d}L${x(r[r.length - 1].t).toFixed(1)},${y(0)}L${x(Math.max(r[0].t, t0)).toFixed(1)},${y(0)}Z`;
          parts.push(svg('path', { class: `area ${cls}`, d: area }));
        }
        parts.push(svg('path', { class: `series ${cls}`, d: r.length > 1 ? d : `${d}h0.1` }));
      }
      const last = s.points.length ? s.points[s.points.length - 1].v : null;
      current.push({ name: s.name, cls, v: last });
    });
    this.svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    fill(this.svg, svg('title', null, this.title), parts);

    const total = current.reduce((a, c) => a + (c.v ?? 0), 0);
    const anyValue = current.some((c) => c.v !== null && c.v !== undefined);
    fill(this.now, anyValue ? `${formatNumber(total)}${this.unit}` : '–');
    fill(this.legend, current.map((c) => h('li', { class: c.cls }, `${c.name}: ${formatNumber(c.v)}${this.unit}`)));
    const desc = current.map((c) => `${c.name} ${formatNumber(c.v)}${this.unit}`).join(', ');
    this.svg.setAttribute('aria-label', `${this.title}, last ${mins} minutes. Now: ${desc || 'no data'}`);
  }
}
