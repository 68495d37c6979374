"""From firing alerts to notifications, as Alertmanager decides them.

Each firing alert is routed (``Route.destinations``) into a group: one per route and
value of the route's ``group_by`` labels. A new group waits ``group_wait`` (so alerts
that fire together arrive together), then is looked at every ``group_interval``: it
notifies when an alert fired or resolved since it last notified, or, when nothing
changed, once ``repeat_interval`` has passed with alerts still firing. A notification
is Alertmanager's webhook JSON (version 4) with every alert of the group.

The notifier decides; it sends nothing. Its decisions (the groups' new states and the
notifications) are committed to the :class:`~telemetry.alerting.store.AlertStore` in
one transaction, and the delivery thread sends what the outbox holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from telemetry._time import rfc3339
from telemetry.alerting.rules import Receiver, Route
from telemetry.alerting.state import FIRING, Alert
from telemetry.alerting.store import AlertStore

__all__ = ["GroupState", "Notifier", "webhook_payload"]

_ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass
class GroupState:
    """What a group last told its receiver: the fingerprints it notified as firing."""

    key: str
    route: str
    receiver: str
    labels: dict[str, str]
    flush_at: int
    last_sent: int = 0
    notified: list[str] = field(default_factory=list)


def _group_key(route: Route, labels: Mapping[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{route.path}:{{{inner}}}"


def _alert_json(alert: Alert, status: str, now: int, generator_url: str) -> dict[str, Any]:
    ends = rfc3339(alert.resolved_at or now) if status == "resolved" else _ZERO_TIME
    return {
        "status": status,
        "labels": alert.labels,
        "annotations": alert.annotations,
        "startsAt": rfc3339(alert.active_at),
        "endsAt": ends,
        "generatorURL": generator_url,
        "fingerprint": alert.fp,
    }


def _common(dicts: list[dict[str, str]]) -> dict[str, str]:
    if not dicts:
        return {}
    first = dicts[0]
    return {k: v for k, v in first.items() if all(d.get(k) == v for d in dicts[1:])}


def webhook_payload(
    group: GroupState,
    receiver: Receiver,
    firing: list[Alert],
    resolved: list[Alert],
    *,
    now: int,
    external_url: str,
) -> dict[str, Any]:
    """Alertmanager's webhook body (version 4) for one group's notification."""
    generator = f"{external_url.rstrip('/')}/#alerts"
    alerts = [_alert_json(a, "firing", now, generator) for a in firing]
    alerts += [_alert_json(a, "resolved", now, generator) for a in resolved]
    truncated = 0
    if receiver.max_alerts and len(alerts) > receiver.max_alerts:
        truncated = len(alerts) - receiver.max_alerts
        alerts = alerts[: receiver.max_alerts]
    every = firing + resolved
    return {
        "version": "4",
        "groupKey": group.key,
        "truncatedAlerts": truncated,
        "status": "firing" if firing else "resolved",
        "receiver": receiver.name,
        "groupLabels": group.labels,
        "commonLabels": _common([a.labels for a in every]),
        "commonAnnotations": _common([a.annotations for a in every]),
        "externalURL": external_url,
        "alerts": alerts,
    }


class Notifier:
    """Alertmanager's grouping and timing over the engine's alerts."""

    def __init__(
        self,
        store: AlertStore,
        route: Route | None,
        receivers: Mapping[str, Receiver],
        external_url: str,
    ) -> None:
        self.store = store
        self.external_url = external_url
        self.groups = {k: GroupState(**v) for k, v in store.load_groups().items()}
        self.configure(route, receivers)

    def configure(self, route: Route | None, receivers: Mapping[str, Receiver]) -> None:
        """Take a reloaded route and receivers; groups of routes that are gone are dropped
        when they next flush."""
        self.route = route
        self.receivers = dict(receivers)
        self._routes = {r.path: r for r in _walk(route)} if route is not None else {}

    def tick(self, alerts: Iterable[Alert], silenced: set[str], now: int) -> int:
        """Route ``alerts`` (every alert of every rule; ``silenced`` fingerprints are held
        back), flush the groups that are due, and commit; return the notifications queued."""
        if self.route is None:
            return 0
        members: dict[str, list[Alert]] = {}
        for alert in alerts:
            if alert.state == "pending":
                continue
            for route in self.route.destinations(alert.labels):
                labels = route.group_labels(alert.labels)
                key = _group_key(route, labels)
                if key not in self.groups:
                    if alert.state != FIRING or alert.fp in silenced:
                        continue  # a resolved or silenced alert opens no group
                    self.groups[key] = GroupState(
                        key, route.path, route.receiver, labels, now + route.group_wait_ns
                    )
                members.setdefault(key, []).append(alert)
        changed: dict[str, dict[str, Any] | None] = {}
        queued: list[tuple[str, str, str, bytes]] = []
        for key, group in list(self.groups.items()):
            if group.flush_at > now:
                continue
            where = self._routes.get(group.route)
            receiver = self.receivers.get(group.receiver)
            if where is None or receiver is None or where.receiver != group.receiver:
                del self.groups[key]  # its route or receiver went away in a reload
                changed[key] = None
                continue
            queued += self._flush(
                group, where, receiver, members.get(key, []), silenced=silenced, now=now
            )
            if not group.notified and not any(a.state == FIRING for a in members.get(key, [])):
                del self.groups[key]
                changed[key] = None
            else:
                changed[key] = dict(group.__dict__)
        if changed:
            self.store.commit_groups(changed, queued, now)
        return len(queued)

    def _flush(
        self,
        group: GroupState,
        route: Route,
        receiver: Receiver,
        alerts: list[Alert],
        *,
        silenced: set[str],
        now: int,
    ) -> list[tuple[str, str, str, bytes]]:
        group.flush_at = now + route.group_interval_ns
        firing = [a for a in alerts if a.state == FIRING and a.fp not in silenced]
        firing_fps = {a.fp for a in firing}
        held = {fp for fp in group.notified if fp in silenced}
        gone = [fp for fp in group.notified if fp not in firing_fps and fp not in held]
        by_fp = {a.fp: a for a in alerts}
        resolved = [by_fp[fp] for fp in gone if fp in by_fp]
        new = firing_fps - set(group.notified)
        due = bool(new) or (bool(resolved) and receiver.send_resolved)
        if not due and firing and now - group.last_sent >= route.repeat_interval_ns:
            due = True
        group.notified = sorted(firing_fps | held)
        if not due:
            return []
        group.last_sent = now
        body = webhook_payload(
            group, receiver, firing, resolved, now=now, external_url=self.external_url
        )
        encoded = msgspec.json.encode(body)
        nid = str(uuid.uuid4())
        return [(nid, receiver.name, url, encoded) for url in receiver.urls]


def _walk(route: Route) -> Iterable[Route]:
    yield route
    for child in route.routes:
        yield from _walk(child)
