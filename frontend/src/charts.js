// Metric charts: each fills from the aggregate API, then follows the live stream.
//
// A live point updates its bucket at once where the aggregate allows it
// (count, sum, avg, min, max, rate, last) and marks the bucket for a re-read:
// a moment later the chart asks the aggregate API for the changed buckets only,
// so live values end up equal to what a reload would show (percentiles too).
// The server stores a record before the stream delivers it, so the re-read
// always includes the points that asked for it.

import uPlot from 'uplot';
import { getJSON, LiveStream } from './api.js';
import { AGGREGATES } from './constants.generated.js';
import { $, el } from './dom.js';
import { describeTags, formatNumber, parseWhen } from './format.js';
import { WINDOWS } from './layout.js';

const NICE_BUCKETS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
const TARGET_BUCKETS = 150;
const HEIGHT = 220;
const MAX_PENDING = 50000;
const REFRESH_S = 5;
export const WINDOW_LABELS = { '5m': 'last 5 min', '15m': 'last 15 min', '1h': 'last hour', '6h': 'last 6 h', '24h': 'last 24 h', custom: 'custom' };
export const PALETTE = {
  light: ['#0072b2', '#d55e00', '#009e73', '#cc79a7', '#8a6d00', '#1f9bd6', '#6a3d9a', '#5f6b76'],
  dark: ['#56b4e9', '#e69f00', '#2ec4a0', '#e58fc1', '#f0e442', '#ff8f66', '#b99ae6', '#b0b8c0'],
};
const RANGE_HINT = 'From must be a time before To (e.g. -30m, 2024-05-01 12:00, now).';

export const dark = () => window.matchMedia('(prefers-color-scheme: dark)').matches;

/** A bucket width (seconds) giving about TARGET_BUCKETS buckets over ``span`` seconds. */
export function bucketFor(span) {
  const want = span / TARGET_BUCKETS;
  return NICE_BUCKETS.find((n) => n >= want) || NICE_BUCKETS[NICE_BUCKETS.length - 1];
}

function option(value, text, selected) {
  return el('option', { value, textContent: text, selected: selected || undefined });
}

function fillSelect(select, choices, value) {
  select.replaceChildren(...choices.map(([v, t]) => option(v, t, v === value)));
}

export const aggChoices = () => AGGREGATES.map((a) => [a, a]);
export const windowChoices = () => Object.keys(WINDOWS).map((w) => [w, WINDOW_LABELS[w]]);

let chartCounter = 0;

class Chart {
  constructor(spec, board) {
    this.spec = { ...spec };
    this.board = board;
    this.id = `chart-${++chartCounter}`;
    this.cells = new Map(); // group key -> Map(bucket start s -> {v, n})
    this.plot = null;
    this.plotKeys = null;
    this.pending = [];
    this.loading = true;
    this.generation = 0;
    this.dirtyFrom = Infinity;
    this.reconcileTimer = 0;
    this.inflight = false;
    this.renderFrame = 0;
    this.win = this.window();
    this.build();
  }

