"""``TelemetryStream``: deliver batches to a storage and to consumers as they happen.

The collector's one dispatch thread takes each batch out of the buffer, writes
it to the stream's storage and then offers it to every consumer. Each consumer
has its own bounded queue and worker thread, so a consumer that raises or is
slow is isolated and counted: it never stops the loop, never delays the storage
write and never starves the other consumers. A consumer that falls more than
``max_pending`` batches behind loses its oldest batches (counted per consumer;
the storage still has them).

Consumers are plain callables taking a ``TelemetryData``, or coroutine
functions (each async consumer runs on its own event loop in its worker). A
consumer added with ``inline=True`` has no queue and no thread: the dispatch
thread calls it right after the storage write. That saves a thread hand-over
per batch (live delivery sooner, less CPU) and is only for consumers that
return at once: an inline consumer delays the next storage write by its own time.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypedDict

from telemetry import _lifecycle
from telemetry.collector import Route, TelemetryCollector
from telemetry.errors import ConfigError, StreamError
from telemetry.models import TelemetryData
from telemetry.storage import Storage

__all__ = ["Consumer", "ConsumerStats", "StreamStats", "TelemetryStream"]

_log = logging.getLogger("telemetry.streaming")

Consumer = Callable[[TelemetryData], Any] | Callable[[TelemetryData], Awaitable[Any]]


class ConsumerStats(TypedDict):
    """One consumer's figures in :meth:`TelemetryStream.stats`."""

    delivered_batches: int
    errors: int
    pending_batches: int
    dropped_batches: int
    dropped_records: int


class StreamStats(TypedDict):
    """What :meth:`TelemetryStream.stats` returns."""

    running: bool
    batches: int
    records: int
    consumers: dict[str, ConsumerStats]


def _is_async(fn: Callable[..., Any]) -> bool:
    """True for a coroutine function, or an object whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


def _failed(consumer: _ConsumerWorker | _InlineConsumer) -> None:
    """Count a consumer's failure (called in its ``except``); log the first and every 100th."""
    consumer.errors += 1
    consumer._on_error()
    if consumer.errors == 1 or consumer.errors % 100 == 0:
        _log.exception("telemetry: consumer %s failed (%d errors)", consumer.name, consumer.errors)


class _ConsumerWorker:
    """One consumer's bounded queue of batches and the thread that feeds it."""

    def __init__(
        self,
        fn: Consumer,
        name: str,
        max_pending: int,
        on_error: Callable[[], None],
        on_drop: Callable[[int], None],
    ) -> None:
        self.fn = fn
        self.name = name
        self.max_pending = max_pending
        self.is_async = _is_async(fn)
        self._on_error = on_error
        self._on_drop = on_drop
        self.delivered = 0
        self.errors = 0
        self.dropped_batches = 0
        self.dropped_records = 0
        self._reset()

    def _reset(self) -> None:
        self._queue: deque[TelemetryData] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._busy = False
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name=f"rimp-consumer-{self.name}", daemon=True
        )
        self._thread.start()

    def ensure_running(self) -> None:
        if not self._thread.is_alive():
            self._reset()

    def offer(self, batch: TelemetryData) -> None:
        with self._cond:
            lost = self._queue.popleft() if len(self._queue) >= self.max_pending else None
            self._queue.append(batch)
            self._cond.notify()
        if lost is not None:
            self.dropped_batches += 1
            self.dropped_records += len(lost)
            self._on_drop(len(lost))

    def _run(self) -> None:
        loop = asyncio.new_event_loop() if self.is_async else None
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._stopping:
                        self._cond.wait()
                    if not self._queue:
                        return
                    batch = self._queue.popleft()
                    self._busy = True
                try:
                    result = self.fn(batch)
                    if loop is not None and inspect.isawaitable(result):
                        loop.run_until_complete(result)
                    self.delivered += 1
                except Exception:
                    _failed(self)
                finally:
                    with self._cond:
                        self._busy = False
                        self._cond.notify_all()
        finally:
            if loop is not None:
                loop.close()

    def drain(self, deadline: float) -> bool:
        """Wait until the queue is empty and the consumer idle, or the deadline passes."""
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(left)
        return True

    def stop(self, deadline: float) -> bool:
        if threading.current_thread() is self._thread:
            # A consumer stopping its own stream: it cannot wait for itself.
            with self._cond:
                self._stopping = True
            return False
        done = self.drain(deadline)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        return done and not self._thread.is_alive()

    def stats(self) -> ConsumerStats:
        return {
            "delivered_batches": self.delivered,
            "errors": self.errors,
            "pending_batches": len(self._queue),
            "dropped_batches": self.dropped_batches,
            "dropped_records": self.dropped_records,
        }


class _InlineConsumer:
    """A consumer called on the dispatch thread itself (``add_consumer(inline=True)``)."""

    def __init__(self, fn: Callable[[TelemetryData], Any], name: str, on_error: Callable[[], None]):
        self.fn = fn
        self.name = name
        self._on_error = on_error
        self.delivered = 0
        self.errors = 0

    def ensure_running(self) -> None:
        """Nothing to start: there is no thread."""

    def _reset(self) -> None:
        """Nothing to restart after a fork."""

    def offer(self, batch: TelemetryData) -> None:
        # On the dispatch thread, right after storage: it must not raise into the loop.
        try:
            self.fn(batch)
            self.delivered += 1
        except Exception:
            _failed(self)

    def stop(self, deadline: float) -> bool:
        """Nothing queued: always done."""
        return True

    def stats(self) -> ConsumerStats:
        return {
            "delivered_batches": self.delivered,
            "errors": self.errors,
            "pending_batches": 0,
            "dropped_batches": 0,
            "dropped_records": 0,
        }


