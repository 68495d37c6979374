"""A server node on the bus: what changes when ``rimp serve --bus`` is given.

The pipeline stays the same one (doors -> collector -> stream -> sink); only its ends
move. The collector's sink is a :class:`BusSink`, whose ``store`` publishes the batch to
JetStream and returns once JetStream has it, so an ingest door answers ``202`` only for
what is durable in the stream, and a bus that stops answering makes the sink fail, which
the collector already turns into ``503`` with ``Retry-After`` until it answers again.
Writers (:class:`~telemetry.bus.BusWriter`) move batches from the stream into the
storage that queries read, and the live hub is fed by a :class:`~telemetry.bus.StoredFeed`,
so every node's live clients see every node's records, each once stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

from telemetry.bus import Bus, BusError, BusSettings, BusWriter, StoredFeed, encode_batches
from telemetry.errors import StorageError
from telemetry.models import TelemetryData
from telemetry.storage import Storage

__all__ = ["BusNode", "BusSink", "batch_id", "check_bus"]

_log = logging.getLogger("telemetry.server.bus")


def batch_id(data: TelemetryData) -> str:
    """The ``Nats-Msg-Id`` of a batch: a digest of its record ids. The stream retries a
    failed ``store`` with the same batch, so a publish whose acknowledgement was lost is
    dropped by JetStream's duplicate window instead of entering the stream twice."""
    digest = hashlib.blake2b(digest_size=16)
    for ids in ([e.id for e in data.events], [m.id for m in data.metrics]):
        digest.update("\0".join(ids).encode())
        digest.update(b"\1")
    return f"rimp-{digest.hexdigest()}"


class BusSink(Storage):
    """The collector's sink on a bus node: ``store`` publishes to JetStream.

    Called on the stream's worker thread; the publish runs on the server's event loop,
    where the NATS connection lives.
    """

    def __init__(self, bus: Bus, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.bus = bus
        self.loop = loop
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"BusSink({self.bus.settings.stream!r})"

    def store(self, data: TelemetryData) -> None:
        """Publish ``data`` and wait for JetStream's acknowledgement.

        Raises:
            StorageError: the bus is unreachable or did not acknowledge in time; the
                collector keeps the batch and retries.
        """
        if not data.events and not data.metrics:
            return
        # Encoded here, on the stream's thread: a large batch costs tens of milliseconds
        # that the event loop (every request's) should not spend.
        payloads = encode_batches(data, self.bus.max_msg_bytes)
        future = asyncio.run_coroutine_threadsafe(
            self.bus.publish_encoded(payloads, batch_id(data)), self.loop
        )
        try:
            future.result(self.timeout)
        except (BusError, TimeoutError) as exc:
            future.cancel()
            raise StorageError(f"the bus did not take the batch: {exc}") from exc


class BusNode:
    """The bus side of one server: connection, writers and the stored feed.

    Example::

        node = await BusNode.start(settings, storage, hub.publish, role="all")
        sink = node.sink(loop, timeout=30)
        ...
        await node.stop()
    """

    def __init__(self, bus: Bus, role: str) -> None:
        self.bus = bus
        self.role = role
        self.writers: list[BusWriter] = []
        self.feed: StoredFeed | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def start(
        cls,
        settings: BusSettings,
        storage: Storage,
        on_stored: Any,
        *,
        role: str = "all",
        writers: int = 1,
    ) -> BusNode:
        """Connect, then start the writers (roles ``all`` and ``writer``) and the feed of
        stored batches into ``on_stored`` (every role: any node serves live feeds).

        Raises:
            BusUnavailable: NATS does not answer.
        """
        node = cls(await Bus.connect(settings), role)
        if role in ("all", "writer"):
            for _ in range(writers):
                writer = BusWriter(node.bus, storage)
                node.writers.append(writer)
                node._spawn(writer.run(node._stop), "bus writer")
        node.feed = StoredFeed(node.bus, on_stored)
        node._spawn(node.feed.run(node._stop), "stored feed")
        return node

    def _spawn(self, work: Any, name: str) -> None:
        task = asyncio.create_task(work, name=name)
        task.add_done_callback(_report)
        self._tasks.append(task)

    def sink(self, loop: asyncio.AbstractEventLoop, timeout: float) -> BusSink:
        """The collector's sink, publishing on ``loop``."""
        return BusSink(self.bus, loop, timeout)

    async def stop(self) -> None:
        """Let the writers finish the batch in hand, stop the feed, close the connection."""
        self._stop.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=30)
        await self.bus.close()

    def info(self) -> dict[str, Any]:
        """Counters for ``/metrics`` and ``/readyz``: the connection's, the writers'
        (summed) and the feed's."""
        writers: dict[str, int] = {}
        for writer in self.writers:
            for key, value in writer.stats().items():
                writers[key] = writers.get(key, 0) + value
        return {
            "bus": self.bus.info(),
            "writers": writers,
            "feed": self.feed.stats() if self.feed is not None else {},
        }


def _report(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.error("%s stopped: %s", task.get_name(), task.exception())


async def check_bus(settings: BusSettings) -> None:
    """Connect once and close: ``rimp serve`` refuses to start without its bus.

    Raises:
        BusUnavailable: naming the URL.
    """
    bus = await Bus.connect(settings)
    await bus.close()
