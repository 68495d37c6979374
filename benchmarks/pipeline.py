"""End to end: records per second from ``collect_metric`` to a storage, nothing lost.

Run with the project's environment::

    ./dev bench pipeline            # full run (3 rounds)
    ./dev bench pipeline --quick    # a short run (1 round, fewer records)

A few producer threads call ``collect_metric`` (2 tags, a fresh dict literal
per call, as users write it) on a collector with the default configuration
(buffer_size 100, buffer_capacity 100,000, overflow "drop_oldest"). A
``TelemetryStream`` (realtime_mode False, interval 0.2 s) takes the batches
into one of: ``MemoryStorage``, ``FileStorage(fsync="interval")``,
``FileStorage(fsync="always")``, each in a fresh temporary directory. The
clock runs from the moment the producers start until ``stream.stop()`` has
returned, i.e. until everything is stored.

Every run then checks the accounting: the records the storage holds (read back
through ``query_metrics``, each id distinct) must equal ``metrics_collected -
records_dropped`` from ``collector.stats()``. The storages are interleaved
over the rounds; medians are reported.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from telemetry import TelemetryCollector, TelemetryConfig
from telemetry.storage import FileStorage, MemoryStorage, Storage
from telemetry.streaming import TelemetryStream

ENDPOINTS = ("/api/users", "/api/orders", "/api/items", "/api/login")

STORAGES: list[tuple[str, str, Callable[[Path], Storage]]] = [
    ("memory", "`MemoryStorage(max_records=None)`", lambda _d: MemoryStorage(max_records=None)),
    (
        "file_interval",
        '`FileStorage(fsync="interval")` (1 s)',
        lambda d: FileStorage(d, fsync="interval"),
    ),
    ("file_always", '`FileStorage(fsync="always")`', lambda d: FileStorage(d, fsync="always")),
]


def versions_line() -> str:
    libs = ("rimp", "msgspec")
    parts = [f"{name} {metadata.version(name)}" for name in libs]
    return (
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs; " + ", ".join(parts)
    )


def run_once(factory: Callable[[Path], Storage], n_threads: int, per_thread: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rimp-bench-") as tmp:
        storage = factory(Path(tmp) / "data")
        collector = TelemetryCollector(TelemetryConfig(realtime_mode=False), storage=storage)
        stream = TelemetryStream(collector, storage, interval=0.2, realtime=False)
        stream.start()
        barrier = threading.Barrier(n_threads + 1)

        def produce(endpoint: str) -> None:
            collect = collector.collect_metric
            barrier.wait()
            for i in range(per_thread):
                collect(
                    name="response_time",
                    value=i * 0.25,
                    unit="ms",
                    tags={"endpoint": endpoint, "status": "200"},
                )

        threads = [
            threading.Thread(target=produce, args=(ENDPOINTS[k % len(ENDPOINTS)],))
            for k in range(n_threads)
        ]
        for t in threads:
            t.start()
        barrier.wait()
        start = time.perf_counter()
        for t in threads:
            t.join()
        produced = time.perf_counter()
        stopped = stream.stop(timeout=300)
        done = time.perf_counter()
        stats = collector.stats()
        batches = stream.stats()["batches"]
        collector.close()
        points = storage.query_metrics("response_time", limit=None)
        disk = storage.stats().get("bytes", 0) if isinstance(storage, FileStorage) else 0
        storage.close()

    collected = stats["metrics_collected"]
    dropped = stats["records_dropped"]
    stored = len(points)
    distinct = len({p.id for p in points})
    return {
        "collected": collected,
        "dropped": dropped,
        "stored": stored,
        "ok": stopped and stored == collected - dropped and distinct == stored,
        "calls_per_s": n_threads * per_thread / (produced - start),
        "stored_per_s": stored / (done - start),
        "batches": batches,
        "bytes_per_record": disk / stored if stored else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--threads", type=int, default=3, help="producer threads (default 3)")
    args = parser.parse_args()
    rounds = 1 if args.quick else 3
    per_thread = 20_000 if args.quick else 100_000
    n_threads = args.threads

    results: dict[str, list[dict[str, Any]]] = {key: [] for key, _label, _f in STORAGES}
    started = time.perf_counter()
    for r in range(rounds):
        shift = r % len(STORAGES)
        for key, _label, factory in STORAGES[shift:] + STORAGES[:shift]:
            results[key].append(run_once(factory, n_threads, per_thread))
    took = time.perf_counter() - started

    print("## Pipeline: collect_metric -> TelemetryStream -> storage\n")
    print(versions_line())
    print(
        f"\n{n_threads} producer threads x {per_thread:,} `collect_metric` calls per run; "
        "default collector config (buffer_size 100, buffer_capacity 100,000, drop_oldest); "
        f"stream realtime_mode False, interval 0.2 s; {rounds} round(s), storages "
        f"interleaved; medians. Run took {took:.0f} s.\n"
    )
    print(
        "| storage | stored records/s (end to end) | collect calls/s (producers) "
        "| avg batch | dropped (all runs) | bytes/record on disk | stored == collected - dropped |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    all_ok = True
    for key, label, _factory in STORAGES:
        runs = results[key]
        ok = all(r["ok"] for r in runs)
        all_ok = all_ok and ok
        med = statistics.median
        avg_batch = med(r["stored"] / max(1, r["batches"]) for r in runs)
        disk = med(r["bytes_per_record"] for r in runs)
        check = ", ".join(
            f"{r['stored']:,} == {r['collected']:,} - {r['dropped']:,}"
            + ("" if r["ok"] else " FAILED")
            for r in runs
        )
        print(
            f"| {label} | {med(r['stored_per_s'] for r in runs):,.0f} "
            f"| {med(r['calls_per_s'] for r in runs):,.0f} | {avg_batch:,.0f} "
            f"| {sum(r['dropped'] for r in runs):,} | {f'{disk:.0f}' if disk else '-'} "
            f"| {'yes' if ok else '**NO**'} ({check}) |"
        )
    if not all_ok:
        raise SystemExit("records were lost: stored count differs from collected - dropped")


if __name__ == "__main__":
    main()
