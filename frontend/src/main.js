// The RIMP live dashboard: alerts, event feed, metric charts, health strip and the services view.

import { admin, Alerts } from './alerts.js';
import { auth, checkToken, needToken, onTokenNeeded } from './api.js';
import { Board } from './charts.js';
import { Feed } from './feed.js';
import { $ } from './dom.js';
import { Health } from './health.js';
import { decodeLayout, encodeLayout } from './layout.js';
import { Services } from './services.js';

const REASONS = {
  required: '',
  rejected: 'The server did not accept that token.',
  scope: 'That token lacks the read scope.',
};

function tokenButtons() {
  $('token-forget').hidden = !auth.token && !admin.token;
}

/** Ask for a read token in a modal dialog; resolves once the server accepted one. */
function askToken(reason) {
  const dialog = $('auth');
  const input = $('auth-token');
  const error = $('auth-error');
  const submit = $('auth-submit');
  if (reason !== 'required') auth.token = '';
  tokenButtons();
  error.textContent = REASONS[reason] || '';
  if (!dialog.open) dialog.showModal();
  input.focus();
  return new Promise((resolve) => {
    dialog.oncancel = (e) => e.preventDefault(); // nothing can be shown without a token
    $('auth-form').onsubmit = async (e) => {
      e.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      submit.disabled = true;
      error.textContent = 'Checking…';
      try {
        const verdict = await checkToken(token);
        if (verdict === 'ok') {
          auth.token = token;
          input.value = '';
          error.textContent = '';
          dialog.close();
          tokenButtons();
          resolve();
        } else {
          error.textContent = REASONS[verdict];
          input.select();
        }
      } catch (err) {
        error.textContent = `Could not check the token: ${err.message}`;
      } finally {
        submit.disabled = false;
      }
    };
  });
}

const LABELS = { live: 'Live', connecting: 'Connecting…', reconnecting: 'Reconnecting…', offline: 'Offline, retrying…' };

function connection(streams) {
  const states = streams.map((s) => s.state).filter((s) => s !== 'idle');
  const order = ['offline', 'reconnecting', 'connecting', 'live'];
  const state = order.find((s) => states.includes(s)) || 'live';
  const el = $('conn');
  if (el.dataset.state !== state) {
    el.dataset.state = state;
    el.textContent = LABELS[state];
  }
}

function defaultCharts(board) {
  // Without a layout in the URL: up to two charts of what the server holds, preferring
  // metrics with a unit and many series over the derived ones of a histogram (x.p95, x.count).
  const byName = new Map();
  for (const s of board.series) {
    if (!byName.has(s.name)) byName.set(s.name, []);
    byName.get(s.name).push(s);
  }
  const derived = (name) => /\.(count|sum|min|max|avg|p\d+)$/.test(name);
  const score = (name) => [derived(name) ? 1 : 0, byName.get(name)[0].unit ? 0 : 1, -byName.get(name).length];
  const names = [...byName.keys()].sort((a, b) => {
    const [x, y] = [score(a), score(b)];
    return x[0] - y[0] || x[1] - y[1] || x[2] - y[2] || a.localeCompare(b);
  });
  return names.slice(0, 2).map((name) => {
    const members = byName.get(name);
    const values = new Map();
    for (const s of members) {
      for (const [k, v] of Object.entries(s.tags)) {
        if (!values.has(k)) values.set(k, new Set());
        values.get(k).add(v);
      }
    }
    // group by the tag that splits the series into the fewest lines (but more than one)
    const keys = [...values.keys()].filter((k) => values.get(k).size > 1).sort((a, b) => values.get(a).size - values.get(b).size || a.localeCompare(b));
    const unit = members[0].unit;
    return { name, agg: unit === 'ms' || unit === 's' ? 'p95' : 'avg', win: '15m', tags: null, by: keys[0] || '', from: '', to: '' };
  });
}

async function boot() {
  onTokenNeeded(askToken);
  let applied = '';
  const streams = [];
  const onState = () => connection(streams);
  const writeHash = () => {
    const hash = encodeLayout({ charts: board.specs(), filters: feed.filters, services: services.state() });
    applied = hash;
    history.replaceState(null, '', hash ? `#${hash}` : location.pathname + location.search);
  };
  const alerts = new Alerts();
  const feed = new Feed({ onChange: writeHash, onState, onEvent: (record) => alerts.onEvent(record) });
  const board = new Board({ onChange: writeHash, onState });
  // the default charts wait until the feed and charts are shown (#services opens without)
  let defaults = false;
  let seriesLoaded = null;
  const addDefaults = async () => {
    if (!defaults || services.open || board.charts.length) return;
    defaults = false;
    await seriesLoaded;
    const specs = defaultCharts(board);
    if (specs.length && !board.charts.length) {
      board.setCharts(specs);
      writeHash();
    }
  };
  const services = new Services({
    // opened: true or false when the view was switched, undefined when its settings changed
    onChange: (opened) => {
      writeHash();
      if (opened === undefined) return;
      if (!opened) addDefaults();
      window.scrollTo(0, 0);
    },
  });
  streams.push(feed.stream, board.stream);

  $('token-forget').addEventListener('click', () => {
    auth.token = '';
    admin.token = '';
    location.reload();
  });
  document.addEventListener('rimp:tokens', tokenButtons);
  if (auth.required && !auth.token) await needToken('required');
  tokenButtons();
  seriesLoaded = board.loadSeries().catch(() => null); // it only feeds the picker and the defaults

  const apply = (hash) => {
    applied = hash;
    const layout = decodeLayout(hash);
    feed.setFilters(layout.filters);
    board.setCharts(layout.charts);
    services.setState(layout.services);
    return layout;
  };
  // #alerts (the link in alert notifications) points at the alerts strip: no layout
  const initial = location.hash === '#alerts' ? '' : location.hash.slice(1);
  defaults = !apply(initial).overview;
  window.addEventListener('hashchange', () => {
    const hash = location.hash.slice(1);
    if (hash !== applied) apply(hash);
  });

  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      if (feed.closeDetail()) e.preventDefault();
      return;
    }
    const t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey || t.closest('input, select, textarea, dialog[open]')) return;
    if (services.open) return; // the keys below are the feed's
    if (e.key === '/') {
      e.preventDefault();
      $('f-search').focus();
    } else if (e.key === 'p') {
      e.preventDefault();
      feed.setPaused(!feed.paused);
    }
  });

  new Health().start();
  alerts.start();
  await addDefaults();
  document.body.dataset.ready = 'true';
}

boot();
