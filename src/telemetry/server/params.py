"""Query parameters of the read endpoints: times, durations, tags, limits.

``parse_time`` is the one time parser of :mod:`telemetry._time`, re-exported here.
"""

from __future__ import annotations

import re

from telemetry import _time
from telemetry._time import parse_time
from telemetry.errors import RequestError
from telemetry.models import EventType

__all__ = [
    "parse_bucket",
    "parse_event_type",
    "parse_limit",
    "parse_list",
    "parse_tags",
    "parse_time",
]


def _bad(field: str, message: str) -> RequestError:
    return RequestError("invalid_parameter", message, field)


def parse_bucket(text: str | None, default: float = 60) -> float:
    """A bucket width: seconds (``60``) or with a unit (``30s``, ``1m``, ``1h``, ``1d``)."""
    if text is None or text == "":
        return float(default)
    found = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)?", text)
    if not found:
        raise _bad("bucket", f"bucket={text!r}: must be seconds or a duration like 30s, 5m, 1h")
    seconds = float(found.group(1)) * _time.UNIT_SECONDS[found.group(2) or "s"]
    if seconds < 0.001:
        raise _bad("bucket", f"bucket={text!r}: must be at least 1 ms")
    return seconds


def parse_limit(text: str | None, default: int, maximum: int) -> int:
    """A positive integer no greater than ``maximum``."""
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise _bad("limit", f"limit={text!r}: must be an integer") from None
    if not 1 <= value <= maximum:
        raise _bad("limit", f"limit={value}: must be between 1 and {maximum}")
    return value


def parse_tags(values: list[str]) -> dict[str, str] | None:
    """``k:v`` pairs (repeatable, or comma-separated) into a dict."""
    tags: dict[str, str] = {}
    for value in values:
        for pair in value.split(","):
            if not pair:
                continue
            key, sep, val = pair.partition(":")
            if not sep or not key:
                raise _bad("tags", f"tags={pair!r}: must be key:value")
            tags[key] = val
    return tags or None


def parse_event_type(text: str | None) -> str | None:
    """The ``type`` filter: an event type name, any case."""
    if not text:
        return None
    kinds = [t.value for t in EventType]
    if text.lower() not in kinds:
        raise _bad("type", f"type={text!r}: must be one of {', '.join(kinds)}")
    return text.lower()


def parse_list(values: list[str]) -> list[str]:
    """Repeatable or comma-separated values into one list."""
    return [item for value in values for item in value.split(",") if item]
