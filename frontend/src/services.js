// The services view: the HTTP traffic the integrations record, per service and route, with
// no chart to make by hand.
//
// Every request a service handles is one point of http.server.request.duration (seconds)
// tagged service.name, http.request.method, http.route and http.response.status_code.
// While the view is open it reads the aggregate API every few seconds, five requests for
// every service at once (one more, the series list, every 30 s for services with nothing in
// the window):
//   count by service, method, route, status  one bucket over the window: requests and 5xx
//                                            per route, summed per service
//   p95 by service, method, route            one bucket over the window: p95 per route
//   p95 by service                           one bucket over the window: p95 per service
//   p95 by service, in chart buckets         p95 over time; its counts give requests/s
//   count by service, status, chart buckets  the 5xx share over time
// "One bucket over the window" is the widest bucket the API takes (100 years, aligned to
// the epoch), so a percentile is computed over every point of the window at once. PromQL
// cannot give these: quantile_over_time is per series, and a route's series differ by
// status code, while its p95 must pool them.

import uPlot from 'uplot';
import { getJSON } from './api.js';
import { bucketFor, dark, PALETTE, WINDOW_LABELS } from './charts.js';
import { $, el, setState } from './dom.js';
import { clock, formatNumber, plural } from './format.js';
import { SERVICES_WINDOW, WINDOWS } from './layout.js';

export const METRIC = 'http.server.request.duration';
const SERVICE = 'service.name';
const METHOD = 'http.request.method';
const ROUTE = 'http.route';
const STATUS = 'http.response.status_code';
const WHOLE = 3153600000; // seconds: the widest bucket the API takes, so the window is one bucket
const ERROR_LIMIT = 0.01; // a service or route failing more than this share is marked
const SERIES_PERIOD = 30000; // the series list (services with no traffic in the window)
const MAX_SECTIONS = 8; // with every service shown, the busiest ones get a section
const HEIGHT = 140;
// The charts show the buckets that ended at least this long ago: clients send what they
// recorded every few seconds (TelemetryConfig.flush_interval, 5 s by default), so a newer
// bucket still fills and its requests/s would read low.
const SETTLE = 5;
const CHOICES = Object.keys(WINDOWS).filter((w) => w !== 'custom');

/**
 * How often the view reads again: every 5 s, every minute for the windows of 6 and 24 hours
 * (a percentile reads every point of its window: a day of 60 requests/s is 5 million).
 */
const periodOf = (win) => (WINDOWS[win] > 3600 ? 60000 : 5000);

const isError = (status) => /^5\d\d$/.test(status || '');

/** A share (0..1) as a percentage: `10%`, `0.5%`, `0.04%`; '–' when there is none. */
export function formatShare(share) {
  if (share === null || !Number.isFinite(share)) return '–';
  const p = share * 100;
  if (p === 0) return '0%';
  if (p >= 10) return `${p.toFixed(p >= 99.95 ? 0 : 1).replace(/\.0$/, '')}%`;
  if (p >= 0.1) return `${p.toFixed(1).replace(/\.0$/, '')}%`;
  return `${p.toPrecision(1)}%`;
}

/** Seconds as milliseconds for the tables (`12.5`, `230`); '–' when there is none. */
const ms = (seconds) => (seconds === null || !Number.isFinite(seconds) ? '–' : formatNumber(seconds * 1000));

const serviceLabel = (name) => (name === '' ? '(no service.name)' : name);

// --- a small chart ---------------------------------------------------------------------------

let chartCounter = 0;

/** One line over the window (uPlot), e.g. a service's requests per second. */
class MiniChart {
  constructor(kind, title, unit, colour) {
    this.kind = kind;
    this.title = title;
    this.unit = unit;
    this.colour = colour; // index in the palette, or 'bad'
    this.id = `svc-chart-${++chartCounter}`;
    this.plot = null;
    this.data = [[], []];
    this.from = 0;
    this.to = 1;
    this.plotEl = el('div', { className: 'plot', role: 'img' });
    // the latest value, or the one under the pointer with its time (no legend: small charts)
    this.readout = el('span', { className: 'readout' });
    this.el = el('section', { className: 'svc-chart', dataset: { kind, points: '0' }, 'aria-labelledby': `${this.id}-title` }, [
      el('h4', {}, [el('span', { id: `${this.id}-title`, textContent: `${title}${unit ? ` (${unit})` : ''}` }), this.readout]),
      this.plotEl,
    ]);
    this.el.chartData = () => this.data; // test hook: [xs, values] as drawn
    this.resizer = new ResizeObserver(() => this.resize());
    this.resizer.observe(this.plotEl);
  }

