"""The alerting engine: evaluates the rules, keeps the alerts, decides the notifications.

Metric rules (alerting and recording) run every group ``interval`` against the
storage through the PromQL engine. Event rules are fed by the stream
(:meth:`AlertEngine.observe`, a stream consumer: records arrive here once stored) and
are evaluated as soon as a batch matches, so an error burst fires within a second, and
again whenever a window edge passes. Every state change is also recorded as an event
of source ``rimp.alerts``; alert states, notification groups, the outbox and silences
are kept in an :class:`~telemetry.alerting.store.AlertStore`, so a restart carries on
where it stopped.

One thread (``rimp-alerts``) evaluates; another (:class:`Delivery`) sends. Tests drive
:meth:`AlertEngine.run_once` with their own clock instead.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from telemetry._time import rfc3339
from telemetry.alerting.delivery import Delivery
from telemetry.alerting.eventwindows import EventWindow
from telemetry.alerting.notify import Notifier
from telemetry.alerting.rules import (
    ALERTS_SOURCE,
    AlertingRule,
    EventRule,
    RecordingRule,
    RuleGroup,
    RuleSet,
)
from telemetry.alerting.silences import Silence, parse_silence
from telemetry.alerting.state import FIRING, INACTIVE, PENDING, Alert, Transition, advance
from telemetry.alerting.store import AlertStore, Outgoing
from telemetry.models import Event, EventType, TelemetryData
from telemetry.storage import Storage

__all__ = ["AlertEngine", "RuleStatus"]

_log = logging.getLogger("telemetry.alerting")
_NS = 1_000_000_000
_SERIES_EVERY_NS = 15 * _NS
_AM_RESEND_NS = 60 * _NS
_PRELOAD_LIMIT = 100_000
_SEVERITY = {
    "critical": EventType.CRITICAL,
    "page": EventType.CRITICAL,
    "error": EventType.ERROR,
    "warning": EventType.WARNING,
    "info": EventType.INFO,
}

EventSink = Callable[[str, str, EventType, dict[str, Any]], None]
MetricSink = Callable[[str, float, dict[str, str], int], None]


@dataclass
class RuleStatus:
    """How a rule's last evaluation went, and its alerts by fingerprint."""

    rule: AlertingRule | RecordingRule | EventRule
    alerts: dict[str, Alert] = field(default_factory=dict)
    health: str = "unknown"
    last_error: str = ""
    last_evaluation: int = 0
    evaluation_seconds: float = 0.0
    tree: Any = None


@dataclass
class _GroupClock:
    group: RuleGroup
    next_at: int
    last_evaluation: int = 0
    evaluation_seconds: float = 0.0