  build() {
    this.titleEl = el('h3', { id: `${this.id}-title` });
    this.aggSelect = el('select', { 'aria-label': 'Aggregate' });
    fillSelect(this.aggSelect, aggChoices(), this.spec.agg);
    this.winSelect = el('select', { 'aria-label': 'Window' });
    fillSelect(this.winSelect, windowChoices(), this.spec.win);
    this.fromInput = el('input', { type: 'text', value: this.spec.from || '', placeholder: '-30m', 'aria-label': 'From' });
    this.toInput = el('input', { type: 'text', value: this.spec.to || '', placeholder: 'now', 'aria-label': 'To' });
    const apply = el('button', { type: 'button', className: 'btn', textContent: 'Apply' });
    this.customBox = el('span', { className: 'custom-range', hidden: this.spec.win !== 'custom' }, [this.fromInput, this.toInput, apply]);
    const remove = el('button', { type: 'button', className: 'btn ghost remove', textContent: 'Remove' });
    this.removeButton = remove;
    const controls = el('div', { className: 'chart-controls' }, [this.aggSelect, this.winSelect, this.customBox, remove]);
    const head = el('div', { className: 'chart-head' }, [this.titleEl, controls]);

    this.plotEl = el('div', { className: 'plot', role: 'img' });
    this.message = el('p', { className: 'chart-message', role: 'status' });
    const dataset = { state: 'loading', points: '0', series: '0' };
    const section = el('section', { className: 'chart', id: this.id, dataset, 'aria-labelledby': this.titleEl.id }, [head, this.plotEl, this.message]);
    section.chartData = () => this.data().data; // test hook: [xs, ...series] as drawn
    this.el = section;

    this.aggSelect.addEventListener('change', () => this.update({ agg: this.aggSelect.value }));
    this.winSelect.addEventListener('change', () => {
      this.customBox.hidden = this.winSelect.value !== 'custom';
      if (this.winSelect.value === 'custom') {
        if (!this.fromInput.value) this.fromInput.value = '-' + (this.spec.win === 'custom' ? '1h' : this.spec.win);
        this.fromInput.focus();
      } else this.update({ win: this.winSelect.value });
    });
    const applyCustom = () => {
      const now = Date.now() / 1000;
      const from = parseWhen(this.fromInput.value || '-1h', now);
      const to = parseWhen(this.toInput.value, now);
      if (!(from < to)) {
        this.message.textContent = RANGE_HINT;
        return;
      }
      this.update({ win: 'custom', from: this.fromInput.value.trim(), to: this.toInput.value.trim() });
    };
    apply.addEventListener('click', applyCustom);
    for (const input of [this.fromInput, this.toInput]) {
      input.addEventListener('keydown', (e) => {
        if (e.key === 'Enter') {
          e.preventDefault();
          applyCustom();
        }
      });
    }
    remove.addEventListener('click', () => this.board.remove(this));
    this.resizer = new ResizeObserver(() => this.resize());
    this.resizer.observe(this.plotEl);
    this.setTitle();
  }

  setTitle() {
    const s = this.spec;
    const unit = this.board.units.get(s.name);
    let text = `${s.agg} of ${s.name}`;
    if (s.tags) text += ` {${describeTags(s.tags)}}`;
    if (s.by) text += ` by ${s.by}`;
    if (unit && s.agg !== 'count') text += ` (${s.agg === 'rate' ? unit + '/s' : unit})`;
    this.titleEl.textContent = text;
    this.removeButton.setAttribute('aria-label', `Remove chart ${text}`);
  }

  update(change) {
    Object.assign(this.spec, change);
    this.message.textContent = '';
    this.setTitle();
    this.board.changed();
    this.load();
  }

  window() {
    const now = Date.now() / 1000;
    const s = this.spec;
    if (s.win !== 'custom') {
      const span = WINDOWS[s.win];
      return { from: now - span, to: now, span, live: true, bucket: bucketFor(span) };
    }
    let from = parseWhen(s.from || '-1h', now);
    let to = parseWhen(s.to, now);
    if (!(from < to)) {
      from = now - 3600;
      to = now;
    }
    const live = !s.to || s.to === 'now';
    return { from, to, span: to - from, live, bucket: bucketFor(to - from) };
  }

  params(since) {
    const s = this.spec;
    return {
      agg: s.agg,
      bucket: this.win.bucket,
      since,
      until: this.win.live ? undefined : this.win.to,
      tags: s.tags ? Object.entries(s.tags).map(([k, v]) => `${k}:${v}`) : undefined,
      group_by: s.by || undefined,
    };
  }

  path() {
    return `api/v1/metrics/${encodeURIComponent(this.spec.name)}/aggregate`;
  }

  groupKey(tags) {
    return this.spec.by ? (tags && tags[this.spec.by]) ?? '' : '';
  }

