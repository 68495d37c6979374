"""``TelemetryCollector``: the hot path and the one dispatch loop behind it.

Recording is an append to a bounded per-kind buffer (a ``deque``, whose
``append``/``popleft`` are atomic under the GIL, so no lock is taken). One
background thread, the *pump*, takes batches out of the buffers and delivers
them: to ``collector.storage`` on its own, or to the storage and consumers of a
:class:`~telemetry.streaming.TelemetryStream` while one is attached.

Accounting is exact: every accepted call is either buffered, delivered or
dropped with a reason, so ``collected == flushed + buffered + dropped`` once
the storage has taken everything (``records_flushed`` counts what it took).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypedDict

from telemetry import _lifecycle
from telemetry._compiled import HOTPATH
from telemetry._ids import ID_POOL
from telemetry._jsonform import encode as _encode_tags
from telemetry._sink import sink_from_config
from telemetry.config import TelemetryConfig
from telemetry.errors import ValidationError
from telemetry.instruments import NOOP, Counter, Gauge, Histogram, Instrument, Timer
from telemetry.models import Event, EventType, Metric, TelemetryData, to_ns
from telemetry.storage import Storage

if TYPE_CHECKING:
    from telemetry._runtime import RuntimeMetrics

__all__ = ["COMPILED", "OVERFLOW_NAME", "OVERFLOW_TAGS", "CollectorStats", "TelemetryCollector"]

_log = logging.getLogger("telemetry.collector")
_ns = time.time_ns


_HOTPATH = HOTPATH
COMPILED = _HOTPATH is not None
"""Whether collectors record through the compiled path (``telemetry._hotpath``)."""
_EVENT_TYPE = EventType
_STR = str
_DICT = dict
OVERFLOW_TAGS: dict[str, str] = {"rimp_overflow": "true"}
OVERFLOW_NAME = "rimp_overflow"
"""Where points of metric names past ``max_metric_names`` go (tagged ``OVERFLOW_TAGS``)."""
_STORE_RETRY_MAX = 5.0
_MAX_KNOWN_KEYS = 1_000_000  # bound on the fast-path cache of (name, encoded tags)


class CollectorStats(TypedDict):
    """What :meth:`TelemetryCollector.stats` returns (every key is documented there)."""

    events_collected: int
    metrics_collected: int
    instrument_points: int
    records_flushed: int
    records_dropped: int
    dropped_by_reason: dict[str, int]
    buffered: int
    consumer_errors: int
    storage_errors: int
    awaiting_retry: int
    cardinality_overflow: int
    consumer_dropped: int
    instruments: int


Ack = Callable[[bool], None]
"""Called once a submitted batch is stored (True) or given up on (False)."""


class Route:
    """Where the pump sends batches: a storage, an optional fan-out and an interval.

    ``fanout`` is called with every batch after the storage write; it must not
    raise (a :class:`~telemetry.streaming.TelemetryStream` isolates its consumers).
    """

    __slots__ = ("fanout", "interval", "realtime", "storage")

    def __init__(
        self,
        storage: Storage,
        interval: float,
        realtime: bool,
        fanout: Callable[[TelemetryData], None] | None = None,
    ) -> None:
        self.storage = storage
        self.interval = interval
        self.realtime = realtime
        self.fanout = fanout


class TelemetryCollector:
    """Records events and metrics without slowing the application.

    Example::

        collector = TelemetryCollector(TelemetryConfig(realtime_mode=True))
        collector.collect_event(source="api", message="Request received",
                                metadata={"endpoint": "/users"})
        collector.collect_metric(name="response_time", value=125.5, unit="ms",
                                 tags={"endpoint": "/users", "status": "200"})
        collector.close()

    Without a stream the collector flushes to ``collector.storage`` every
    ``flush_interval`` seconds and when ``buffer_size`` records wait. While a
    ``TelemetryStream`` is attached, the stream alone takes records out.

    Args:
        config: the configuration (defaults to ``TelemetryConfig()``).
        storage: a storage to use instead of the one the config names.
    """

    def __init__(
        self, config: TelemetryConfig | None = None, *, storage: Storage | None = None
    ) -> None:
        self.config = config = config if config is not None else TelemetryConfig()
        self._given_storage = storage
        self._storage: Storage | None = storage
        self._capacity = config.buffer_capacity
        self._max_meta = config.max_metadata_keys
        self._max_message = config.max_message_length
        self._instruments: dict[tuple[str, str, tuple[tuple[str, str], ...]], Instrument] = {}
        self._extras: list[Callable[[], None]] = []  # undone by close(): hooks, callbacks
        self.runtime: RuntimeMetrics | None = None
        self._route: Route | None = None
        self._closed = False
        self._pump: threading.Thread | None = None
        self._init_state()
        if not config.enabled:
            self.collect_event = _disabled_record  # type: ignore[method-assign]
            self.collect_metric = _disabled_record  # type: ignore[method-assign]
        else:
            _ = self.storage  # build it now: a bad backend fails here, loudly, not in the pump
            if _HOTPATH is not None:
                self._compile_recording()
            self._start_pump()
            self._start_extras()
        _lifecycle.track(
            self,
            _lifecycle.Phase.COLLECTOR,
            at_exit=TelemetryCollector.close,
            after_fork=TelemetryCollector._after_fork_in_child,
        )

    def _compile_recording(self) -> None:
        """Put the compiled ``collect_metric`` / ``collect_event`` in place of the methods.

        They take the common case (exact types, no timestamp, room in the buffer) and hand
        every other call, untouched, to the methods below: the reference, which keeps
        every rule, message and policy.
        """
        assert _HOTPATH is not None
        cls = TelemetryCollector
        for kind, method, record in (("metric", cls.collect_metric, Metric),
                                     ("event", cls.collect_event, Event)):  # fmt: skip
            fast = _HOTPATH.recorder(
                self, kind, method.__get__(self), record, ID_POOL, EventType, EventType.INFO,
                self._max_message, self._max_meta,
            )  # fmt: skip
            setattr(self, f"collect_{kind}", fast)

    def _init_state(self) -> None:
        """(Re)create buffers, counters and synchronisation (also in a forked child)."""
        self._events: deque[Event] = deque()
        self._metrics: deque[Metric] = deque()
        self._idle = False
        self._wake = threading.Event()
        self._lock = threading.Lock()  # counters written by producers (drops only)
        self._space = threading.Condition(threading.Lock())
        self._done = threading.Condition(threading.Lock())
        self._blocked = 0
        self._stopping = False
        self._flush_requested = 0
        self._flush_completed = 0
        self._events_taken = 0
        self._metrics_taken = 0
        self._events_dropped = 0
        self._metrics_dropped = 0
        self._dropped: dict[str, int] = {}
        self._flushed = 0
        self._storage_errors = 0
        self._failures_in_a_row = 0
        self._store_cost = 0.0  # seconds per record stored, a moving average
        self._storing = 0  # records in the storage write under way
        self._stop_deadline = 0.0
        self._instrument_points = 0
        self._consumer_errors = 0
        self._consumer_dropped = 0
        self._cardinality_overflow = 0
        self._tag_sets: dict[str, set[frozenset[tuple[str, str]]]] = {}
        # The dispatch thread and submit() (the server's event loop) both apply the limit.
        self._cardinality = threading.Lock()
        self._tag_keys: set[tuple[str, bytes]] = set()
        self._names: set[str] = {OVERFLOW_NAME}
        # Batches whose storage write failed, with the acknowledgements they carry.
        self._unstored: deque[tuple[TelemetryData, list[Ack]]] = deque()
        # Whole batches submitted with an acknowledgement (the server's ingest).
        self._submitted: deque[tuple[TelemetryData, Ack]] = deque()
        self._events_submitted = 0
        self._metrics_submitted = 0
        self._to_fold: deque[Histogram] = deque()
        # realtime_mode is about delivering to stream consumers; alone, the collector
        # batches by flush_interval and buffer_size.
        self._wake_at = self.config.buffer_size
        self._next_flush = 0.0

    # --- storage and routing -------------------------------------------------

    @property
    def storage(self) -> Storage:
        """The ``Storage`` built from the configuration (created on first use)."""
        if self._storage is None:
            self._storage = sink_from_config(self.config)
        return self._storage

    def _attach(self, route: Route) -> None:
        """Send every batch along ``route`` from now on (used by ``TelemetryStream``)."""
        self._route = route
        self._wake_at = 1 if route.realtime else self.config.buffer_size
        self._next_flush = time.monotonic() + route.interval
        self._signal()

    def _detach(self, route: Route) -> None:
        """Return to the default route, if ``route`` is still the current one."""
        if self._route is route:
            self._route = None
            self._wake_at = self.config.buffer_size
            self._next_flush = time.monotonic() + self.config.flush_interval

    # --- the hot path ----------------------------------------------------------
    # collect_event/collect_metric run on the caller's thread for every record.
    # They must never do I/O, take a lock, format a string or call a sink:
    # they validate with type checks, build one Struct and append it. Anything
    # unusual (bad input, a full buffer) leaves through a cold helper.

    def collect_event(
        self,
        source: str,
        message: str,
        event_type: EventType | str = EventType.INFO,
        metadata: dict[str, Any] | None = None,
        timestamp: Any = None,
    ) -> Event | None:
        """Record an event; return it (``None`` when disabled).

        Args:
            source: what emitted it (a service, module or component).
            message: the text.
            event_type: an ``EventType`` or its value (``"info"``, ``"error"``...).
            metadata: JSON-like details; values JSON cannot carry are stored as ``str()``.
            timestamp: a ``datetime`` or ``int`` ns; now by default.

        Raises:
            ValidationError: a field has the wrong type, the message is longer than
                ``max_message_length`` or metadata has more than ``max_metadata_keys`` keys.
        """
        if source.__class__ is not _STR or message.__class__ is not _STR:
            _bad_text(source, message)
        if len(message) > self._max_message:
            raise ValidationError(
                f"message: {len(message)} characters is over "
                f"max_message_length={self._max_message}",
                field="message",
            )
        if event_type.__class__ is not _EVENT_TYPE:
            event_type = _event_type(event_type)
        if metadata is None:
            metadata = {}
        elif metadata.__class__ is not _DICT or len(metadata) > self._max_meta:
            metadata = _check_metadata(metadata, self._max_meta)
        try:
            rid = ID_POOL.next()
        except StopIteration:
            rid = ID_POOL.refill()
        record = Event(
            source,
            message,
            event_type,
            metadata,
            _ns() if timestamp is None else to_ns(timestamp),
            rid,
        )
        buf = self._events
        n = len(buf)
        if n >= self._capacity:
            return self._overflow(buf, record)  # type: ignore[no-any-return]
        buf.append(record)
        if self._idle and n >= self._wake_at - 1:
            self._signal()
        return record

    def collect_metric(
        self,
        name: str,
        value: float,
        unit: str = "",
        tags: dict[str, str] | None = None,
        timestamp: Any = None,
    ) -> Metric | None:
        """Record one metric point; return it (``None`` when disabled).

        Args:
            name: the metric name.
            value: a finite number.
            unit: free text such as ``"ms"`` or ``"bytes"``.
            tags: string keys to string values; identify the series.
            timestamp: a ``datetime`` or ``int`` ns; now by default.

        Raises:
            ValidationError: the name is not a non-empty string, the value is not
                a finite number, or a tag key or value is not a string.
        """
        try:
            v = value + 0.0
        except TypeError:
            v = _number(value)
        if v - v:  # NaN and ±inf, and nothing else, give a non-zero difference
            _non_finite(value)
        if name.__class__ is not _STR or not name or unit.__class__ is not _STR:
            _bad_name(name, unit)
        if tags is None:
            tags = {}
        else:
            if tags.__class__ is not _DICT:
                tags = _as_tags(tags)
            for k, t in tags.items():
                if k.__class__ is not _STR or t.__class__ is not _STR:
                    _bad_tag(k, t)
        try:
            rid = ID_POOL.next()
        except StopIteration:
            rid = ID_POOL.refill()
        record = Metric(name, v, unit, tags, _ns() if timestamp is None else to_ns(timestamp), rid)
        buf = self._metrics
        n = len(buf)
        if n >= self._capacity:
            return self._overflow(buf, record)  # type: ignore[no-any-return]
        buf.append(record)
        if self._idle and n >= self._wake_at - 1:
            self._signal()
        return record

    # --- cold paths of recording ---------------------------------------------------

    def _signal(self) -> None:
        self._idle = False
        self._wake.set()

    def _overflow(self, buf: deque[Any], record: Any) -> Any:
        policy = self.config.overflow_policy
        kind_events = buf is self._events
        if policy == "drop_oldest":
            try:
                buf.popleft()
            except IndexError:
                pass  # the pump emptied it meanwhile: nothing was evicted
            else:
                self._count_drop("overflow_oldest", kind_events)
            buf.append(record)
            self._signal()
            return record
        if policy == "block" and threading.current_thread() is not self._pump and self._pump:
            deadline = time.monotonic() + self.config.block_timeout
            with self._space:
                self._blocked += 1
                try:
                    self._signal()
                    while len(buf) >= self._capacity and not self._closed:
                        left = deadline - time.monotonic()
                        if left <= 0 or not self._space.wait(left):
                            break
                finally:
                    self._blocked -= 1
            if len(buf) < self._capacity and not self._closed:
                buf.append(record)
                return record
            self._count_drop("block_timeout", kind_events)
            return record
        self._count_drop("overflow_newest", kind_events)
        self._signal()
        return record

    def _count_drop(self, reason: str, is_event: bool, n: int = 1) -> None:
        if not n:
            return
        with self._lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + n
            if is_event:
                self._events_dropped += n
            else:
                self._metrics_dropped += n

    # --- instruments ---------------------------------------------------------------

    def _instrument(
        self, cls: type[Instrument], name: str, unit: str, tags: Mapping[str, str] | None
    ) -> Any:
        if not self.config.enabled:
            return NOOP
        if name.__class__ is not _STR or not name or unit.__class__ is not _STR:
            _bad_name(name, unit)
        fixed = dict(tags) if tags else {}
        for k, t in fixed.items():
            if k.__class__ is not _STR or t.__class__ is not _STR:
                _bad_tag(k, t)
        key = (name, unit, tuple(sorted(fixed.items())))
        with self._lock:
            inst = self._instruments.get(key)
            if inst is None:
                if cls is Histogram:
                    inst = Histogram(name, unit, fixed, self._request_fold)
                else:
                    inst = cls(name, unit, fixed)
                self._instruments[key] = inst
        if not isinstance(inst, cls):
            raise ValidationError(
                f"name={name!r}: already registered as a {type(inst).__name__} with these tags",
                field="name",
            )
        return inst

    def counter(self, name: str, unit: str = "", tags: Mapping[str, str] | None = None) -> Counter:
        """The counter for ``name`` and ``tags`` (created once, then reused)."""
        return self._instrument(Counter, name, unit, tags)  # type: ignore[no-any-return]

    def gauge(self, name: str, unit: str = "", tags: Mapping[str, str] | None = None) -> Gauge:
        """The gauge for ``name`` and ``tags`` (created once, then reused)."""
        return self._instrument(Gauge, name, unit, tags)  # type: ignore[no-any-return]

    def histogram(
        self, name: str, unit: str = "", tags: Mapping[str, str] | None = None
    ) -> Histogram:
        """The histogram for ``name`` and ``tags`` (created once, then reused)."""
        return self._instrument(Histogram, name, unit, tags)  # type: ignore[no-any-return]

    def timer(self, name: str, unit: str = "ms", tags: Mapping[str, str] | None = None) -> Timer:
        """A timer (context manager and decorator) feeding the histogram ``name``.

        Raises:
            ValidationError: ``unit`` is not ``"ms"`` or ``"s"``.
        """
        if unit not in ("ms", "s"):
            raise ValidationError(f"unit={unit!r}: a timer measures in 'ms' or 's'", field="unit")
        hist = self._instrument(Histogram, name, unit, tags)
        return hist if hist is NOOP else Timer(hist)

    def timed(self, name: str, unit: str = "ms", tags: Mapping[str, str] | None = None) -> Timer:
        """:meth:`timer` under the name decorators usually have: ``@collector.timed("x")``
        on a function or an ``async`` function."""
        return self.timer(name, unit, tags)

    def register(self, instrument: Instrument) -> None:
        """Add an instrument of your own: its ``collect(now_ns)`` is called every flush
        interval on the dispatch thread, and the points it returns are recorded."""
        key = (f"__{type(instrument).__name__}__{id(instrument)}", "", ())
        with self._lock:
            self._instruments[key] = instrument

    def _start_extras(self) -> None:
        """What the config turns on besides recording: runtime metrics, exception capture.
        Both are stdlib-only modules of the core, imported only when asked for."""
        if self.config.runtime_metrics:
            from telemetry._runtime import RuntimeMetrics

            self.runtime = runtime = RuntimeMetrics(self)
            self._extras.append(runtime.close)
        if self.config.capture_exceptions:
            from telemetry._excepthook import capture_exceptions

            self._extras.append(capture_exceptions(self))

    def _request_fold(self, histogram: Histogram) -> None:
        # Called by Histogram.observe once per FOLD_AT observations.
        self._to_fold.append(histogram)
        self._signal()

    def _collect_instruments(self, now_ns: int) -> list[Metric]:
        with self._lock:
            instruments = list(self._instruments.values())
        points: list[Metric] = []
        for inst in instruments:
            points.extend(inst.collect(now_ns))
        return points

    # --- the pump --------------------------------------------------------------------

    def _start_pump(self) -> None:
        self._pump = threading.Thread(target=self._run_pump, name="rimp-pump", daemon=True)
        self._pump.start()

    def _interval(self) -> float:
        route = self._route
        return route.interval if route is not None else self.config.flush_interval

    def _run_pump(self) -> None:
        self._next_flush = time.monotonic() + self._interval()
        while True:
            self._idle = True
            if self._flush_requested == self._flush_completed:
                waiting = len(self._events) + len(self._metrics)
                if self._submitted:  # someone awaits an acknowledgement: go now
                    waiting = max(waiting, self._wake_at)
                timeout = None
                if self._stopping:
                    if self._unstored and not waiting:  # retry until close()'s deadline
                        timeout = min(self._retry_delay(), self._stop_deadline - time.monotonic())
                elif waiting < self._wake_at or self._unstored:
                    timeout = self._next_flush - time.monotonic()
                    if self._unstored:
                        timeout = min(timeout, self._retry_delay())
                if timeout is not None and timeout > 0:
                    self._wake.wait(timeout)
            self._wake.clear()
            self._idle = False
            stopping = self._stopping
            requested = self._flush_requested
            now = time.monotonic()
            due = now >= self._next_flush
            if due:
                self._next_flush = now + self._interval()
            with_instruments = due or stopping or requested != self._flush_completed
            try:
                self._pump_once(with_instruments)
            except Exception:  # the loop must survive anything a sink does
                _log.exception("telemetry: dispatch failed")
            if requested != self._flush_completed:
                with self._done:
                    self._flush_completed = requested
                    self._done.notify_all()
            drained = not (self._events or self._metrics or self._unstored or self._submitted)
            if stopping and (drained or time.monotonic() >= self._stop_deadline):
                return

    def _retry_delay(self) -> float:
        # Exponential in the failures since the last success, capped.
        return min(_STORE_RETRY_MAX, 0.05 * 2.0 ** min(self._failures_in_a_row, 10))

    def _take(self) -> TelemetryData:
        events, metrics = self._events, self._metrics
        ne, nm = len(events), len(metrics)
        batch = TelemetryData(
            [events.popleft() for _ in range(ne)], [metrics.popleft() for _ in range(nm)]
        )
        self._events_taken += ne
        self._metrics_taken += nm
        if self._blocked:
            with self._space:
                self._space.notify_all()
        return batch

    def _take_submitted(self, batch: TelemetryData) -> list[Ack]:
        # Whole submitted batches join the delivery batch, so each is stored in
        # the same storage write: all of it or none of it.
        acks: list[Ack] = []
        submitted = self._submitted
        for _ in range(len(submitted)):
            data, ack = submitted.popleft()
            batch.events.extend(data.events)
            batch.metrics.extend(data.metrics)
            if data.receipts:
                batch.receipts.update(data.receipts)
            acks.append(ack)
        return acks

    # --- acknowledged batches (the server's ingest) ------------------------------------

    def limit_series(self, data: TelemetryData) -> int:
        """Apply ``max_metric_names`` and ``max_tag_sets`` to the batch's points now.

        Returns:
            How many points were moved to an overflow series (they stay in the
            batch, renamed or retagged).
        """
        return self._limit_cardinality(data.metrics) if data.metrics else 0

    def submit(self, data: TelemetryData, ack: Ack, *, limited: bool = False) -> int:
        """Queue a whole, already validated batch; ``ack(True)`` runs once it is stored.

        ``ack(False)`` runs if it is given up on (storage failing past close, or
        the collector closed). ``ack`` runs on the dispatch thread: it must be
        cheap and must not raise. The caller bounds what it submits (see
        :meth:`pending`); this method never blocks or drops.

        Args:
            data: the batch, stored whole in one storage write.
            ack: called with True once stored, False if given up on.
            limited: the caller already ran :meth:`limit_series` on ``data``.

        Returns:
            How many of the batch's points the series limits moved to an overflow
            series (they are stored there), so the caller can say so; 0 when
            ``limited``.
        """
        if self._closed or not self.config.enabled:
            ack(False)
            return 0
        folded = 0 if limited else self.limit_series(data)
        with self._lock:
            self._events_submitted += len(data.events)
            self._metrics_submitted += len(data.metrics)
        self._submitted.append((data, ack))
        self._signal()
        return folded

    def awaiting_retry(self) -> int:
        """Records whose storage write failed and will be retried (0 while storage is healthy)."""
        unstored = self._unstored
        return sum(len(b) for b, _ in list(unstored)) if unstored else 0

    def queue_delay(self, records: int) -> float:
        """Seconds the storage would take to store ``records`` at its recent pace (0 until
        a first batch was stored)."""
        return records * self._store_cost

    def pending(self) -> int:
        """Records accepted but not yet stored: buffered, submitted, being written and
        awaiting retry."""
        submitted = sum(len(d) for d, _ in list(self._submitted))
        unstored = sum(len(b) for b, _ in list(self._unstored))
        waiting = len(self._events) + len(self._metrics) + submitted + unstored
        return waiting + self._storing

    def _pump_once(self, with_instruments: bool) -> None:
        while self._to_fold:
            self._to_fold.popleft().fold()
        route = self._route
        storage = route.storage if route is not None else self.storage
        batch = self._take()
        if with_instruments:
            points = self._collect_instruments(_ns())
            self._instrument_points += len(points)
            batch.metrics.extend(points)
        if batch.metrics:
            self._limit_cardinality(batch.metrics)
        # Submitted batches were limited by submit() itself: joined after the limit.
        acks = self._take_submitted(batch) if self._submitted else []
        self._retry_unstored(storage)
        if batch:
            if self._unstored:  # keep order: nothing overtakes a batch awaiting retry
                self._keep_unstored(batch, acks)
            else:
                self._store(storage, batch, acks)
            if route is not None and route.fanout is not None:
                route.fanout(batch)

    def _store(self, storage: Storage, batch: TelemetryData, acks: list[Ack]) -> bool:
        started = time.perf_counter()
        self._storing = len(batch)
        try:
            storage.store(batch)
        except Exception as exc:
            self._storing = 0
            self._storage_errors += 1
            self._failures_in_a_row += 1
            if self._storage_errors == 1 or self._storage_errors % 100 == 0:
                _log.error("telemetry: storage write failed (will retry): %s", exc)
            self._keep_unstored(batch, acks)
            return False
        self._storing = 0
        self._failures_in_a_row = 0
        self._flushed += len(batch)
        # What storing one record costs lately (a moving average over batches): the
        # server bounds its queue by the time it would take to store (queue_delay).
        cost = (time.perf_counter() - started) / max(len(batch), 1)
        self._store_cost = cost if not self._store_cost else 0.8 * self._store_cost + 0.2 * cost
        _acknowledge(acks, True)
        return True

    def _keep_unstored(self, batch: TelemetryData, acks: list[Ack]) -> None:
        self._unstored.append((batch, acks))
        held = sum(len(b) for b, _ in self._unstored)
        while held > self._capacity and len(self._unstored) > 1:
            lost, lost_acks = self._unstored.popleft()
            held -= len(lost)
            self._drop_unstored(lost, lost_acks)

    def _drop_unstored(self, lost: TelemetryData, acks: list[Ack]) -> None:
        self._count_drop("storage_error", True, len(lost.events))
        self._count_drop("storage_error", False, len(lost.metrics))
        _acknowledge(acks, False)

    def _retry_unstored(self, storage: Storage) -> None:
        while self._unstored:
            batch, acks = self._unstored.popleft()
            if not self._store(storage, batch, acks):
                # _store re-queued it at the back; put it back in front to keep order.
                self._unstored.appendleft(self._unstored.pop())
                return

    def _limit_cardinality(self, metrics: list[Metric]) -> int:
        # Runs for every point (on the dispatch thread, or in submit()), so the
        # common case (a known tag set) is one msgspec encode and one set lookup;
        # the order-independent frozenset is built only for a tag set not yet
        # seen in this key order. Returns how many points it moved.
        with self._cardinality:
            return self._fold_over_limit(metrics)

    def _fold_over_limit(self, metrics: list[Metric]) -> int:
        folded = 0
        limit = self.config.max_tag_sets
        max_names = self.config.max_metric_names
        names = self._names
        known = self._tag_keys
        canonical_sets = self._tag_sets
        encode = _encode_tags
        skip = _HOTPATH.skip_known if _HOTPATH is not None and type(metrics) is list else None
        i, n = 0, len(metrics)
        while i < n:
            if skip is not None:
                # The points of series already let through, in C; what is left of the
                # loop (a new name, a new tag set, the limits) runs below, in Python.
                i = skip(metrics, i, names, known, encode)
                if i >= n:
                    break
            m = metrics[i]
            i += 1
            if m.name not in names:
                if len(names) > max_names:  # names holds OVERFLOW_NAME besides them
                    folded += self._fold_name(m)
                    continue
                names.add(m.name)
            tags = m.tags
            if not tags:
                continue
            key = (m.name, encode(tags))
            if key in known:
                continue
            seen = canonical_sets.get(m.name)
            if seen is None:
                seen = canonical_sets[m.name] = set()
            canonical = frozenset(tags.items())
            if canonical in seen or len(seen) < limit:
                seen.add(canonical)
                if len(known) < _MAX_KNOWN_KEYS:
                    known.add(key)
                continue
            if self._cardinality_overflow == 0:
                _log.warning(
                    "telemetry: metric %r has more than max_tag_sets=%d tag sets; "
                    "further ones go to the series tagged %s",
                    m.name,
                    limit,
                    OVERFLOW_TAGS,
                )
            self._cardinality_overflow += 1
            folded += 1
            m.tags = dict(OVERFLOW_TAGS)
        return folded

    def _fold_name(self, m: Metric) -> int:
        if self._cardinality_overflow == 0:
            _log.warning(
                "telemetry: more than max_metric_names=%d metric names; points of further "
                "names go to the metric %r",
                self.config.max_metric_names,
                OVERFLOW_NAME,
            )
        self._cardinality_overflow += 1
        m.tags = dict(OVERFLOW_TAGS)
        m.name = OVERFLOW_NAME
        return 1

    # --- flushing, closing, stats -------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Deliver everything recorded so far (instruments included) and wait for it.

        Returns:
            True when everything was stored within ``timeout`` seconds (``None``:
            wait as long as it takes) and handed to the stream's consumers, if
            any. False on timeout, when a failed storage write still awaits its
            retry, or when called on the dispatch thread itself (a sink), where
            waiting would deadlock.
        """
        pump = self._pump
        if pump is None or not pump.is_alive():
            return not (self._events or self._metrics)
        if threading.current_thread() is pump:
            return False
        with self._done:
            self._flush_requested += 1
            target = self._flush_requested
        self._signal()
        with self._done:
            done = self._done.wait_for(lambda: self._flush_completed >= target, timeout)
        return done and not self._unstored

    def close(self, timeout: float | None = None) -> bool:
        """Flush and stop; later records are dropped (reason ``closed``). Idempotent.

        Bounded: waits at most ``timeout`` seconds (default ``shutdown_timeout``)
        for the storage, so a dead sink cannot hang the application. Records
        still buffered then are counted as dropped (reason ``close_timeout``).

        Returns:
            True when everything was delivered.
        """
        if self._closed:
            return not (self._events or self._metrics)
        self._closed = True
        for stop in reversed(self._extras):
            stop()
        self.collect_event = _closed_record(self, True)  # type: ignore[method-assign]
        self.collect_metric = _closed_record(self, False)  # type: ignore[method-assign]
        timeout = self.config.shutdown_timeout if timeout is None else timeout
        pump = self._pump
        if pump is not None and pump.is_alive():
            # Retries of failed writes stop a little before the join gives up.
            self._stop_deadline = time.monotonic() + timeout * 0.8
            self._stopping = True
            self._signal()
            pump.join(timeout)
        with self._space:
            self._space.notify_all()
        complete = pump is None or not pump.is_alive()
        # Whatever is still buffered now will never be delivered (the sink is
        # stuck or the deadline passed): take it out so it is counted once, as
        # dropped, and cannot be stored later.
        abandoned = self._take()
        left_e, left_m = len(abandoned.events), len(abandoned.metrics)
        self._events_taken -= left_e
        self._metrics_taken -= left_m
        self._count_drop("close_timeout", True, left_e)
        self._count_drop("close_timeout", False, left_m)
        unstored = 0
        while self._unstored:
            try:
                lost, acks = self._unstored.popleft()
            except IndexError:  # the pump took it for a last retry
                break
            unstored += len(lost)
            self._drop_unstored(lost, acks)
        while self._submitted:  # only when the pump is stuck: never taken, never stored
            data, ack = self._submitted.popleft()
            left_e += len(data.events)
            left_m += len(data.metrics)
            self._events_submitted -= len(data.events)
            self._metrics_submitted -= len(data.metrics)
            self._count_drop("close_timeout", True, len(data.events))
            self._count_drop("close_timeout", False, len(data.metrics))
            ack(False)
        owns_storage = self._given_storage is None and not isinstance(
            self.config.storage_backend, Storage
        )
        if complete and owns_storage and self._storage is not None:
            self._storage.close()
        _lifecycle.untrack(self)
        return complete and not (left_e or left_m or unstored)

    def stats(self) -> CollectorStats:
        """Counts of what happened to the records so far.

        Keys: ``events_collected`` and ``metrics_collected`` (accepted calls),
        ``instrument_points`` (points the instruments emitted), ``records_flushed``
        (stored), ``records_dropped`` and ``dropped_by_reason``, ``buffered``,
        ``awaiting_retry`` (records whose storage write failed and will be
        retried), ``storage_errors``, ``consumer_errors``, ``consumer_dropped``
        (records a lagging consumer skipped; the storage has them),
        ``cardinality_overflow`` (points moved to the overflow series) and
        ``instruments``.

        Once the storage has taken everything: ``events_collected +
        metrics_collected + instrument_points == records_flushed + buffered +
        awaiting_retry + records_dropped``.
        """
        with self._lock:
            dropped = dict(self._dropped)
            ev_dropped, m_dropped = self._events_dropped, self._metrics_dropped
        ev_buf, m_buf = len(self._events), len(self._metrics)
        # Dropped-oldest records were counted when buffered; collected counts calls.
        return {
            "events_collected": self._events_taken + ev_buf + ev_dropped + self._events_submitted,
            "metrics_collected": self._metrics_taken + m_buf + m_dropped + self._metrics_submitted,
            "instrument_points": self._instrument_points,
            "records_flushed": self._flushed,
            "records_dropped": ev_dropped + m_dropped,
            "dropped_by_reason": dropped,
            "buffered": ev_buf + m_buf,
            "consumer_errors": self._consumer_errors,
            "storage_errors": self._storage_errors,
            "awaiting_retry": self.awaiting_retry(),
            "cardinality_overflow": self._cardinality_overflow,
            "consumer_dropped": self._consumer_dropped,
            "instruments": len(self._instruments),
        }

    def _count_consumer_error(self) -> None:
        with self._lock:
            self._consumer_errors += 1

    def _count_consumer_drop(self, records: int) -> None:
        with self._lock:
            self._consumer_dropped += records

    def __enter__(self) -> TelemetryCollector:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _after_fork_in_child(self) -> None:
        # The parent keeps its buffered records; the child starts empty with a
        # working pump, fresh locks and zeroed counters.
        pump_was_running = self._pump is not None and not self._closed
        self._init_state()
        for inst in self._instruments.values():
            inst._reset_after_fork()
        if pump_was_running and self.config.enabled:
            self._start_pump()


