"""RIMP: real-time telemetry for Python.

Record events and metrics with a :class:`TelemetryCollector`, stream them with
:class:`~telemetry.streaming.TelemetryStream`, store and query them with a
:mod:`telemetry.storage` backend.

What this package re-exports, by one rule: the names of the recording path that
every user touches (the collector, its configuration, the records and the
instruments it hands out) and every error class. Each subsystem is imported
from its own module: :mod:`telemetry.streaming`, :mod:`telemetry.storage`,
:mod:`telemetry.exporters`, :mod:`telemetry.logbridge`, :mod:`telemetry.testing`,
:mod:`telemetry.server`. Modules whose name starts with ``_`` are internal.

Example::

    from telemetry import TelemetryCollector, TelemetryConfig, EventType

    collector = TelemetryCollector(TelemetryConfig(realtime_mode=True))
    collector.collect_event(source="api_server", message="Request received",
                            event_type=EventType.INFO, metadata={"endpoint": "/api/users"})
    collector.collect_metric(name="response_time", value=125.5, unit="ms",
                             tags={"endpoint": "/api/users", "status": "200"})
"""

from __future__ import annotations

from telemetry._version import __version__
from telemetry.collector import TelemetryCollector
from telemetry.config import TelemetryConfig
from telemetry.errors import (
    ClientError,
    ConfigError,
    RequestError,
    SpoolFull,
    StorageError,
    StreamError,
    TelemetryError,
    TokenError,
    ValidationError,
)
from telemetry.instruments import Counter, Gauge, Histogram, Timer
from telemetry.models import Bucket, Event, EventType, Metric, SeriesInfo, TelemetryData

__all__ = [
    "Bucket",
    "ClientError",
    "ConfigError",
    "Counter",
    "Event",
    "EventType",
    "Gauge",
    "Histogram",
    "Metric",
    "RequestError",
    "SeriesInfo",
    "SpoolFull",
    "StorageError",
    "StreamError",
    "TelemetryCollector",
    "TelemetryConfig",
    "TelemetryData",
    "TelemetryError",
    "Timer",
    "TokenError",
    "ValidationError",
    "__version__",
]