  async load() {
    const generation = ++this.generation;
    clearTimeout(this.reconcileTimer);
    this.reconcileTimer = 0;
    this.dirtyFrom = Infinity;
    this.loading = true;
    this.pending = [];
    this.el.dataset.state = 'loading';
    this.win = this.window();
    const since = Math.floor(this.win.from / this.win.bucket) * this.win.bucket;
    try {
      await this.board.stream.ready(); // subscribed first: no point falls between the two
      if (generation !== this.generation) return;
      const body = await getJSON(this.path(), this.params(since));
      if (generation !== this.generation) return;
      this.cells = new Map();
      this.store(body);
      this.loading = false;
      const pending = this.pending;
      this.pending = [];
      for (const p of pending) this.live(p);
      this.message.textContent = '';
      this.render(true);
      this.el.dataset.state = 'ready';
    } catch (err) {
      if (generation !== this.generation) return;
      this.loading = false;
      this.el.dataset.state = 'error';
      if (err.status === 400 || err.status === 422) {
        // the query itself is wrong: asking again would not help
        this.message.textContent = `Query error: ${err.message}`;
        return;
      }
      this.message.textContent = `Could not load (${err.message}); trying again…`;
      setTimeout(() => {
        if (generation === this.generation) this.load();
      }, 5000);
    }
  }

  store(body) {
    for (const g of body.groups) {
      const key = this.groupKey(g.tags);
      let cells = this.cells.get(key);
      if (!cells) this.cells.set(key, (cells = new Map()));
      for (const b of g.buckets) {
        if (b.value === null || b.value === undefined) continue;
        cells.set(Math.round(Number(b.start_ns) / 1e9 / this.win.bucket) * this.win.bucket, { v: b.value, n: b.count });
      }
    }
  }

  accepts(point) {
    if (point.name !== this.spec.name) return false;
    const want = this.spec.tags;
    if (want) {
      for (const k in want) if (!point.tags || point.tags[k] !== want[k]) return false;
    }
    return true;
  }

  /** A point from the live stream. */
  live(point) {
    if (this.loading) {
      if (this.pending.length < MAX_PENDING) this.pending.push(point);
      return;
    }
    if (!this.win.live) return;
    const bucket = this.win.bucket;
    const t = Number(point.time_ns) / 1e9;
    const start = Math.floor(t / bucket) * bucket;
    if (start + bucket <= this.win.from) return;
    const key = this.groupKey(point.tags);
    let cells = this.cells.get(key);
    if (!cells) this.cells.set(key, (cells = new Map()));
    const value = point.value;
    const cell = cells.get(start);
    const agg = this.spec.agg;
    if (!cell) {
      const first = agg === 'count' ? 1 : agg === 'rate' ? value / bucket : value;
      cells.set(start, { v: first, n: 1 });
    } else {
      const n = cell.n;
      if (agg === 'count') cell.v = n + 1;
      else if (agg === 'sum') cell.v += value;
      else if (agg === 'avg') cell.v = (cell.v * n + value) / (n + 1);
      else if (agg === 'min') cell.v = Math.min(cell.v, value);
      else if (agg === 'max') cell.v = Math.max(cell.v, value);
      else if (agg === 'rate') cell.v += value / bucket;
      else if (agg === 'last') cell.v = value;
      // percentiles wait for the re-read
      cell.n = n + 1;
    }
    this.dirtyFrom = Math.min(this.dirtyFrom, start);
    this.scheduleReconcile();
    this.scheduleRender();
  }

  scheduleReconcile() {
    if (this.reconcileTimer || this.inflight) return;
    const delay = this.win.bucket >= 60 ? 5000 : 1000;
    this.reconcileTimer = setTimeout(() => this.reconcile(), delay);
  }

  async reconcile() {
    this.reconcileTimer = 0;
    if (this.dirtyFrom === Infinity || this.loading) return;
    const generation = this.generation;
    const from = this.dirtyFrom;
    this.dirtyFrom = Infinity;
    this.inflight = true;
    try {
      const body = await getJSON(this.path(), this.params(from));
      if (generation !== this.generation) return;
      for (const cells of this.cells.values()) {
        for (const start of [...cells.keys()]) if (start >= from) cells.delete(start);
      }
      this.store(body);
      this.scheduleRender();
    } catch {
      if (generation === this.generation) this.dirtyFrom = Math.min(this.dirtyFrom, from);
    } finally {
      this.inflight = false;
      if (generation === this.generation && this.dirtyFrom !== Infinity) this.scheduleReconcile();
    }
  }