def _acknowledge(acks: list[Ack], stored: bool) -> None:
    for ack in acks:
        try:
            ack(stored)
        except Exception:
            _log.exception("telemetry: an acknowledgement callback failed")


# --- cold helpers: validation errors and odd inputs ----------------------------------------


def _disabled_record(*_args: Any, **_kwargs: Any) -> None:
    """What ``collect_*`` is on a disabled collector: nothing at all."""
    return


def _closed_record(collector: TelemetryCollector, is_event: bool) -> Callable[..., None]:
    def closed(*_args: Any, **_kwargs: Any) -> None:
        collector._count_drop("closed", is_event)

    return closed


def _number(value: Any) -> float:
    if isinstance(value, bool | int | float):
        return float(value)
    try:
        return float(value.__float__())
    except (AttributeError, TypeError, ValueError):
        raise ValidationError(
            f"value={value!r}: must be a number (int or float), not {type(value).__name__}",
            field="value",
        ) from None


def _non_finite(value: Any) -> None:
    raise ValidationError(f"value={value!r}: must be finite (not NaN or infinity)", field="value")


def _bad_name(name: Any, unit: Any) -> None:
    if name.__class__ is not str or not name:
        raise ValidationError(f"name={name!r}: must be a non-empty string", field="name")
    raise ValidationError(f"unit={unit!r}: must be a string", field="unit")


