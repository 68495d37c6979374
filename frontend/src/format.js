// Numbers, sizes, times and tags as the dashboard shows them, and the times typed into it.

import { TIME_UNITS_S } from './constants.generated.js';

const RELATIVE = new RegExp(`^-(\\d+(?:\\.\\d+)?)(${Object.keys(TIME_UNITS_S).join('|')})$`);

/** A number for labels and axes: k/M/G from 10 000, 2 decimals below 100, 3 digits below 1; '–' for none. */
export function formatNumber(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(a >= 1e10 ? 0 : 1) + 'G';
  if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + 'M';
  if (a >= 1e4) return (v / 1e3).toFixed(a >= 1e5 ? 0 : 1) + 'k';
  if (a >= 100 || a === 0) return v.toFixed(0);
  if (a >= 1) return v.toFixed(2).replace(/\.?0+$/, '');
  return v.toPrecision(3).replace(/\.?0+$/, '');
}

/** A size in binary units (`1.5 KiB`); '–' for none. */
export function formatBytes(n) {
  if (!Number.isFinite(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n >= 100 || i === 0 ? n.toFixed(0) : n.toFixed(1)} ${units[i]}`;
}

/** `3 events`, `1 event`. */
export function plural(n, noun) {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

function pad(n, width = 2) {
  return String(n).padStart(width, '0');
}

/** Local wall-clock time with milliseconds (`14:03:07.250`) of `ms` since the epoch. */
export function clock(ms) {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** Tags for reading (`k=v, k=v`); the URL has its own encoding in layout.js. */
export function describeTags(tags) {
  return Object.entries(tags || {})
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}

/**
 * Seconds since the epoch of `-30m`, `now`, Unix seconds or a local date-time; NaN if none.
 * Relative times take the server's units, so the chart form reads what the API accepts.
 */
export function parseWhen(text, now) {
  const t = (text || '').trim();
  if (!t || t === 'now') return now;
  const rel = RELATIVE.exec(t);
  if (rel) return now - Number(rel[1]) * TIME_UNITS_S[rel[2]];
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t);
  const ms = Date.parse(t.includes('T') ? t : t.replace(' ', 'T'));
  return Number.isNaN(ms) ? NaN : ms / 1000;
}

/** Milliseconds since the epoch of an RFC 3339 time (nanoseconds allowed); NaN for none. */
export function parseTime(text) {
  if (!text) return NaN;
  // Date.parse promises three fraction digits only: keep the milliseconds
  return Date.parse(String(text).replace(/(\.\d{3})\d+/, '$1'));
}

function span(seconds) {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 36000) {
    const m = Math.floor((s % 3600) / 60);
    return `${Math.floor(s / 3600)}h${m ? ` ${m}m` : ''}`;
  }
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** `3m ago`, `just now`, `in 14m` for a time `ms` against `now` (both ms since the epoch). */
export function ago(ms, now = Date.now()) {
  if (!Number.isFinite(ms)) return 'never';
  const d = (now - ms) / 1000;
  if (Math.abs(d) < 1) return 'just now';
  return d > 0 ? `${span(d)} ago` : `in ${span(-d)}`;
}

/** A time as a tooltip: local date and time, and the RFC 3339 text it came from. */
export function absolute(ms, text = '') {
  if (!Number.isFinite(ms)) return '';
  const local = new Date(ms).toLocaleString();
  return text ? `${local} (${text})` : local;
}

/** A short interval such as a group's (`15s`, `1m`, `1h 30m`). */
export function formatInterval(seconds) {
  if (!Number.isFinite(seconds)) return '–';
  if (seconds > 0 && seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  return span(seconds);
}

/** A measured duration such as an evaluation's (`52 µs`, `0.66 ms`, `1.2 s`). */
export function formatElapsed(seconds) {
  if (!Number.isFinite(seconds)) return '–';
  if (seconds < 1e-3) return `${Math.round(seconds * 1e6)} µs`;
  if (seconds < 1) return `${formatNumber(seconds * 1e3)} ms`;
  return `${formatNumber(seconds)} s`;
}
