"""The live hub: a stream consumer that fans records out to SSE and WebSocket clients.

The stream calls :meth:`LiveHub.publish` on its dispatch thread right after each
storage write (an inline consumer: it only sizes the batch and hands it over);
the event loop then offers the batch to every client's queue. Every bound is in
records *and* bytes: a client whose queue would pass either is disconnected with
a reason (the default) or, with ``mode="sample"``, keeps a sample that fits and
is told how much it missed. A slow client can never grow memory or slow ingest:
the bounds and the thread hop see to that. The hub keeps the most recent
records, bounded the same way, so that an SSE client can resume from
``Last-Event-ID``.

Records travel in chunks, ``(kind, records, size of each)``, never one tuple per
record: a batch is sized once (its records share the batch's size evenly), a
client's filters pick its part with C-level ``map``/``compress``, and the window
and the queues hold the lists themselves. Only what a client is handed becomes
``(kind, record, size)`` items, in :meth:`Client.next`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable, Sequence
from itertools import compress, repeat
from operator import attrgetter
from typing import TypedDict

import msgspec

from telemetry._jsonform import encode as _encode
from telemetry._jsonform import event_to_wire, metric_to_wire
from telemetry.models import Event, Metric, TelemetryData

__all__ = [
    "SEND_BYTES",
    "Chunk",
    "Client",
    "Filters",
    "HubStats",
    "Item",
    "LiveHub",
    "chunk_of",
    "encode_item",
]

Item = tuple[str, Event | Metric, int]
"""A record as a client is handed it: its kind (``event``/``metric``), the record, its size."""
Chunk = tuple[str, Sequence[Event | Metric], int]
"""Records of one kind as the hub holds them: the kind, the records, the size of each."""

_OVERHEAD = 160  # the JSON field names, the id and both times of one record
SEND_BYTES = 256 * 1024
"""The most record bytes one live client is handed (and its handler encodes) at a time."""
_SOURCE = attrgetter("source")
_TYPE = attrgetter("event_type")
_NAME = attrgetter("name")


def chunk_of(kind: str, records: Sequence[Event | Metric]) -> Chunk:
    """The chunk of ``records`` (not empty, all of ``kind``), each sized as their average
    size as JSON, in characters: what the bounds count.

    Measured column by column in C (``map(len, ...)``; the events' metadata or the
    points' tags encoded in one call for the whole batch): a few tens of ns a record,
    where sizing each record on its own cost ~0.3 us."""
    n = len(records)
    if kind == "event":
        events: Sequence[Event] = records  # type: ignore[assignment]
        text = sum(map(len, [e.message for e in events]))
        text += sum(map(len, [e.source for e in events]))
        nested = len(_encode([e.metadata for e in events]))
    else:
        metrics: Sequence[Metric] = records  # type: ignore[assignment]
        text = sum(map(len, [m.name for m in metrics])) + sum(map(len, [m.unit for m in metrics]))
        nested = len(_encode([m.tags for m in metrics]))
    # The list's brackets and commas are not the records': take them off again.
    total = n * _OVERHEAD + text + nested - n - 1
    return kind, records, -(-total // n)


class Filters(msgspec.Struct, frozen=True):
    """What a client wants: record kind, event sources and types, metric names."""

    kind: str | None = None
    sources: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()

    def select(self, kind: str, records: Sequence[Event | Metric]) -> Sequence[Event | Metric]:
        """The ``records`` (all of one ``kind``) that pass every filter given, in order:
        each filter is one C-level pass (``compress`` over ``map``), no Python call per
        record."""
        if self.kind is not None and kind != self.kind:
            return []
        if kind == "event":
            if self.names:
                return []
            if self.sources:
                records = _keep(records, map(self.sources.__contains__, map(_SOURCE, records)))
            if self.types:  # a type is a str enum: found among the type values as itself
                records = _keep(records, map(self.types.__contains__, map(_TYPE, records)))
            return records
        if self.sources or self.types:
            return []
        if self.names:
            records = _keep(records, map(self.names.__contains__, map(_NAME, records)))
        return records


def _keep(records: Sequence[Event | Metric], selectors: Iterable[bool]) -> Sequence[Event | Metric]:
    return list(compress(records, selectors))


def encode_item(kind: str, record: Event | Metric) -> bytes:
    """The JSON of one record as the API shows it."""
    if kind == "event":
        return _encode(event_to_wire(record))  # type: ignore[arg-type]
    return _encode(metric_to_wire(record))  # type: ignore[arg-type]


class HubStats(TypedDict):
    """What :meth:`LiveHub.stats` returns."""

    clients: int
    queued: int
    queued_bytes: int
    window: int
    window_bytes: int
    disconnected_slow: int
    stalled: int


class Client:
    """One live subscriber: filters, a queue bounded in records and bytes, and why it was cut."""

    def __init__(self, filters: Filters, max_queue: int, max_bytes: int, sample: bool) -> None:
        self.filters = filters
        self.max_queue = max_queue
        self.max_bytes = max_bytes
        self.sample = sample
        self.queue: deque[Chunk] = deque()
        self.queued = 0  # records in the queue's chunks
        self.queued_bytes = 0
        self.ready = asyncio.Event()
        self.closed_reason: str | None = None
        self.closed_code = "slow_consumer"
        self.missed = 0
        self.sent = 0

    def offer(self, chunk: Chunk) -> None:
        """Queue the records of ``chunk`` this client wants (on the event loop)."""
        if self.closed_reason is not None:
            return
        kind, records, each = chunk
        wanted = self.filters.select(kind, records)
        if not wanted:
            return
        room = self.max_queue - self.queued
        room_bytes = self.max_bytes - self.queued_bytes
        if len(wanted) > room or len(wanted) * each > room_bytes:
            if not self.sample:
                self.closed_reason = (
                    f"slow consumer: more than {self.max_queue} records or {self.max_bytes} "
                    "bytes waiting; reconnect, narrow the filters, or use mode=sample"
                )
                self.ready.set()
                return
            wanted = self._sample(wanted, max(0, min(room, room_bytes // each)))
            if not wanted:
                return
        self.queue.append((kind, wanted, each))
        self.queued += len(wanted)
        self.queued_bytes += len(wanted) * each
        self.ready.set()

    def _sample(self, wanted: Sequence[Event | Metric], room: int) -> Sequence[Event | Metric]:
        """An evenly spread sample of ``wanted`` of at most ``room``; counts the rest missed."""
        step = len(wanted) / room if room else 0
        kept = [wanted[int(i * step)] for i in range(min(room, len(wanted)))]
        self.missed += len(wanted) - len(kept)
        return kept

    def close(self, reason: str, code: str) -> None:
        """End this client's feed with ``reason`` and an error ``code`` (on the event loop)."""
        if self.closed_reason is None:
            self.closed_reason = reason
            self.closed_code = code
        self.ready.set()

    async def next(self, timeout: float, max_bytes: int = SEND_BYTES) -> list[Item]:
        """Wait up to ``timeout`` seconds for records; return the oldest queued (maybe none).

        At most ``max_bytes`` of them (at least one record): what a handler encodes and
        hands to the socket at once stays small, and the rest waits here, where it
        counts against this client's bound, instead of in a socket buffer.
        """
        if not self.queue and self.closed_reason is None:
            self.ready.clear()
            try:
                await asyncio.wait_for(self.ready.wait(), timeout)
            except TimeoutError:
                return []
        queue = self.queue
        items: list[Item] = []
        size = 0
        while queue:
            kind, records, each = queue[0]
            take = min(len(records), max(0 if items else 1, (max_bytes - size) // each))
            if not take:
                break
            items += zip(repeat(kind), records[:take], repeat(each))
            size += take * each
            if take < len(records):
                queue[0] = (kind, records[take:], each)
                break
            queue.popleft()
        self.queued -= len(items)
        self.queued_bytes -= size
        self.sent += len(items)
        return items


class LiveHub:
    """Fans batches out to live clients; keeps a window of recent records for resuming.

    Args:
        window: most records kept for ``Last-Event-ID`` resumption.
        window_bytes: most bytes (as :func:`chunk_of` counts) kept for it.
        max_queue: most records waiting for one client.
        max_queue_bytes: most bytes waiting for one client.
    """

    def __init__(
        self,
        *,
        window: int = 10_000,
        window_bytes: int = 64 * 2**20,
        max_queue: int = 10_000,
        max_queue_bytes: int = 16 * 2**20,
    ) -> None:
        self.window = window
        self.window_bytes = window_bytes
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self.clients: set[Client] = set()
        self.disconnected_slow = 0
        self.stalled = 0  # readers whose connection was closed for not reading
        # The window, kept chunk by chunk: remembering a batch and forgetting the oldest
        # cost one step each, not one per record.
        self._recent: deque[Chunk] = deque()
        self._recent_count = 0
        self._recent_bytes = 0
        # Chunks that left the window, freed at the next publish, on the stream's
        # thread: freeing thousands of records is work the event loop should not do.
        self._forgotten: list[Sequence[Event | Metric]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver on ``loop`` (the server's event loop)."""
        self._loop = loop

    def publish(self, batch: TelemetryData) -> None:
        """Stream consumer, inline on the dispatch thread: sizes the batch and hands it to
        the event loop. Never blocks and never touches a client (that is the loop's)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        self._forgotten.clear()  # one C call under the GIL, here rather than on the loop
        chunks = []
        if batch.events:
            chunks.append(chunk_of("event", batch.events))
        if batch.metrics:
            chunks.append(chunk_of("metric", batch.metrics))
        if chunks:
            try:
                loop.call_soon_threadsafe(self._fanout, chunks)
            except RuntimeError:  # the loop closed meanwhile (shutdown)
                return

    def _fanout(self, chunks: list[Chunk]) -> None:
        """On the event loop: remember the chunks, offer them to every client."""
        for chunk in chunks:
            self._remember(chunk)
            for client in list(self.clients):
                client.offer(chunk)
                if client.closed_reason is not None and not client.sample:
                    self.clients.discard(client)
                    self.disconnected_slow += 1

    def _remember(self, chunk: Chunk) -> None:
        """Keep ``chunk`` in the window; forget the oldest records past its bounds (whole
        chunks at once, and the oldest remaining chunk trimmed at its front)."""
        recent = self._recent
        recent.append(chunk)
        self._recent_count += len(chunk[1])
        self._recent_bytes += len(chunk[1]) * chunk[2]
        while recent and (
            self._recent_count > self.window or self._recent_bytes > self.window_bytes
        ):
            kind, records, each = recent[0]
            excess_bytes = self._recent_bytes - self.window_bytes
            drop = max(self._recent_count - self.window, -(-excess_bytes // each), 0)
            drop = min(drop, len(records))
            self._recent_count -= drop
            self._recent_bytes -= drop * each
            self._forgotten.append(records)
            if drop == len(records):
                recent.popleft()
            else:
                recent[0] = (kind, records[drop:], each)

    def connect(
        self, filters: Filters, *, last_event_id: str | None = None, sample: bool = False
    ) -> Client:
        """Register a client; with ``last_event_id``, queue what it missed if still held."""
        client = Client(filters, self.max_queue, self.max_queue_bytes, sample)
        if last_event_id:
            for chunk in self._since(last_event_id):
                client.offer(chunk)
        self.clients.add(client)
        return client

    def _since(self, record_id: str) -> list[Chunk]:
        """The chunks of what the window holds after the record ``record_id`` (none when
        the window does not hold it)."""
        recent = list(self._recent)
        for at in range(len(recent) - 1, -1, -1):
            kind, records, each = recent[at]
            ids = [r.id for r in records]
            if record_id in ids:
                position = len(ids) - 1 - ids[::-1].index(record_id)
                rest = [(kind, records[position + 1 :], each), *recent[at + 1 :]]
                return [chunk for chunk in rest if chunk[1]]
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
            "queued": sum(c.queued for c in self.clients),
            "queued_bytes": sum(c.queued_bytes for c in self.clients),
            "window": self._recent_count,
            "window_bytes": self._recent_bytes,
            "disconnected_slow": self.disconnected_slow,
            "stalled": self.stalled,
        }