def _bad_tag(key: Any, value: Any) -> None:
    if key.__class__ is not str:
        raise ValidationError(
            f"tags: key {key!r} must be a string, not {type(key).__name__}", field="tags"
        )
    raise ValidationError(
        f"tags[{key!r}]={value!r}: tag values must be strings, not {type(value).__name__}",
        field="tags",
    )


def _as_tags(tags: Any) -> dict[str, str]:
    if isinstance(tags, Mapping):
        return dict(tags)
    raise ValidationError(f"tags={tags!r}: must be a dict of strings to strings", field="tags")


def _bad_text(source: Any, message: Any) -> None:
    if source.__class__ is not str:
        raise ValidationError(f"source={source!r}: must be a string", field="source")
    raise ValidationError(f"message={message!r}: must be a string", field="message")


def _event_type(value: Any) -> EventType:
    try:
        return EventType(value.lower() if isinstance(value, str) else value)
    except ValueError:
        choices = ", ".join(t.value for t in EventType)
        raise ValidationError(
            f"event_type={value!r}: must be one of {choices}", field="event_type"
        ) from None


def _check_metadata(metadata: Any, max_keys: int) -> dict[str, Any]:
    if not isinstance(metadata, Mapping):
        raise ValidationError(f"metadata={metadata!r}: must be a dict", field="metadata")
    checked: dict[str, Any] = dict(metadata)
    if len(checked) > max_keys:
        raise ValidationError(
            f"metadata: {len(checked)} keys is over max_metadata_keys={max_keys}", field="metadata"
        )
    return checked
