"""``ScanningStorage``: the query half of the protocol for backends that scan records.

The memory and file backends keep records as decoded objects (or can produce
them); they only say how to iterate events and the points of a metric, and
this base answers every query through ``_query``, so both answer identically.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta

from telemetry.models import Bucket, Event, EventType, Metric, SeriesInfo
from telemetry.storage import _query
from telemetry.storage.base import Storage, TimeArg

__all__ = ["ScanningStorage"]


class ScanningStorage(Storage):
    """A storage whose queries scan ``_scan_events()`` and ``_scan_points(name)``."""

    def _scan_events(self) -> Iterable[Event]:
        """Every stored event, in storage order."""
        raise NotImplementedError

    def _scan_points(self, name: str | None) -> Iterable[Metric]:
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
            self._scan_events(),
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
            self._scan_points(name), tags=tags, since=since, until=until, limit=limit
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
            self._scan_points(name),
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
            self._scan_events(),
            bucket=bucket,
            since=since,
            until=until,
            source=source,
            event_type=event_type,
            group_by=group_by,
        )

    def series(self, name: str | None = None) -> list[SeriesInfo]:
        """See :meth:`Storage.series`."""
        return _query.latest_series(self._scan_points(name))
