// HTTP and live-stream access to the RIMP API, with the read token when the server wants one.
// Every URL is relative to the page, so the dashboard also works under a path prefix.

const TOKEN_KEY = 'rimp.token';

export const auth = {
  /** True when the server said (in index.html) that tokens are configured. */
  required: document.querySelector('meta[name="rimp-auth"]')?.content === 'required',
  get token() {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

export class HttpError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let askToken = null; // (reason) => Promise<void>, set by the page
let asking = null;

/** Register the function that asks the user for a token (resolves once a good one is stored). */
export function onTokenNeeded(fn) {
  askToken = fn;
}

/** Ask for a token once, however many requests need it at the same time. */
export function needToken(reason) {
  if (!askToken) return Promise.reject(new HttpError(401, 'unauthorized', 'a token is required'));
  if (!asking) asking = askToken(reason).finally(() => (asking = null));
  return asking;
}

function entries(params) {
  if (!params) return [];
  const out = [];
  for (const [key, value] of Array.isArray(params) ? params : Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== undefined && v !== null && v !== '') out.push([key, String(v)]);
    }
  }
  return out;
}

/** `path?query` with repeated keys for array values; empty values are left out. */
export function url(path, params) {
  const query = new URLSearchParams(entries(params)).toString();
  return query ? `${path}?${query}` : path;
}

async function errorOf(response) {
  let code = 'http_' + response.status;
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && typeof body.error === 'string') {
      // the Prometheus API's envelope: {"status":"error","errorType":..,"error":..}
      code = body.errorType || code;
      message = body.error;
    } else if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch {
    // not JSON: keep the status line
  }
  return new HttpError(response.status, code, message);
}

/** One request with the current token (no retry). */
export function rawFetch(path, params, { token = auth.token, signal } = {}) {
  const headers = { Accept: 'application/json, text/plain' };
  if (token) headers.Authorization = `Bearer ${token}`;
  return fetch(url(path, params), { headers, signal, cache: 'no-store' });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function get(path, params, options, read) {
  let busy = 0;
  for (let attempt = 0; ; attempt++) {
    const response = await rawFetch(path, params, options);
    if ((response.status === 401 || response.status === 403) && attempt < 3 && askToken) {
      await needToken(response.status === 401 ? 'rejected' : 'scope');
      continue;
    }
    if ((response.status === 429 || response.status === 503) && busy++ < 2) {
      // overloaded or storage failing: come back when the server says (at most 5 s)
      const after = Number(response.headers.get('Retry-After'));
      await sleep(1000 * Math.min(5, after > 0 ? after : 1));
      continue;
    }
    if (!response.ok) throw await errorOf(response);
    return read(response);
  }
}

/** GET a JSON document; asks for a token on 401/403 and retries. */
export function getJSON(path, params, options = {}) {
  return get(path, params, options, (r) => r.json());
}

/** GET a text document (``/metrics``). */
export function getText(path, params, options = {}) {
  return get(path, params, options, (r) => r.text());
}

/**
 * One write (POST, DELETE…) with a JSON body and this token; the JSON answer, or an
 * HttpError carrying the server's own message. No retry and no token prompt: writes
 * need other scopes than the page's read token, and the caller says what to do.
 */
export async function sendJSON(method, path, body, { token = auth.token, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    signal,
    cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw await errorOf(response);
  return response.status === 204 ? null : response.json();
}

/** Check a token against a read endpoint: resolves to 'ok', 'rejected' or 'scope'. */
export async function checkToken(token) {
  const response = await rawFetch('api/v1/events', { limit: 1 }, { token });
  if (response.status === 401) return 'rejected';
  if (response.status === 403) return 'scope';
  if (!response.ok) throw await errorOf(response);
  return 'ok';
}

/**
 * A Server-Sent Events subscription to ``api/v1/stream`` that survives errors:
 * the browser resumes a dropped connection itself (with Last-Event-ID); when the
 * server refuses it outright (401/403, restart), this re-checks the token and
 * opens a new one with a backoff.
 */
export class LiveStream {
  constructor(handlers) {
    this.handlers = handlers; // {event, metric, missed, state}
    this.params = null;
    this.source = null;
    this.retry = 0;
    this.timer = 0;
    this.state = 'idle';
    this.lastId = '';
    this.resume = Boolean(handlers.resume); // reconnect from the last record seen
    this.readyWaiters = [];
  }

  /** Resolves once the server has subscribed this stream (or after ``timeout`` ms). */
  ready(timeout = 3000) {
    if (this.state === 'live') return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeout);
      this.readyWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** (Re)subscribe with new filters; null closes the stream. */
  open(params) {
    this.params = params;
    this.close(false);
    if (params) this.connect();
  }

  reconnect() {
    if (this.params) this.open(this.params);
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    if (state === 'live') {
      for (const wake of this.readyWaiters.splice(0)) wake();
    }
    this.handlers.state?.(state);
  }

  connect() {
    const token = auth.token;
    const resume = this.resume && this.lastId ? { last_event_id: this.lastId } : {};
    const source = new EventSource(url('api/v1/stream', { ...this.params, ...resume, token }));
    this.source = source;
    this.setState('connecting');
    source.addEventListener('open', () => {
      this.retry = 0;
      this.setState('live');
    });
    for (const kind of ['event', 'metric']) {
      source.addEventListener(kind, (e) => {
        let record;
        try {
          record = JSON.parse(e.data);
        } catch {
          return;
        }
        if (e.lastEventId) this.lastId = e.lastEventId;
        this.handlers[kind]?.(record);
      });
    }
    source.addEventListener('missed', (e) => this.handlers.missed?.(Number(e.data) || 0));
    source.addEventListener('error', (e) => {
      if (source !== this.source) return;
      if (e.data) {
        // the server cut this client off (it fell behind); the browser reconnects by itself
        this.handlers.missed?.(0, e.data);
        return;
      }
      if (source.readyState === EventSource.CONNECTING) {
        this.setState('reconnecting');
        return;
      }
      // CLOSED: refused (auth, server gone): find out why, then try again
      this.setState('offline');
      this.close(false);
      const delay = Math.min(15000, 1000 * 2 ** this.retry++);
      this.timer = setTimeout(() => this.recover(), delay);
    });
  }

  async recover() {
    if (!this.params) return;
    try {
      // a plain request tells a bad token (and asks for a new one) from a server that is away
      await getJSON('api/v1/events', { limit: 1 });
    } catch {
      // still away: connect() will fail and schedule another try
    }
    if (this.params && !this.source) this.connect();
  }

  close(forget = true) {
    clearTimeout(this.timer);
    if (this.source) {
      this.source.close();
      this.source = null;
    }
    if (forget) {
      this.params = null;
      this.setState('idle');
    }
  }
}
