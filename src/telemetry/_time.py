"""Time at the edges: every conversion into and out of RIMP's integer nanoseconds.

Inside RIMP a time is an ``int`` of nanoseconds since the Unix epoch (UTC). What
storage can hold is an int64 from 1970-01-01 to 2262-04-11, so every way a time
can arrive (a ``datetime``, int ns, Unix seconds, RFC 3339 text, a relative
``-15m``) is parsed and range-checked here, once, and raises
:class:`~telemetry.errors.ValidationError` naming the field and the rule.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime, timedelta

from telemetry.errors import ValidationError

__all__ = [
    "MAX_NS",
    "duration_ns",
    "from_ns",
    "parse_time",
    "rfc3339",
    "rfc3339_to_ns",
    "seconds_to_ns",
    "to_ns",
]

MAX_NS = 2**63
"""Times are ``0 <= t < MAX_NS``: int64 nanoseconds, 1970-01-01 to 2262-04-11."""

RANGE_RULE = "must be between 1970-01-01 and 2262-04-11"
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
"""Seconds per duration unit, for every duration RIMP parses (``90s``, ``15m``, ``2w``)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$")
# RFC 3339 needs a date and a time; Python would also take a bare date or an ISO week.
_FRACTION = re.compile(r"[T ]\d{2}:\d{2}:\d{2}\.(\d+)")
_RFC3339_START = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def to_ns(value: datetime | int, field: str = "timestamp") -> int:
    """Convert a time to integer nanoseconds since the Unix epoch.

    Args:
        value: an aware ``datetime`` (a naive one is taken as UTC) or ``int`` ns.
        field: the name used in the error message.

    Raises:
        ValidationError: for any other type (a float is refused: seconds or
            nanoseconds would be a guess), or a time outside what storage holds.
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
        raise ValidationError(
            f"{field}={value!r}: must be a datetime or an int of nanoseconds since the Unix epoch",
            field=field,
        )
    if not 0 <= ns < MAX_NS:
        raise ValidationError(
            f"{field}={value!r}: {RANGE_RULE} (int nanoseconds, 0 <= t < 2**63)", field=field
        )
    return ns


def seconds_to_ns(seconds: float, field: str = "timestamp") -> int:
    """Unix seconds (``1733040000.5``) to nanoseconds, range-checked.

    Raises:
        ValidationError: not finite, or outside what storage holds (a time in
            milliseconds is the usual mistake, and the message says so).
    """
    if not math.isfinite(seconds) or not 0 <= seconds < MAX_NS / 1e9:
        raise ValidationError(
            f"{field}={seconds!r}: {RANGE_RULE} (Unix seconds, not milliseconds)", field=field
        )
    return min(round(seconds * 1_000_000_000), MAX_NS - 1)


def rfc3339_to_ns(text: str, field: str = "timestamp") -> int:
    """RFC 3339 text (``2026-12-01T10:30:00Z``; no offset means UTC) to nanoseconds.

    A bare date (``2026-12-01``) or an ISO week date is refused: a time of day is
    part of the rule, so a guessed midnight never lands in storage.

    Raises:
        ValidationError: not RFC 3339, or outside what storage holds.
    """
    # datetime keeps microseconds: digits past the sixth are added back as ns, so
    # RIMP's own nanosecond timestamps read back exactly.
    extra_ns = 0
    fraction = _FRACTION.search(text)
    if fraction and len(fraction.group(1)) > 6:
        digits = fraction.group(1)
        extra_ns = int(digits[6:9].ljust(3, "0"))
        text = text[: fraction.start(1) + 6] + text[fraction.end(1) :]
    try:
        if not _RFC3339_START.match(text):
            raise ValueError(text)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{field}={text!r}: is not an RFC 3339 time", field=field) from None
    try:
        return to_ns(moment, field) + extra_ns
    except (ValidationError, OverflowError):
        raise ValidationError(f"{field}={text!r}: {RANGE_RULE}", field=field) from None


def parse_time(text: str | None, field: str, now_ns: int | None = None) -> int | None:
    """A time given as text: RFC 3339, Unix seconds, relative (``-15m``, ``-1h``) or ``now``.

    Returns:
        Nanoseconds, or ``None`` for no text.

    Raises:
        ValidationError: none of those forms, or outside what storage holds.
    """
    if text is None or text == "":
        return None
    now = time.time_ns() if now_ns is None else now_ns
    if text == "now":
        return now
    relative = _RELATIVE.match(text)
    if relative:
        ago = round(float(relative.group(1)) * UNIT_SECONDS[relative.group(2)] * 1e9)
        return max(now - ago, 0)
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds_to_ns(seconds, field)
    try:
        if not _RFC3339_START.match(text):
            raise ValueError(text)
        datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            f"{field}={text!r}: must be RFC 3339, Unix seconds, relative like -15m, or now",
            field=field,
        ) from None
    return rfc3339_to_ns(text, field)


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
        seconds = float(m.group(1)) * UNIT_SECONDS[m.group(2) or "s"]
    else:
        raise ValidationError(
            f"{field}={value!r}: must be a duration such as '90s', '15m', '12h', '7d' or seconds",
            field=field,
        )
    if not seconds > 0 or seconds == float("inf"):
        raise ValidationError(
            f"{field}={value!r}: must be a positive, finite duration", field=field
        )
    return round(seconds * 1_000_000_000)


def from_ns(ns: int) -> datetime:
    """Return the aware UTC ``datetime`` of ``ns`` nanoseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


def rfc3339(ns: int) -> str:
    """RFC 3339 UTC text of ``ns`` with nanoseconds (``2026-12-01T10:30:00.123456789Z``)."""
    seconds, frac = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{frac:09d}Z"