  /** Slide a live window forward. */
  tick() {
    if (!this.win.live || this.loading) return;
    const now = Date.now() / 1000;
    this.win.from = now - this.win.span;
    this.win.to = now;
    const oldest = this.win.from - this.win.bucket;
    for (const cells of this.cells.values()) {
      for (const start of cells.keys()) if (start < oldest) cells.delete(start);
    }
    this.scheduleRender();
  }

  scheduleRender() {
    if (!this.renderFrame) {
      this.renderFrame = requestAnimationFrame(() => {
        this.renderFrame = 0;
        this.render(false);
      });
    }
  }

  data() {
    const keys = [...this.cells.keys()].filter((k) => this.cells.get(k).size).sort();
    const starts = new Set();
    for (const k of keys) for (const s of this.cells.get(k).keys()) starts.add(s);
    const xs = [...starts].sort((a, b) => a - b);
    const columns = keys.map((k) => {
      const cells = this.cells.get(k);
      return xs.map((x) => (cells.has(x) ? cells.get(x).v : null));
    });
    return { keys, data: [xs, ...columns] };
  }

  label(key) {
    if (this.spec.by) return `${this.spec.by}=${key === '' ? '(none)' : key}`;
    return this.spec.tags ? describeTags(this.spec.tags) : this.spec.name;
  }

  render(rebuild) {
    const { keys, data } = this.data();
    let points = 0;
    for (let i = 1; i < data.length; i++) for (const v of data[i]) if (v !== null) points++;
    this.el.dataset.points = String(points);
    this.el.dataset.series = String(keys.length);
    const signature = keys.join('\u0001');
    if (rebuild || !this.plot || signature !== this.plotKeys) this.buildPlot(keys, data);
    else this.plot.setData(data);
    if (!keys.length && !this.loading) this.message.textContent = 'No points in this window yet.';
    else if (this.message.textContent.startsWith('No points')) this.message.textContent = '';
    this.describe(keys, data);
  }

  describe(keys, data) {
    const parts = keys.slice(0, 8).map((k, i) => {
      const col = data[i + 1];
      let last = null;
      for (let j = col.length - 1; j >= 0 && last === null; j--) last = col[j];
      return `${this.label(k)} latest ${formatNumber(last)}`;
    });
    const what = `${this.titleEl.textContent}, ${WINDOW_LABELS[this.spec.win]}, ${keys.length} series`;
    this.plotEl.setAttribute('aria-label', parts.length ? `${what}: ${parts.join('; ')}` : `${what}: no data`);
  }

  buildPlot(keys, data) {
    this.plot?.destroy();
    const css = getComputedStyle(document.documentElement);
    const fg = css.getPropertyValue('--muted').trim() || '#666';
    const grid = css.getPropertyValue('--grid').trim() || '#ddd';
    const palette = dark() ? PALETTE.dark : PALETTE.light;
    const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const opts = {
      width: this.width(),
      height: HEIGHT,
      scales: {
        x: {
          time: true,
          range: (u, min, max) => [this.win.from, Math.max(this.win.to, max ?? this.win.to)],
        },
      },
      series: [
        {},
        ...keys.map((k, i) => ({
          label: this.label(k),
          stroke: palette[i % palette.length],
          width: 1.5,
          spanGaps: false,
          value: (u, v) => formatNumber(v),
        })),
      ],
      axes: [axis, { ...axis, size: 56, values: (u, splits) => splits.map(formatNumber) }],
      cursor: { drag: { x: false, y: false } },
      legend: { show: true },
    };
    this.plot = new uPlot(opts, data, this.plotEl);
    this.plotKeys = keys.join('\u0001');
  }

  width() {
    return Math.max(200, Math.floor(this.plotEl.clientWidth || this.el.clientWidth || 400));
  }

  resize() {
    if (this.plot && Math.abs(this.plot.width - this.width()) > 1) this.plot.setSize({ width: this.width(), height: HEIGHT });
  }

  rebuild() {
    if (this.plot) this.render(true);
  }

