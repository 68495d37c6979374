"""``ServerState``: what the handlers share, on ``app.state.rimp``."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from telemetry.collector import TelemetryCollector
from telemetry.protocols.native import WireDecoder
from telemetry.server.auth import Tokens
from telemetry.server.hub import LiveHub
from telemetry.server.idempotency import IdempotencyCache
from telemetry.server.settings import ServerSettings
from telemetry.streaming import TelemetryStream

if TYPE_CHECKING:
    from telemetry.alerting import AlertEngine
    from telemetry.server.busnode import BusNode
    from telemetry.server.statsd import StatsdDoor
    from telemetry.storage import Storage

__all__ = ["ServerState"]


class ServerState:
    """The pipeline (set up by the app's lifespan), the live hub and the server's own counters."""

    collector: TelemetryCollector
    stream: TelemetryStream
    storage: Storage
    """What queries read. The collector's own sink, except on a bus node, where the
    collector publishes to the bus and this is the storage the writers fill."""
    alerts: AlertEngine
    """Rules, alerts, silences and notifications (with no rules: none, but it answers)."""
    statsd: StatsdDoor | None = None
    bus: BusNode | None = None

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.decoder = WireDecoder(settings.limits)
        self.tokens = settings.tokens or Tokens({})
        self.hub = LiveHub(
            window=settings.live_window,
            window_bytes=settings.live_window_bytes,
            max_queue=settings.live_queue,
            max_queue_bytes=settings.live_queue_bytes,
        )
        self.received: dict[str, int] = {"event": 0, "metric": 0}
        self.rejected: dict[str, int] = {}
        self.door_requests: dict[tuple[str, int], int] = {}
        self.door_records: dict[tuple[str, str], int] = {}
        self.idempotent = IdempotencyCache(
            max_keys=settings.idempotency_keys,
            max_bytes=settings.idempotency_bytes,
            max_age=settings.idempotency_ttl,
        )
        self.storage_seconds = 0.0
        self.storage_writes = 0
        self.storage_bytes: int | None = None
        self.started = time.time()
        self.demo_stop = threading.Event()

    def reject(self, reason: str, n: int = 1) -> None:
        """Count ``n`` rejected records under ``reason``."""
        self.rejected[reason] = self.rejected.get(reason, 0) + n

    def count_request(self, door: str, status: int) -> None:
        """Count one request answered by ``door`` with ``status``."""
        key = (door, status)
        self.door_requests[key] = self.door_requests.get(key, 0) + 1

    def count_records(self, door: str, outcome: str, n: int) -> None:
        """Count ``n`` records of ``door`` that were ``accepted`` or ``rejected``."""
        key = (door, outcome)
        self.door_records[key] = self.door_records.get(key, 0) + n