  format(v) {
    if (v === null || v === undefined) return '–';
    return this.unit === '%' ? `${formatNumber(v)}%` : formatNumber(v);
  }

  set(xs, values, from, to, label) {
    this.data = [xs, values];
    this.from = from;
    this.to = to;
    this.label = label;
    let last = null;
    let points = 0;
    for (const v of values) {
      if (v !== null) {
        points++;
        last = v;
      }
    }
    this.el.dataset.points = String(points);
    this.last = last;
    if (!this.plot) this.build();
    else this.plot.setData(this.data);
    this.showReadout(this.plot.cursor.idx);
    const what = `${label} ${this.title.toLowerCase()}${this.unit ? ` (${this.unit})` : ''}`;
    this.plotEl.setAttribute('aria-label', points ? `${what}: latest ${this.format(last)}` : `${what}: no data`);
  }

  /** The value at ``idx`` (under the pointer), or the latest one. */
  showReadout(idx) {
    const [xs, values] = this.data;
    let value = this.last;
    let when = '';
    if (idx !== null && idx !== undefined && idx < xs.length) {
      value = values[idx];
      when = ` at ${clock(xs[idx] * 1000).slice(0, 8)}`;
    }
    text(this.readout, value === null || value === undefined ? '' : `${this.format(value)}${this.unit === '%' ? '' : this.unit ? ` ${this.unit}` : ''}${when}`);
  }

  build() {
    this.plot?.destroy();
    const css = getComputedStyle(document.documentElement);
    const fg = css.getPropertyValue('--muted').trim() || '#666';
    const grid = css.getPropertyValue('--grid').trim() || '#ddd';
    const stroke = this.colour === 'bad'
      ? css.getPropertyValue('--bad').trim() || '#c21b27'
      : (dark() ? PALETTE.dark : PALETTE.light)[this.colour];
    const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, font: '11px system-ui, sans-serif' };
    const opts = {
      width: this.width(),
      height: HEIGHT,
      scales: {
        x: { time: true, range: (u, min, max) => [this.from, Math.max(this.to, max ?? this.to)] },
        y: { range: (u, min, max) => [0, max > 0 ? max * 1.15 : 1] },
      },
      series: [
        {},
        { label: this.title, stroke, width: 1.5, spanGaps: false, points: { size: 4 }, value: (u, v) => this.format(v) },
      ],
      axes: [
        { ...axis, size: 30 },
        { ...axis, size: 46, values: (u, splits) => splits.map((v) => this.format(v)) },
      ],
      cursor: { drag: { x: false, y: false } },
      legend: { show: false },
      hooks: { setCursor: [(u) => this.showReadout(u.cursor.idx)] },
    };
    this.plot = new uPlot(opts, this.data, this.plotEl);
  }

  width() {
    return Math.max(160, Math.floor(this.plotEl.clientWidth || this.el.clientWidth || 300));
  }

  resize() {
    if (this.plot && this.plotEl.clientWidth && Math.abs(this.plot.width - this.width()) > 1) {
      this.plot.setSize({ width: this.width(), height: HEIGHT });
    }
  }

  rebuild() {
    if (this.plot) this.build();
  }

  destroy() {
    this.resizer.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }
}

// --- tables ------------------------------------------------------------------------------------

/** Set a cell's text only when it changes (no churn for screen readers and selection). */
function text(node, value) {
  if (node.textContent !== value) node.textContent = value;
}

/**
 * Make ``tbody`` hold one row per item, in order: rows are kept by key and updated in
 * place, so a focused control in them stays focused.
 */
function syncRows(tbody, items, keyOf, build, update) {
  const old = new Map([...tbody.children].map((tr) => [tr.dataset.key, tr]));
  const active = document.activeElement;
  const rows = items.map((item) => {
    const key = keyOf(item);
    let tr = old.get(key);
    if (!tr) {
      tr = build(item);
      tr.dataset.key = key;
    }
    update(tr, item);
    return tr;
  });
  const same = rows.length === tbody.children.length && rows.every((tr, i) => tbody.children[i] === tr);
  if (same) return;
  tbody.replaceChildren(...rows);
  if (active && active.isConnected && document.activeElement !== active && tbody.contains(active)) active.focus();
}

