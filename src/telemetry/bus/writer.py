"""``BusWriter``: moves batches from the stream into the storage, committing before acknowledging.

Every node runs one; all of them pull from the same durable consumer, which hands each
message to one writer at a time. A writer merges what one fetch brought into a single
``TelemetryData`` (one large storage write is much cheaper than many small ones), stores
it, and only then acknowledges the messages. A writer that dies between the two leaves
the messages unacknowledged, and JetStream redelivers them after ``ack_wait``; the
storage (PostgreSQL) makes ``store`` idempotent by record id, so a batch stored twice is
kept once. Nothing is acknowledged that was not stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg

from telemetry._failpoints import failpoint
from telemetry.bus._aio import pause
from telemetry.bus.codec import decode_batch
from telemetry.bus.errors import BusFormatError
from telemetry.config import check_int, check_seconds
from telemetry.models import TelemetryData

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from telemetry.bus.jetstream import Bus
    from telemetry.storage.base import Storage

__all__ = ["BusWriter"]

_log = logging.getLogger("telemetry.bus.writer")

# An idle writer checks this often that its consumer still exists: a fetch from a
# deleted consumer (or stream) only ever times out, it reports no error.
_CHECK_INTERVAL = 10.0


class BusWriter:
    """Stores the batches of the bus's stream through the writers' shared durable consumer.

    Example::

        writer = BusWriter(bus, storage)
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        ...
        stop.set(); await task     # finishes the batch in hand, then returns

    Args:
        bus: a connected :class:`~telemetry.bus.Bus`.
        storage: where batches go; ``store`` runs in a worker thread.
        batch: most messages fetched, merged and stored at once. Together with the
            other writers' it must stay below the consumer's ``max_ack_pending``.
        fetch_timeout: seconds a fetch waits for messages; also the longest a stop
            waits for an idle writer.
        retry_delay: seconds before a batch whose store failed is delivered again,
            and the pause before the next fetch (the storage is likely down).
    """

    def __init__(
        self,
        bus: Bus,
        storage: Storage,
        *,
        batch: int = 256,
        fetch_timeout: float = 1.0,
        retry_delay: float = 1.0,
    ) -> None:
        check_int("batch", batch, minimum=1)
        check_seconds("fetch_timeout", fetch_timeout, positive=True)
        check_seconds("retry_delay", retry_delay, positive=True)
        self._bus = bus
        self._storage = storage
        self._batch = batch
        self._fetch_timeout = fetch_timeout
        self._retry_delay = retry_delay
        # JetStream redelivers after ack_wait: a store that takes longer reports
        # progress every third of it, so the messages are not handed to another writer.
        self._progress_interval = bus.settings.ack_wait / 3
        self._last_check = time.monotonic()
        self._failures_in_a_row = 0
        self._stats = dict.fromkeys(
            (
                "batches_stored",
                "records_stored",
                "stores",
                "redelivered",
                "failures",
                "malformed",
                "fetch_errors",
                "ack_errors",
            ),
            0,
        )

    def stats(self) -> dict[str, int]:
        """Counters: ``batches_stored`` (bus messages), ``records_stored``, ``stores``
        (storage writes), ``redelivered`` (messages seen more than once), ``failures``
        (failed storage writes), ``malformed`` (terminated messages), ``fetch_errors``,
        ``ack_errors``."""
        return dict(self._stats)

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch, store and acknowledge until ``stop`` is set; the batch in hand is finished
        (stored and acknowledged, or handed back) before returning."""
        s = self._bus.settings
        js: JetStreamContext = self._bus.jetstream
        # Binding only subscribes an inbox here; the consumer is the bus's durable one.
        sub = await js.pull_subscribe_bind(durable=s.durable, stream=s.stream)
        try:
            while not stop.is_set():
                if not self._bus.connected:
                    # Fetches would pile up in nats-py's buffer while it reconnects.
                    await pause(stop, min(self._retry_delay, self._fetch_timeout))
                    continue
                try:
                    msgs = await sub.fetch(self._batch, timeout=self._fetch_timeout)
                except nats.errors.TimeoutError:
                    await self._check_consumer(js)
                    continue
                except (OSError, nats.errors.Error) as exc:
                    self._stats["fetch_errors"] += 1
                    _log.warning("bus writer: fetch failed: %s", exc or type(exc).__name__)
                    await pause(stop, self._retry_delay)
                    continue
                if not await self._handle(msgs):
                    await pause(stop, self._retry_delay)
        finally:
            with contextlib.suppress(nats.errors.Error):  # the connection is already closed
                await sub.unsubscribe()

    async def _handle(self, msgs: list[Msg]) -> bool:
        """Store one fetch's messages and acknowledge them; False when the store failed."""
        good: list[Msg] = []
        parts: list[TelemetryData] = []
        for msg in msgs:
            if msg.metadata.num_delivered > 1:
                self._stats["redelivered"] += 1
            try:
                parts.append(decode_batch(msg.data))
            except BusFormatError as exc:
                # It can never be stored: terminate it rather than let it come back for
                # ever (a term counts as acknowledged, so the ack floor moves past it).
                self._stats["malformed"] += 1
                _log.warning(
                    "bus writer: message %d terminated: %s", msg.metadata.sequence.stream, exc
                )
                await self._settle(msg.term())
                continue
            good.append(msg)
        if not good:
            return True
        alone = len(good) == 1
        if await self._store_and_ack(good, parts, hand_back=alone):
            return True
        if not alone:
            # One bad message must not hold the others back: each is tried alone; only
            # those that fail alone go back to the stream.
            stored_any = False
            for msg, part in zip(good, parts, strict=True):
                stored_any |= await self._store_and_ack([msg], [part], quiet=True)
            return stored_any
        return False

    async def _store_and_ack(
        self,
        msgs: list[Msg],
        parts: list[TelemetryData],
        *,
        quiet: bool = False,
        hand_back: bool = True,
    ) -> bool:
        """Store ``parts`` in one transaction, then acknowledge ``msgs``; on failure, False,
        and with ``hand_back`` the messages are ``nak``-ed (they come back after
        ``retry_delay``; without it the caller tries them again itself)."""
        records = sum(len(p) for p in parts)
        try:
            await self._store(parts, msgs)
        except Exception as exc:  # any storage error: the batch must come back, whatever it was
            self._stats["failures"] += 1
            self._failures_in_a_row += 1
            _log.warning(
                "bus writer: storing %d records failed (%s); redelivery in %g s",
                records,
                exc or type(exc).__name__,
                self._retry_delay,
                exc_info=self._failures_in_a_row == 1 and not quiet,
            )
            if hand_back:
                for msg in msgs:
                    await self._settle(msg.nak(delay=self._retry_delay))
            return False
        failpoint("bus-writer-after-commit")  # tests: die as if killed right here
        self._failures_in_a_row = 0
        self._stats["stores"] += 1
        self._stats["batches_stored"] += len(msgs)
        self._stats["records_stored"] += records
        # Committed: only now may JetStream forget the messages.
        for msg in msgs:
            await self._settle(msg.ack())
        return True

    async def _store(self, parts: list[TelemetryData], msgs: list[Msg]) -> None:
        # store_many, not one merged store: a backend that is idempotent by how it cuts
        # each batch (PostgreSQL) then stores a redelivered message once, whatever
        # other messages it is fetched with.
        store = asyncio.ensure_future(asyncio.to_thread(self._storage.store_many, parts))
        while True:
            done, _ = await asyncio.wait({store}, timeout=self._progress_interval)
            if done:
                return store.result()
            for msg in msgs:
                with contextlib.suppress(nats.errors.Error):  # the worst is a redelivery
                    await msg.in_progress()

    async def _settle(self, ack: Awaitable[None]) -> None:
        # An ack that cannot be sent is not fatal: the message comes back after ack_wait
        # and storing it again is harmless (the storage is idempotent by record id).
        try:
            await ack
        except nats.errors.Error as exc:
            self._stats["ack_errors"] += 1
            _log.debug("bus writer: acknowledgement not sent: %s", exc)

    async def _check_consumer(self, js: JetStreamContext) -> None:
        """When idle, now and then make sure the consumer exists (recreating it if not)."""
        now = time.monotonic()
        if now - self._last_check < _CHECK_INTERVAL:
            return
        self._last_check = now
        s = self._bus.settings
        try:
            await js.consumer_info(s.stream, s.durable)
        except nats.js.errors.NotFoundError:
            _log.warning(
                "bus writer: consumer %s of stream %s is gone; recreating", s.durable, s.stream
            )
            try:
                await self._bus.ensure()
            except (OSError, nats.errors.Error) as exc:
                _log.warning("bus writer: recreating the consumer failed: %s", exc)
        except (OSError, nats.errors.Error):
            pass  # disconnected or slow: checked again later
