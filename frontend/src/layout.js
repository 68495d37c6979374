// The view in the URL hash, so that a link shares it:
//   #services&sw=WINDOW&svc=SERVICE&c=NAME|AGG|WINDOW|TAGS|GROUPBY|FROM|TO&p=PROMQL|WINDOW|FROM|TO&src=SOURCES&type=T1,T2&q=TEXT
// (services: the services view is open, sw= its window, svc= the one service shown;
// c= a metric chart, p= a PromQL chart; charts keep their order)
// Each field is percent-encoded; TAGS is k:v,k:v with k and v percent-encoded.

import { AGGREGATES, EVENT_TYPES } from './constants.generated.js';

export const WINDOWS = { '5m': 300, '15m': 900, '1h': 3600, '6h': 21600, '24h': 86400, custom: 0 };

/** The services view's window when the URL names none. */
export const SERVICES_WINDOW = '15m';

const enc = encodeURIComponent;

function dec(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function tagsText(tags) {
  return Object.entries(tags || {})
    .map(([k, v]) => `${enc(k)}:${enc(v)}`)
    .join(',');
}

function parseTags(text) {
  if (!text) return null;
  const tags = {};
  for (const pair of text.split(',')) {
    const at = pair.indexOf(':');
    if (at > 0) tags[dec(pair.slice(0, at))] = dec(pair.slice(at + 1));
  }
  return Object.keys(tags).length ? tags : null;
}

export function encodeChart(spec) {
  const fields = [enc(spec.name), spec.agg, spec.win, tagsText(spec.tags), enc(spec.by || '')];
  if (spec.win === 'custom') fields.push(enc(spec.from || ''), enc(spec.to || ''));
  return fields.join('|');
}

export function decodeChart(text) {
  const [name, agg, win, tags, by, from, to] = text.split('|');
  if (!name) return null;
  return {
    name: dec(name),
    agg: AGGREGATES.includes(agg) ? agg : 'avg',
    win: win in WINDOWS ? win : '1h',
    tags: parseTags(tags),
    by: dec(by || ''),
    from: dec(from || ''),
    to: dec(to || ''),
  };
}

export function encodePromChart(spec) {
  const fields = [enc(spec.promql), spec.win];
  if (spec.win === 'custom') fields.push(enc(spec.from || ''), enc(spec.to || ''));
  return fields.join('|');
}

export function decodePromChart(text) {
  // The expression is percent-encoded, so a '|' inside it cannot split it.
  const [promql, win, from, to] = text.split('|');
  if (!promql) return null;
  return { promql: dec(promql), win: win in WINDOWS ? win : '1h', from: dec(from || ''), to: dec(to || '') };
}

/** The page's state as a hash (without the leading #). */
export function encodeLayout({ charts, filters, services }) {
  const parts = [];
  if (services?.open) {
    parts.push('services');
    if (services.win && services.win !== SERVICES_WINDOW) parts.push('sw=' + services.win);
    if (services.service) parts.push('svc=' + enc(services.service));
  }
  parts.push(...charts.map((c) => (c.promql ? 'p=' + encodePromChart(c) : 'c=' + encodeChart(c))));
  if (filters.source) parts.push('src=' + enc(filters.source));
  if (filters.types && filters.types.length < EVENT_TYPES.length) parts.push('type=' + filters.types.join(','));
  if (filters.search) parts.push('q=' + enc(filters.search));
  return parts.join('&');
}

/**
 * The state in a hash: ``{charts, filters, services, overview}``. ``overview`` says whether
 * the hash sets anything of the feed and charts (else the page may add its default charts).
 */
export function decodeLayout(hash) {
  const charts = [];
  const filters = { source: '', types: [...EVENT_TYPES], search: '' };
  const services = { open: false, win: SERVICES_WINDOW, service: '' };
  let overview = false;
  for (const part of hash.replace(/^#/, '').split('&')) {
    if (part === 'services') {
      services.open = true;
      continue;
    }
    const at = part.indexOf('=');
    if (at < 0) continue;
    const key = part.slice(0, at);
    const value = part.slice(at + 1);
    if (key === 'sw') {
      if (value in WINDOWS && value !== 'custom') services.win = value;
    } else if (key === 'svc') {
      services.service = dec(value);
    } else if (key === 'c' || key === 'p') {
      overview = true;
      const spec = key === 'c' ? decodeChart(value) : decodePromChart(value);
      if (spec) charts.push(spec);
    } else if (key === 'src') {
      overview = true;
      filters.source = dec(value);
    } else if (key === 'type') {
      overview = true;
      filters.types = value.split(',').filter((t) => EVENT_TYPES.includes(t));
    } else if (key === 'q') {
      overview = true;
      filters.search = dec(value);
    }
  }
  return { charts, filters, services, overview };
}
