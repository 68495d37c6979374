"""The JSON form of events and metrics, and the one JSON encoder.

Shared by the server (its answers and live feed), its clients and the HTTP
exporter, so every door speaks the same fields: ``timestamp`` (RFC 3339 UTC,
nanoseconds) next to ``time_ns``, and ``type`` for an event's type.
"""

from __future__ import annotations

from typing import Any

import msgspec

from telemetry._time import rfc3339
from telemetry.models import Event, Metric

__all__ = ["ENCODER", "encode", "event_to_wire", "metric_to_wire", "rfc3339"]

ENCODER = msgspec.json.Encoder(enc_hook=str)
"""The one JSON encoder: metadata may hold any object, and what JSON cannot
carry is written as its ``str()``. Encoders are safe to share between threads."""
encode = ENCODER.encode


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
