"""Process and runtime metrics, sampled once per flush interval on the dispatch thread.

Named by OpenTelemetry's semantic conventions, with RIMP's counter convention (a
counter's point is its increase over the interval, so ``sum`` per bucket is the total
and the ``rate`` aggregate is per second):

==================================  ======  =========================================
``process.cpu.time``                s       CPU time used in the interval, tag ``cpu.mode``
                                            ``user`` / ``system`` (counter)
``process.memory.usage``            By      resident memory (gauge)
``process.memory.virtual``          By      virtual memory (gauge)
``process.open_file_descriptor.count``      open file descriptors (gauge; Linux, macOS)
``process.thread.count``                    OS threads of the process (gauge)
``cpython.gc.collections``                  collections in the interval, tag
                                            ``cpython.gc.generation`` (counter)
``cpython.gc.collected_objects``            objects collected in the interval (counter)
``cpython.gc.pause_time``           s       time spent collecting in the interval, per
                                            generation (counter)
``python.asyncio.loop.lag``         s       how late a callback scheduled on a watched
                                            event loop ran (gauge)
==================================  ======  =========================================

Stdlib only, so the core may start it (``TelemetryConfig(runtime_metrics=True)``).
"""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from telemetry._ids import new_id
from telemetry.instruments import Instrument
from telemetry.models import Metric

if TYPE_CHECKING:
    from telemetry.collector import TelemetryCollector

__all__ = ["RuntimeMetrics"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_STATM = Path("/proc/self/statm")
_FDS = Path("/proc/self/fd") if Path("/proc/self/fd").is_dir() else Path("/dev/fd")
_TASK = Path("/proc/self/task")


class RuntimeMetrics(Instrument):
    """Samples the process and the interpreter every flush interval of ``collector``.

    Example::

        RuntimeMetrics(collector)            # or TelemetryConfig(runtime_metrics=True)
        runtime.watch_loop(asyncio.get_running_loop())   # adds the event-loop lag

    Tags every point with ``service.name`` (the config's service name) and ``tags``.
    """

    __slots__ = ("__weakref__", "_cpu", "_gc", "_gc_started", "_lag", "_loops", "_on_gc_hook")

    def __init__(self, collector: TelemetryCollector, tags: dict[str, str] | None = None) -> None:
        base = {"service.name": collector.config.resolved_service_name(), **(tags or {})}
        super().__init__("process", "", base)
        self._cpu = _cpu_times()
        # generation -> [collections, collected, pause seconds]; filled by the GC callback.
        self._gc: dict[int, list[float]] = {g: [0, 0, 0.0] for g in range(3)}
        self._gc_started = 0.0
        self._lag: float | None = None
        self._loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []
        this = weakref.ref(self)

        def on_gc(phase: str, info: dict[str, Any]) -> None:
            # Runs inside every collection: two clock reads and three additions, nothing else.
            me = this()
            if me is not None:
                me._on_gc(phase, info)

        self._on_gc_hook = on_gc
        gc.callbacks.append(on_gc)
        collector.register(self)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        row = self._gc.get(info.get("generation", 0))
        if row is not None:
            row[0] += 1
            row[1] += info.get("collected", 0)
            row[2] += time.perf_counter() - self._gc_started

    def watch_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Also report ``loop``'s lag: each sample schedules a callback on it and measures
        how late it runs."""
        if not any(ref() is loop for ref in self._loops):
            self._loops.append(weakref.ref(loop))

    def _probe(self, sent: float) -> None:
        lag = time.perf_counter() - sent
        self._lag = lag if self._lag is None else max(self._lag, lag)

    def collect(self, now_ns: int) -> list[Metric]:
        """This interval's points (runs on the collector's dispatch thread)."""
        points: list[Metric] = []

        def add(name: str, value: float, unit: str = "", **extra: str) -> None:
            tags = {**self.tags, **{k.replace("_", "."): v for k, v in extra.items()}}
            points.append(Metric(name, float(value), unit, tags, now_ns, new_id()))

        cpu = _cpu_times()
        for mode, before, after in zip(("user", "system"), self._cpu, cpu, strict=True):
            add("process.cpu.time", max(after - before, 0.0), "s", cpu_mode=mode)
        self._cpu = cpu
        rss, vms = _memory()
        add("process.memory.usage", rss, "By")
        if vms:
            add("process.memory.virtual", vms, "By")
        fds = _count(_FDS)
        if fds is not None:
            add("process.open_file_descriptor.count", fds)
        add("process.thread.count", _count(_TASK) or threading.active_count())
        for gen, row in self._gc.items():
            collections, collected, pause = row
            row[0], row[1], row[2] = 0, 0, 0.0
            g = str(gen)
            add("cpython.gc.collections", collections, cpython_gc_generation=g)
            add("cpython.gc.collected_objects", collected, cpython_gc_generation=g)
            add("cpython.gc.pause_time", pause, "s", cpython_gc_generation=g)
        if self._lag is not None:
            add("python.asyncio.loop.lag", self._lag, "s")
            self._lag = None
        self._send_probes()
        return points

    def _send_probes(self) -> None:
        alive = []
        for ref in self._loops:
            loop = ref()
            if loop is None or loop.is_closed():
                continue
            alive.append(ref)
            try:
                loop.call_soon_threadsafe(self._probe, time.perf_counter())
            except RuntimeError:  # closed between the check and the call
                continue
        self._loops = alive

    def close(self) -> None:
        """Stop listening to the garbage collector (the collector stops sampling on close)."""
        if self._on_gc_hook in gc.callbacks:
            gc.callbacks.remove(self._on_gc_hook)

    def _reset_after_fork(self) -> None:
        super()._reset_after_fork()
        self._cpu = _cpu_times()
        self._gc = {g: [0, 0, 0.0] for g in range(3)}
        self._loops = []
        self._lag = None


def _cpu_times() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def _memory() -> tuple[int, int]:
    """(resident, virtual) bytes; on systems without /proc, the peak resident size."""
    try:
        fields = _STATM.read_text().split()
        return int(fields[1]) * _PAGE, int(fields[0]) * _PAGE
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak * (1 if sys.platform == "darwin" else 1024), 0


def _count(directory: Path) -> int | None:
    try:
        return len(os.listdir(directory))
    except OSError:
        return None
