"""What an event rule remembers of the stream: matching events' times in its window,
or when each source was last heard from.

A threshold rule keeps the times of its matching events within the window, per
``by`` key, sorted (late events are inserted in place). At most ``MAX_KEPT`` per key:
the newest ones, which is what the condition needs (``above`` is capped below it); past
that the count reads as ``MAX_KEPT``. An absent rule keeps one time per source.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from telemetry.alerting.rules import ALERTS_SOURCE, EventRule
from telemetry.models import Event

__all__ = ["MAX_KEPT", "EventWindow"]

MAX_KEPT = 1_000_001
"""Most event times a threshold rule keeps per key (``above`` is at most 1,000,000)."""


class EventWindow:
    """The state of one event rule, fed batch by batch, read at any time."""

    def __init__(self, rule: EventRule, started: int) -> None:
        self.rule = rule
        self.times: dict[tuple[tuple[str, str], ...], list[int]] = {}
        # Absent rules: each listed source counts as last heard when watching began.
        self.last: dict[str, int] = (
            dict.fromkeys(rule.match.sources, started) if rule.absent_ns else {}
        )
        if rule.absent_ns and not rule.match.sources:
            self.last[""] = started

    def observe(self, events: Iterable[Event]) -> bool:
        """Take the events this rule matches; return whether any did.

        Runs on the stream's thread for every batch: the match is inlined (set lookups,
        no call per event) because most events match no rule.
        """
        rule, match = self.rule, self.rule.match
        sources = frozenset(match.sources) or None
        types = frozenset(match.types) or None
        text = match.text
        hit = False
        for e in events:
            if sources is None:
                if e.source == ALERTS_SOURCE:
                    continue
            elif e.source not in sources:
                continue
            etype = e.event_type
            if types is not None and etype not in types:
                continue
            if text is not None and text not in e.message.lower():
                continue
            hit = True
            if rule.absent_ns:
                src = e.source if match.sources else ""
                if e.time_ns > self.last.get(src, 0):
                    self.last[src] = e.time_ns
                continue
            key = tuple((f, e.source if f == "source" else etype.value) for f in rule.by)
            times = self.times.setdefault(key, [])
            if not times or e.time_ns >= times[-1]:
                times.append(e.time_ns)
            else:
                bisect.insort(times, e.time_ns)
            if len(times) > MAX_KEPT:
                del times[: len(times) - MAX_KEPT]
        return hit

    def samples(self, now: int) -> list[tuple[dict[str, str], float]]:
        """The rule's samples at ``now``: (labels, value) for each key over the condition."""
        rule = self.rule
        out: list[tuple[dict[str, str], float]] = []
        if rule.absent_ns:
            for src, last in sorted(self.last.items()):
                if now - last >= rule.absent_ns:
                    out.append(({"source": src} if src else {}, (now - last) / 1e9))
            return out
        lo = now - rule.window_ns
        for key in sorted(self.times):
            times = self.times[key]
            cut = bisect.bisect_right(times, lo)  # the window is (now - window, now]
            if cut:
                del times[:cut]
            if not times:
                del self.times[key]
                continue
            count = bisect.bisect_right(times, now)
            if count > rule.above:
                out.append((dict(key), float(count)))
        return out

    def next_change(self, now: int) -> int | None:
        """The earliest time after ``now`` at which :meth:`samples` may change with no new
        event: when an absent rule's silence reaches its limit, or a counted event leaves
        a window."""
        rule = self.rule
        if rule.absent_ns:
            due = [
                last + rule.absent_ns for last in self.last.values() if last + rule.absent_ns > now
            ]
            return min(due) if due else None
        edges = [t[0] + rule.window_ns for t in self.times.values() if t]
        later = [e for e in edges if e > now]
        return min(later) if later else None
