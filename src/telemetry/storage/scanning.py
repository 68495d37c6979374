"""``ScanningStorage``: the whole query protocol for a backend that can list its records.

A backend that can produce its stored records implements ``store``,
``scan_events``, ``scan_points`` and ``delete_before``; this base answers every
query (filters, windows, aggregates with percentiles, event counts, series) by
scanning them, exactly as the memory and file backends do. It suits small and
custom stores; a large store answers from indexes instead (``DatabaseStorage``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta

from telemetry.models import Bucket, Event, EventType, Metric, SeriesInfo
from telemetry.storage import _query
from telemetry.storage.base import Storage, TimeArg

__all__ = ["ScanningStorage"]


class ScanningStorage(Storage):
    """A storage whose queries scan ``scan_events()`` and ``scan_points(name)``.

    Example (see ``examples/custom_storage.py`` for a CSV backend that passes the
    conformance suite this way)::

        class ListStorage(ScanningStorage):
            def __init__(self):
                self.events, self.points = [], []
            def store(self, data):
                self.events += data.events
                self.points += data.metrics
            def scan_events(self):
                return self.events
            def scan_points(self, name):
                return [p for p in self.points if name is None or p.name == name]
    """

    def scan_events(self) -> Iterable[Event]:
        """Every stored event, in storage order."""
        raise NotImplementedError

    def scan_points(self, name: str | None) -> Iterable[Metric]:
        """The stored points of metric ``name`` (all metrics when None), in storage order."""
        raise NotImplementedError

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
            self.scan_events(),
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
            self.scan_points(name), tags=tags, since=since, until=until, limit=limit
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
            self.scan_points(name),
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
            self.scan_events(),
            bucket=bucket,
            since=since,
            until=until,
            source=source,
            event_type=event_type,
            group_by=group_by,
        )

    def series(self, name: str | None = None) -> list[SeriesInfo]:
        """See :meth:`Storage.series`."""
        return _query.latest_series(self.scan_points(name))
