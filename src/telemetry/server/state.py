"""``ServerState``: what the handlers share, on ``app.state.rimp``."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict

from telemetry.collector import TelemetryCollector
from telemetry.protocols.native import WireDecoder
from telemetry.server.auth import Tokens
from telemetry.server.hub import LiveHub
from telemetry.server.settings import ServerSettings
from telemetry.streaming import TelemetryStream

__all__ = ["IngestAnswer", "ServerState"]

IngestAnswer = tuple[int, bytes]
"""An ingest request's answer as it is sent and remembered: status and JSON body."""


class ServerState:
    """The pipeline (set up by the app's lifespan), the live hub and the server's own counters."""

    collector: TelemetryCollector
    stream: TelemetryStream

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.decoder = WireDecoder(settings.limits)
        self.tokens = settings.tokens or Tokens({})
        self.hub = LiveHub(window=settings.live_window, max_queue=settings.live_queue)
        self.received: dict[str, int] = {"event": 0, "metric": 0}
        self.rejected: dict[str, int] = {}
        self.idempotent: OrderedDict[str, asyncio.Future[IngestAnswer]] = OrderedDict()
        self.storage_seconds = 0.0
        self.storage_writes = 0
        self.storage_bytes: int | None = None
        self.started = time.time()
        self.demo_stop = threading.Event()

    def reject(self, reason: str, n: int = 1) -> None:
        """Count ``n`` rejected records under ``reason``."""
        self.rejected[reason] = self.rejected.get(reason, 0) + n
