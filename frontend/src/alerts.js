// Alerting on the page: the firing alerts in a strip at the top (pending ones counted and
// listable, silenced ones marked), silences made and expired from here, and the rules view.
//
// Everything is read by polling the alerting API (every 5 s), and at once when the live
// feed carries an alert transition (an event from rimp.alerts). Writes (silencing,
// expiring) need the admin scope when the server has tokens: they go with the admin
// token given on this page, else with the page's read token, and a refusal brings up a
// prompt for an admin token showing the server's message.

import { auth, getJSON, sendJSON } from './api.js';
import { ALERTS_SOURCE } from './constants.generated.js';
import { $, el, setState } from './dom.js';
import { absolute, ago, formatElapsed, formatInterval, formatNumber, parseTime, plural } from './format.js';


const PERIOD = 5000; // alerts and silences
const RULES_PERIOD = 30000; // the rules while their view is closed (for the counts only)
const SOON = 200; // after a transition event: let a burst of them settle
const DURATIONS = [
  ['15m', '15 minutes', 900],
  ['1h', '1 hour', 3600],
  ['4h', '4 hours', 14400],
  ['1d', '1 day', 86400],
];
const EXPIRED_SHOWN = 10; // the most recently ended silences in the list
const ADMIN_KEY = 'rimp.admin-token';
const AUTHOR_KEY = 'rimp.silence-author';

/** The admin token given on this page (session storage, apart from the read token). */
export const admin = {
  get token() {
    return sessionStorage.getItem(ADMIN_KEY) || '';
  },
  set token(value) {
    if (value) sessionStorage.setItem(ADMIN_KEY, value);
    else sessionStorage.removeItem(ADMIN_KEY);
  },
};

// --- the admin token prompt ----------------------------------------------------------------

/** Ask for an admin token, showing why; resolves to the token, or '' when cancelled. */
function askAdminToken(message) {
  const dialog = $('admin-auth');
  const input = $('admin-auth-token');
  $('admin-auth-error').textContent = message;
  input.value = '';
  if (!dialog.open) dialog.showModal();
  input.focus();
  return new Promise((resolve) => {
    const done = (token) => {
      dialog.onclose = null;
      if (dialog.open) dialog.close();
      resolve(token);
    };
    dialog.onclose = () => done('');
    $('admin-auth-cancel').onclick = () => done('');
    $('admin-auth-form').onsubmit = (e) => {
      e.preventDefault();
      const token = input.value.trim();
      if (token) done(token);
    };
  });
}

/**
 * A write that needs the admin scope: with the admin token given here, else the read token.
 * On 401/403 the prompt shows the server's message and takes another token; the error is
 * thrown when the user cancels it.
 */
async function adminWrite(method, path, body) {
  for (;;) {
    const token = admin.token || auth.token;
    try {
      return await sendJSON(method, path, body, { token });
    } catch (err) {
      if (err.status !== 401 && err.status !== 403) throw err;
      if (admin.token === token) admin.token = ''; // refused: do not send it again
      const given = await askAdminToken(`The server answered ${err.status}: ${err.message}`);
      if (!given) throw err;
      admin.token = given;
      document.dispatchEvent(new CustomEvent('rimp:tokens'));
    }
  }
}

// --- building blocks -----------------------------------------------------------------------

/** A label as a chip: `name=value`. */
function chip(name, value, op = '=') {
  return el('span', { className: 'lbl', dataset: { name } }, [
    el('span', { className: 'lbl-k', textContent: name }),
    op,
    el('span', { className: 'lbl-v', textContent: value }),
  ]);
}

/** A <time> showing `3m ago` (kept current by refreshTimes), its absolute time as a title. */
function timeEl(text, prefix = '') {
  const ms = parseTime(text);
  const node = el('time', { dataset: { ms: String(ms), prefix } });
  if (Number.isFinite(ms)) {
    node.dateTime = text;
    node.title = absolute(ms, text);
  }
  return node;
}

/** Update the text of every relative time under ``root``. */
function refreshTimes(root, now) {
  for (const node of root.querySelectorAll('time[data-ms]')) {
    const text = node.dataset.prefix + ago(Number(node.dataset.ms), now);
    if (node.textContent !== text) node.textContent = text;
  }
}

/**
 * Make ``list`` hold one child per item, in order. A child whose item did not change
 * (same ``keyOf``) is kept as it is, so focus and hover stay; a changed one is rebuilt,
 * and the focus moves to the same control of its replacement.
 */
