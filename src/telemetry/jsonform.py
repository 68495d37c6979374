"""The JSON form of events and metrics on the wire.

Shared by the server (its answers and live feed), its clients and the HTTP
exporter, so every door speaks the same fields: ``timestamp`` (RFC 3339 UTC,
nanoseconds) next to ``time_ns``, and ``type`` for an event's type.
"""

from __future__ import annotations

import time
from typing import Any

from telemetry.models import Event, Metric

__all__ = ["event_to_wire", "metric_to_wire", "rfc3339"]


def rfc3339(ns: int) -> str:
    """RFC 3339 UTC text of ``ns`` with nanoseconds (``2026-12-01T10:30:00.123456789Z``)."""
    seconds, frac = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{frac:09d}Z"


def event_to_wire(e: Event) -> dict[str, Any]:
    """An event as the API returns it (``timestamp`` RFC 3339 UTC and ``time_ns``)."""
    return {
        "id": e.id,
        "source": e.source,
        "message": e.message,
        "type": e.event_type.value,
        "metadata": e.metadata,
        "timestamp": rfc3339(e.time_ns),
        "time_ns": e.time_ns,
    }


def metric_to_wire(m: Metric) -> dict[str, Any]:
    """A metric point as the API returns it."""
    return {
        "id": m.id,
        "name": m.name,
        "value": m.value,
        "unit": m.unit,
        "tags": m.tags,
        "timestamp": rfc3339(m.time_ns),
        "time_ns": m.time_ns,
    }
