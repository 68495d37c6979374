"""``MemoryStorage``: a bounded in-process store, evicting the oldest records first."""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime
from typing import Any

from telemetry.errors import ValidationError
from telemetry.models import Event, Metric, TelemetryData, to_ns
from telemetry.storage.scanning import ScanningStorage

__all__ = ["MemoryStorage"]

# Eviction order holds one token per record held, oldest stored first: ``None``
# for an event, the metric's name for a point (a name may be any string, "" too).
_EVENT = None


class MemoryStorage(ScanningStorage):
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
                f"max_records={max_records!r}: must be an integer of at least 1, or None",
                field="max_records",
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

    def scan_events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def scan_points(self, name: str | None) -> list[Metric]:
        with self._lock:
            if name is not None:
                return list(self._metrics.get(name, ()))
            return [p for points in self._metrics.values() for p in points]

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