function reconcile(list, items, idOf, keyOf, build) {
  const old = new Map([...list.children].map((node) => [node.dataset.uid, node]));
  const active = document.activeElement;
  let refocus = null;
  const nodes = items.map((item) => {
    const uid = idOf(item);
    const key = keyOf(item);
    const before = old.get(uid);
    if (before && before.dataset.key === key) return before;
    const node = build(item);
    node.dataset.uid = uid;
    node.dataset.key = key;
    if (before && active && before.contains(active) && active.dataset.action) {
      refocus = node.querySelector(`[data-action="${active.dataset.action}"]`);
    }
    return node;
  });
  const same = nodes.length === list.children.length && nodes.every((node, i) => list.children[i] === node);
  if (!same) list.replaceChildren(...nodes);
  if (refocus) refocus.focus();
  else if (active && active.isConnected && document.activeElement !== active && list.contains(active)) active.focus();
}

/** An alert's labels as [name, value] pairs: alertname first, then by name. */
function labelPairs(labels) {
  return Object.entries(labels || {}).sort(([a], [b]) => (a === 'alertname' ? -1 : b === 'alertname' ? 1 : a < b ? -1 : a > b ? 1 : 0));
}

function severityOf(labels) {
  const s = (labels.severity || '').toLowerCase();
  if (['critical', 'page', 'error'].includes(s)) return 'critical';
  if (['warning', 'warn'].includes(s)) return 'warning';
  return s ? 'other' : '';
}

/** A silence matcher's operator as PromQL and amtool write it: =, !=, =~ or !~. */
function matcherOp(m) {
  const negative = m.isEqual === false;
  if (m.isRegex) return negative ? '!~' : '=~';
  return negative ? '!=' : '=';
}

// --- the strip, silences and rules ---------------------------------------------------------

export class Alerts {
  constructor() {
    this.root = $('alerts');
    this.summary = $('alerts-summary');
    this.firingList = $('alerts-firing');
    this.pendingList = $('alerts-pending');
    this.pendingBox = $('alerts-pending-box');
    this.pendingButton = $('alerts-pending-toggle');
    this.silencesButton = $('silences-toggle');
    this.silencesPanel = $('silences-panel');
    this.silencesList = $('silences');
    this.rulesButton = $('rules-toggle');
    this.rulesPanel = $('rules-panel');
    this.alerts = [];
    this.silences = [];
    this.rules = null;
    this.rulesAt = 0;
    this.error = '';
    this.timer = 0;
    this.soonTimer = 0;
    this.busy = false;
    this.again = false;
    this.silencing = null; // the alert the silence form is for
    this.wire();
  }

  start() {
    this.refresh();
  }

