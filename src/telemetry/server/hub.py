"""The live hub: a stream consumer that fans records out to SSE and WebSocket clients.

The stream calls :meth:`LiveHub.publish` on its consumer thread; the hub hands
the batch to the event loop in one ``call_soon_threadsafe`` and there offers
it to every client's bounded queue. A client whose queue would overflow is
either disconnected with a reason (the default) or, with ``mode="sample"``,
keeps a sample of what arrives and is told how much it missed. A slow client
can never grow memory or slow ingest: the queue bound and the thread hop see
to that. The hub keeps the most recent records so that an SSE client can
resume from ``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import TypedDict

import msgspec

from telemetry._jsonform import encode as _encode
from telemetry._jsonform import event_to_wire, metric_to_wire
from telemetry.models import Event, Metric, TelemetryData

__all__ = ["Client", "Filters", "HubStats", "LiveHub"]

Item = tuple[str, Event | Metric]


class Filters(msgspec.Struct, frozen=True):
    """What a client wants: record kind, event sources and types, metric names."""

    kind: str | None = None
    sources: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()

    def accepts(self, kind: str, record: Event | Metric) -> bool:
        """True when the record passes every filter given."""
        if self.kind is not None and kind != self.kind:
            return False
        if isinstance(record, Event):
            if self.names:
                return False
            if self.sources and record.source not in self.sources:
                return False
            return not self.types or record.event_type.value in self.types
        if self.sources or self.types:
            return False
        return not self.names or record.name in self.names


def encode_item(item: Item) -> bytes:
    """The JSON of one record as the API shows it."""
    kind, record = item
    if kind == "event":
        return _encode(event_to_wire(record))  # type: ignore[arg-type]
    return _encode(metric_to_wire(record))  # type: ignore[arg-type]


class HubStats(TypedDict):
    """What :meth:`LiveHub.stats` returns."""

    clients: int
    queued: int
    disconnected_slow: int


class Client:
    """One live subscriber: filters, a bounded queue, and why it was cut off."""

    def __init__(self, filters: Filters, max_queue: int, sample: bool) -> None:
        self.filters = filters
        self.max_queue = max_queue
        self.sample = sample
        self.queue: deque[Item] = deque()
        self.ready = asyncio.Event()
        self.closed_reason: str | None = None
        self.closed_code = "slow_consumer"
        self.missed = 0
        self.sent = 0

    def offer(self, items: list[Item]) -> None:
        """Queue the items this client wants (on the event loop)."""
        if self.closed_reason is not None:
            return
        accepts = self.filters.accepts
        wanted = [item for item in items if accepts(*item)]
        if not wanted:
            return
        room = self.max_queue - len(self.queue)
        if len(wanted) > room:
            if not self.sample:
                self.closed_reason = (
                    f"slow consumer: more than {self.max_queue} records waiting; "
                    "reconnect, narrow the filters, or use mode=sample"
                )
                self.ready.set()
                return
            keep = max(room, 0)
            step = len(wanted) / keep if keep else 0
            sampled = [wanted[int(i * step)] for i in range(keep)] if keep else []
            self.missed += len(wanted) - len(sampled)
            wanted = sampled
        self.queue.extend(wanted)
        self.ready.set()

    def close(self, reason: str, code: str) -> None:
        """End this client's feed with ``reason`` and an error ``code`` (on the event loop)."""
        if self.closed_reason is None:
            self.closed_reason = reason
            self.closed_code = code
        self.ready.set()

    async def next(self, timeout: float) -> list[Item]:
        """Wait up to ``timeout`` seconds for records; return what is queued (maybe none)."""
        if not self.queue and self.closed_reason is None:
            self.ready.clear()
            try:
                await asyncio.wait_for(self.ready.wait(), timeout)
            except TimeoutError:
                return []
        items = list(self.queue)
        self.queue.clear()
        self.sent += len(items)
        return items


class LiveHub:
    """Fans batches out to live clients; keeps a window of recent records for resuming."""

    def __init__(self, *, window: int = 10_000, max_queue: int = 10_000) -> None:
        self.window = window
        self.max_queue = max_queue
        self.clients: set[Client] = set()
        self.disconnected_slow = 0
        self._recent: deque[Item] = deque(maxlen=window)
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver on ``loop`` (the server's event loop)."""
        self._loop = loop

    def publish(self, batch: TelemetryData) -> None:
        """Stream consumer: called on the stream's worker thread for every batch."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        items: list[Item] = [("event", e) for e in batch.events]
        items += [("metric", m) for m in batch.metrics]
        if items:
            try:
                loop.call_soon_threadsafe(self._fanout, items)
            except RuntimeError:  # the loop closed meanwhile (shutdown)
                return

    def _fanout(self, items: list[Item]) -> None:
        self._recent.extend(items)
        for client in list(self.clients):
            client.offer(items)
            if client.closed_reason is not None and not client.sample:
                self.clients.discard(client)
                self.disconnected_slow += 1

    def connect(
        self, filters: Filters, *, last_event_id: str | None = None, sample: bool = False
    ) -> Client:
        """Register a client; with ``last_event_id``, queue what it missed if still held."""
        client = Client(filters, self.max_queue, sample)
        if last_event_id:
            client.offer(list(self._since(last_event_id)))
        self.clients.add(client)
        return client

    def _since(self, record_id: str) -> Iterable[Item]:
        recent = list(self._recent)
        for index in range(len(recent) - 1, -1, -1):
            if recent[index][1].id == record_id:
                return recent[index + 1 :]
        return []

    def close_all(self, reason: str) -> None:
        """End every live feed (the server is shutting down)."""
        for client in list(self.clients):
            client.close(reason, "shutting_down")

    def disconnect(self, client: Client) -> None:
        """Forget a client."""
        self.clients.discard(client)

    def stats(self) -> HubStats:
        """Live clients, records queued for them, and slow clients cut off so far."""
        return {
            "clients": len(self.clients),
            "queued": sum(len(c.queue) for c in self.clients),
            "disconnected_slow": self.disconnected_slow,
        }
