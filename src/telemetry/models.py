"""The vocabulary of every layer: events, metrics and batches of both.

Records are ``msgspec.Struct`` classes: measured against slotted classes and
tuples (``benchmarks/models.py``) they are the cheapest object that still has
named fields, and they encode to and decode from JSON without hand-written
code. They are created with ``gc=False``: a record holds only strings, numbers
and the caller's dicts, never a reference back to itself, so the garbage
collector has no reason to walk a full buffer of them.

Time is an ``int`` of nanoseconds since the Unix epoch (UTC) inside; the aware
``datetime`` in ``.timestamp`` is derived on access.
"""

from __future__ import annotations

import enum
import itertools
import os
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from telemetry.errors import ValidationError

__all__ = [
    "ID_POOL",
    "Bucket",
    "Event",
    "EventType",
    "IdPool",
    "Metric",
    "SeriesInfo",
    "TelemetryData",
    "duration_ns",
    "from_ns",
    "new_id",
    "to_ns",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class EventType(enum.StrEnum):
    """Severity of an event; the value is the lower-case name (``"info"``)."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


# --- ids -------------------------------------------------------------------
# An id is 16 hex digits: 13 for a block drawn from a random start per process,
# 3 for the position in the block. A block's ids are built by ``map`` joining
# its prefix to 4,096 precomputed suffixes (C speed, ~30 ns an id; formatting
# each id cost ~250 ns) and handed out by the ``__next__`` of a list iterator,
# which is atomic under the GIL, so the hot path pays one C call per id. Two
# threads refilling at once take distinct blocks; the loser's ids are skipped,
# never repeated.
_SUFFIXES = tuple(f"{i:03x}" for i in range(4096))


class IdPool:
    """Hands out unique record ids; ``next()`` raises ``StopIteration`` when a refill is due."""

    __slots__ = ("_blocks", "next")

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        """Start from a fresh random block (done in a forked child)."""
        self._blocks = itertools.count(secrets.randbits(50))
        self.next: Callable[[], str] = iter(()).__next__

    def refill(self) -> str:
        """Take the next block of ids and return the first of them."""
        prefix = f"{next(self._blocks) % (1 << 52):013x}"
        self.next = iter(list(map(prefix.__add__, _SUFFIXES))).__next__
        return self.next()


ID_POOL = IdPool()


def new_id() -> str:
    """Return a new record id: 16 hex digits, unique across threads and processes."""
    try:
        return ID_POOL.next()
    except StopIteration:
        return ID_POOL.refill()


if hasattr(os, "register_at_fork"):
    # A child must not hand out the ids its parent is still handing out.
    os.register_at_fork(after_in_child=ID_POOL.reseed)


# --- time ------------------------------------------------------------------


def to_ns(value: datetime | int, field: str = "timestamp") -> int:
    """Convert a time to integer nanoseconds since the Unix epoch.

    Args:
        value: an aware ``datetime`` (a naive one is taken as UTC) or ``int`` ns.
        field: the name used in the error message.

    Raises:
        ValidationError: for any other type (a float is refused: seconds or
            nanoseconds would be a guess).
    """
    if value.__class__ is int:
        ns = value
    elif isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        delta = value - _EPOCH
        ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    elif isinstance(value, int) and not isinstance(value, bool):
        ns = int(value)
    else:
        ns = None
    if ns is not None:
        if not 0 <= ns < 2**63:  # what storage holds: int64 ns from 1970 to 2262
            raise ValidationError(
                f"{field}={value!r}: must be between 1970-01-01 and 2262-04-11 "
                f"(int nanoseconds, 0 <= t < 2**63)"
            )
        return ns
    raise ValidationError(
        f"{field}={value!r}: must be a datetime or an int of nanoseconds since the Unix epoch"
    )


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


def duration_ns(value: str | float | timedelta, field: str = "duration") -> int:
    """Parse a duration (``"90s"``, ``"15m"``, ``"12h"``, ``"7d"``, ``"2w"``, seconds, or a
    ``timedelta``) into nanoseconds.

    Raises:
        ValidationError: not a positive duration, naming ``field``.
    """
    seconds: float
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    else:
        raise ValidationError(
            f"{field}={value!r}: must be a duration such as '90s', '15m', '12h', '7d' or seconds"
        )
    if not seconds > 0 or seconds == float("inf"):
        raise ValidationError(f"{field}={value!r}: must be a positive, finite duration")
    return round(seconds * 1_000_000_000)


def from_ns(ns: int) -> datetime:
    """Return the aware UTC ``datetime`` of ``ns`` nanoseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


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
    """A batch of records: ``events`` and ``metrics``, each oldest first."""

    events: list[Event] = msgspec.field(default_factory=list)
    metrics: list[Metric] = msgspec.field(default_factory=list)

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
