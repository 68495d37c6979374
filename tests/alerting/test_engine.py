"""The engine over a real embedded database: metric rules through PromQL, event rules fed
by the stream and read back from storage, transition events, recording rules, rule
errors, reloads, silences, and what a restart keeps (the state file is real too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from telemetry.alerting import AlertEngine, AlertStore, parse_rules
from telemetry.errors import ValidationError
from telemetry.models import Event, EventType, Metric, TelemetryData
from telemetry.storage import DatabaseStorage

S = 1_000_000_000
T = 1_800_000_000 * S  # a fixed "now", 2027-01-15

RULES = """
groups:
  - name: latency
    interval: 10s
    rules:
      - alert: HighLatency
        expr: avg by (service) (avg_over_time(response_time[1m])) > 250
        for: 30s
        labels: {severity: page, team: "{{ $labels.service }}-team"}
        annotations: {summary: "{{ $labels.service }} averages {{ $value }} ms"}
      - record: service:response_time:avg1m
        expr: avg by (service) (avg_over_time(response_time[1m]))
        labels: {source: rule}
  - name: events
    interval: 1m
    rules:
      - alert: BillingErrors
        events: {source: billing, type: error, window: 1m, above: 2}
        labels: {severity: warning}
"""


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, EventType, dict[str, Any]]] = []
        self.points: list[tuple[str, float, dict[str, str], int]] = []

    def event(self, source: str, message: str, etype: EventType, meta: dict[str, Any]) -> None:
        self.events.append((source, message, etype, meta))

    def metric(self, name: str, value: float, tags: dict[str, str], ns: int) -> None:
        self.points.append((name, value, tags, ns))

    def transitions(self) -> list[tuple[str, str]]:
        return [(m["alertname"], m["state"]) for _s, _m, _t, m in self.events if "state" in m]


@pytest.fixture
def storage(tmp_path: Path) -> Any:
    db = DatabaseStorage(tmp_path / "telemetry.db")
    # api averages 300 ms, search 100 ms: one point a second over the last 10 minutes and
    # the next 2 (the engine is run at later "nows" below).
    points = [
        Metric("response_time", v, "ms", {"service": s}, T + i * S, f"{s}{i}")
        for s, v in (("api", 300.0), ("search", 100.0))
        for i in range(-600, 120)
    ]
    db.store(TelemetryData(metrics=points))
    yield db
    db.close()


def engine(
    storage: Any, path: Path, rec: Recorder, rules: str = RULES, now: int = T
) -> AlertEngine:
    return AlertEngine(
        parse_rules(rules, "rules.yml"),
        storage,
        AlertStore(path),
        record_event=rec.event,
        record_metric=rec.metric,
        external_url="http://rimp:8787/",
        clock=lambda: now,
    )


def firing(e: AlertEngine) -> dict[str, str]:
    return {a.name + ":" + a.labels.get("service", ""): a.state for a in e.alerts()}


def test_a_metric_rule_goes_pending_then_firing_over_stored_points(
    storage: Any, tmp_path: Path
) -> None:
    rec = Recorder()
    e = engine(storage, tmp_path / "a.db", rec)
    e.run_once(T)
    assert firing(e) == {"HighLatency:api": "pending"}
    (alert,) = e.alerts()
    assert alert.labels == {
        "service": "api",
        "severity": "page",
        "team": "api-team",
        "alertname": "HighLatency",
    }
    assert alert.annotations == {"summary": "api averages 300 ms"}
    e.run_once(T + 10 * S)
    e.run_once(T + 20 * S)
    assert firing(e) == {"HighLatency:api": "pending"}
    e.run_once(T + 30 * S)
    assert firing(e) == {"HighLatency:api": "firing"}
    assert rec.transitions() == [("HighLatency", "pending"), ("HighLatency", "firing")]
    source, message, etype, meta = rec.events[-1]
    assert (source, etype) == ("rimp.alerts", EventType.CRITICAL)  # severity: page
    assert message == "HighLatency firing: api averages 300 ms"
    assert meta["active_at"].startswith("2027-01-15T08:00:00")
    assert meta["labels"]["team"] == "api-team"
    assert meta["value"] == 300.0


def test_a_group_runs_at_its_interval_only(storage: Any, tmp_path: Path) -> None:
    rec = Recorder()
    e = engine(storage, tmp_path / "a.db", rec)
    e.run_once(T)
    e.run_once(T + 5 * S)  # not due: the latency group runs every 10 s
    recorded = [p for p in rec.points if p[0] == "service:response_time:avg1m"]
    assert len(recorded) == 2  # api and search, once
    e.run_once(T + 10 * S)
    recorded = [p for p in rec.points if p[0] == "service:response_time:avg1m"]
    assert len(recorded) == 4
    assert sorted((p[2]["service"], p[1], p[2]["source"], p[3]) for p in recorded[:2]) == [
        ("api", 300.0, "rule", T),
        ("search", 100.0, "rule", T),
    ]


def test_alert_state_survives_a_restart_without_a_second_firing(
    storage: Any, tmp_path: Path
) -> None:
    rec = Recorder()
    e = engine(storage, tmp_path / "state.db", rec)
    for t in (0, 10, 20, 30):
        e.run_once(T + t * S)
    assert firing(e) == {"HighLatency:api": "firing"}
    e.store.close()
    again = Recorder()
    e2 = engine(storage, tmp_path / "state.db", again, now=T + 40 * S)
    assert firing(e2) == {"HighLatency:api": "firing"}
    (alert,) = e2.alerts()
    assert (alert.active_at, alert.fired_at) == (T, T + 30 * S)
    e2.run_once(T + 40 * S)
    assert again.transitions() == []  # nothing new to say


def test_an_event_rule_fires_from_the_stream_and_resolves_when_the_window_passes(
    storage: Any, tmp_path: Path
) -> None:
    rec = Recorder()
    e = engine(storage, tmp_path / "a.db", rec)
    errors = [Event("billing", "boom", EventType.ERROR, {}, T + i * S, f"e{i}") for i in range(3)]
    e.observe(TelemetryData(events=errors[:2]))
    e.run_once(T + 2 * S)
    assert "BillingErrors:" not in firing(e)
    e.observe(TelemetryData(events=errors[2:]))
    e.run_once(T + 2 * S)  # no tick needed: evaluated at once
    assert firing(e)["BillingErrors:"] == "firing"
    (burst,) = [a for a in e.alerts() if a.name == "BillingErrors"]
    assert burst.value == 3.0
    assert burst.labels == {
        "severity": "warning",
        "alertname": "BillingErrors",
    }
    e.run_once(T + 60 * S)  # the error at T left: 2 remain, not above 2
    assert firing(e)["BillingErrors:"] == "inactive"
    assert ("BillingErrors", "resolved") in rec.transitions()


def test_an_event_rule_reads_its_recent_past_from_storage(storage: Any, tmp_path: Path) -> None:
    storage.store(
        TelemetryData(
            events=[
                Event("billing", "x", EventType.ERROR, {}, T - i * S, f"p{i}") for i in range(4)
            ]
        )
    )
    rec = Recorder()
    e = engine(storage, tmp_path / "a.db", rec)
    e.run_once(T)
    assert firing(e)["BillingErrors:"] == "firing"


def test_a_failing_rule_reports_its_error_and_the_others_still_run(
    storage: Any, tmp_path: Path
) -> None:
    rules = RULES.replace(
        "      - record: service:response_time:avg1m",
        "      - record: broken\n        expr: '\"a string\"'\n"
        "      - record: service:response_time:avg1m",
    )
    rec = Recorder()
    e = engine(storage, tmp_path / "a.db", rec, rules)
    e.run_once(T)
    statuses = {s.rule.name: s for _g, _c, ss in e.rule_groups() for s in ss}
    assert statuses["broken"].health == "err"
    assert "gives a string, not a vector" in statuses["broken"].last_error
    assert statuses["service:response_time:avg1m"].health == "ok"
    assert statuses["HighLatency"].last_evaluation == T
    assert e.failures == 1


def test_a_reload_keeps_the_state_of_unchanged_rules_only(storage: Any, tmp_path: Path) -> None:
    rec = Recorder()
    e = engine(storage, tmp_path / "a.db", rec)
    e.run_once(T)
    e.reload(parse_rules(RULES.replace("title", "x"), "rules.yml"))
    assert firing(e) == {"HighLatency:api": "pending"}
    e.reload(parse_rules(RULES.replace("> 250", "> 200"), "rules.yml"))
    assert firing(e) == {}  # a changed expression is a new rule


def test_silences_hold_matching_alerts_and_survive_a_restart(storage: Any, tmp_path: Path) -> None:
    rec = Recorder()
    e = engine(storage, tmp_path / "s.db", rec)
    body = {
        "matchers": [
            {"name": "alertname", "value": "HighLatency", "isRegex": False, "isEqual": True}
        ],
        "endsAt": "2027-01-15T09:00:00Z",
        "createdBy": "ops",
        "comment": "deploying",
    }
    silence = e.put_silence(body)
    assert e.silenced_by({"alertname": "HighLatency"}, T) == [silence.id]
    assert e.silenced_by({"alertname": "Other"}, T) == []
    e.store.close()
    e2 = engine(storage, tmp_path / "s.db", Recorder())
    (kept,) = e2.silences()
    assert (kept.id, kept.comment, kept.state(T)) == (silence.id, "deploying", "active")
    ended = e2.expire_silence(silence.id)
    assert ended is not None
    assert ended.state(T) == "expired"
    assert e2.expire_silence("nope") is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "matchers"),
        (
            {
                "matchers": [{"name": "a", "value": ".*", "isRegex": True}],
                "endsAt": "2027-01-15T09:00:00Z",
            },
            "matchers",
        ),
        ({"matchers": [{"name": "a", "value": "x"}]}, "endsAt"),
        ({"matchers": [{"name": "a", "value": "x"}], "endsAt": "tomorrow"}, "endsAt"),
        ({"matchers": [{"name": "a", "value": "x"}], "endsAt": "2020-01-01T00:00:00Z"}, "endsAt"),
        (
            {"matchers": [{"name": "", "value": "x"}], "endsAt": "2027-01-15T09:00:00Z"},
            "matchers[0].name",
        ),
        (
            {
                "matchers": [{"name": "a", "value": "(", "isRegex": True}],
                "endsAt": "2027-01-15T09:00:00Z",
            },
            "matchers[0]",
        ),
        (
            {
                "matchers": [{"name": "a", "value": "x"}],
                "endsAt": "2027-01-15T09:00:00Z",
                "id": "nope",
            },
            "id",
        ),
    ],
)
def test_a_bad_silence_is_refused_naming_the_field(
    storage: Any, tmp_path: Path, body: dict[str, Any], field: str
) -> None:
    e = engine(storage, tmp_path / "s.db", Recorder())
    with pytest.raises(ValidationError) as err:
        e.put_silence(body)
    assert err.value.field == field
    assert e.silences() == []
