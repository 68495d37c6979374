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