  destroy() {
    this.generation++;
    clearTimeout(this.reconcileTimer);
    cancelAnimationFrame(this.renderFrame);
    this.resizer.disconnect();
    this.plot?.destroy();
    this.el.remove();
  }
}

/** A series' labels as Prometheus prints them: name{k="v", ...}. */
export function promLabels(metric) {
  const { __name__: name = '', ...labels } = metric || {};
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  return pairs.length ? `${name}{${pairs.join(', ')}}` : name || '{}';
}

/**
 * A chart of a PromQL expression, read from the Prometheus-compatible API at one point per
 * bucket. PromQL has no incremental form, so a live window re-runs the query once per step
 * (at least every REFRESH_S) instead of following the stream.
 */
class PromChart extends Chart {
  build() {
    super.build();
    this.aggSelect.remove();
  }

  setTitle() {
    this.titleEl.textContent = this.spec.promql;
    this.removeButton.setAttribute('aria-label', `Remove chart ${this.spec.promql}`);
  }

  path() {
    return 'prometheus/api/v1/query_range';
  }

  params(since) {
    const end = this.win.live ? Date.now() / 1000 : this.win.to;
    return { query: this.spec.promql, start: since, end: Math.max(since, end), step: this.win.bucket };
  }

  store(body) {
    const result = body.data.result;
    const series = body.data.resultType === 'matrix' ? result : [];
    for (const s of series) {
      const key = promLabels(s.metric);
      let cells = this.cells.get(key);
      if (!cells) this.cells.set(key, (cells = new Map()));
      for (const [t, v] of s.values) {
        const value = Number(v);
        if (Number.isFinite(value)) cells.set(t, { v: value, n: 1 });
      }
    }
  }

  accepts() {
    return false;
  }

  load() {
    this.refreshed = Date.now() / 1000;
    return super.load();
  }

  label(key) {
    return key;
  }

  tick() {
    super.tick();
    if (!this.win.live || this.loading || this.inflight) return;
    const now = Date.now() / 1000;
    if (now - (this.refreshed || 0) < Math.max(REFRESH_S, this.win.bucket)) return;
    this.refreshed = now;
    this.dirtyFrom = Math.floor(this.win.from / this.win.bucket) * this.win.bucket;
    this.reconcile();
  }
}

