"""Alert states: pending, firing, resolved, moved by Prometheus' rules.

A rule's evaluation gives the samples that meet its condition now; :func:`advance`
moves the rule's alerts from them, exactly as Prometheus' ``AlertingRule.Eval`` does:

- a new sample is a *pending* alert, active since now; it *fires* once it has been
  active for ``for`` (at once with ``for: 0``);
- a pending alert whose sample disappears is forgotten (no notification: it never fired);
- a firing alert whose sample disappears keeps firing for ``keep_firing_for``, then is
  *resolved* (``inactive``); a resolved alert is kept for 15 minutes so notifiers can
  say so, and a sample that comes back starts a new pending alert.

Times are integer nanoseconds passed in, so the same inputs always give the same states.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "RESOLVED_RETENTION_NS",
    "Alert",
    "Transition",
    "advance",
    "fingerprint",
]

RESOLVED_RETENTION_NS = 15 * 60 * 1_000_000_000
"""How long a resolved alert stays listed (Prometheus' ``resolvedRetention``)."""

PENDING, FIRING, INACTIVE = "pending", "firing", "inactive"


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable 16-hex-digit identity of a label set (the order of labels does not matter)."""
    text = "\xff".join(f"{k}\xfe{v}" for k, v in sorted(labels.items()))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@dataclass
class Alert:
    """One alert of one rule: a label set and where it stands."""

    rule: str
    labels: dict[str, str]
    annotations: dict[str, str]
    state: str
    value: float
    active_at: int
    fired_at: int = 0
    resolved_at: int = 0
    last_seen: int = 0
    keep_firing_since: int = 0
    fp: str = field(default="")

    def __post_init__(self) -> None:
        if not self.fp:
            self.fp = fingerprint(self.labels)

    @property
    def name(self) -> str:
        """The ``alertname`` label."""
        return self.labels.get("alertname", "")

    def to_dict(self) -> dict[str, Any]:
        """The alert as plain data (what the state store keeps)."""
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        """The alert :meth:`to_dict` gave."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class Transition:
    """An alert that changed state at ``at`` (``old`` is ``""`` for a new alert)."""

    alert: Alert
    old: str
    new: str
    at: int


Render = Callable[[Mapping[str, str], float], tuple[dict[str, str], dict[str, str]]]
"""(sample labels, value) -> (alert labels, annotations)."""


def advance(
    rule: str,
    alerts: dict[str, Alert],
    samples: Iterable[tuple[Mapping[str, str], float]],
    now: int,
    *,
    for_ns: int,
    keep_firing_for_ns: int,
    render: Render,
) -> list[Transition]:
    """Move ``alerts`` (a rule's, by fingerprint; changed in place) to what ``samples``
    say at ``now``; return the transitions, in a stable order.

    Raises:
        ValueError: two samples give the same alert labels (Prometheus refuses these too).
    """
    changes: list[Transition] = []
    seen: set[str] = set()
    for sample_labels, value in samples:
        labels, annotations = render(sample_labels, value)
        fp = fingerprint(labels)
        if fp in seen:
            raise ValueError(
                "vector contains metrics with the same labelset after applying alert labels"
            )
        seen.add(fp)
        alert = alerts.get(fp)
        if alert is not None and alert.state != INACTIVE:
            alert.value, alert.annotations, alert.last_seen = value, annotations, now
            alert.keep_firing_since = 0
            continue
        alert = Alert(rule, labels, annotations, PENDING, value, now, last_seen=now, fp=fp)
        alerts[fp] = alert
        changes.append(Transition(alert, "", PENDING, now))
    for fp in sorted(alerts):
        alert = alerts[fp]
        if fp not in seen:
            if alert.state == PENDING:
                del alerts[fp]
                changes.append(Transition(alert, PENDING, INACTIVE, now))
            elif alert.state == FIRING:
                if keep_firing_for_ns > 0:
                    if not alert.keep_firing_since:
                        alert.keep_firing_since = now
                    if now - alert.keep_firing_since < keep_firing_for_ns:
                        continue
                alert.state, alert.resolved_at = INACTIVE, now
                changes.append(Transition(alert, FIRING, INACTIVE, now))
            elif now - alert.resolved_at > RESOLVED_RETENTION_NS:
                del alerts[fp]
            continue
        if alert.state == PENDING and now - alert.active_at >= for_ns:
            alert.state, alert.fired_at = FIRING, now
            changes.append(Transition(alert, PENDING, FIRING, now))
    return changes
