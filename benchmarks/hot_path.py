"""Hot path: what one recording call costs, side by side with the peers.

Run with the project's environment::

    ./dev bench hot_path            # full run (7 rounds)
    ./dev bench hot_path --quick    # a short run (3 rounds, shorter batches)

Method (docs/benchmarks.md, "Method"): every case is a
``timeit`` batch; the cases are interleaved over several rounds (the order
rotates each round) and the median and minimum ns/op are reported, so drift of
this shared machine hits all cases alike. Garbage collection stays ON inside the
batches. Buffers (the collector's, the logging queue) are drained between
batches, outside the timed region, so memory growth does not distort later
batches. Every figure includes timeit's loop overhead, which the "floor" case
(an empty method call with 4 keyword arguments) shows.

Also measured: total throughput of 4 threads recording at once against one
thread, and bytes per buffered metric (tracemalloc).
"""

from __future__ import annotations

import argparse
import gc
import logging
import logging.handlers
import os
import platform
import queue
import statistics
import sys
import threading
import time
import timeit
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import prometheus_client
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from telemetry import EventType, TelemetryCollector, TelemetryConfig
from telemetry.models import Metric, new_id
from telemetry.storage import MemoryStorage

ENDPOINT = "/api/users"


def versions_line() -> str:
    """Python, machine and library versions, for the report."""
    libs = ("rimp", "msgspec", "prometheus_client", "opentelemetry-sdk")
    parts = [f"{name} {metadata.version(name)}" for name in libs]
    from telemetry.collector import COMPILED

    path = (
        "compiled (telemetry._hotpath)"
        if COMPILED
        else "pure Python (RIMP_PURE_PYTHON=1 or not built)"
    )
    return (
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs; "
        + ", ".join(parts)
        + f"; RIMP's recording path: {path}"
    )


def quiet_collector() -> TelemetryCollector:
    """A collector whose pump never wakes during a batch: huge buffer, one-hour interval."""
    config = TelemetryConfig(
        buffer_size=2_000_000,
        buffer_capacity=2_000_000,
        flush_interval=3600.0,
    )
    return TelemetryCollector(config, storage=MemoryStorage(max_records=None))


class Floor:
    """The cheapest possible recording API: a method that does nothing."""

    def record(self, source: Any, message: Any, event_type: Any, metadata: Any) -> None:
        """Do nothing."""


@dataclass
class Case:
    """One timed statement, its namespace and what empties its buffers."""

    key: str
    label: str
    stmt: str
    drain: Callable[[], None] = lambda: None
    number: int = 0
    ns: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.ns)

    @property
    def best(self) -> float:
        return min(self.ns)


