"""The live hub: a stream consumer that fans records out to SSE and WebSocket clients.

The stream calls :meth:`LiveHub.publish` on its consumer thread; the hub sizes
each record there (off the event loop), hands the batch to the event loop in
one ``call_soon_threadsafe`` and there offers it to every client's queue. Every
bound is in records *and* bytes: a client whose queue would pass either is
disconnected with a reason (the default) or, with ``mode="sample"``, keeps a
sample that fits and is told how much it missed. A slow client can never grow
memory or slow ingest: the bounds and the thread hop see to that. The hub keeps
the most recent records, bounded the same way, so that an SSE client can resume
from ``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable
from itertools import accumulate
from typing import TypedDict

import msgspec

from telemetry._jsonform import encode as _encode
from telemetry._jsonform import event_to_wire, metric_to_wire
from telemetry.models import Event, Metric, TelemetryData

__all__ = [
    "SEND_BYTES",
    "Client",
    "Filters",
    "HubStats",
    "LiveHub",
    "encode_item",
    "record_size",
]

Item = tuple[str, Event | Metric, int]
"""A record as the hub holds it: its kind (``event``/``metric``), the record, its size."""

_OVERHEAD = 160  # the JSON field names, the id and both times of one record
SEND_BYTES = 256 * 1024
"""The most record bytes one live client is handed (and its handler encodes) at a time."""


def record_size(kind: str, record: Event | Metric) -> int:
    """An estimate of the record's size as JSON, in characters: what the bounds count.

    Strings count their length; an event's metadata is encoded to be measured (one C
    call: cheaper than walking it in Python).
    """
    if kind == "event":
        event: Event = record  # type: ignore[assignment]
        # Metadata measured by encoding it: one C call, cheaper than walking it here.
        metadata = event.metadata
        return (
            len(event.message)
            + len(event.source)
            + _OVERHEAD
            + (len(_encode(metadata)) if metadata else 0)
        )
    metric: Metric = record  # type: ignore[assignment]
    size = len(metric.name) + len(metric.unit) + _OVERHEAD
    for key, value in metric.tags.items():
        size += len(key) + len(value) + 6
    return size


def _event_items(events: list[Event]) -> list[Item]:
    """Hub items of a batch's events. The batch's metadata is measured in one C call and
    shared out evenly: the batch's total is right to a byte per record (what the window and
    the queues add up), a record's own share is an estimate. Measuring each record's
    metadata on its own cost ~0.3 us per event; this costs a few tens of ns."""
    if not events:
        return []
    base = _OVERHEAD + len(_encode([e.metadata for e in events])) // len(events)
    return [("event", e, base + len(e.message) + len(e.source)) for e in events]


class Filters(msgspec.Struct, frozen=True):
    """What a client wants: record kind, event sources and types, metric names."""

    kind: str | None = None
    sources: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()

    @property
    def kind_only(self) -> bool:
        """True when only the record kind (or nothing) is filtered: no per-record test."""
        return not (self.sources or self.types or self.names)

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
        self.queue: deque[Item] = deque()
        self.queued_bytes = 0
        self.ready = asyncio.Event()
        self.closed_reason: str | None = None
        self.closed_code = "slow_consumer"
        self.missed = 0
        self.sent = 0

    def offer(self, items: list[Item], by_kind: dict[str, list[Item]] | None = None) -> None:
        """Queue the items this client wants (on the event loop).

        ``by_kind`` (the same items split by kind, computed once per batch by the
        hub) lets a client that filters on nothing but the kind skip the
        per-record test: hundreds of such clients cost one lookup each.
        """
        if self.closed_reason is not None:
            return
        filters = self.filters
        if filters.kind_only and by_kind is not None:
            wanted = items if filters.kind is None else by_kind[filters.kind]
        else:
            accepts = filters.accepts
            wanted = [item for item in items if accepts(item[0], item[1])]
        if not wanted:
            return
        size = sum(item[2] for item in wanted)
        room = self.max_queue - len(self.queue)
        room_bytes = self.max_bytes - self.queued_bytes
        if len(wanted) > room or size > room_bytes:
            if not self.sample:
                self.closed_reason = (
                    f"slow consumer: more than {self.max_queue} records or {self.max_bytes} "
                    "bytes waiting; reconnect, narrow the filters, or use mode=sample"
                )
                self.ready.set()
                return
            wanted = self._sample(wanted, max(room, 0), room_bytes)
            size = sum(item[2] for item in wanted)
        self.queue.extend(wanted)
        self.queued_bytes += size
        self.ready.set()

    def _sample(self, wanted: list[Item], room: int, room_bytes: int) -> list[Item]:
        """An evenly spread sample of ``wanted`` that fits both rooms; counts the rest missed."""
        step = len(wanted) / room if room else 0
        spread = [wanted[int(i * step)] for i in range(min(room, len(wanted)))]
        kept: list[Item] = []
        for item in spread:
            if item[2] <= room_bytes:
                kept.append(item)
                room_bytes -= item[2]
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
        while queue and (not items or size + queue[0][2] <= max_bytes):
            item = queue.popleft()
            items.append(item)
            size += item[2]
        self.queued_bytes -= size
        self.sent += len(items)
        return items


class LiveHub:
    """Fans batches out to live clients; keeps a window of recent records for resuming.

    Args:
        window: most records kept for ``Last-Event-ID`` resumption.
        window_bytes: most bytes (as :func:`record_size` counts) kept for it.
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
        # The window, kept batch by batch with each batch's bytes: remembering a batch
        # and forgetting the oldest cost one step each, not one per record.
        self._recent: deque[tuple[list[Item], int]] = deque()
        self._recent_count = 0
        self._recent_bytes = 0
        # Batches that left the window, freed by the stream's thread at its next publish:
        # freeing thousands of records is work the event loop should not do.
        self._forgotten: list[list[Item]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver on ``loop`` (the server's event loop)."""
        self._loop = loop

    def publish(self, batch: TelemetryData) -> None:
        """Stream consumer: called on the stream's worker thread for every batch."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        self._forgotten.clear()  # one C call under the GIL, here rather than on the loop
        # Sized here, on the stream's thread, so the event loop only adds numbers.
        items = _event_items(batch.events)
        items += [("metric", m, record_size("metric", m)) for m in batch.metrics]
        if items:
            size = sum([item[2] for item in items])
            try:
                loop.call_soon_threadsafe(self._fanout, items, size)
            except RuntimeError:  # the loop closed meanwhile (shutdown)
                return

    def _fanout(self, items: list[Item], size: int | None = None) -> None:
        """On the event loop: remember the batch, offer it to every client. ``size`` is
        the items' bytes, when :meth:`publish` summed them already."""
        self._remember(items, sum(item[2] for item in items) if size is None else size)
        if not self.clients:
            return
        by_kind: dict[str, list[Item]] = {
            "event": [i for i in items if i[0] == "event"],
            "metric": [i for i in items if i[0] == "metric"],
        }
        for client in list(self.clients):
            client.offer(items, by_kind)
            if client.closed_reason is not None and not client.sample:
                self.clients.discard(client)
                self.disconnected_slow += 1

    def _remember(self, items: list[Item], size: int) -> None:
        """Keep ``items`` in the window; forget the oldest records past its bounds (whole
        batches at once, and the oldest remaining batch trimmed at its front)."""
        recent = self._recent
        recent.append((items, size))
        self._recent_count += len(items)
        self._recent_bytes += size
        while recent and (
            self._recent_count > self.window or self._recent_bytes > self.window_bytes
        ):
            oldest, oldest_bytes = recent[0]
            if (
                self._recent_count - len(oldest) > self.window
                or self._recent_bytes - oldest_bytes > self.window_bytes
            ):  # still over without any of it: all of it goes
                self._forgotten.append(recent.popleft()[0])
                self._recent_count -= len(oldest)
                self._recent_bytes -= oldest_bytes
                continue
            # Part of it: as many from its front as the bounds need, found with running
            # sums (C loops) rather than record by record.
            drop = max(0, self._recent_count - self.window)
            sizes = list(accumulate(item[2] for item in oldest))
            excess = self._recent_bytes - self.window_bytes
            if excess > 0:
                drop = max(drop, bisect_left(sizes, excess) + 1)
            drop = min(drop, len(oldest))
            dropped_bytes = sizes[drop - 1] if drop else 0
            self._recent_count -= drop
            self._recent_bytes -= dropped_bytes
            self._forgotten.append(oldest)
            if drop == len(oldest):
                recent.popleft()
            else:
                recent[0] = (oldest[drop:], oldest_bytes - dropped_bytes)

    def connect(
        self, filters: Filters, *, last_event_id: str | None = None, sample: bool = False
    ) -> Client:
        """Register a client; with ``last_event_id``, queue what it missed if still held."""
        client = Client(filters, self.max_queue, self.max_queue_bytes, sample)
        if last_event_id:
            client.offer(list(self._since(last_event_id)))
        self.clients.add(client)
        return client

    def _since(self, record_id: str) -> Iterable[Item]:
        recent = [item for items, _ in self._recent for item in items]
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
            "queued_bytes": sum(c.queued_bytes for c in self.clients),
            "window": self._recent_count,
            "window_bytes": self._recent_bytes,
            "disconnected_slow": self.disconnected_slow,
            "stalled": self.stalled,
        }