class TelemetryStream:
    """Streams a collector's records to a storage and to consumers.

    Example::

        stream = TelemetryStream(collector, MemoryStorage(), interval=1.0)
        stream.add_consumer(lambda data: print(len(data.events), len(data.metrics)))
        stream.start()
        ...
        stream.stop()   # drains everything, then stops; idempotent

    Args:
        collector: where records come from.
        storage: where every batch is written before consumers see it
            (default: ``collector.storage``).
        interval: seconds between deliveries (default: the collector's
            ``flush_interval``). With ``realtime_mode`` batches go out as soon
            as records arrive; ``buffer_size`` waiting records also wake it early.
        realtime: overrides the collector's ``realtime_mode``.
        max_pending: batches a consumer may fall behind before it loses the oldest.
    """

    def __init__(
        self,
        collector: TelemetryCollector,
        storage: Storage | None = None,
        interval: float | None = None,
        *,
        realtime: bool | None = None,
        max_pending: int = 1000,
    ) -> None:
        if interval is not None and (
            not isinstance(interval, int | float) or isinstance(interval, bool) or interval <= 0
        ):
            raise ConfigError(
                f"interval={interval!r}: must be a number of seconds above 0", field="interval"
            )
        self.collector = collector
        self.storage = storage if storage is not None else collector.storage
        self.interval = float(interval) if interval is not None else collector.config.flush_interval
        self.realtime = collector.config.realtime_mode if realtime is None else realtime
        self.max_pending = max_pending
        self._workers: list[_ConsumerWorker | _InlineConsumer] = []
        self._lock = threading.Lock()
        self._route: Route | None = None
        self._batches = 0
        self._records = 0
        # Streams drain at exit before collectors close (a later phase runs first).
        _lifecycle.track(
            self,
            _lifecycle.Phase.STREAM,
            at_exit=TelemetryStream.stop,
            after_fork=TelemetryStream._after_fork_in_child,
        )

    def add_consumer(
        self, consumer: Consumer, *, name: str | None = None, inline: bool = False
    ) -> None:
        """Add a consumer: called with every batch, in its own worker thread.

        With ``inline=True`` it is called on the dispatch thread right after each storage
        write instead (no queue, no thread): for a consumer that only hands the batch on
        (to an event loop, a lock-free queue) and returns at once, since the next write
        waits for it. Its errors are counted as any consumer's.

        Raises:
            StreamError: ``consumer`` is not callable, or is a coroutine function
                asked to run inline.
        """
        if not callable(consumer):
            raise StreamError(f"consumer={consumer!r}: must be callable")
        if inline and _is_async(consumer):
            raise StreamError(f"consumer={consumer!r}: a coroutine function cannot run inline")
        label = name or getattr(consumer, "__name__", None) or type(consumer).__name__
        with self._lock:
            taken = {w.name for w in self._workers}
        base, n = label, 1
        while label in taken:  # names key stats(): keep them distinct
            n += 1
            label = f"{base}#{n}"
        worker: _ConsumerWorker | _InlineConsumer
        if inline:
            worker = _InlineConsumer(consumer, label, self.collector._count_consumer_error)
        else:
            worker = _ConsumerWorker(
                consumer,
                label,
                self.max_pending,
                self.collector._count_consumer_error,
                self.collector._count_consumer_drop,
            )
        with self._lock:
            self._workers = [*self._workers, worker]

    def remove_consumer(self, consumer: Consumer, timeout: float = 5.0) -> bool:
        """Stop delivering to ``consumer`` after what it already has; return True if it was here."""
        with self._lock:
            found = [w for w in self._workers if w.fn is consumer]
            self._workers = [w for w in self._workers if w.fn is not consumer]
        for worker in found:
            worker.stop(time.monotonic() + timeout)
        return bool(found)

    @property
    def is_running(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._route is not None

    def start(self) -> TelemetryStream:
        """Attach to the collector: from now on this stream takes every batch.

        Raises:
            StreamError: another stream is already attached to the collector.
        """
        if self._route is not None:
            return self
        current = self.collector._route
        if current is not None and current.fanout is not None:
            raise StreamError("this collector already has a running TelemetryStream")
        for worker in self._workers:
            worker.ensure_running()
        self._route = Route(self.storage, self.interval, self.realtime, self._fanout)
        self.collector._attach(self._route)
        return self

    def _fanout(self, batch: TelemetryData) -> None:
        # Runs on the dispatch thread: hand the batch to each queue; only inline consumers
        # (which return at once by contract) are called here.
        self._batches += 1
        self._records += len(batch)
        for worker in self._workers:
            worker.offer(batch)

    def stop(self, timeout: float | None = None) -> bool:
        """Drain the collector through this stream, let consumers finish, detach. Idempotent.

        Returns:
            True when everything was stored and consumed within ``timeout``
            (default: the collector's ``shutdown_timeout``).
        """
        route = self._route
        if route is None:
            return True
        timeout = self.collector.config.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        flushed = self.collector.flush(timeout)
        self.collector._detach(route)
        self._route = None
        stopped = [w.stop(deadline) for w in self._workers]
        return flushed and all(stopped)

    close = stop

    def stats(self) -> StreamStats:
        """Batches and records delivered, and per-consumer figures (errors, drops, backlog)."""
        return {
            "running": self.is_running,
            "batches": self._batches,
            "records": self._records,
            "consumers": {w.name: w.stats() for w in self._workers},
        }

    def __enter__(self) -> TelemetryStream:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _after_fork_in_child(self) -> None:
        for worker in self._workers:
            worker._reset()
