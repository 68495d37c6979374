"""``StoredFeed``: every node's live view of the stream, released only once stored.

The feed reads the whole stream (every node's batches, in stream order) through a
consumer of its own, and hands a batch on only when the writers' durable consumer has
acknowledged it: a writer acknowledges after the storage committed, so everything at or
below the consumer's ack floor is stored. A live client is therefore never shown a
record that a query could not find yet.

The consumer is a pull-based equivalent of an ordered consumer: ephemeral, in memory,
without acknowledgements, its sequence checked on every message and recreated from the
last released sequence after a gap or a reconnection. Pulling (rather than being pushed
to) is what bounds the buffer: the feed asks only for messages at or below the ack
floor, so it holds at most one fetch ahead, never blocks the bus, and loses nothing while
the writers are behind; it lags instead, by at most ``max_lag`` messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import api

from telemetry.bus._aio import pause
from telemetry.bus.codec import decode_batch
from telemetry.bus.errors import BusFormatError
from telemetry.config import check_int, check_seconds
from telemetry.models import TelemetryData

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from telemetry.bus.jetstream import Bus

__all__ = ["StoredFeed"]

_log = logging.getLogger("telemetry.bus.feed")

# The server deletes the feed's consumer after this long without a pull (a node that
# died leaves nothing behind); an idle feed recreates its consumer after half of it.
_INACTIVE_THRESHOLD = 600.0


class StoredFeed:
    """Calls ``on_batch`` with every batch of the stream, in stream order, once it is stored.

    Example::

        feed = StoredFeed(bus, hub.publish)
        task = asyncio.create_task(feed.run(stop))

    It starts after the batches already stored when it starts (the writers' ack floor
    then) and shows every batch stored after that, whichever node accepted it.

    Args:
        bus: a connected :class:`~telemetry.bus.Bus`.
        on_batch: called in the event loop with each stored batch (a part of a split
            batch arrives as a batch of its own); it must not block. An exception it
            raises is logged and counted, and the feed goes on.
        poll_interval: seconds between reads of the writers' ack floor: the delay a
            stored batch may wait before it is shown.
        batch: most messages fetched at once (and so held beyond the floor).
        fetch_timeout: seconds a fetch waits for messages known to be there.
        max_lag: most messages the feed may fall behind the ack floor; beyond, it skips
            ahead to the newest ones (counted in ``skipped_messages``) so a node that
            was away, or writers catching up after an outage, do not replay hours.
    """

    def __init__(
        self,
        bus: Bus,
        on_batch: Callable[[TelemetryData], None],
        *,
        poll_interval: float = 0.1,
        batch: int = 256,
        fetch_timeout: float = 1.0,
        max_lag: int = 10_000,
    ) -> None:
        if not callable(on_batch):
            raise TypeError(f"on_batch={on_batch!r}: must be callable")
        check_seconds("poll_interval", poll_interval, positive=True)
        check_int("batch", batch, minimum=1)
        check_seconds("fetch_timeout", fetch_timeout, positive=True)
        check_int("max_lag", max_lag, minimum=1)
        self._bus = bus
        self._on_batch = on_batch
        self._poll_interval = poll_interval
        self._batch = batch
        self._fetch_timeout = fetch_timeout
        self._max_lag = max_lag
        self._sub: JetStreamContext.PullSubscription | None = None
        self._consumer: str | None = None
        self._reset = True
        self._reconnects = bus.reconnects
        self._started = False
        self._cseq = 0  # the consumer sequence of the last message fetched
        self._fetched = 0  # the stream sequence of the last message fetched
        self._released = 0  # the stream sequence of the last message released
        self._floor = 0
        self._last_pull = time.monotonic()
        # Messages fetched beyond the floor: only when the stream has gaps (expired or
        # deleted messages), and never more than one fetch, since the feed fetches
        # again only once this is empty.
        self._ahead: deque[Msg] = deque()
        self._stats = dict.fromkeys(
            (
                "released_batches",
                "released_records",
                "malformed",
                "skipped_messages",
                "callback_errors",
                "resets",
                "errors",
                "polls",
            ),
            0,
        )

    @property
    def last_released(self) -> int:
        """The stream sequence of the last batch released (or skipped)."""
        return self._released

    def stats(self) -> dict[str, int]:
        """Counters: ``released_batches`` (bus messages), ``released_records``,
        ``malformed``, ``skipped_messages`` (beyond ``max_lag``), ``callback_errors``,
        ``resets`` (consumer recreated), ``errors``, ``polls`` (ack floor reads), and the
        gauges ``buffered``, ``ack_floor`` and ``last_released``."""
        return {
            **self._stats,
            "buffered": len(self._ahead),
            "ack_floor": self._floor,
            "last_released": self._released,
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the stream until ``stop`` is set; then delete the feed's consumer."""
        try:
            while not stop.is_set():
                try:
                    await self._step(stop)
                except (OSError, nats.errors.Error) as exc:
                    # Disconnected, timed out or refused: start again from the last
                    # released message once the connection is back.
                    self._stats["errors"] += 1
                    self._reset = True
                    _log.debug("bus feed: %s", exc or type(exc).__name__)
                    await pause(stop, self._poll_interval)
        finally:
            await self._close_consumer()

    async def _step(self, stop: asyncio.Event) -> None:
        bus = self._bus
        if not bus.connected:
            await pause(stop, self._poll_interval)
            return
        if bus.reconnects != self._reconnects:
            # Pull requests and messages in flight may have been lost with the connection.
            self._reconnects = bus.reconnects
            self._reset = True
        floor = await bus.ack_floor()
        self._stats["polls"] += 1
        self._floor = floor
        if not self._started:
            # Show what is stored from now on; what was stored before is in the storage.
            self._started = True
            self._released = self._fetched = floor
        while self._ahead and self._ahead[0].metadata.sequence.stream <= floor:
            self._release(self._ahead.popleft())
        if floor - self._released > self._max_lag:
            start = floor - self._max_lag
            self._stats["skipped_messages"] += start - self._released
            _log.warning(
                "bus feed: %d messages behind the stored ones; skipping %d",
                floor - self._released,
                start - self._released,
            )
            self._released = start
            self._reset = True
        if self._reset:
            self._ahead.clear()
            self._fetched = self._released
        if self._ahead or floor <= self._fetched:
            await pause(stop, self._poll_interval)
            return
        if self._reset or time.monotonic() - self._last_pull > _INACTIVE_THRESHOLD / 2:
            await self._open_consumer(self._released + 1)
        assert self._sub is not None
        self._last_pull = time.monotonic()
        try:
            msgs = await self._sub.fetch(
                min(self._batch, floor - self._fetched), timeout=self._fetch_timeout
            )
        except nats.errors.TimeoutError:
            await self._check_consumer(floor)
            return
        for msg in msgs:
            seq = msg.metadata.sequence
            if seq.consumer != self._cseq + 1 or seq.stream <= self._fetched:
                # A message was lost between the server and here: start again.
                _log.debug("bus feed: sequence gap at %d; resetting", seq.stream)
                self._reset = True
                return
            self._cseq, self._fetched = seq.consumer, seq.stream
            if seq.stream <= floor and not self._ahead:
                self._release(msg)
            else:
                self._ahead.append(msg)

    def _release(self, msg: Msg) -> None:
        self._released = msg.metadata.sequence.stream
        try:
            data = decode_batch(msg.data)
        except BusFormatError:
            # The writers terminated it (that is why it is under the floor): skip it too.
            self._stats["malformed"] += 1
            return
        self._stats["released_batches"] += 1
        self._stats["released_records"] += len(data)
        try:
            self._on_batch(data)
        except Exception:  # a subscriber's bug must not stop every node's live view
            self._stats["callback_errors"] += 1
            _log.exception("bus feed: on_batch failed")

    async def _open_consumer(self, start: int) -> None:
        """Replace the feed's consumer by one that starts at stream sequence ``start``."""
        if self._consumer is not None:
            self._stats["resets"] += 1
        await self._close_consumer()
        s = self._bus.settings
        js = self._bus.jetstream
        name = f"rimp-feed-{uuid.uuid4().hex}"
        config = api.ConsumerConfig(
            name=name,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            # The feed only reads: no acknowledgements, no redeliveries, nothing kept
            # on disk, nothing that could hold back the writers or the publishers.
            ack_policy=api.AckPolicy.NONE,
            filter_subject=s.subject,
            inactive_threshold=_INACTIVE_THRESHOLD,
            mem_storage=True,
            num_replicas=1,
        )
        await js.add_consumer(s.stream, config)
        self._consumer = name
        self._sub = await js.pull_subscribe_bind(consumer=name, stream=s.stream)
        self._cseq = 0
        self._reset = False

    async def _check_consumer(self, floor: int) -> None:
        """A fetch found nothing though messages up to ``floor`` were expected: find why."""
        assert self._consumer is not None
        s = self._bus.settings
        try:
            info = await self._bus.jetstream.consumer_info(s.stream, self._consumer)
        except nats.js.errors.NotFoundError:
            self._reset = True  # deleted (the server restarted, or it was idle too long)
            return
        delivered = info.delivered.stream_seq if info.delivered else 0
        if delivered > self._fetched:
            self._reset = True  # delivered but never arrived
        elif not info.num_pending:
            # Nothing left to read up to the floor: those messages are gone (max_age).
            self._fetched = self._released = max(self._fetched, floor)

    async def _close_consumer(self) -> None:
        sub, name = self._sub, self._consumer
        self._sub = self._consumer = None
        if sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        if name is not None and self._bus.connected:
            # Best effort: the server removes it after _INACTIVE_THRESHOLD anyway.
            with contextlib.suppress(OSError, nats.errors.Error):
                await self._bus.jetstream.delete_consumer(self._bus.settings.stream, name)