def build_cases(
    collector: TelemetryCollector,
) -> tuple[list[Case], dict[str, Any], Callable[[], None]]:
    """The cases, the globals their statements run in, and a cleanup."""
    # RIMP
    counter = collector.counter("http.requests", tags={"endpoint": ENDPOINT, "status": "200"})
    histogram = collector.histogram(
        "http.latency", unit="ms", tags={"endpoint": ENDPOINT, "status": "200"}
    )

    def drain_collector() -> None:
        collector._take()
        # Histogram folds queued by observe() run on the dispatch thread; let them
        # finish here so they are not charged to whichever case runs next.
        if collector._to_fold:
            while collector._to_fold:
                time.sleep(0.001)
            time.sleep(0.03)  # the fold the dispatch thread took last is still running

    # prometheus_client, in its own registry
    registry = prometheus_client.CollectorRegistry()
    p_counter = prometheus_client.Counter(
        "http_requests", "requests", ["endpoint", "status"], registry=registry
    )
    p_hist = prometheus_client.Histogram(
        "http_latency_ms", "latency", ["endpoint", "status"], registry=registry
    )
    p_child = p_counter.labels(ENDPOINT, "200")
    p_hist_child = p_hist.labels(ENDPOINT, "200")

    # OpenTelemetry SDK with an in-memory reader (no export thread)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("rimp-bench")
    o_counter = meter.create_counter("http.requests")
    o_hist = meter.create_histogram("http.latency", unit="ms")

    # stdlib logging into a QueueHandler (what a non-blocking logging setup does)
    log_queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
    handler = logging.handlers.QueueHandler(log_queue)
    logger = logging.getLogger("rimp.bench.hot_path")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False

    def drain_log() -> None:
        handler.queue = queue.SimpleQueue()

    shared_tags = {"endpoint": ENDPOINT, "status": "200"}
    namespace: dict[str, Any] = {
        "floor": Floor(),
        "collector": collector,
        "EventType": EventType,
        "INFO": EventType.INFO,
        "time_ns": time.time_ns,
        "new_id": new_id,
        "Metric": Metric,
        "shared_tags": shared_tags,
        "counter": counter,
        "histogram": histogram,
        "p_counter": p_counter,
        "p_child": p_child,
        "p_hist_child": p_hist_child,
        "p_hist": p_hist,
        "o_counter": o_counter,
        "o_hist": o_hist,
        "logger": logger,
        "v": 125.5,
    }
    cases = [
        Case(
            "floor",
            "empty method call, 4 keyword args (the floor)",
            "floor.record(source='api_server', message='Request received', "
            "event_type=INFO, metadata=None)",
        ),
        Case("time_ns", "`time.time_ns()` (anchor)", "time_ns()"),
        Case(
            "enum",
            "`EventType.INFO` attribute lookup (anchor: a 3.11 enum member)",
            "EventType.INFO",
        ),
        Case(
            "new_id",
            "inside RIMP: `models.new_id()`, one record id (amortized)",
            "new_id()",
        ),
        Case(
            "struct",
            "inside RIMP: `Metric(...)`, the 6-field record itself",
            "Metric('response_time', v, 'ms', shared_tags, 1, 'id')",
        ),
        Case(
            "dict",
            "a 2-key dict literal (what the caller builds for `tags=`)",
            "{'endpoint': '/api/users', 'status': '200'}",
        ),
        Case(
            "event",
            "RIMP `collect_event` (2-key metadata, fresh dict)",
            "collector.collect_event(source='api_server', message='Request received', "
            "event_type=EventType.INFO, metadata={'endpoint': '/api/users', 'method': 'GET'})",
            drain_collector,
        ),
        Case(
            "metric",
            "RIMP `collect_metric` (2 tags, fresh dict literal)",
            "collector.collect_metric(name='response_time', value=v, unit='ms', "
            "tags={'endpoint': '/api/users', 'status': '200'})",
            drain_collector,
        ),
        Case(
            "metric_shared",
            "RIMP `collect_metric` (2 tags, pre-built dict)",
            "collector.collect_metric(name='response_time', value=v, unit='ms', tags=shared_tags)",
            drain_collector,
        ),
        Case("counter", "RIMP pre-bound `counter.inc()`", "counter.inc()"),
        Case("histogram", "RIMP pre-bound `histogram.observe(v)`", "histogram.observe(v)"),
        Case(
            "prom_labels",
            "prometheus_client `Counter.labels(a, b).inc()`",
            "p_counter.labels('/api/users', '200').inc()",
        ),
        Case("prom_child", "prometheus_client pre-bound `child.inc()`", "p_child.inc()"),
        Case(
            "prom_hist",
            "prometheus_client `Histogram.labels(a, b).observe(v)`",
            "p_hist.labels('/api/users', '200').observe(v)",
        ),
        Case(
            "prom_hist_child",
            "prometheus_client pre-bound histogram `child.observe(v)`",
            "p_hist_child.observe(v)",
        ),
        Case(
            "otel_counter",
            "OpenTelemetry SDK `counter.add(1, attributes={2})`",
            "o_counter.add(1, attributes={'endpoint': '/api/users', 'status': '200'})",
        ),
        Case(
            "otel_hist",
            "OpenTelemetry SDK `histogram.record(v, attributes={2})`",
            "o_hist.record(v, attributes={'endpoint': '/api/users', 'status': '200'})",
        ),
        Case(
            "logging",
            "stdlib `logger.info(msg, extra={2})` into a `QueueHandler`",
            "logger.info('Request received', extra={'endpoint': '/api/users', 'method': 'GET'})",
            drain_log,
        ),
    ]

    def cleanup() -> None:
        provider.shutdown()
        logger.handlers.clear()

    return cases, namespace, cleanup


