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

# Eviction order holds one token per record held, oldest stored first: ``None``
# for an event, the metric's name for a point (a name may be any string, "" too).
_EVENT = None


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
        self._order: deque[str | None] = deque()
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
                    if token is _EVENT:
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
        return _query.select_points(
            self._points(name), tags=tags, since=since, until=until, limit=limit
        )

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
            # Walk the eviction order once: each token names the kind of the next
            # record of that kind, so the kept tokens keep their relative order.
            events = iter(self._events)
            series = {name: iter(points) for name, points in self._metrics.items()}
            kept_order: deque[str | None] = deque()
            kept_events: deque[Event] = deque()
            kept_metrics: dict[str, deque[Metric]] = {}
            removed = 0
            for token in self._order:
                if token is _EVENT:
                    event = next(events)
                    if event.time_ns >= cutoff:
                        kept_events.append(event)
                        kept_order.append(token)
                        continue
                else:
                    p = next(series[token])
                    if p.time_ns >= cutoff:
                        kept_metrics.setdefault(token, deque()).append(p)
                        kept_order.append(token)
                        continue
                removed += 1
            self._events = kept_events
            self._metrics = kept_metrics
            self._order = kept_order
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