const num = (className, title) => el('td', { className: `n ${className}`, title });

/** The figures every row shows, and how they are marked. */
function fillFigures(tr, figures, span) {
  const { requests, errors, p95 } = figures;
  const share = requests ? errors / requests : null;
  const rate = requests / span;
  Object.assign(tr.dataset, {
    requests: String(requests),
    rate: String(rate),
    p95: p95 === null ? '' : String(p95),
    errors: String(errors),
    errorRate: share === null ? '' : String(share),
  });
  setState(tr, !requests ? 'idle' : share > ERROR_LIMIT ? 'bad' : '');
  text(tr.querySelector('.requests'), formatNumber(requests));
  text(tr.querySelector('.rate'), formatNumber(rate));
  text(tr.querySelector('.p95'), requests ? ms(p95) : '–');
  text(tr.querySelector('.errors'), formatNumber(errors));
  text(tr.querySelector('.error-rate'), formatShare(share));
}

const FIGURE_TITLES = {
  requests: 'requests in the window',
  rate: 'requests per second over the window',
  p95: '95th percentile of the request durations in the window, in milliseconds',
  errors: 'requests answered with a 5xx status',
  'error-rate': `share of requests answered with a 5xx status (marked above ${ERROR_LIMIT * 100}%)`,
};

function figureCells() {
  return Object.entries(FIGURE_TITLES).map(([k, title]) => num(k, title));
}

function figureHeads() {
  return [
    el('th', { scope: 'col', className: 'n', textContent: 'Requests' }),
    el('th', { scope: 'col', className: 'n', textContent: 'Req/s' }),
    el('th', { scope: 'col', className: 'n', textContent: 'p95 (ms)' }),
    el('th', { scope: 'col', className: 'n', textContent: 'Errors' }),
    el('th', { scope: 'col', className: 'n', textContent: 'Error rate' }),
  ];
}

// --- one service -------------------------------------------------------------------------------

/** A service's section: its three charts and its routes. */
class ServiceSection {
  constructor(name) {
    this.name = name;
    const id = `svc-${++chartCounter}`;
    this.titleEl = el('h3', { id: `${id}-title`, textContent: serviceLabel(name) });
    this.summary = el('p', { className: 'note svc-summary' });
    this.charts = [
      new MiniChart('rate', 'Requests/s', '', 0),
      new MiniChart('p95', 'p95 latency', 'ms', 1),
      new MiniChart('errors', 'Errors', '%', 'bad'),
    ];
    this.routes = el('tbody');
    const head = el('tr', {}, [el('th', { scope: 'col', textContent: 'Route' }), ...figureHeads()]);
    this.table = el('table', { className: 'svc-table routes', 'aria-label': `Routes of ${serviceLabel(name)}` }, [el('thead', {}, [head]), this.routes]);
    this.empty = el('p', { className: 'empty', textContent: 'No requests in this window.', hidden: true });
    this.el = el('section', { className: 'svc', dataset: { service: name }, 'aria-labelledby': this.titleEl.id }, [
      el('div', { className: 'svc-head' }, [this.titleEl, this.summary]),
      el('div', { className: 'svc-charts' }, this.charts.map((c) => c.el)),
      el('div', { className: 'table-wrap' }, [this.table]),
      this.empty,
    ]);
  }

  update(service, view) {
    const { span } = view;
    const share = service.requests ? service.errors / service.requests : null;
    text(
      this.summary,
      service.requests
        ? `${plural(service.requests, 'request')} · ${formatNumber(service.requests / span)} req/s · p95 ${ms(service.p95)} ms · ${formatShare(share)} errors`
        : 'No requests in this window.',
    );
    setState(this.el, !service.requests ? 'idle' : share > ERROR_LIMIT ? 'bad' : '');

    const { xs, rate, p95, errors } = service.series;
    const label = serviceLabel(this.name);
    this.charts[0].set(xs, rate, view.from, view.to, label);
    this.charts[1].set(xs, p95, view.from, view.to, label);
    this.charts[2].set(xs, errors, view.from, view.to, label);

    const routes = [...service.routes.values()].sort(
      (a, b) => b.requests - a.requests || a.route.localeCompare(b.route) || a.method.localeCompare(b.method),
    );
    this.table.hidden = !routes.length;
    this.empty.hidden = routes.length > 0;
    syncRows(
      this.routes,
      routes,
      (r) => JSON.stringify([r.method, r.route]),
      (r) => el('tr', { className: 'route', dataset: { method: r.method, route: r.route } }, [
        el('th', { scope: 'row', className: 'route-name' }, [
          el('span', { className: 'method', textContent: r.method || '–' }),
          ' ',
          el('code', { textContent: r.route || '(no route)' }),
        ]),
        ...figureCells(),
      ]),
      (tr, r) => fillFigures(tr, r, span),
    );
  }

