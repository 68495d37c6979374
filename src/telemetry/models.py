"""The vocabulary of every layer: events, metrics and batches of both.

Records are ``msgspec.Struct`` classes: measured against slotted classes and
tuples (``benchmarks/models.py``) they are the cheapest object that still has
named fields, and they encode to and decode from JSON without hand-written
code. They are created with ``gc=False``: a record holds only strings, numbers
and the caller's dicts, never a reference back to itself, so the garbage
collector has no reason to walk a full buffer of them.

Time is an ``int`` of nanoseconds since the Unix epoch (UTC) inside; the aware
``datetime`` in ``.timestamp`` is derived on access. ``new_id``, ``to_ns``,
``from_ns`` and ``duration_ns`` are re-exported here for building records by hand.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import msgspec

from telemetry._ids import new_id
from telemetry._time import duration_ns, from_ns, to_ns

__all__ = [
    "Bucket",
    "Event",
    "EventType",
    "Metric",
    "SeriesInfo",
    "TelemetryData",
    "duration_ns",
    "from_ns",
    "new_id",
    "to_ns",
]


class EventType(enum.StrEnum):
    """Severity of an event; the value is the lower-case name (``"info"``)."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


# --- records ---------------------------------------------------------------


class Event(msgspec.Struct, gc=False):
    """A levelled message from a source, with free-form metadata.

    Example::

        Event(source="api", message="started", event_type=EventType.INFO,
              metadata={}, time_ns=time.time_ns(), id=new_id())

    Normally created by ``TelemetryCollector.collect_event``.
    """

    source: str
    message: str
    event_type: EventType
    metadata: dict[str, Any]
    time_ns: int
    id: str

    @property
    def timestamp(self) -> datetime:
        """When the event happened, as an aware UTC ``datetime``."""
        return from_ns(self.time_ns)


class Metric(msgspec.Struct, gc=False):
    """One point of a named numeric series, with a unit and string tags.

    Normally created by ``TelemetryCollector.collect_metric`` or an instrument.
    """

    name: str
    value: float
    unit: str
    tags: dict[str, str]
    time_ns: int
    id: str

    @property
    def timestamp(self) -> datetime:
        """When the point was recorded, as an aware UTC ``datetime``."""
        return from_ns(self.time_ns)


class TelemetryData(msgspec.Struct):
    """A batch of records: ``events`` and ``metrics``, each oldest first.

    ``receipts`` is for the server: the ``Idempotency-Key`` of each request whose
    records the batch holds, with the answer that request got. A storage that
    keeps them (``DatabaseStorage``) writes them in the same transaction as the
    records, so a retry after a restart is answered, not stored twice.
    """

    events: list[Event] = msgspec.field(default_factory=list)
    metrics: list[Metric] = msgspec.field(default_factory=list)
    receipts: dict[str, bytes] = msgspec.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.events) + len(self.metrics)

    def __bool__(self) -> bool:
        return bool(self.events or self.metrics)


class Bucket(msgspec.Struct, frozen=True):
    """One time bucket of an aggregate or of an event count.

    ``start_ns`` is a multiple of the bucket width; ``tags`` holds the group's
    values (empty without ``group_by``); ``count`` is the number of points.
    """

    start_ns: int
    tags: dict[str, str]
    value: float
    count: int

    @property
    def start(self) -> datetime:
        """Start of the bucket, as an aware UTC ``datetime``."""
        return from_ns(self.start_ns)


class SeriesInfo(msgspec.Struct, frozen=True):
    """A distinct series: metric name, unit, tags, and its latest point."""

    name: str
    unit: str
    tags: dict[str, str]
    last_value: float
    last_time_ns: int