  wire() {
    const toggle = (button, panel, after) => {
      button.addEventListener('click', () => {
        const open = panel.hidden;
        panel.hidden = !open;
        button.setAttribute('aria-expanded', String(open));
        if (open) after?.();
      });
    };
    toggle(this.pendingButton, this.pendingBox);
    toggle(this.silencesButton, this.silencesPanel, () => this.render());
    toggle(this.rulesButton, this.rulesPanel, () => {
      this.render(); // what is known, then read them now
      this.rulesAt = 0;
      this.refresh();
    });
    for (const list of [this.firingList, this.pendingList]) {
      list.addEventListener('click', (e) => {
        const button = e.target.closest('button[data-action="silence"]');
        if (!button) return;
        const fp = button.closest('li').dataset.uid;
        const alert = this.alerts.find((a) => a.fingerprint === fp);
        if (alert) this.openSilenceForm(alert);
      });
    }
    this.silencesList.addEventListener('click', (e) => {
      const button = e.target.closest('button[data-action="expire"]');
      if (button) this.expire(button.closest('li').dataset.uid, button);
    });
    const select = $('silence-duration');
    select.replaceChildren(...DURATIONS.map(([v, t]) => el('option', { value: v, textContent: t, selected: v === '1h' || undefined })));
    $('silence-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.submitSilence();
    });
    $('silence-cancel').addEventListener('click', () => $('silence-dialog').close());
  }

  /** Read alerts again soon (a transition event arrived). */
  soon() {
    clearTimeout(this.soonTimer);
    this.soonTimer = setTimeout(() => this.refresh(), SOON);
  }

  /** Every live event goes by here: an alert transition brings a refresh. */
  onEvent(record) {
    if (record.source === ALERTS_SOURCE) this.soon();
  }

  async refresh() {
    if (this.busy) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.busy = true;
    try {
      const wantRules = !this.rulesPanel.hidden || Date.now() - this.rulesAt >= RULES_PERIOD;
      const [alerts, silences, rules] = await Promise.all([
        getJSON('api/v1/alerts'),
        getJSON('api/v1/silences'),
        wantRules ? getJSON('api/v1/rules') : null,
      ]);
      this.alerts = alerts.alerts || [];
      this.silences = silences.silences || [];
      if (rules) {
        this.rules = rules;
        this.rulesAt = Date.now();
      }
      this.error = '';
    } catch (err) {
      this.error = err.message;
    } finally {
      this.busy = false;
    }
    this.render();
    const delay = this.again ? 0 : PERIOD;
    this.again = false;
    this.timer = setTimeout(() => this.refresh(), delay);
  }

  render() {
    const now = Date.now();
    const firing = this.alerts.filter((a) => a.state === 'firing');
    const pending = this.alerts.filter((a) => a.state === 'pending');
    const silenced = firing.filter((a) => a.silencedBy?.length).length;
    const loud = firing.length - silenced;
    const groups = this.rules?.groups || [];
    const rules = groups.flatMap((g) => g.rules);
    const failing = rules.filter((r) => r.health === 'err').length;

    let state = 'ok';
    let text;
    if (this.error) {
      state = 'error';
      text = `Could not read the alerts (${this.error}); trying again…`;
    } else if (firing.length) {
      state = loud ? 'firing' : 'silenced';
      text = `${plural(firing.length, 'alert')} firing` + (silenced ? ` (${silenced} silenced)` : '');
    } else if (this.rules && !rules.length) {
      text = 'No alerts firing (no rules loaded)';
    } else text = 'No alerts firing';
    setState(this.root, state);
    this.root.dataset.firing = String(firing.length);
    this.root.dataset.pending = String(pending.length);
    if (this.summary.textContent !== text) this.summary.textContent = text;

    this.pendingButton.hidden = !pending.length;
    this.pendingButton.textContent = `${pending.length} pending`;
    if (!pending.length && !this.pendingBox.hidden) {
      this.pendingBox.hidden = true;
      this.pendingButton.setAttribute('aria-expanded', 'false');
    }
    const live = this.silences.filter((s) => s.status?.state !== 'expired').length;
    this.silencesButton.textContent = live ? `Silences (${live})` : 'Silences';
    this.rulesButton.replaceChildren(
      this.rules ? `Rules (${rules.length})` : 'Rules',
      ...(failing ? [' ', el('span', { className: 'failing', textContent: `${failing} failing` })] : []),
    );
    this.rulesButton.dataset.failing = String(failing);

    const alertKey = (a) => JSON.stringify([a.state, a.labels, a.annotations, a.value, a.activeAt, a.firedAt, a.silencedBy]);
    reconcile(this.firingList, firing, (a) => a.fingerprint, alertKey, (a) => this.alertItem(a));
    reconcile(this.pendingList, pending, (a) => a.fingerprint, alertKey, (a) => this.alertItem(a));
    this.firingList.hidden = !firing.length;
    refreshTimes(this.firingList, now);
    refreshTimes(this.pendingList, now);
    if (!this.silencesPanel.hidden) this.renderSilences(now);
    if (!this.rulesPanel.hidden) this.renderRules(now);
  }

  alertItem(a) {
    const labels = labelPairs(a.labels).filter(([k]) => k !== 'alertname');
    const silenced = Boolean(a.silencedBy?.length);
    const firing = a.state === 'firing';
    const summary = a.annotations?.summary || a.annotations?.description || '';
    const parts = [
      el('span', { className: 'alert-name', textContent: a.name }),
      el('span', { className: 'labels' }, labels.map(([k, v]) => chip(k, v))),
      el('span', { className: 'alert-value', title: 'the value that made it fire' }, [
        el('span', { className: 'k', textContent: 'value ' }),
        el('span', { className: 'v', textContent: a.value === null ? '–' : formatNumber(a.value) }),
      ]),
      timeEl(firing ? a.firedAt || a.activeAt : a.activeAt, firing ? 'since ' : 'pending since '),
    ];
    if (silenced) {
      const by = a.silencedBy.join(', ');
      parts.push(el('span', { className: 'silenced-badge', textContent: 'silenced', title: `silenced by ${by}` }));
    }
    parts.push(el('button', { type: 'button', className: 'btn small', textContent: 'Silence', dataset: { action: 'silence' }, 'aria-label': `Silence ${a.name}` }));
    if (summary) parts.push(el('span', { className: 'alert-summary', textContent: summary }));
    return el('li', {
      className: 'alert',
      dataset: {
        fingerprint: a.fingerprint,
        name: a.name,
        state: a.state,
        silenced: String(silenced),
        severity: severityOf(a.labels || {}),
      },
    }, parts);
  }

  // --- silencing ---------------------------------------------------------------------------

  openSilenceForm(alert) {
    this.silencing = alert;
    const dialog = $('silence-dialog');
    $('silence-alert').textContent = alert.name;
    $('silence-matchers').replaceChildren(...labelPairs(alert.labels).map(([k, v]) => chip(k, v)));
    $('silence-error').textContent = '';
    $('silence-comment').value = '';
    const author = $('silence-author');
    if (!author.value) author.value = localStorage.getItem(AUTHOR_KEY) || '';
    $('silence-submit').disabled = false;
    dialog.showModal();
    $('silence-comment').focus();
  }

  async submitSilence() {
    const alert = this.silencing;
    if (!alert) return;
    const seconds = DURATIONS.find(([v]) => v === $('silence-duration').value)?.[2] || 3600;
    const createdBy = $('silence-author').value.trim();
    const comment = $('silence-comment').value.trim();
    const error = $('silence-error');
    const submit = $('silence-submit');
    if (!createdBy || !comment) {
      error.textContent = 'Say who you are and why.';
      return;
    }
    const body = {
      // every label, equal: this alert and no other (startsAt: the server's now)
      matchers: labelPairs(alert.labels).map(([name, value]) => ({ name, value, isRegex: false, isEqual: true })),
      endsAt: new Date(Date.now() + seconds * 1000).toISOString(),
      createdBy,
      comment,
    };
    submit.disabled = true;
    error.textContent = 'Silencing…';
    try {
      const answer = await adminWrite('POST', 'api/v1/silences', body);
      localStorage.setItem(AUTHOR_KEY, createdBy);
      error.textContent = '';
      $('silence-dialog').close();
      this.silencing = null;
      this.root.dataset.lastSilence = answer?.silenceID || '';
      this.refresh();
    } catch (err) {
      error.textContent = `Not silenced: ${err.status ? `${err.status} ` : ''}${err.message}`;
    } finally {
      submit.disabled = false;
    }
  }

  async expire(id, button) {
    const error = $('silences-error');
    button.disabled = true;
    error.textContent = '';
    try {
      await adminWrite('DELETE', `api/v1/silences/${encodeURIComponent(id)}`);
      this.refresh();
    } catch (err) {
      error.textContent = `Could not expire ${id}: ${err.status ? `${err.status} ` : ''}${err.message}`;
      button.disabled = false;
    }
  }

  renderSilences(now) {
    const order = { active: 0, pending: 1, expired: 2 };
    const stateOf = (s) => s.status?.state || 'expired';
    const current = this.silences.filter((s) => stateOf(s) !== 'expired');
    current.sort((a, b) => order[stateOf(a)] - order[stateOf(b)] || parseTime(a.endsAt) - parseTime(b.endsAt));
    const ended = this.silences.filter((s) => stateOf(s) === 'expired');
    ended.sort((a, b) => parseTime(b.endsAt) - parseTime(a.endsAt));
    const shown = current.concat(ended.slice(0, EXPIRED_SHOWN));
    const key = (s) => JSON.stringify([stateOf(s), s.matchers, s.startsAt, s.endsAt, s.createdBy, s.comment]);
    reconcile(this.silencesList, shown, (s) => s.id, key, (s) => this.silenceItem(s));
    const hidden = ended.length - Math.min(ended.length, EXPIRED_SHOWN);
    $('silences-note').textContent = shown.length
      ? hidden ? `${hidden} older expired ${hidden === 1 ? 'silence is' : 'silences are'} not shown.` : ''
      : 'No silences.';
    refreshTimes(this.silencesList, now);
  }

  silenceItem(s) {
    const state = s.status?.state || 'expired';
    const when = {
      active: timeEl(s.endsAt, 'ends '),
      pending: timeEl(s.startsAt, 'starts '),
      expired: timeEl(s.endsAt, 'ended '),
    }[state];
    const parts = [
      el('span', { className: 'badge s-state', textContent: state }),
      el('span', { className: 'labels' }, (s.matchers || []).map((m) => chip(m.name, m.value, matcherOp(m)))),
      when,
      el('span', { className: 'silence-who' }, [
        el('span', { className: 'k', textContent: 'by ' }),
        el('span', { className: 'silence-author', textContent: s.createdBy || 'someone' }),
        s.comment ? ': ' : '',
        el('span', { className: 'silence-comment', textContent: s.comment || '' }),
      ]),
    ];
    if (state !== 'expired') {
      parts.push(el('button', { type: 'button', className: 'btn small', textContent: 'Expire', dataset: { action: 'expire' }, 'aria-label': `Expire silence ${s.id}` }));
    }
    return el('li', { className: 'silence', dataset: { id: s.id, state }, title: `silence ${s.id}` }, parts);
  }

  // --- rules -------------------------------------------------------------------------------

  renderRules(now) {
    const body = $('rules');
    const meta = $('rules-meta');
    if (!this.rules) {
      meta.textContent = this.error ? `Could not read the rules (${this.error}).` : 'Loading…';
      return;
    }
    const { groups = [], files = [], loadedAt } = this.rules;
    const count = groups.reduce((n, g) => n + g.rules.length, 0);
    if (!groups.length) {
      meta.textContent = 'No rules loaded: start the server with --rules FILE.';
      body.replaceChildren();
      return;
    }
    meta.replaceChildren(
      `${plural(count, 'rule')} in ${plural(groups.length, 'group')} from ${plural(files.length, 'file')}, loaded `,
      timeEl(loadedAt),
    );
    body.replaceChildren(...groups.map((g) => this.groupItem(g)));
    refreshTimes(this.rulesPanel, now);
  }

  groupItem(g) {
    const head = el('div', { className: 'group-head' }, [
      el('h4', { textContent: g.name }),
      el('span', { className: 'note' }, [
        el('code', { textContent: g.file }),
        ` · every ${formatInterval(g.interval)} · evaluated `,
        timeEl(g.lastEvaluation),
        ` in ${formatElapsed(g.evaluationTime)}`,
      ]),
    ]);
    const columns = ['Rule', 'Type', 'Query', 'State', 'Health', 'Last evaluation', 'Took'];
    const thead = el('thead', {}, [el('tr', {}, columns.map((c) => el('th', { scope: 'col', textContent: c })))]);
    const rows = g.rules.flatMap((r) => this.ruleRows(r));
    const table = el('table', { className: 'rules-table' }, [thead, el('tbody', {}, rows)]);
    return el('section', { className: 'rule-group', dataset: { name: g.name }, 'aria-label': `Rule group ${g.name}` }, [
      head,
      el('div', { className: 'table-wrap' }, [table]),
    ]);
  }

  ruleRows(r) {
    const alerting = r.type !== 'recording';
    const active = alerting ? (r.alerts || []).filter((a) => a.state !== 'resolved').length : 0;
    const nameCell = el('th', { scope: 'row', className: 'rule-name' }, [
      el('span', { textContent: r.name }),
      ...labelPairs(r.labels).map(([k, v]) => chip(k, v)),
      ...(alerting && r.for ? [el('span', { className: 'note', textContent: `for ${formatInterval(r.for)}` })] : []),
    ]);
    const state = alerting ? r.state || 'inactive' : '';
    const row = el('tr', { className: 'rule', dataset: { name: r.name, type: r.type, health: r.health, state } }, [
      nameCell,
      el('td', { className: 'rule-type', textContent: r.type }),
      el('td', {}, [el('code', { className: 'rule-query', textContent: r.query })]),
      el('td', { className: 'rule-state' }, alerting
        ? [el('span', { className: `badge st-${state}`, textContent: state }), active > 1 ? ` ${active}` : '']
        : ['–']),
      el('td', { className: 'rule-health' }, [el('span', { className: `badge h-${r.health}`, textContent: r.health })]),
      el('td', { className: 'rule-last' }, [timeEl(r.lastEvaluation)]),
      el('td', { className: 'rule-took', textContent: r.lastEvaluation ? formatElapsed(r.evaluationTime) : '–' }),
    ]);
    if (r.health !== 'err' || !r.lastError) return [row];
    const error = el('tr', { className: 'rule-error', dataset: { name: r.name } }, [
      el('td', { colSpan: 7 }, [el('span', { className: 'k', textContent: 'Error: ' }), el('span', { className: 'msg', textContent: r.lastError })]),
    ]);
    return [row, error];
  }
}