  rebuild() {
    for (const c of this.charts) c.rebuild();
  }

  destroy() {
    for (const c of this.charts) c.destroy();
    this.el.remove();
  }
}

// --- reading -----------------------------------------------------------------------------------

function newService(name) {
  return { name, requests: 0, errors: 0, p95: null, routes: new Map(), series: { xs: [], rate: [], p95: [], errors: [] } };
}

/** The value of a group's one bucket (whole-window queries), or the sum of its buckets. */
function whole(group) {
  return group.buckets.reduce((sum, b) => sum + (b.value ?? 0), 0);
}

/** Everything the view shows, from the five answers. */
export function compute({ counts, routeP95, serviceP95, overTime, errorsOverTime }, names, view) {
  const services = new Map(names.map((n) => [n, newService(n)]));
  const serviceOf = (tags) => {
    const name = tags[SERVICE] ?? '';
    if (!services.has(name)) services.set(name, newService(name));
    return services.get(name);
  };
  const routeOf = (s, tags) => {
    const method = tags[METHOD] ?? '';
    const route = tags[ROUTE] ?? '';
    const key = `${method} ${route}`;
    if (!s.routes.has(key)) s.routes.set(key, { method, route, requests: 0, errors: 0, p95: null });
    return s.routes.get(key);
  };
  // requests and errors: one answer, so the counts agree with each other
  for (const g of counts.groups) {
    const n = whole(g);
    const s = serviceOf(g.tags);
    const r = routeOf(s, g.tags);
    s.requests += n;
    r.requests += n;
    if (isError(g.tags[STATUS])) {
      s.errors += n;
      r.errors += n;
    }
  }
  for (const g of routeP95.groups) {
    if (g.buckets.length) routeOf(serviceOf(g.tags), g.tags).p95 = g.buckets[g.buckets.length - 1].value;
  }
  for (const g of serviceP95.groups) {
    if (g.buckets.length) serviceOf(g.tags).p95 = g.buckets[g.buckets.length - 1].value;
  }
  // over time: requests/s and p95 from one answer (each bucket has its count), 5xx from another
  const failed = new Map(); // service -> Map(start s -> 5xx)
  for (const g of errorsOverTime.groups) {
    if (!isError(g.tags[STATUS])) continue;
    const name = g.tags[SERVICE] ?? '';
    if (!failed.has(name)) failed.set(name, new Map());
    const m = failed.get(name);
    for (const b of g.buckets) {
      const start = Math.round(Number(b.start_ns) / 1e9);
      m.set(start, (m.get(start) || 0) + b.value);
    }
  }
  // one point per bucket of the window, up to the last complete one: a bucket without
  // requests is 0 requests/s (a service gone silent drops to 0), no p95 and no error rate
  const { bucket, now, since } = view;
  const starts = [];
  for (let start = since; start + bucket <= now - SETTLE; start += bucket) starts.push(start);
  const byService = new Map();
  for (const g of overTime.groups) {
    const cells = new Map(g.buckets.map((b) => [Math.round(Number(b.start_ns) / 1e9), b]));
    byService.set(serviceOf(g.tags).name, cells);
  }
  for (const s of services.values()) {
    const cells = byService.get(s.name) || new Map();
    const errors = failed.get(s.name) || new Map();
    const series = { xs: starts, rate: [], p95: [], errors: [] };
    for (const start of starts) {
      const b = cells.get(start);
      series.rate.push(b ? b.count / bucket : 0);
      series.p95.push(b ? b.value * 1000 : null);
      series.errors.push(b && b.count ? (100 * (errors.get(start) || 0)) / b.count : null);
    }
    s.series = series;
  }
  return services;
}