def timer_for(case: Case, namespace: dict[str, Any]) -> timeit.Timer:
    # timeit turns GC off around a batch; the setup turns it back on (GC ON is the method).
    return timeit.Timer(case.stmt, setup="import gc; gc.enable()", globals=namespace)


def calibrate(case: Case, namespace: dict[str, Any], target_s: float) -> None:
    timer = timer_for(case, namespace)
    case.drain()
    per_op = timer.timeit(2000) / 2000
    case.drain()
    case.number = max(2000, int(target_s / per_op))


def run_rounds(cases: list[Case], namespace: dict[str, Any], rounds: int) -> None:
    timers = {c.key: timer_for(c, namespace) for c in cases}
    for r in range(rounds):
        shift = r % len(cases)
        for case in cases[shift:] + cases[:shift]:
            case.drain()
            gc.collect()
            elapsed = timers[case.key].timeit(case.number)
            case.drain()
            case.ns.append(elapsed / case.number * 1e9)


# --- threads ---------------------------------------------------------------------------


def record_in_threads(collector: TelemetryCollector, n_threads: int, per_thread: int) -> float:
    """Records/s of ``n_threads`` threads each making ``per_thread`` collect_metric calls."""
    barrier = threading.Barrier(n_threads + 1)

    def work() -> None:
        collect = collector.collect_metric
        barrier.wait()
        for _ in range(per_thread):
            collect(
                name="response_time",
                value=125.5,
                unit="ms",
                tags={"endpoint": "/api/users", "status": "200"},
            )

    threads = [threading.Thread(target=work) for _ in range(n_threads)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    batch = collector._take()
    total = n_threads * per_thread
    if len(batch.metrics) != total or len({m.id for m in batch.metrics}) != total:
        raise SystemExit(f"lost or duplicated records with {n_threads} threads")
    return total / elapsed


def thread_scaling(collector: TelemetryCollector, rounds: int, total: int) -> dict[str, float]:
    one: list[float] = []
    four: list[float] = []
    for r in range(rounds):
        for n_threads in (1, 4) if r % 2 == 0 else (4, 1):
            gc.collect()
            rate = record_in_threads(collector, n_threads, total // n_threads)
            (one if n_threads == 1 else four).append(rate)
    ratios = [f / o for f, o in zip(four, one, strict=True)]
    return {
        "one_median": statistics.median(one),
        "four_median": statistics.median(four),
        "one_best": max(one),
        "four_best": max(four),
        "ratio_median": statistics.median(ratios),
        "total": float(total),
    }


# --- tail latency ----------------------------------------------------------------------


def tail_latency(namespace: dict[str, Any], cases: list[Case], n: int) -> list[tuple[str, ...]]:
    """Each call timed on its own: median, p99.9 and max ns (each includes a clock read)."""
    rows = []
    for case in cases:
        src = (
            "def _tail(n, pc, lat):\n"
            "    for i in range(n):\n"
            "        t0 = pc()\n"
            f"        {case.stmt}\n"
            "        lat[i] = pc() - t0\n"
        )
        exec(src, namespace)
        fn = namespace.pop("_tail")
        lat = [0] * n
        case.drain()
        gc.collect()
        fn(n, time.perf_counter_ns, lat)
        case.drain()
        lat.sort()
        rows.append(
            (
                case.label,
                fmt(lat[n // 2]),
                fmt(lat[int(n * 0.999)]),
                fmt(lat[-1]),
                str(sum(1 for x in lat if x > 100_000)),
            )
        )
    return rows


# --- memory ----------------------------------------------------------------------------


def _align_id_pool() -> None:
    """Use up the current block of pre-formatted ids, so the next record starts a fresh one.

    Ids are formatted 4096 at a time; measuring a multiple of 4096 records from a
    block boundary charges every record exactly its own id string.
    """
    try:
        from telemetry._ids import ID_POOL
    except ImportError:  # releases before the id pool moved out of telemetry.models
        from telemetry.models import ID_POOL  # type: ignore[attr-defined,no-redef]

    try:
        remaining = ID_POOL.next.__self__.__length_hint__()  # type: ignore[attr-defined]
    except AttributeError:  # the pool works differently now: measure without aligning
        return
    for _ in range(remaining):
        new_id()


def bytes_per_metric(collector: TelemetryCollector, n: int, shared: bool) -> float:
    collect = collector.collect_metric
    tags = {"endpoint": ENDPOINT, "status": "200"}
    collector._take()
    gc.collect()
    _align_id_pool()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    if shared:
        for i in range(n):
            collect(name="response_time", value=i * 0.5, unit="ms", tags=tags)
    else:
        for i in range(n):
            collect(
                name="response_time",
                value=i * 0.5,
                unit="ms",
                tags={"endpoint": "/api/users", "status": "200"},
            )
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    if collector.stats()["buffered"] != n:
        raise SystemExit("memory run: unexpected buffer length")
    collector._take()
    return (after - before) / n


def record_breakdown(collector: TelemetryCollector) -> list[tuple[str, int]]:
    rec = collector.collect_metric(
        name="response_time", value=125.5, unit="ms", tags={"endpoint": ENDPOINT, "status": "200"}
    )
    collector._take()
    assert rec is not None
    return [
        ("`Metric` struct (msgspec, gc=False, 6 fields)", sys.getsizeof(rec)),
        ("id: 16-hex-digit `str`", sys.getsizeof(rec.id)),
        ("time_ns: `int` (~1.7e18)", sys.getsizeof(rec.time_ns)),
        ("value: `float`", sys.getsizeof(rec.value)),
        ("deque slot (one pointer)", 8),
        ("tags: a fresh 2-key `dict` (only when not shared)", sys.getsizeof(rec.tags)),
    ]


# --- report ----------------------------------------------------------------------------


def fmt(x: float) -> str:
    return f"{x:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    args = parser.parse_args()
    rounds = 3 if args.quick else 7
    target_s = 0.02 if args.quick else 0.06
    thread_total = 40_000 if args.quick else 200_000
    thread_rounds = 3 if args.quick else 7
    mem_n = 4096 * (3 if args.quick else 12)
    tail_n = 20_000 if args.quick else 50_000

    collector = quiet_collector()
    cases, namespace, cleanup = build_cases(collector)
    started = time.perf_counter()
    for case in cases:
        calibrate(case, namespace, target_s)
    run_rounds(cases, namespace, rounds)
    by = {c.key: c for c in cases}
    tail_keys = ("metric", "event", "counter", "histogram", "prom_child", "prom_hist")
    tails = tail_latency(namespace, [by[k] for k in tail_keys], tail_n)
    threads = thread_scaling(collector, thread_rounds, thread_total)
    mem_shared = bytes_per_metric(collector, mem_n, shared=True)
    mem_fresh = bytes_per_metric(collector, mem_n, shared=False)
    breakdown = record_breakdown(collector)
    cleanup()
    collector.close()
    took = time.perf_counter() - started

    floor = by["floor"].median
    print("## Hot path: ns per operation\n")
    print(versions_line())
    print(
        f"\n{rounds} rounds, cases interleaved (order rotated each round), each a timeit "
        f"batch of ~{target_s * 1000:.0f} ms; GC on; buffers drained between batches. "
        f"Run took {took:.0f} s.\n"
    )
    print("| operation | median ns | min ns | x floor (median) | batch |")
    print("|---|---:|---:|---:|---:|")
    for c in cases:
        print(
            f"| {c.label} | {fmt(c.median)} | {fmt(c.best)} | {c.median / floor:.1f} "
            f"| {c.number:,} |"
        )

    print("\n## Tail latency: each call timed on its own\n")
    print(
        f"{tail_n:,} calls per case, one `perf_counter_ns()` pair around each (adds ~100 ns); "
        "GC on.\n"
    )
    print("| operation | median ns | p99.9 ns | max ns | calls > 100 µs |")
    print("|---|---:|---:|---:|---:|")
    for row in tails:
        print("| " + " | ".join(row) + " |")

    print("\n## Threads: `collect_metric` (2 tags, fresh dict) from 1 vs 4 threads\n")
    print(
        f"{thread_rounds} rounds, alternating which goes first; "
        f"{int(threads['total']):,} records per run "
        "(1 thread x all of them, or 4 threads x a quarter each); every record checked "
        "present with a unique id.\n"
    )
    print("| threads | median records/s | best records/s |")
    print("|---|---:|---:|")
    print(f"| 1 | {fmt(threads['one_median'])} | {fmt(threads['one_best'])} |")
    print(f"| 4 | {fmt(threads['four_median'])} | {fmt(threads['four_best'])} |")

    print("\n## Memory: bytes per buffered metric (tracemalloc)\n")
    print(
        f"{mem_n:,} `collect_metric` calls into an empty buffer, 2 tags; traced bytes "
        "still held afterwards ÷ calls.\n"
    )
    print("| tags argument | bytes per buffered metric |")
    print("|---|---:|")
    print(f"| shared: one pre-built dict passed to every call | {mem_shared:.0f} |")
    print(f"| fresh: a new dict literal in every call (as users write it) | {mem_fresh:.0f} |")
    print("\nWhere the bytes go (`sys.getsizeof` of one record's parts):\n")
    print("| part | bytes |")
    print("|---|---:|")
    for part, size in breakdown:
        print(f"| {part} | {size} |")

    def ratio_row(label: str, target: str, peer: Case, ours: Case, need: float) -> None:
        value_med, value_min = peer.median / ours.median, peer.best / ours.best
        status = "met" if value_med >= need else "**missed**"
        print(
            f"| {label} | {target} | {value_med:.2f}x | {value_min:.2f}x "
            f"| {fmt(ours.median)} / {fmt(peer.median / need)} | {status} |"
        )

    m, ev = by["metric"], by["event"]
    print("\n## Targets (ratios from this run)\n")
    print(
        "Ratio = peer's ns ÷ RIMP's ns (higher is better for RIMP), from the medians and "
        "from the minimums.\n"
    )
    print(
        "| target | needs | ratio (median) | ratio (min) "
        "| RIMP ns now / ns the target allows (medians) | status |"
    )
    print("|---|---|---:|---:|---:|---|")
    ratio_row(
        "`collect_metric` (2 tags) vs prometheus `Counter.labels(a, b).inc()`",
        "≥ 4x",
        by["prom_labels"],
        m,
        4.0,
    )
    ratio_row(
        "`collect_metric` (2 tags) vs OpenTelemetry `counter.add(1, attributes={2})`",
        "≥ 15x",
        by["otel_counter"],
        m,
        15.0,
    )
    ratio_row(
        "`collect_event` vs stdlib logging → `QueueHandler`",
        "≥ 20x",
        by["logging"],
        ev,
        20.0,
    )
    ratio_row(
        "pre-bound `counter.inc()` vs prometheus pre-bound `child.inc()`",
        "≥ 2x",
        by["prom_child"],
        by["counter"],
        2.0,
    )
    ratio_row(
        "pre-bound `histogram.observe(v)` vs prometheus pre-bound histogram `observe(v)`",
        "≥ 3x",
        by["prom_hist_child"],
        by["histogram"],
        3.0,
    )
    t_status = "met" if threads["ratio_median"] >= 1.0 else "**missed**"
    print(
        f"| 4 threads' total throughput vs 1 thread | ≥ 1x | {threads['ratio_median']:.2f}x "
        f"| {threads['four_best'] / threads['one_best']:.2f}x (best runs) | | {t_status} |"
    )
    for label, value in (
        ("buffered metric, shared tags dict", mem_shared),
        ("buffered metric, fresh tags dict per call", mem_fresh),
    ):
        status = "met" if value < 200 else "**missed**"
        print(f"| {label} | < 200 bytes | {value:.0f} bytes | | | {status} |")


if __name__ == "__main__":
    main()
