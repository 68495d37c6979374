"""Notification decisions as Alertmanager makes them: group_wait, group_interval,
repeat_interval, resolved notifications, silences, and what a restart remembers. The
decisions are read back from the outbox of a real state file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from telemetry.alerting.notify import Notifier
from telemetry.alerting.rules import Receiver, Route
from telemetry.alerting.state import Alert
from telemetry.alerting.store import AlertStore

S = 1_000_000_000
ROUTE = Route(
    receiver="hook",
    group_by=("alertname",),
    group_wait_ns=30 * S,
    group_interval_ns=300 * S,
    repeat_interval_ns=3600 * S,
)
HOOK = Receiver("hook", ("http://127.0.0.1:9/a", "http://127.0.0.1:9/b"))


def alert(name: str, instance: str, state: str = "firing", at: int = 0) -> Alert:
    labels = {"alertname": name, "instance": instance, "severity": "page"}
    return Alert("rule", labels, {"summary": f"{instance} down"}, state, 1.0, at * S)


class Scenario:
    def __init__(self, path: Path, receiver: Receiver = HOOK) -> None:
        self.store = AlertStore(path)
        self.notifier = Notifier(self.store, ROUTE, {"hook": receiver}, "http://rimp:8787/")

    def tick(
        self, t: int, alerts: list[Alert], silenced: set[str] | None = None
    ) -> list[dict[str, Any]]:
        """The notifications decided at ``t`` (the bodies sent to the first URL), taken
        out of the outbox as the delivery thread would."""
        self.notifier.tick(alerts, silenced or set(), t * S)
        bodies = []
        while (item := self.store.next_due(2**62)) is not None:
            self.store.delivered(item.id)
            if item.url.endswith("/a"):
                bodies.append(msgspec.json.decode(item.body))
        return bodies


@pytest.fixture
def sc(tmp_path: Path) -> Scenario:
    return Scenario(tmp_path / "alerts.db")


def statuses(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(a["labels"]["instance"], a["status"]) for a in body["alerts"]]


def test_the_group_waits_then_notifies_every_change_at_its_interval(sc: Scenario) -> None:
    a, b = alert("Down", "a"), alert("Down", "b", at=60)
    assert sc.tick(0, [a]) == []
    assert sc.tick(29, [a]) == []
    (first,) = sc.tick(30, [a])
    assert first["status"] == "firing"
    assert statuses(first) == [("a", "firing")]
    assert sc.tick(60, [a, b]) == []  # b waits for the group's next interval
    (second,) = sc.tick(330, [a, b])
    assert statuses(second) == [("a", "firing"), ("b", "firing")]
    a.state, a.resolved_at = "inactive", 400 * S
    assert sc.tick(400, [a, b]) == []
    (third,) = sc.tick(630, [a, b])
    assert third["status"] == "firing"
    assert statuses(third) == [("b", "firing"), ("a", "resolved")]
    resolved = third["alerts"][1]
    assert resolved["endsAt"].startswith("1970-01-01T00:06:40")
    assert sc.tick(930, [a, b]) == []  # nothing changed, repeat_interval not reached
    assert sc.tick(3930, [b]) == []  # 3300 s since the last notification, at 630
    (repeat,) = sc.tick(630 + 3600, [b])
    assert statuses(repeat) == [("b", "firing")]
    b.state, b.resolved_at = "inactive", 4300 * S
    (last,) = sc.tick(4530, [b])
    assert last["status"] == "resolved"
    assert statuses(last) == [("b", "resolved")]
    assert sc.notifier.groups == {}  # nothing left to say: the group is gone


def test_the_body_is_alertmanagers_webhook_version_4(sc: Scenario) -> None:
    sc.tick(0, [alert("Down", "a")])
    (body,) = sc.tick(30, [alert("Down", "a")])
    assert body["version"] == "4"
    assert body["receiver"] == "hook"
    assert body["groupKey"] == '/:{alertname="Down"}'
    assert body["groupLabels"] == {"alertname": "Down"}
    assert body["commonLabels"] == {"alertname": "Down", "instance": "a", "severity": "page"}
    assert body["commonAnnotations"] == {"summary": "a down"}
    assert body["externalURL"] == "http://rimp:8787/"
    assert body["truncatedAlerts"] == 0
    (a,) = body["alerts"]
    assert a["startsAt"] == "1970-01-01T00:00:00.000000000Z"
    assert a["endsAt"] == "0001-01-01T00:00:00Z"
    assert a["generatorURL"] == "http://rimp:8787/#alerts"
    assert set(a) == {
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
    }


def test_every_url_of_the_receiver_gets_the_notification(sc: Scenario) -> None:
    sc.notifier.tick([alert("Down", "a")], set(), 0)
    sc.notifier.tick([alert("Down", "a")], set(), 30 * S)
    urls = [row["url"] for row in sc.store.outbox()]
    assert urls == ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]
    assert len({row["nid"] for row in sc.store.outbox()}) == 1  # one notification, two copies


def test_groups_follow_group_by(sc: Scenario) -> None:
    bodies = sc.tick(0, [alert("Down", "a"), alert("Slow", "a")])
    assert bodies == []
    bodies = sc.tick(30, [alert("Down", "a"), alert("Slow", "a")])
    assert sorted(b["groupLabels"]["alertname"] for b in bodies) == ["Down", "Slow"]


def test_a_silenced_alert_is_held_back_and_not_reported_resolved(sc: Scenario) -> None:
    a, b = alert("Down", "a"), alert("Down", "b")
    sc.tick(0, [a, b])
    (first,) = sc.tick(30, [a, b], silenced={b.fp})
    assert statuses(first) == [("a", "firing")]
    # b silenced while firing and notified: no 'resolved' for it, no repeat.
    assert sc.tick(330, [a, b], silenced={a.fp, b.fp}) == []
    # The silence ends: b is new to the receiver.
    (again,) = sc.tick(630, [a, b])
    assert statuses(again) == [("a", "firing"), ("b", "firing")]


def test_an_alert_resolved_before_the_group_waited_notifies_nothing(sc: Scenario) -> None:
    a = alert("Down", "a")
    sc.tick(0, [a])
    a.state, a.resolved_at = "inactive", 10 * S
    assert sc.tick(30, [a]) == []
    assert sc.notifier.groups == {}


def test_send_resolved_false_skips_resolved_only_notifications(tmp_path: Path) -> None:
    sc = Scenario(
        tmp_path / "a.db", Receiver("hook", ("http://127.0.0.1:9/a",), send_resolved=False)
    )
    a = alert("Down", "a")
    sc.tick(0, [a])
    assert len(sc.tick(30, [a])) == 1
    a.state, a.resolved_at = "inactive", 40 * S
    assert sc.tick(330, [a]) == []


def test_max_alerts_truncates_and_says_how_many(tmp_path: Path) -> None:
    sc = Scenario(tmp_path / "a.db", Receiver("hook", ("http://127.0.0.1:9/a",), max_alerts=2))
    many = [alert("Down", str(i)) for i in range(5)]
    sc.tick(0, many)
    (body,) = sc.tick(30, many)
    assert len(body["alerts"]) == 2
    assert body["truncatedAlerts"] == 3


def test_a_restart_remembers_what_was_notified(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    first = Scenario(path)
    a = alert("Down", "a")
    first.tick(0, [a])
    assert len(first.tick(30, [a])) == 1
    first.store.close()
    second = Scenario(path)  # a new process on the same file
    assert second.tick(330, [a]) == []  # already told: no second notification
    a.state, a.resolved_at = "inactive", 400 * S
    (body,) = second.tick(630, [a])
    assert statuses(body) == [("a", "resolved")]
