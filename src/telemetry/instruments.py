"""Pre-bound instruments: counters, gauges, histograms and timers.

Instruments aggregate in memory; the collector's dispatch loop turns them into
metric points once per flush interval (and on ``flush()``/``close()``):

- ``Counter``: one point per interval holding the increase during that interval
  (delta temporality), only when it increased.
- ``Gauge``: the current value, every interval once it has been set.
- ``Histogram``/``Timer``: ``<name>.count``, ``.sum``, ``.min``, ``.max``,
  ``.p50``, ``.p90``, ``.p95`` and ``.p99`` for the interval. Percentiles are
  exact up to ``FOLD_AT`` observations per interval; beyond, the dispatch
  thread folds each full list of ``FOLD_AT`` observations into a DDSketch
  (1 % relative error), so memory stays bounded and callers never pay for it.

Get instruments from a collector (``collector.counter("requests", tags=...)``)
and keep them: a pre-bound instrument validates its name and tags once, and
each ``inc``/``set``/``observe`` then touches one lock and a number.
"""

from __future__ import annotations

import functools
import inspect
import math
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from telemetry._quantiles import PERCENTILES, Sketch, percentile
from telemetry.errors import ValidationError
from telemetry.models import Metric, new_id

__all__ = ["Counter", "Gauge", "Histogram", "Timer"]

FOLD_AT = 10_000
_INF = math.inf
P = ParamSpec("P")
R = TypeVar("R")


class Instrument:
    """Base of the instruments: a name, a unit and fixed tags."""

    __slots__ = ("_lock", "name", "tags", "unit")

    def __init__(self, name: str, unit: str, tags: dict[str, str]) -> None:
        self.name = name
        self.unit = unit
        self.tags = tags
        self._lock = threading.Lock()

    def collect(self, now_ns: int) -> list[Metric]:
        """Points for the interval ending now; resets per-interval state."""
        raise NotImplementedError

    def _point(self, name: str, value: float, now_ns: int) -> Metric:
        return Metric(name, value, self.unit, dict(self.tags), now_ns, new_id())

    def _reset_after_fork(self) -> None:
        """In a forked child: a fresh lock; what the parent recorded is the parent's to report."""
        self._lock = threading.Lock()


class Counter(Instrument):
    """A monotonically increasing count, reported as the increase per interval.

    Example::

        requests = collector.counter("http.requests", tags={"route": "/users"})
        requests.inc()
        requests.inc(5)
    """

    __slots__ = ("_value",)

    def __init__(self, name: str, unit: str, tags: dict[str, str]) -> None:
        super().__init__(name, unit, tags)
        self._value = 0.0

    def inc(self, amount: float = 1) -> None:
        """Add ``amount`` (finite, not negative).

        Raises:
            ValidationError: ``amount`` is negative, NaN or infinite.
        """
        # HOT PATH: one comparison, one lock, one float. No I/O, no formatting.
        if not 0 <= amount < _INF:
            raise ValidationError(
                f"amount={amount!r}: a counter only increases by a finite amount", field="amount"
            )
        lock = self._lock
        lock.acquire()
        self._value += amount
        lock.release()

    def _reset_after_fork(self) -> None:
        super()._reset_after_fork()
        self._value = 0.0

    def collect(self, now_ns: int) -> list[Metric]:
        """A point with the increase since the last collection, if any."""
        with self._lock:
            value, self._value = self._value, 0.0
        return [self._point(self.name, value, now_ns)] if value else []


class Gauge(Instrument):
    """A value that goes up and down, reported every interval once set.

    Example::

        queue_depth = collector.gauge("queue.depth")
        queue_depth.set(12)
    """

    __slots__ = ("_value",)

    def __init__(self, name: str, unit: str, tags: dict[str, str]) -> None:
        super().__init__(name, unit, tags)
        self._value: float | None = None

    def set(self, value: float) -> None:
        """Set the current value (finite).

        Raises:
            ValidationError: ``value`` is not a finite number.
        """
        # HOT PATH: no lock is needed to replace one reference.
        v = value + 0.0
        if v - v:
            raise ValidationError(f"value={value!r}: a gauge value must be finite", field="value")
        self._value = v

    def inc(self, amount: float = 1) -> None:
        """Add ``amount`` to the current value (0 if never set)."""
        with self._lock:
            self.set((self._value or 0.0) + amount)

    def dec(self, amount: float = 1) -> None:
        """Subtract ``amount`` from the current value (0 if never set)."""
        self.inc(-amount)

    def collect(self, now_ns: int) -> list[Metric]:
        """A point with the current value, once one was set."""
        value = self._value
        return [] if value is None else [self._point(self.name, value, now_ns)]


