"""``MemoryStorage``: a bounded in-process store, evicting the oldest records first."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from telemetry.errors import ValidationError
from telemetry.models import Bucket, Event, EventType, Metric, SeriesInfo, TelemetryData, to_ns
from telemetry.storage import _query
from telemetry.storage.base import Storage, TimeArg

__all__ = ["MemoryStorage"]

_EVENT = ""  # eviction-order token for an event; metric tokens are their names (never "")


class MemoryStorage(Storage):
    """Keeps the newest ``max_records`` records (events and metrics together) in memory.

    Example::

        storage = MemoryStorage(max_records=50_000)
        stream = TelemetryStream(collector, storage)
        ...
        storage.aggregate("response_time", agg="p95", bucket=60)

    When full, each new record evicts the oldest one; ``stats()["evicted"]``
    counts them. ``max_records=None`` removes the bound.
    """

    def __init__(self, max_records: int | None = 100_000) -> None:
        if max_records is not None and (
            not isinstance(max_records, int) or isinstance(max_records, bool) or max_records < 1
        ):
            raise ValidationError(
                f"max_records={max_records!r}: must be an integer of at least 1, or None"
            )
        self.max_records = max_records
        self._lock = threading.Lock()
        self._events: deque[Event] = deque()
        self._metrics: dict[str, deque[Metric]] = {}
        self._order: deque[str] = deque()
        self._evicted = 0

    def store(self, data: TelemetryData) -> None:
        """Add a batch, evicting the oldest records beyond ``max_records``."""
        with self._lock:
            order = self._order
            if data.events:
                self._events.extend(data.events)
                order.extend(_EVENT for _ in data.events)
            for m in data.metrics:
                series = self._metrics.get(m.name)
                if series is None:
                    series = self._metrics[m.name] = deque()
                series.append(m)
                order.append(m.name)
            limit = self.max_records
            if limit is not None:
                while len(order) > limit:
                    token = order.popleft()
                    if token == _EVENT:
                        self._events.popleft()
                    else:
                        self._metrics[token].popleft()
                    self._evicted += 1

    def _events_snapshot(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def _points(self, name: str) -> list[Metric]:
        with self._lock:
            return list(self._metrics.get(name, ()))

    def query_events(
        self,
        *,
        source: str | None = None,
        event_type: EventType | str | None = None,
        since: TimeArg = None,
        until: TimeArg = None,
        search: str | None = None,
        limit: int | None = 100,
    ) -> list[Event]:
        """See :meth:`Storage.query_events`."""
        return _query.filter_events(
            self._events_snapshot(),
            source=source,
            event_type=event_type,
            since=since,
            until=until,
            search=search,
            limit=limit,
        )

    def query_metrics(
        self,
        name: str,
        *,
        tags: dict[str, str] | None = None,
        since: TimeArg = None,
        until: TimeArg = None,
        limit: int | None = None,
    ) -> list[Metric]:
        """See :meth:`Storage.query_metrics`."""
        lo, hi = _query.window(since, until)
        limit = _query.check_limit(limit)
        found = [
            p
            for p in self._points(name)
            if (lo is None or p.time_ns >= lo)
            and (hi is None or p.time_ns < hi)
            and _query.tags_match(p.tags, tags)
        ]
        found.sort(key=lambda p: p.time_ns)
        return found if limit is None else found[-limit:]

    def aggregate(
        self,
        name: str,
        *,
        agg: str = "avg",
        bucket: float | timedelta = 60,
        since: TimeArg = None,
        until: TimeArg = None,
        tags: dict[str, str] | None = None,
        group_by: Sequence[str] | None = None,
    ) -> list[Bucket]:
        """See :meth:`Storage.aggregate`."""
        return _query.aggregate_points(
            self._points(name),
            agg=agg,
            bucket=bucket,
            since=since,
            until=until,
            tags=tags,
            group_by=group_by,
        )

    def count_events(
        self,
        *,
        bucket: float | timedelta = 60,
        since: TimeArg = None,
        until: TimeArg = None,
        source: str | None = None,
        event_type: EventType | str | None = None,
        group_by: Sequence[str] = ("event_type",),
    ) -> list[Bucket]:
        """See :meth:`Storage.count_events`."""
        return _query.count_event_buckets(
            self._events_snapshot(),
            bucket=bucket,
            since=since,
            until=until,
            source=source,
            event_type=event_type,
            group_by=group_by,
        )

    def series(self, name: str | None = None) -> list[SeriesInfo]:
        """See :meth:`Storage.series`."""
        with self._lock:
            names = [name] if name is not None else list(self._metrics)
            points = [p for n in names for p in self._metrics.get(n, ())]
        return _query.latest_series(points)

    def delete_before(self, t: datetime | int) -> int:
        """See :meth:`Storage.delete_before`."""
        cutoff = to_ns(t, "t")
        with self._lock:
            kept_events = deque(e for e in self._events if e.time_ns >= cutoff)
            removed = len(self._events) - len(kept_events)
            self._events = kept_events
            for name, series in list(self._metrics.items()):
                kept = deque(p for p in series if p.time_ns >= cutoff)
                removed += len(series) - len(kept)
                if kept:
                    self._metrics[name] = kept
                else:
                    del self._metrics[name]
            # Rebuild the eviction order: still oldest-stored first within each kind.
            self._order = deque(
                [_EVENT] * len(self._events) + [n for n, s in self._metrics.items() for _ in s]
            )
        return removed

    def stats(self) -> dict[str, Any]:
        """``events``, ``metrics`` held, ``evicted`` so far, ``max_records``."""
        with self._lock:
            return {
                "events": len(self._events),
                "metrics": sum(len(s) for s in self._metrics.values()),
                "evicted": self._evicted,
                "max_records": self.max_records,
            }
