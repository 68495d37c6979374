"""Event rules over the stream: bursts at the window's edges, late events, grouping by
source, and the absent form, against hand-computed counts."""

from __future__ import annotations

from telemetry.alerting.eventwindows import EventWindow
from telemetry.alerting.rules import ALERTS_SOURCE, EventMatch, EventRule
from telemetry.models import Event, EventType

S = 1_000_000_000


def ev(t: float, source: str = "billing", etype: str = "error", message: str = "boom") -> Event:
    return Event(source, message, EventType(etype), {}, int(t * S), f"id{t}")


def burst(**fields: object) -> EventRule:
    base: dict[str, object] = {
        "name": "Burst",
        "group": "g",
        "match": EventMatch(("billing",), ("error",)),
        "window_ns": 60 * S,
        "above": 2,
    }
    return EventRule(**{**base, **fields})  # type: ignore[arg-type]


class TestThreshold:
    def test_fires_only_with_more_than_above_inside_the_window(self) -> None:
        w = EventWindow(burst(), 0)
        w.observe([ev(10), ev(20)])
        assert w.samples(30 * S) == []
        w.observe([ev(30)])
        assert w.samples(30 * S) == [({}, 3.0)]

    def test_the_window_is_open_at_its_start_and_closed_at_now(self) -> None:
        w = EventWindow(burst(), 0)
        w.observe([ev(0), ev(30), ev(60)])
        # (0, 60]: the event at exactly now - window is out, the one at now is in.
        assert w.samples(60 * S) == []
        w.observe([ev(59.999)])
        assert w.samples(60 * S) == [({}, 3.0)]
        # One nanosecond later the event at 0 stays out; the burst still holds 3.
        assert w.samples(60 * S + 1) == [({}, 3.0)]
        # When the event at 30 leaves, 59.999 and 60 are left: 2, not above 2.
        assert w.samples(90 * S) == []

    def test_events_after_now_wait_for_their_time(self) -> None:
        w = EventWindow(burst(), 0)
        w.observe([ev(10), ev(11), ev(12)])
        assert w.samples(11 * S) == []  # the event at 12 is not in (-49, 11] yet
        assert w.samples(12 * S) == [({}, 3.0)]

    def test_a_late_event_is_counted_in_its_place(self) -> None:
        w = EventWindow(burst(), 0)
        w.observe([ev(50), ev(55)])
        w.observe([ev(20)])  # arrives after newer ones
        assert w.samples(56 * S) == [({}, 3.0)]
        assert w.next_change(56 * S) == 80 * S  # when the event at 20 leaves
        assert w.samples(81 * S) == []  # two remain

    def test_only_matching_events_count(self) -> None:
        rule = burst(match=EventMatch(("billing",), ("error", "critical"), "timeout"))
        w = EventWindow(rule, 0)
        hit = w.observe([
            ev(1, message="upstream TIMEOUT"),
            ev(2, etype="critical", message="timeout again"),
            ev(3, etype="warning", message="timeout"),
            ev(4, source="api", message="timeout"),
            ev(5, message="refused"),
        ])  # fmt: skip
        assert hit
        assert w.samples(10 * S) == []
        w.observe([ev(6, message="Timeout")])
        assert w.samples(10 * S) == [({}, 3.0)]

    def test_by_source_gives_one_sample_per_source(self) -> None:
        rule = burst(match=EventMatch((), ("error",)), by=("source",), above=1)
        w = EventWindow(rule, 0)
        w.observe([ev(1, "a"), ev(2, "a"), ev(3, "b"), ev(4, "c"), ev(5, "c"), ev(6, "c")])
        assert w.samples(10 * S) == [({"source": "a"}, 2.0), ({"source": "c"}, 3.0)]

    def test_any_source_leaves_out_rimps_own_alert_events(self) -> None:
        w = EventWindow(burst(match=EventMatch(), above=0), 0)
        assert not w.observe([ev(1, ALERTS_SOURCE)])
        assert w.samples(2 * S) == []


class TestAbsent:
    def rule(self, sources: tuple[str, ...] = ("api",)) -> EventRule:
        return burst(match=EventMatch(sources), absent_ns=600 * S)

    def test_fires_when_nothing_came_for_absent_for_since_watching_began(self) -> None:
        w = EventWindow(self.rule(), 100 * S)
        assert w.samples(699 * S) == []
        assert w.samples(700 * S) == [({"source": "api"}, 600.0)]

    def test_an_event_resets_the_silence(self) -> None:
        w = EventWindow(self.rule(), 0)
        w.observe([ev(300, "api", "info")])
        assert w.samples(899 * S) == []
        assert w.next_change(899 * S) == 900 * S
        assert w.samples(900 * S) == [({"source": "api"}, 600.0)]

    def test_each_listed_source_is_watched_on_its_own(self) -> None:
        w = EventWindow(self.rule(("api", "search")), 0)
        w.observe([ev(500, "search", "info"), ev(500, "other", "info")])
        assert w.samples(700 * S) == [({"source": "api"}, 700.0)]

    def test_an_older_event_does_not_move_last_seen_back(self) -> None:
        w = EventWindow(self.rule(), 0)
        w.observe([ev(500, "api", "info"), ev(100, "api", "info")])
        assert w.samples(1099 * S) == []