// --- the view ----------------------------------------------------------------------------------

export class Services {
  constructor({ onChange }) {
    this.onChange = onChange;
    this.open = false;
    this.win = SERVICES_WINDOW;
    this.service = ''; // '' = every service
    this.root = $('services');
    this.list = $('services-list');
    this.sectionsEl = $('service-sections');
    this.status = $('services-status');
    this.updated = $('services-updated');
    this.windowSelect = $('s-window');
    this.serviceSelect = $('s-service');
    this.sections = new Map(); // service -> ServiceSection
    this.names = []; // services in the series list
    this.seriesAt = 0;
    this.data = null;
    this.timer = 0;
    this.generation = 0;
    this.error = '';
    this.wire();
    window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => this.sections.forEach((s) => s.rebuild()));
  }

  wire() {
    this.windowSelect.replaceChildren(...CHOICES.map((w) => el('option', { value: w, textContent: WINDOW_LABELS[w] })));
    this.windowSelect.value = this.win;
    this.windowSelect.addEventListener('change', () => this.change({ win: this.windowSelect.value }));
    this.serviceSelect.addEventListener('change', () => this.change({ service: this.serviceSelect.value }));
    this.list.addEventListener('click', (e) => {
      const button = e.target.closest('button[data-service]');
      if (!button) return;
      const name = button.dataset.service;
      this.change({ service: this.service === name ? '' : name });
    });
    $('view-overview').addEventListener('click', () => this.setOpen(false, true));
    $('view-services').addEventListener('click', () => this.setOpen(true, true));
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && this.open) this.refresh();
    });
  }

  /** The part of the page's layout this view keeps in the URL. */
  state() {
    return { open: this.open, win: this.win, service: this.service };
  }

  /** From the URL. */
  setState({ open, win, service }) {
    const changed = win !== this.win || service !== this.service;
    const was = this.open;
    this.win = win;
    this.service = service;
    this.windowSelect.value = win;
    if (changed) this.data = null;
    this.setOpen(open, false);
    if (changed && open && was) this.refresh();
  }

  /** Show or hide the view (``user``: from the tabs, so the URL follows). */
  setOpen(open, user) {
    const was = this.open;
    this.open = open;
    this.root.hidden = !open;
    $('main').hidden = open;
    $('view-services').setAttribute('aria-pressed', String(open));
    $('view-overview').setAttribute('aria-pressed', String(!open));
    document.body.dataset.view = open ? 'services' : 'overview';
    if (open && !was) this.refresh();
    if (!open) {
      clearTimeout(this.timer);
      this.generation++; // an answer under way is not shown
    }
    if (user && open !== was) this.onChange(open);
  }

  change(what) {
    Object.assign(this, what);
    this.windowSelect.value = this.win;
    if ('win' in what) this.data = null; // the figures were for another window
    this.render();
    this.onChange();
    this.refresh();
  }

  view() {
    const span = WINDOWS[this.win];
    const now = Date.now() / 1000;
    const bucket = bucketFor(span);
    return { span, now, bucket, from: now - span, to: now, since: Math.floor((now - span) / bucket) * bucket };
  }

  /** Read everything again; an answer to an older read that comes back later is dropped. */
  async refresh() {
    clearTimeout(this.timer);
    if (!this.open) return;
    if (document.hidden) {
      // a tab in the background reads nothing; visibilitychange brings it back
      return;
    }
    const generation = ++this.generation;
    const view = this.view();
    const path = `api/v1/metrics/${encodeURIComponent(METRIC)}/aggregate`;
    // the list needs every service; the sections only the one picked (filtered on the
    // server when its name can be written in `tags`, which splits on commas)
    const only = this.service && !this.service.includes(',') ? [`${SERVICE}:${this.service}`] : undefined;
    const windowed = { bucket: WHOLE, since: `-${this.win}` };
    const charted = { bucket: view.bucket, since: view.since };
    const ask = (params) => getJSON(path, params);
    try {
      const wantSeries = Date.now() - this.seriesAt >= SERIES_PERIOD;
      const [series, counts, routeP95, serviceP95, overTime, errorsOverTime] = await Promise.all([
        wantSeries ? getJSON('api/v1/series', { name: METRIC }) : null,
        ask({ agg: 'count', ...windowed, group_by: [SERVICE, METHOD, ROUTE, STATUS].join(',') }),
        ask({ agg: 'p95', ...windowed, group_by: [SERVICE, METHOD, ROUTE].join(','), tags: only }),
        ask({ agg: 'p95', ...windowed, group_by: SERVICE }),
        ask({ agg: 'p95', ...charted, group_by: SERVICE, tags: only }),
        ask({ agg: 'count', ...charted, group_by: [SERVICE, STATUS].join(','), tags: only }),
      ]);
      if (generation !== this.generation) return;
      if (series) {
        this.names = [...new Set(series.series.map((s) => s.tags[SERVICE] ?? ''))];
        this.seriesAt = Date.now();
      }
      const answers = { counts, routeP95, serviceP95, overTime, errorsOverTime };
      this.data = { view, services: compute(answers, this.names, view), at: Date.now() };
      this.error = '';
    } catch (err) {
      if (generation !== this.generation) return;
      this.error = err.message;
    }
    this.render();
    this.timer = setTimeout(() => this.refresh(), periodOf(this.win));
  }

  render() {
    const data = this.data;
    setState(this.root, this.error ? 'error' : data ? 'ready' : 'loading');
    if (this.error) text(this.status, `Could not read the services (${this.error}); trying again…`);
    else if (data && !data.services.size) {
      text(this.status, 'No HTTP requests recorded yet: add the middleware to a service (docs/integrations.md), or run rimp serve --demo.');
    } else text(this.status, '');
    if (!data) return;
    text(this.updated, `${WINDOW_LABELS[this.win]} · updated ${clock(data.at).slice(0, 8)}`);
    const { view } = data;
    const all = [...data.services.values()].sort((a, b) => a.name.localeCompare(b.name));
    this.root.dataset.services = String(all.length);

    // the list: every service
    $('services-table').hidden = !all.length;
    syncRows(
      this.list,
      all,
      (s) => s.name,
      (s) => el('tr', { className: 'service', dataset: { service: s.name } }, [
        el('th', { scope: 'row' }, [
          el('button', { type: 'button', className: 'link', dataset: { service: s.name }, textContent: serviceLabel(s.name), title: 'show this service only (again: every service)' }),
        ]),
        ...figureCells(),
        num('routes', 'routes (method and route template) with requests in the window'),
      ]),
      (tr, s) => {
        fillFigures(tr, s, view.span);
        text(tr.querySelector('.routes'), String([...s.routes.values()].filter((r) => r.requests).length));
        const button = tr.querySelector('button');
        button.setAttribute('aria-pressed', String(this.service === s.name));
      },
    );

    // the service picker
    const names = all.map((s) => s.name);
    if (this.service && !names.includes(this.service)) names.push(this.service);
    const options = [['', 'every service'], ...names.map((n) => [n, serviceLabel(n)])];
    const signature = JSON.stringify(options);
    if (this.serviceSelect.dataset.signature !== signature) {
      this.serviceSelect.replaceChildren(...options.map(([v, t]) => el('option', { value: v, textContent: t })));
      this.serviceSelect.dataset.signature = signature;
    }
    this.serviceSelect.value = this.service;

    // a section per service shown: the one picked, else the busiest
    let shown;
    if (this.service) shown = [data.services.get(this.service) || newService(this.service)];
    else shown = [...all].sort((a, b) => b.requests - a.requests || a.name.localeCompare(b.name)).slice(0, MAX_SECTIONS).sort((a, b) => a.name.localeCompare(b.name));
    const keep = new Set(shown.map((s) => s.name));
    for (const [name, section] of this.sections) {
      if (!keep.has(name)) {
        section.destroy();
        this.sections.delete(name);
      }
    }
    const nodes = shown.map((s) => {
      let section = this.sections.get(s.name);
      if (!section) this.sections.set(s.name, (section = new ServiceSection(s.name)));
      return section;
    });
    const same = nodes.length === this.sectionsEl.children.length && nodes.every((n, i) => this.sectionsEl.children[i] === n.el);
    if (!same) this.sectionsEl.replaceChildren(...nodes.map((n) => n.el));
    shown.forEach((s, i) => nodes[i].update(s, view));
    const hidden = all.length - shown.length;
    text($('services-more'), !this.service && hidden > 0 ? `${plural(hidden, 'quieter service')} not shown below: pick one above.` : '');
  }
}
