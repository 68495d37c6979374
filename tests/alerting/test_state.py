"""Alert states against hand-computed expectations: ``for``, resolution, flapping,
``keep_firing_for`` and the 15-minute retention of resolved alerts (Prometheus' rules)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from telemetry.alerting.state import RESOLVED_RETENTION_NS, Alert, advance, fingerprint

S = 1_000_000_000
UP = [({"__name__": "up", "job": "api"}, 1.0)]
NONE: list[tuple[dict[str, str], float]] = []


def render(sample: Mapping[str, str], value: float) -> tuple[dict[str, str], dict[str, str]]:
    labels = {k: v for k, v in sample.items() if k != "__name__"}
    return {**labels, "alertname": "Down"}, {"summary": f"value {value}"}


def run(
    timeline: list[tuple[int, list[tuple[dict[str, str], float]]]],
    *,
    for_s: int = 0,
    keep_s: int = 0,
) -> tuple[dict[str, Alert], list[tuple[int, str, str]]]:
    alerts: dict[str, Alert] = {}
    seen: list[tuple[int, str, str]] = []
    for t, samples in timeline:
        changes = advance(
            "r", alerts, samples, t * S, for_ns=for_s * S, keep_firing_for_ns=keep_s * S,
            render=render,
        )  # fmt: skip
        seen.extend((t, c.old, c.new) for c in changes)
    return alerts, seen


def only(alerts: dict[str, Alert]) -> Alert:
    assert len(alerts) == 1, alerts
    return next(iter(alerts.values()))


class TestFor:
    def test_pending_until_for_has_passed_then_firing(self) -> None:
        alerts, seen = run([(0, UP), (10, UP), (20, UP), (29, UP), (30, UP)], for_s=30)
        assert seen == [(0, "", "pending"), (30, "pending", "firing")]
        a = only(alerts)
        assert (a.state, a.active_at, a.fired_at) == ("firing", 0, 30 * S)
        assert a.labels == {"job": "api", "alertname": "Down"}
        assert a.annotations == {"summary": "value 1.0"}

    def test_for_zero_fires_in_the_first_evaluation(self) -> None:
        alerts, seen = run([(5, UP)])
        assert seen == [(5, "", "pending"), (5, "pending", "firing")]
        assert only(alerts).fired_at == 5 * S

    def test_resolved_when_the_sample_goes_and_kept_15_minutes(self) -> None:
        retention = RESOLVED_RETENTION_NS // S
        alerts, seen = run([(0, UP), (10, UP), (20, NONE), (20 + retention, NONE)], for_s=10)
        assert seen == [(0, "", "pending"), (10, "pending", "firing"), (20, "firing", "inactive")]
        a = only(alerts)
        assert (a.state, a.resolved_at) == ("inactive", 20 * S)
        alerts, _ = run([(0, UP), (10, UP), (20, NONE), (21 + retention, NONE)], for_s=10)
        assert alerts == {}

    def test_a_sample_back_after_resolution_is_a_new_pending_alert(self) -> None:
        alerts, seen = run([(0, UP), (10, NONE), (20, UP)])
        assert seen[-2:] == [(20, "", "pending"), (20, "pending", "firing")]
        assert only(alerts).active_at == 20 * S


class TestFlapping:
    def test_pending_that_disappears_is_forgotten_and_its_for_restarts(self) -> None:
        timeline = [(0, UP), (10, UP), (20, NONE), (30, UP), (40, UP), (50, UP), (60, UP)]
        alerts, seen = run(timeline, for_s=30)
        assert seen == [
            (0, "", "pending"),
            (20, "pending", "inactive"),
            (30, "", "pending"),
            (60, "pending", "firing"),
        ]
        assert only(alerts).active_at == 30 * S


class TestKeepFiringFor:
    def test_keeps_firing_through_a_gap_shorter_than_keep_firing_for(self) -> None:
        alerts, seen = run([(0, UP), (10, NONE), (20, NONE), (25, UP), (40, NONE)], keep_s=20)
        assert seen == [(0, "", "pending"), (0, "pending", "firing")]
        a = only(alerts)
        assert a.state == "firing"
        assert a.keep_firing_since == 40 * S  # reset at 25 when the sample came back

    def test_resolves_once_keep_firing_for_has_passed(self) -> None:
        alerts, seen = run([(0, UP), (10, NONE), (20, NONE), (29, NONE), (30, NONE)], keep_s=20)
        assert seen[-1] == (30, "firing", "inactive")
        assert only(alerts).resolved_at == 30 * S

    def test_does_not_hold_a_pending_alert(self) -> None:
        alerts, seen = run([(0, UP), (10, NONE)], for_s=60, keep_s=600)
        assert seen == [(0, "", "pending"), (10, "pending", "inactive")]
        assert alerts == {}


def test_each_sample_is_its_own_alert_by_labels() -> None:
    two = [({"job": "api"}, 1.0), ({"job": "db"}, 2.0)]
    alerts, _ = run([(0, two), (10, two[:1])])
    states = {a.labels["job"]: a.state for a in alerts.values()}
    assert states == {"api": "firing", "db": "inactive"}


def test_samples_that_render_to_the_same_labels_are_refused() -> None:
    same = [({"__name__": "a", "job": "x"}, 1.0), ({"__name__": "b", "job": "x"}, 2.0)]
    with pytest.raises(ValueError, match="same labelset"):
        run([(0, same)])


def test_fingerprint_ignores_label_order_and_separates_values() -> None:
    assert fingerprint({"a": "1", "b": "2"}) == fingerprint({"b": "2", "a": "1"})
    assert fingerprint({"a": "1b"}) != fingerprint({"a": "1", "b": ""})
    assert len(fingerprint({})) == 16