class Histogram(Instrument):
    """A distribution of observed values, summarised per interval.

    Example::

        latency = collector.histogram("db.query", unit="ms", tags={"table": "users"})
        latency.observe(3.2)
    """

    __slots__ = ("_count", "_full", "_max", "_min", "_on_full", "_sketch", "_sum", "_values")

    def __init__(
        self,
        name: str,
        unit: str,
        tags: dict[str, str],
        on_full: Callable[[Histogram], None] | None = None,
    ) -> None:
        super().__init__(name, unit, tags)
        self._values: list[float] = []
        self._full: list[list[float]] = []
        self._on_full = on_full
        self._reset_folded()

    def _reset_folded(self) -> None:
        self._sketch: Sketch | None = None
        self._count = 0
        self._sum = 0.0
        self._min = _INF
        self._max = -_INF

    def observe(self, value: float) -> None:
        """Record one observation (finite).

        Raises:
            ValidationError: ``value`` is not a finite number.
        """
        # HOT PATH: one lock around a list append. Every FOLD_AT observations
        # the list is handed over whole; the dispatch thread folds it into the
        # sketch, never the caller.
        v = value + 0.0
        if v - v:
            raise ValidationError(f"value={value!r}: an observation must be finite", field="value")
        lock = self._lock
        lock.acquire()
        values = self._values
        values.append(v)
        if len(values) < FOLD_AT:
            lock.release()
            return
        self._full.append(values)
        self._values = []
        lock.release()
        if self._on_full is not None:
            self._on_full(self)

    observe_pure = observe
    """The pure-Python ``observe``: the reference, and what the compiled one (which takes
    its place when built) hands every unusual call to."""

    def _reset_after_fork(self) -> None:
        super()._reset_after_fork()
        self._values = []
        self._full = []
        self._reset_folded()

    def fold(self) -> None:
        """Fold the full lists handed over by ``observe`` into the sketch.

        Runs on the dispatch thread (which alone touches the sketch).
        """
        with self._lock:
            full, self._full = self._full, []
        for values in full:
            self._fold_values(values)

    def _fold_values(self, values: list[float]) -> None:
        if self._sketch is None:
            self._sketch = Sketch()
        self._sketch.add_all(values)
        self._count += len(values)
        self._sum += math.fsum(values)
        self._min = min(self._min, *values)
        self._max = max(self._max, *values)

    def collect(self, now_ns: int) -> list[Metric]:
        """The interval's count, sum, min, max and percentiles, if anything was observed."""
        with self._lock:
            values, self._values = self._values, []
            full, self._full = self._full, []
        for chunk in full:
            self._fold_values(chunk)
        sketch, count, total, lo, hi = self._sketch, self._count, self._sum, self._min, self._max
        self._reset_folded()
        if not values and sketch is None:
            return []
        values.sort()
        if sketch is None:
            summary = {
                "count": float(len(values)),
                "sum": math.fsum(values),
                "min": values[0],
                "max": values[-1],
            }
            summary.update((k, percentile(values, q)) for k, q in PERCENTILES.items())
        else:
            if values:
                sketch.add_all(values)
                lo, hi = min(lo, values[0]), max(hi, values[-1])
            summary = {
                "count": float(count + len(values)),
                "sum": total + math.fsum(values),
                "min": lo,
                "max": hi,
            }
            summary.update(
                (k, min(max(sketch.quantile(q), lo), hi)) for k, q in PERCENTILES.items()
            )
        return [self._point(f"{self.name}.{k}", v, now_ns) for k, v in summary.items()]


class Timer:
    """Times blocks or calls into a histogram (unit ``"ms"`` or ``"s"``).

    Example::

        with collector.timer("db.query", tags={"table": "users"}):
            run_query()

        @collector.timer("handler")
        def handle(request): ...

        @collector.timed("fetch")          # the same; async functions are timed to their end
        async def fetch(url): ...

    One ``Timer`` may be shared by threads and nested: start times are kept per thread.
    """

    __slots__ = ("_local", "_scale", "histogram")

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram
        self._scale = 1e3 if histogram.unit == "ms" else 1.0
        self._local = threading.local()

    def __enter__(self) -> Timer:
        starts = self._local.__dict__.setdefault("starts", [])
        starts.append(time.perf_counter())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        start = self._local.starts.pop()
        self.histogram.observe((time.perf_counter() - start) * self._scale)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        observe = self.histogram.observe
        scale = self._scale
        perf_counter = time.perf_counter
        if inspect.iscoroutinefunction(func):
            # An async function is timed until its coroutine finishes, not until it is created.

            @functools.wraps(func)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                start = perf_counter()
                try:
                    return await func(*args, **kwargs)
                finally:
                    observe((perf_counter() - start) * scale)

            return timed_async  # type: ignore[return-value]

        @functools.wraps(func)
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            start = perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                observe((perf_counter() - start) * scale)

        return timed


class _NoOp:
    """Stands in for every instrument of a disabled collector: each call does nothing."""

    __slots__ = ()

    def inc(self, amount: float = 1) -> None:
        """Do nothing."""

    def dec(self, amount: float = 1) -> None:
        """Do nothing."""

    def set(self, value: float) -> None:
        """Do nothing."""

    def observe(self, value: float) -> None:
        """Do nothing."""

    def __enter__(self) -> _NoOp:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        return func

    def collect(self, now_ns: int) -> list[Metric]:
        """Nothing to report."""
        return []


NOOP: Any = _NoOp()


def _compile_observe() -> None:
    """With the compiled module, ``Histogram.observe`` is its C twin (the lock, the append,
    the release in one call); the pure method stays as ``Histogram.observe_pure`` and takes
    every call the C one does not (a non-finite or odd value, the observation that fills
    the list for the dispatch thread)."""
    from telemetry._compiled import HOTPATH

    if HOTPATH is None:
        return
    HOTPATH.setup_observe(Histogram.observe_pure, FOLD_AT)
    Histogram.observe = HOTPATH.instancemethod(HOTPATH.observe)  # type: ignore[method-assign]


_compile_observe()