class AlertEngine:
    """Rules, alerts, silences and notifications over one storage.

    Args:
        rules: what :func:`~telemetry.alerting.rules.load_rules` read.
        storage: what metric rules query and event rules read their recent past from.
        store: where state survives restarts.
        record_event: records a transition event (source, message, type, metadata).
        record_metric: records a point (recording rules, and the ``ALERTS`` series).
        external_url: this server's URL, for the notifications' links.
        alertmanagers: Alertmanager base URLs that get every alert at ``/api/v2/alerts``.
        clock: the time in ns (tests pass their own).
    """

    def __init__(
        self,
        rules: RuleSet,
        storage: Storage,
        store: AlertStore,
        *,
        record_event: EventSink,
        record_metric: MetricSink,
        external_url: str = "",
        alertmanagers: Iterable[str] = (),
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.storage = storage
        self.store = store
        self.record_event = record_event
        self.record_metric = record_metric
        self.external_url = external_url
        self.alertmanagers = tuple(a.rstrip("/") + "/api/v2/alerts" for a in alertmanagers)
        self.clock = clock
        self.rules = RuleSet()
        self.status: dict[str, RuleStatus] = {}
        self.windows: dict[str, EventWindow] = {}
        self.groups: dict[str, _GroupClock] = {}
        self.evaluations = 0
        self.failures = 0
        self.loaded_at = 0
        self._saved = store.load_alerts()
        self._silences = {s.id: s for s in store.silences()}
        self._lock = threading.RLock()
        # One evaluation round at a time, and never across a reload (which replaces the
        # rules the round iterates); ``_lock`` alone guards what observe() touches.
        self._round = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._series_at = 0
        self._am_sent: tuple[int, frozenset[tuple[str, str]]] = (0, frozenset())
        self.notifier = Notifier(store, None, {}, external_url)
        self.delivery = Delivery(store, on_abandon=self._abandoned)
        self.reload(rules)

    # --- rules -------------------------------------------------------------------------------

    def reload(self, rules: RuleSet) -> None:
        """Run ``rules`` from now on; a rule that is the same rule (same group, name and
        definition) keeps its alerts, the others start afresh."""
        now = self.clock()
        with self._round, self._lock:
            old = self.status
            self.status = {}
            windows: dict[str, EventWindow] = {}
            for rule in rules.rules():
                status = old.get(rule.key) or RuleStatus(rule)
                status.rule = rule
                saved = self._saved.pop(rule.key, None)
                if saved is not None:
                    status.alerts = saved
                if isinstance(rule, AlertingRule | RecordingRule) and status.tree is None:
                    from telemetry.promql.engine import parse

                    status.tree = parse(rule.expr)
                if isinstance(rule, EventRule):
                    windows[rule.key] = self.windows.get(rule.key) or self._preload(rule, now)
                self.status[rule.key] = status
            dropped = [k for k in old if k not in self.status] + list(self._saved)
            self._saved = {}
            self.windows = windows
            clocks = {}
            for group in rules.groups:
                prior = self.groups.get(group.name)
                keep = prior is not None and prior.group.interval_ns == group.interval_ns
                clocks[group.name] = _GroupClock(group, prior.next_at if keep and prior else now)
                if keep and prior:
                    clocks[group.name].last_evaluation = prior.last_evaluation
            self.groups = clocks
            self.rules = rules
            self.loaded_at = now
            self.notifier.configure(rules.route, rules.receivers)
        if dropped:
            self.store.save_alerts({}, dropped)
        self._wake.set()

    def _preload(self, rule: EventRule, now: int) -> EventWindow:
        """A new event rule's window, filled from what the storage already holds."""
        window = EventWindow(rule, now)
        match = rule.match
        since = now - (rule.absent_ns or rule.window_ns)
        try:
            for source in match.sources or (None,):
                for etype in match.types or (None,):
                    found = self.storage.query_events(
                        source=source,
                        event_type=etype,
                        since=since,
                        search=match.text,
                        limit=1 if rule.absent_ns else _PRELOAD_LIMIT,
                    )
                    window.observe(reversed(found))
        except Exception as exc:  # a storage that cannot answer: start from the stream alone
            _log.warning("event rule %s: could not read recent events: %s", rule.name, exc)
        return window

    # --- the stream -------------------------------------------------------------------------

    def observe(self, batch: TelemetryData) -> None:
        """Stream consumer: feed the event rules; wake the engine when one matched.

        Runs on the stream's worker thread: it only appends times under the lock,
        never evaluates, stores or notifies.
        """
        if not batch.events or not self.windows:
            return
        by_source: dict[str, list[Event]] = {}
        for e in batch.events:  # one pass: each rule naming sources sees only theirs
            by_source.setdefault(e.source, []).append(e)
        with self._lock:
            hit = False
            for window in self.windows.values():
                sources = window.rule.match.sources
                if not sources:
                    hit = window.observe(batch.events) or hit
                    continue
                for source in sources:
                    mine = by_source.get(source)
                    if mine:
                        hit = window.observe(mine) or hit
        if hit:
            self._wake.set()

    # --- evaluation ---------------------------------------------------------------------------

    def run_once(self, now: int | None = None) -> None:
        """Evaluate what is due at ``now``, decide notifications, queue them."""
        with self._round:
            self._run_once(self.clock() if now is None else now)

    def _run_once(self, now: int) -> None:
        changed: dict[str, dict[str, Alert]] = {}
        for clock in list(self.groups.values()):
            if clock.next_at > now:
                continue
            started = time.perf_counter()
            from telemetry.promql.engine import Reads

            reads = Reads()  # the group's rules share what they read at this instant
            for rule in clock.group.rules:
                if not isinstance(rule, EventRule) and self._evaluate(rule, now, reads):
                    changed[rule.key] = self.status[rule.key].alerts
            clock.last_evaluation = now
            clock.evaluation_seconds = time.perf_counter() - started
            # Missed ticks are skipped, not run back to back.
            clock.next_at += clock.group.interval_ns * max(
                1, (now - clock.next_at) // clock.group.interval_ns + 1
            )
        for key in list(self.windows):
            status = self.status.get(key)
            if status is not None and self._evaluate(status.rule, now):
                changed[key] = status.alerts
        if changed:
            self.store.save_alerts({k: dict(v) for k, v in changed.items()})
        if now - self._series_at >= _SERIES_EVERY_NS:
            self._series_at = now
            self._alerts_series(now)
        alerts = self.alerts()
        silenced = {a.fp for a in alerts if self.silenced_by(a.labels, now)}
        queued = self.notifier.tick(alerts, silenced, now)
        queued += self._forward(alerts, now)
        if queued:
            self.delivery.wake()

    def _evaluate(
        self, rule: AlertingRule | RecordingRule | EventRule, now: int, reads: Any = None
    ) -> bool:
        """Evaluate one rule; return whether its alerts' states changed."""
        status = self.status[rule.key]
        started = time.perf_counter()
        self.evaluations += 1
        moved = False
        try:
            if isinstance(rule, EventRule):
                with self._lock:
                    samples = self.windows[rule.key].samples(now)
            else:
                samples = self._query(status, now, reads)
            if isinstance(rule, RecordingRule):
                self._record(rule, samples, now)
                changes: list[Transition] = []
            else:
                with self._lock:
                    before = _signature(status.alerts)
                    changes = advance(
                        rule.key,
                        status.alerts,
                        samples,
                        now,
                        for_ns=rule.for_ns,
                        keep_firing_for_ns=rule.keep_firing_for_ns,
                        render=self._renderer(rule),
                    )
                    moved = before != _signature(status.alerts)
            status.health, status.last_error = "ok", ""
        except Exception as exc:  # a rule's failure is its own: the others still run
            self.failures += 1
            status.health, status.last_error = "err", str(exc) or type(exc).__name__
            _log.warning("rule %s: %s", rule.name, status.last_error)
            return False
        finally:
            status.last_evaluation = now
            status.evaluation_seconds = time.perf_counter() - started
        self._announce(changes)
        return moved

    def _query(
        self, status: RuleStatus, now: int, reads: Any
    ) -> list[tuple[dict[str, str], float]]:
        from telemetry.promql.engine import Evaluator

        result = Evaluator(self.storage, [now], reads).run(status.tree)
        if result.kind == "scalar":
            return [({}, result.scalars[0])]
        if result.kind != "vector":
            raise ValueError(f"the expression gives a {result.kind}, not a vector")
        return [(dict(labels), value) for labels, value in result.vectors[0].items()]

    def _renderer(
        self, rule: AlertingRule | EventRule
    ) -> Callable[[Mapping[str, str], float], tuple[dict[str, str], dict[str, str]]]:
        def render(
            sample: Mapping[str, str], value: float
        ) -> tuple[dict[str, str], dict[str, str]]:
            labels = {k: v for k, v in sample.items() if k != "__name__"}
            for key, template in rule.labels.items():
                labels[key] = template.render(sample, value, external_url=self.external_url)
            labels = {k: v for k, v in labels.items() if v}
            labels["alertname"] = rule.name
            annotations = {
                k: t.render(sample, value, external_url=self.external_url)
                for k, t in rule.annotations.items()
            }
            return labels, annotations

        return render

    def _record(
        self, rule: RecordingRule, samples: list[tuple[dict[str, str], float]], now: int
    ) -> None:
        seen = set()
        for sample, value in samples:
            tags = {k: v for k, v in sample.items() if k != "__name__"}
            for key, template in rule.labels.items():
                tags[key] = template.render(sample, value)
            ident = tuple(sorted(tags.items()))
            if ident in seen:
                raise ValueError(
                    "vector contains metrics with the same labelset after applying rule labels"
                )
            seen.add(ident)
            if math.isfinite(value):
                self.record_metric(rule.name, value, tags, now)

    def _announce(self, changes: list[Transition]) -> None:
        fired = {c.alert.fp for c in changes if c.new == FIRING}
        for change in changes:
            alert = change.alert
            if change.new == PENDING and alert.fp in fired:
                continue  # for: 0 - pending and firing in one evaluation: say firing
            if change.new == FIRING:
                etype = _SEVERITY.get(alert.labels.get("severity", ""), EventType.ERROR)
                text = alert.annotations.get("summary", "")
                message = f"{alert.name} firing" + (f": {text}" if text else "")
                state = "firing"
            elif change.new == PENDING:
                etype, message, state = EventType.INFO, f"{alert.name} pending", "pending"
            elif change.old == FIRING:
                etype, message, state = EventType.INFO, f"{alert.name} resolved", "resolved"
            else:
                etype, message, state = (
                    EventType.DEBUG,
                    f"{alert.name} no longer pending",
                    "inactive",
                )
            self.record_event(
                ALERTS_SOURCE,
                message,
                etype,
                {
                    "alertname": alert.name,
                    "state": state,
                    "labels": dict(alert.labels),
                    "annotations": dict(alert.annotations),
                    "value": alert.value if math.isfinite(alert.value) else str(alert.value),
                    "active_at": rfc3339(alert.active_at),
                    "fingerprint": alert.fp,
                },
            )

    def _alerts_series(self, now: int) -> None:
        """Prometheus' ``ALERTS`` series: 1 for every pending or firing alert, so
        dashboards can chart them."""
        for alert in self.alerts():
            if alert.state in (PENDING, FIRING):
                self.record_metric("ALERTS", 1.0, {**alert.labels, "alertstate": alert.state}, now)

    def _forward(self, alerts: list[Alert], now: int) -> int:
        """Send every alert to the configured Alertmanagers (as Prometheus does): on a
        change, and at least every minute while any is active."""
        if not self.alertmanagers:
            return 0
        active = [a for a in alerts if a.state != PENDING]
        current = frozenset((a.fp, a.state) for a in active)
        last, sent = self._am_sent
        if not active or (current == sent and now - last < _AM_RESEND_NS):
            return 0
        self._am_sent = (now, current)
        body = msgspec.json.encode(
            [
                {
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "startsAt": rfc3339(a.active_at),
                    "endsAt": rfc3339(
                        a.resolved_at if a.state == INACTIVE else now + 4 * _AM_RESEND_NS
                    ),
                    "generatorURL": f"{self.external_url.rstrip('/')}/#alerts",
                }
                for a in active
            ]
        )
        rows = [(f"am-{now}", "alertmanager", url, body) for url in self.alertmanagers]
        self.store.commit_groups({}, rows, now)
        return len(rows)

    def _abandoned(self, item: Outgoing, error: str) -> None:
        self.record_event(
            ALERTS_SOURCE,
            f"notification to {item.receiver} abandoned: {error}",
            EventType.ERROR,
            {
                "receiver": item.receiver,
                "url": item.url,
                "error": error,
                "attempts": item.attempts + 1,
            },
        )

    # --- reading ------------------------------------------------------------------------------

    def alerts(self) -> list[Alert]:
        """Every alert of every rule (pending, firing, and resolved in the last 15 minutes)."""
        with self._lock:
            return [
                Alert.from_dict(a.to_dict())
                for status in self.status.values()
                for a in status.alerts.values()
            ]

    def rule_groups(self) -> list[tuple[RuleGroup, _GroupClock, list[RuleStatus]]]:
        """Each group with its evaluation clock and its rules' statuses."""
        with self._lock:
            return [
                (clock.group, clock, [self.status[r.key] for r in clock.group.rules])
                for clock in self.groups.values()
            ]

    def figures(self) -> dict[str, Any]:
        """Counts for ``/metrics``: alerts by state, evaluations, failures, notifications
        sent, retried, abandoned and queued, silences in force."""
        by_state = {"pending": 0, "firing": 0, "resolved": 0}
        for alert in self.alerts():
            by_state["resolved" if alert.state == INACTIVE else alert.state] += 1
        now = self.clock()
        return {
            "alerts": by_state,
            "evaluations": self.evaluations,
            "failures": self.failures,
            "sent": self.delivery.sent,
            "retried": self.delivery.retried,
            "abandoned": self.delivery.abandoned,
            "queued": self.store.queued(),
            "silences": sum(1 for s in list(self._silences.values()) if s.state(now) == "active"),
        }

    # --- silences -----------------------------------------------------------------------------

    def silenced_by(self, labels: Mapping[str, str], now: int | None = None) -> list[str]:
        """The ids of the active silences that hold an alert with ``labels``."""
        now = self.clock() if now is None else now
        return [s.id for s in list(self._silences.values()) if s.silences(labels, now)]

    def silences(self) -> list[Silence]:
        """Every silence kept (expired ones for 5 days, as Alertmanager)."""
        now = self.clock()
        old = [s.id for s in self._silences.values() if now - s.ends_at > 5 * 86_400 * _NS]
        if old:
            self.store.drop_silences(old)
            for sid in old:
                self._silences.pop(sid, None)
        return sorted(self._silences.values(), key=lambda s: s.starts_at)

    def put_silence(self, body: Any) -> Silence:
        """Create (or, with the ``id`` of a silence, replace) a silence from Alertmanager's
        JSON; the next notification round honours it.

        Raises:
            telemetry.ValidationError: the body breaks a rule, naming the field;
                ``id`` names no silence.
        """
        from telemetry.errors import ValidationError

        silence = parse_silence(body, now=self.clock())
        if isinstance(body, dict) and body.get("id") and silence.id not in self._silences:
            raise ValidationError(f"id: no silence {silence.id!r}", field="id")
        self.store.put_silence(silence)
        self._silences[silence.id] = silence
        self._wake.set()
        return silence

    def expire_silence(self, sid: str) -> Silence | None:
        """End a silence now; ``None`` when there is no such silence."""
        silence = self._silences.get(sid)
        if silence is None:
            return None
        ended = silence.expired(self.clock())
        self.store.put_silence(ended)
        self._silences[sid] = ended
        self._wake.set()
        return ended

    # --- the threads --------------------------------------------------------------------------

    def start(self) -> None:
        """Start evaluating and delivering in the background."""
        self.delivery.start()
        self._thread = threading.Thread(target=self._run, name="rimp-alerts", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop both threads (what is queued stays in the outbox for the next start)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.delivery.stop(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            now = self.clock()
            try:
                self.run_once(now)
            except Exception:  # never let the alerting thread die
                self.failures += 1
                _log.exception("alert evaluation failed")
            self._wake.wait(self._idle_seconds(self.clock()))

    def _idle_seconds(self, now: int) -> float:
        due = [c.next_at for c in self.groups.values()]
        with self._lock:
            due += [t for w in self.windows.values() if (t := w.next_change(now)) is not None]
        nxt = min(due, default=now + _NS)
        # At most a second: notification groups' timers and silences' ends are checked then.
        return min(max((nxt - now) / _NS, 0.005), 1.0)


def _signature(alerts: Mapping[str, Alert]) -> list[tuple[str, str, int, int]]:
    return sorted((fp, a.state, a.active_at, a.keep_firing_since) for fp, a in alerts.items())
