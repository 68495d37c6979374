"""The StatsD / DogStatsD door: UDP datagrams on ``--statsd-port`` (opt-in).

Each datagram is parsed (:mod:`telemetry.protocols.statsd`) and folded into the
interval's aggregates on the event loop; every ``statsd_flush_interval`` seconds
the interval's points and events are submitted to the collector as one batch.
UDP has no answer to give, so what cannot be taken is counted instead: malformed
lines (``rimp_door_records_total{door="statsd",outcome="rejected"}``) and
intervals dropped under back-pressure (``outcome="dropped"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from telemetry.models import TelemetryData
from telemetry.protocols import statsd
from telemetry.server.state import ServerState

__all__ = ["StatsdDoor"]

_log = logging.getLogger("telemetry.server.statsd")
DOOR = "statsd"


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, door: StatsdDoor) -> None:
        self.door = door

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.door.receive(data)

    def error_received(self, exc: Exception) -> None:  # an ICMP error; nothing to answer
        _log.debug("statsd socket error: %s", exc)


class StatsdDoor:
    """A UDP endpoint and the flush loop that turns its aggregates into batches."""

    def __init__(self, state: ServerState, interval: float) -> None:
        self.state = state
        self.interval = interval
        self.aggregator = statsd.Aggregator()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self._flusher: asyncio.Task[None] | None = None

    def receive(self, datagram: bytes) -> None:
        """Parse and fold one datagram (on the event loop)."""
        result = statsd.parse(datagram, time.time_ns())
        self.aggregator.add(result)
        if result.malformed:
            self.state.reject("statsd_malformed", result.malformed)
            self.state.count_records(DOOR, "rejected", result.malformed)

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port`` and start flushing."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(host, port)
        )
        self.transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        self._flusher = asyncio.create_task(self._flush_every_interval())

    async def _flush_every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.flush()

    def flush(self) -> None:
        """Submit the interval's records (dropped and counted under back-pressure)."""
        data = self.aggregator.flush(time.time_ns())
        if not data:
            return
        state = self.state
        collector = state.collector
        pending = collector.pending()
        if pending and pending + len(data) > state.settings.max_pending:
            state.reject("backpressure", len(data))
            state.count_records(DOOR, "dropped", len(data))
            return
        collector.submit(data, lambda ok: self._stored(data, ok))

    def _stored(self, data: TelemetryData, ok: bool) -> None:  # on the dispatch thread
        if ok:
            self.state.count_records(DOOR, "accepted", len(data))
        else:
            self.state.count_records(DOOR, "dropped", len(data))

    async def stop(self) -> None:
        """Stop listening and submit what the last interval gathered."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        if self.transport is not None:
            self.transport.close()
        self.flush()
