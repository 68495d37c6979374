"""The storage protocol every backend implements.

A backend subclasses :class:`Storage` and implements at least :meth:`Storage.store`.
The built-in backends implement the whole protocol and pass one shared
conformance suite, :class:`telemetry.testing.conformance.StorageConformance`,
which a backend of your own can run too (docs/storage.md, "Writing a backend").
:class:`~telemetry.storage.ScanningStorage` answers every query for a backend
that can list its records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

from telemetry.models import Bucket, Event, EventType, Metric, SeriesInfo, TelemetryData

__all__ = ["AGGREGATES", "Storage", "TimeArg"]

TimeArg = datetime | int | None
"""A point in time for queries: aware ``datetime`` (naive is UTC) or ``int`` ns."""

AGGREGATES: tuple[str, ...] = (
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "p50",
    "p90",
    "p95",
    "p99",
    "rate",
    "last",
)


class Storage:
    """Base class of storage backends.

    Example of a custom backend (only ``store`` is required)::

        class PrintStorage(Storage):
            def store(self, data: TelemetryData) -> None:
                print(len(data.events), len(data.metrics))

    The query methods of this base class raise ``NotImplementedError`` naming
    the backend and the method.
    """

    def store(self, data: TelemetryData) -> None:
        """Write a batch. Durable on return for durable backends."""
        raise NotImplementedError(f"{type(self).__name__} does not implement store()")

    def store_many(self, batches: Sequence[TelemetryData]) -> None:
        """Write several batches at once (a bus writer's fetched messages).

        The default merges them into one :meth:`store`. A backend that keeps
        re-stored batches idempotent by how it cuts them (``PostgresStorage``) overrides
        it to keep each batch's cut, so that a batch delivered again, alone or with
        others, stores nothing twice.
        """
        if len(batches) == 1:
            self.store(batches[0])
            return
        merged = TelemetryData()
        for batch in batches:
            merged.events.extend(batch.events)
            merged.metrics.extend(batch.metrics)
            merged.receipts.update(batch.receipts)
        self.store(merged)

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
        """Events matching every filter given, newest first, at most ``limit``.

        ``search`` matches a case-insensitive substring of the message.
        """
        raise self._unsupported("query_events")

    def query_metrics(
        self,
        name: str,
        *,
        tags: dict[str, str] | None = None,
        since: TimeArg = None,
        until: TimeArg = None,
        limit: int | None = None,
    ) -> list[Metric]:
        """Points of metric ``name`` oldest first; with ``limit``, the newest ``limit``."""
        raise self._unsupported("query_metrics")

    def series_points(
        self, name: str, tags: dict[str, str], *, since: TimeArg = None, until: TimeArg = None
    ) -> tuple[Sequence[int], Sequence[float]]:
        """Times (ns) and values of the one series ``name`` with exactly ``tags``, oldest
        first, in ``[since, until)``: two sequences of the same length (lists here,
        ``array.array`` columns from the embedded database).

        The query engines' read path (PromQL reads whole series, not records). This
        default filters :meth:`query_metrics`; a backend that keeps columns overrides
        it to skip building a :class:`Metric` per point.
        """
        times: list[int] = []
        values: list[float] = []
        for m in self.query_metrics(name, tags=tags or None, since=since, until=until):
            if m.tags == tags:
                times.append(m.time_ns)
                values.append(m.value)
        return times, values

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
        """Aggregate ``name`` per epoch-aligned time bucket and group (ordered by group, time)."""
        raise self._unsupported("aggregate")

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
        """Number of events per bucket and group (``event_type`` and/or ``source``)."""
        raise self._unsupported("count_events")

    def series(self, name: str | None = None) -> list[SeriesInfo]:
        """The distinct series (name, unit, tags, latest point), optionally of one name."""
        raise self._unsupported("series")

    def delete_before(self, t: datetime | int) -> int:
        """Remove records older than ``t``; return how many (events and metrics together)."""
        raise self._unsupported("delete_before")

    def receipt(self, key: str) -> bytes | None:
        """The answer stored with idempotency ``key`` (see ``TelemetryData.receipts``).

        ``None`` when the key is unknown, or when the backend keeps no receipts
        (the default; only durable backends need to).
        """
        return None

    def stats(self) -> Mapping[str, Any]:
        """Backend figures (records held, bytes, errors); each backend documents its keys.
        Empty by default."""
        return {}

    def close(self) -> None:
        """Release resources. Idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _unsupported(self, method: str) -> NotImplementedError:
        return NotImplementedError(f"{type(self).__name__} does not implement {method}()")
