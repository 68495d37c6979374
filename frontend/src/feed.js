// The live event feed: newest first, filtered by source and type on the server
// (the stream's own filters) and by message text here, with pause/resume,
// details on click and counts per type of what is in view.

import { getJSON, LiveStream } from './api.js';
import { EVENT_TYPES } from './constants.generated.js';
import { $, el } from './dom.js';
import { clock, plural } from './format.js';

const MAX_ROWS = 500; // rows kept in view
const BACKFILL = 200; // stored events shown when the feed (re)starts
const MAX_HELD = 10000; // live events kept while paused
const MAX_COMBOS = 12; // source x type requests for a backfill before filtering here instead

function msOf(record) {
  return Number(record.time_ns) / 1e6;
}

function splitList(text) {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function newestFirst(a, b) {
  return Number(b.time_ns) - Number(a.time_ns);
}

export class Feed {
  constructor({ onChange, onState, onEvent }) {
    this.onChange = onChange;
    this.list = $('events');
    this.status = $('feed-status');
    this.pauseButton = $('pause');
    this.sourceInput = $('f-source');
    this.searchInput = $('f-search');
    this.detail = $('detail');
    this.filters = { source: '', types: [...EVENT_TYPES], search: '' };
    this.events = []; // in view, newest first
    this.byId = new Map(); // id -> record, for what is in view
    this.rows = new Map(); // id -> <li>
    this.queue = []; // live events waiting for the next frame
    this.held = []; // live events held while paused or loading
    this.heldOverflow = 0;
    this.missed = 0;
    this.paused = false;
    this.loading = false;
    this.generation = 0;
    this.frame = 0;
    this.selectedId = null;
    this.streamKey = '';
    this.sources = new Set();
    this.stream = new LiveStream({
      event: (record) => {
        onEvent?.(record); // every live event, before the message filter (alert transitions)
        this.onLive(record);
      },
      missed: (n) => {
        this.missed += n;
        this.showStatus();
      },
      state: onState,
    });
    this.buildTypes();
    this.wire();
  }

  buildTypes() {
    const box = $('f-types');
    this.typeBoxes = {};
    this.typeCounts = {};
    for (const type of EVENT_TYPES) {
      const input = el('input', { type: 'checkbox', checked: true, value: type, name: 'type' });
      const count = el('span', { className: 'n', textContent: '0', dataset: { type } });
      box.append(el('label', { className: `chip t-${type}` }, [input, el('span', { textContent: type }), count]));
      this.typeBoxes[type] = input;
      this.typeCounts[type] = count;
    }
  }

  wire() {
    let debounce = 0;
    const changed = () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => this.fromInputs(), 250);
    };
    for (const input of [this.sourceInput, this.searchInput]) {
      input.addEventListener('input', changed);
      input.addEventListener('keydown', (e) => {
        if (e.key === 'Enter') {
          e.preventDefault();
          clearTimeout(debounce);
          this.fromInputs();
        }
      });
    }
    $('filters').addEventListener('change', (e) => {
      if (e.target.name === 'type') this.fromInputs();
    });
    $('filters').addEventListener('submit', (e) => {
      e.preventDefault();
      clearTimeout(debounce);
      this.fromInputs();
    });
    this.pauseButton.addEventListener('click', () => this.setPaused(!this.paused));
    this.list.addEventListener('click', (e) => {
      const row = e.target.closest('li[data-id]');
      if (row) this.select(row.dataset.id, row);
    });
    this.list.addEventListener('keydown', (e) => this.onKey(e));
    $('detail-close').addEventListener('click', () => this.closeDetail());
  }

  fromInputs() {
    const filters = {
      source: this.sourceInput.value.trim(),
      types: EVENT_TYPES.filter((t) => this.typeBoxes[t].checked),
      search: this.searchInput.value.trim(),
    };
    const before = JSON.stringify(this.filters);
    if (JSON.stringify(filters) === before) return;
    this.filters = filters;
    this.onChange();
    this.reload();
  }

  /** Apply filters from the layout (URL) without reporting them back. */
  setFilters(filters) {
    this.filters = { source: filters.source, types: [...filters.types], search: filters.search };
    this.sourceInput.value = filters.source;
    this.searchInput.value = filters.search;
    for (const t of EVENT_TYPES) this.typeBoxes[t].checked = filters.types.includes(t);
    this.reload();
  }

  matches(record) {
    const f = this.filters;
    if (!f.types.includes(record.type)) return false;
    const sources = splitList(f.source);
    if (sources.length && !sources.includes(record.source)) return false;
    return !f.search || record.message.toLowerCase().includes(f.search.toLowerCase());
  }

  async reload() {
    const generation = ++this.generation;
    const f = this.filters;
    const sources = splitList(f.source);
    const allTypes = f.types.length === EVENT_TYPES.length;
    this.held = [];
    this.heldOverflow = 0;
    this.queue = [];
    this.missed = 0;
    if (!f.types.length) {
      this.stream.close();
      this.streamKey = '';
      this.loading = false;
      this.replace([]);
      this.list.dataset.state = 'ready';
      return;
    }
    this.loading = true;
    this.list.dataset.state = 'loading';
    this.showStatus();
    const params = {
      kind: 'event',
      mode: 'sample',
      source: sources.join(',') || undefined,
      type: allTypes ? undefined : f.types.join(','),
    };
    const key = JSON.stringify(params);
    if (key !== this.streamKey || !this.stream.source) {
      this.streamKey = key;
      this.stream.open(params);
    }
    try {
      await this.stream.ready(); // subscribed before the backfill: nothing falls in between
      if (generation !== this.generation) return;
      const found = await this.backfill(sources, allTypes ? [] : f.types, f.search);
      if (generation !== this.generation) return;
      this.loading = false;
      this.replace(found.concat(this.held));
      this.held = [];
      this.list.dataset.state = 'ready';
    } catch (err) {
      if (generation !== this.generation) return;
      this.loading = false;
      this.list.dataset.state = 'error';
      this.status.textContent = `Could not load events (${err.message}); trying again…`;
      setTimeout(() => {
        if (generation === this.generation) this.reload();
      }, 5000);
    }
  }

  async backfill(sources, types, search) {
    const srcs = sources.length ? sources : [undefined];
    const kinds = types.length ? types : [undefined];
    let requests = [];
    let local = false;
    if (srcs.length * kinds.length > MAX_COMBOS) {
      requests = [{ search, limit: 10000 }];
      local = true;
    } else {
      for (const source of srcs) {
        for (const type of kinds) requests.push({ source, type, search, limit: BACKFILL });
      }
    }
    const answers = await Promise.all(requests.map((p) => getJSON('api/v1/events', p)));
    let found = answers.flatMap((a) => a.events);
    if (local) found = found.filter((r) => this.matches(r));
    return found;
  }

  /** Show exactly these records (deduplicated, newest first). */
  replace(records) {
    const seen = new Set();
    const unique = [];
    for (const r of records) {
      if (!seen.has(r.id)) {
        seen.add(r.id);
        unique.push(r);
      }
    }
    unique.sort(newestFirst);
    this.events = unique.slice(0, MAX_ROWS);
    this.byId = new Map(this.events.map((r) => [r.id, r]));
    this.rows = new Map();
    const fragment = document.createDocumentFragment();
    for (const r of this.events) fragment.append(this.row(r));
    this.list.replaceChildren(fragment);
    this.afterChange();
  }

  onLive(record) {
    this.noteSource(record.source);
    if (!this.matches(record)) return;
    if (this.loading || this.paused) {
      if (this.held.length < MAX_HELD) this.held.push(record);
      else this.heldOverflow++;
      if (this.paused) this.showStatus();
      return;
    }
    this.queue.push(record);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frame = 0;
    const incoming = this.queue;
    this.queue = [];
    incoming.sort((a, b) => -newestFirst(a, b)); // oldest first: each lands on top
    for (const record of incoming) this.insert(record);
    while (this.events.length > MAX_ROWS) {
      const gone = this.events.pop();
      this.byId.delete(gone.id);
      this.rows.get(gone.id)?.remove();
      this.rows.delete(gone.id);
    }
    this.afterChange();
  }

  insert(record) {
    if (this.byId.has(record.id)) return;
    const t = Number(record.time_ns);
    let at = 0;
    while (at < this.events.length && Number(this.events[at].time_ns) > t) at++;
    if (at >= MAX_ROWS) return;
    const row = this.row(record);
    this.list.insertBefore(row, this.list.children[at] || null);
    this.events.splice(at, 0, record);
    this.byId.set(record.id, record);
  }

  row(record) {
    const ms = msOf(record);
    const button = el('button', { type: 'button', tabIndex: -1, 'aria-controls': 'detail' }, [
      el('time', { dateTime: record.timestamp, textContent: clock(ms), title: new Date(ms).toString() }),
      ' ',
      el('span', { className: 'badge', textContent: record.type }),
      ' ',
      el('span', { className: 'src', textContent: record.source }),
      ' ',
      el('span', { className: 'msg', textContent: record.message }),
    ]);
    const dataset = { id: record.id, type: record.type, source: record.source };
    const li = el('li', { className: `ev t-${record.type}`, dataset }, [button]);
    if (record.id === this.selectedId) li.classList.add('selected');
    this.rows.set(record.id, li);
    return li;
  }

  afterChange() {
    const counts = Object.fromEntries(EVENT_TYPES.map((t) => [t, 0]));
    for (const r of this.events) counts[r.type] = (counts[r.type] || 0) + 1;
    for (const t of EVENT_TYPES) this.typeCounts[t].textContent = String(counts[t]);
    this.list.dataset.count = String(this.events.length);
    // roving tabindex: one row of the list is in the tab order
    const focusable = this.list.querySelector('button[tabindex="0"]');
    if (!focusable) {
      const first = this.list.querySelector('button');
      if (first) first.tabIndex = 0;
    }
    this.showStatus();
  }

  showStatus() {
    let text;
    if (this.loading) text = 'Loading…';
    else if (this.paused) {
      text = `Paused: ${plural(this.held.length + this.heldOverflow, 'new event')} waiting`;
    } else text = `${plural(this.events.length, 'event')} in view`;
    if (this.missed) text += ` (${this.missed} skipped by the server to keep up)`;
    this.status.textContent = text;
  }

  setPaused(paused) {
    this.paused = paused;
    this.pauseButton.setAttribute('aria-pressed', String(paused));
    this.pauseButton.textContent = paused ? 'Resume' : 'Pause';
    document.body.classList.toggle('paused', paused);
    if (!paused) {
      const held = this.held;
      this.held = [];
      this.heldOverflow = 0;
      this.queue.push(...held);
      this.flush();
    } else this.showStatus();
  }

  noteSource(source) {
    if (this.sources.has(source) || this.sources.size >= 200) return;
    this.sources.add(source);
    $('sources').append(el('option', { value: source }));
  }

  select(id, row) {
    const record = this.byId.get(id);
    if (!record) return;
    this.list.querySelector('li.selected')?.classList.remove('selected');
    row.classList.add('selected');
    this.selectedId = id;
    this.focusRow(row.querySelector('button'), false);
    const fields = $('detail-fields');
    fields.replaceChildren();
    const ms = msOf(record);
    const pairs = [
      ['Time', `${new Date(ms).toLocaleString()} (${record.timestamp})`],
      ['Type', record.type],
      ['Source', record.source],
      ['Message', record.message],
      ['Id', record.id],
    ];
    for (const [k, v] of pairs) fields.append(el('dt', { textContent: k }), el('dd', { textContent: v }));
    const meta = record.metadata || {};
    $('detail-meta').textContent = Object.keys(meta).length ? JSON.stringify(meta, null, 2) : '(none)';
    this.detail.className = `detail t-${record.type}`;
    this.detail.hidden = false;
    this.detail.dataset.id = id;
  }

  closeDetail() {
    if (this.detail.hidden) return false;
    this.detail.hidden = true;
    this.list.querySelector('li.selected')?.classList.remove('selected');
    const row = this.selectedId && this.rows.get(this.selectedId);
    this.selectedId = null;
    if (row) this.focusRow(row.querySelector('button'));
    return true;
  }

  focusRow(button, focus = true) {
    if (!button) return;
    for (const b of this.list.querySelectorAll('button[tabindex="0"]')) b.tabIndex = -1;
    button.tabIndex = 0;
    if (focus) button.focus();
  }

  onKey(e) {
    const buttons = [...this.list.querySelectorAll('button')];
    const at = buttons.indexOf(document.activeElement);
    if (at < 0) return;
    const page = 10;
    const moves = {
      ArrowDown: at + 1,
      ArrowUp: at - 1,
      Home: 0,
      End: buttons.length - 1,
      PageDown: at + page,
      PageUp: at - page,
    };
    if (!(e.key in moves)) return;
    e.preventDefault();
    const to = Math.max(0, Math.min(buttons.length - 1, moves[e.key]));
    this.focusRow(buttons[to]);
  }

  focusFeed() {
    const button = this.list.querySelector('button[tabindex="0"]') || this.list.querySelector('button');
    button?.focus();
  }
}
