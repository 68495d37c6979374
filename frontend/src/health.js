// The health strip: the server's own figures from /metrics (Prometheus text).
// The ingest rate is the change of rimp_records_received_total between two reads.

import { getText } from './api.js';
import { $, setState } from './dom.js';
import { formatBytes, formatNumber } from './format.js';

const PERIOD = 3000;

/** ``{family: total over its samples}`` for the ``rimp_`` families of a /metrics page. */
export function parseExposition(text) {
  const totals = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith('rimp_')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const value = Number(m[3]);
    if (Number.isFinite(value)) totals[m[1]] = (totals[m[1]] || 0) + value;
  }
  return totals;
}

/** ``{door: records stored}`` from the rimp_door_records_total samples of a /metrics page. */
export function doorTotals(text) {
  const totals = {};
  const sample = /^rimp_door_records_total\{door="([^"]+)",outcome="accepted"\}\s+(\S+)/;
  for (const line of text.split('\n')) {
    const m = sample.exec(line);
    if (m && Number.isFinite(Number(m[2]))) totals[m[1]] = Number(m[2]);
  }
  return totals;
}

export class Health {
  constructor() {
    this.previous = null;
    this.timer = 0;
  }

  start() {
    this.read();
  }

  set(id, text, state = '') {
    const node = $(id);
    node.textContent = text;
    setState(node, state);
  }

  async read() {
    clearTimeout(this.timer);
    try {
      const text = await getText('metrics');
      const figures = parseExposition(text);
      const now = performance.now();
      const received = figures.rimp_records_received_total ?? NaN;
      if (this.previous && Number.isFinite(received)) {
        const seconds = (now - this.previous.at) / 1000;
        const rate = Math.max(0, received - this.previous.received) / seconds;
        this.set('h-rate', `${formatNumber(rate)}/s`);
      }
      this.previous = { at: now, received };
      const dropped = figures.rimp_records_dropped_total ?? NaN;
      this.set('h-drops', formatNumber(dropped), dropped > 0 ? 'bad' : '');
      const rejected = figures.rimp_records_rejected_total ?? NaN;
      this.set('h-rejected', formatNumber(rejected), rejected > 0 ? 'warn' : '');
      this.set('h-clients', formatNumber(figures.rimp_live_clients ?? NaN));
      this.set('h-queue', formatNumber(figures.rimp_queue_depth ?? NaN));
      const bytes = figures.rimp_storage_bytes ?? figures.rimp_storage_size_bytes;
      this.set('h-storage', bytes === undefined ? 'n/a' : formatBytes(bytes));
      const doors = Object.entries(doorTotals(text));
      this.set('h-doors', doors.length
        ? doors.map(([door, n]) => `${door} ${formatNumber(n)}`).join(' · ')
        : 'none yet');
      $('health').dataset.state = 'ok';
    } catch {
      $('health').dataset.state = 'error';
    }
    this.timer = setTimeout(() => this.read(), PERIOD);
  }
}