/** All charts of the page and the one metric stream they share. */
export class Board {
  constructor({ onChange, onState }) {
    this.onChange = onChange;
    this.charts = [];
    this.units = new Map();
    this.series = [];
    this.container = $('charts');
    this.streamKey = '';
    this.localNames = null; // names filtered here when the server cannot (a comma in a name)
    this.stream = new LiveStream({ metric: (p) => this.onPoint(p), state: onState, resume: true });
    this.wireForm();
    setInterval(() => this.charts.forEach((c) => c.tick()), 2000);
    window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => this.charts.forEach((c) => c.rebuild()));
  }

  wireForm() {
    const form = $('add-chart');
    const name = $('a-name');
    const win = $('a-window');
    fillSelect($('a-agg'), aggChoices(), 'avg');
    fillSelect(win, windowChoices(), '15m');
    const customs = form.querySelectorAll('.custom');
    win.addEventListener('change', () => customs.forEach((c) => (c.hidden = win.value !== 'custom')));
    let last = 0;
    name.addEventListener('focus', () => {
      if (Date.now() - last > 5000) {
        last = Date.now();
        this.loadSeries().catch(() => {});
      }
    });
    name.addEventListener('input', () => this.fillSeries(name.value.trim()));
    name.addEventListener('change', () => this.fillSeries(name.value.trim()));
    const mode = $('a-mode');
    const setMode = () => {
      const promql = mode.value === 'promql';
      form.querySelectorAll('.by-metric').forEach((f) => (f.hidden = promql));
      form.querySelectorAll('.by-promql').forEach((f) => (f.hidden = !promql));
      name.required = !promql;
      $('a-promql').required = promql;
    };
    mode.addEventListener('change', setMode);
    setMode();
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const error = $('a-error');
      error.textContent = '';
      if (mode.value === 'promql') {
        const promql = $('a-promql').value.trim();
        if (!promql) {
          error.textContent = 'Write a PromQL expression.';
          return;
        }
        const spec = { promql, win: win.value, from: '', to: '' };
        if (!this.customRange(spec)) return;
        this.add(spec);
        return;
      }
      const metric = name.value.trim();
      if (!metric) {
        error.textContent = 'Pick a metric name.';
        return;
      }
      const spec = { name: metric, agg: $('a-agg').value, win: win.value, tags: null, by: '', from: '', to: '' };
      const series = $('a-series').value;
      if (series.startsWith('by:')) spec.by = series.slice(3);
      else if (series.startsWith('tags:')) spec.tags = JSON.parse(series.slice(5));
      if (this.customRange(spec)) this.add(spec);
    });
  }

  /** Fill a custom window from the form; false (with the hint shown) if it is empty. */
  customRange(spec) {
    if (spec.win !== 'custom') return true;
    spec.from = $('a-from').value.trim() || '-1h';
    spec.to = $('a-to').value.trim();
    const now = Date.now() / 1000;
    if (parseWhen(spec.from, now) < parseWhen(spec.to, now)) return true;
    $('a-error').textContent = RANGE_HINT;
    return false;
  }

  async loadSeries() {
    const body = await getJSON('api/v1/series');
    this.series = body.series;
    const names = [...new Set(this.series.map((s) => s.name))].sort();
    for (const s of this.series) if (s.unit) this.units.set(s.name, s.unit);
    $('names').replaceChildren(...names.map((n) => option(n, n)));
    this.fillSeries($('a-name').value.trim());
    for (const c of this.charts) c.setTitle();
    return names;
  }

  fillSeries(name) {
    const select = $('a-series');
    const keep = select.value;
    const members = this.series.filter((s) => s.name === name);
    const keys = [...new Set(members.flatMap((s) => Object.keys(s.tags)))].sort();
    const choices = [['', 'all, combined']];
    for (const k of keys) choices.push([`by:${k}`, `one line per ${k}`]);
    for (const s of members.slice(0, 200)) {
      if (Object.keys(s.tags).length) choices.push([`tags:${JSON.stringify(s.tags)}`, describeTags(s.tags)]);
    }
    fillSelect(select, choices, choices.some(([v]) => v === keep) ? keep : '');
  }

  specs() {
    return this.charts.map((c) => ({ ...c.spec }));
  }

  /** Replace every chart (from the layout in the URL). */
  setCharts(specs) {
    for (const c of this.charts) c.destroy();
    this.charts = [];
    for (const spec of specs) this.create(spec);
    this.afterChange();
    for (const c of this.charts) c.load();
  }

  create(spec) {
    const chart = spec.promql ? new PromChart(spec, this) : new Chart(spec, this);
    this.charts.push(chart);
    this.container.append(chart.el);
    return chart;
  }

  add(spec) {
    const chart = this.create(spec);
    this.afterChange();
    this.changed();
    chart.load();
    chart.el.scrollIntoView({ block: 'nearest' });
  }

  remove(chart) {
    const at = this.charts.indexOf(chart);
    chart.destroy();
    this.charts.splice(at, 1);
    this.afterChange();
    this.changed();
    const next = this.charts[Math.min(at, this.charts.length - 1)];
    (next ? next.winSelect : $('a-name')).focus();
  }

  changed() {
    this.onChange();
  }

  afterChange() {
    $('charts-empty').hidden = this.charts.length > 0;
    const names = [...new Set(this.charts.filter((c) => !c.spec.promql).map((c) => c.spec.name))].sort();
    const filterable = names.every((n) => !n.includes(','));
    this.localNames = filterable ? null : new Set(names);
    const params = names.length ? { kind: 'metric', mode: 'sample', name: filterable ? names.join(',') : undefined } : null;
    const key = JSON.stringify(params);
    if (key === this.streamKey) return;
    this.streamKey = key;
    this.stream.open(params);
  }

  onPoint(point) {
    if (this.localNames && !this.localNames.has(point.name)) return;
    for (const c of this.charts) if (c.accepts(point)) c.live(point);
  }
}
