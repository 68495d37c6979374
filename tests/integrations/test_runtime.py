"""Runtime metrics and uncaught exceptions: sampled names and values, the GC callback,
the event-loop lag, and processes that really crash (the event must be stored before
the process dies), plus timers around async functions."""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from telemetry import TelemetryCollector, TelemetryConfig
from telemetry.integrations.runtime import RuntimeMetrics, watch_event_loop
from telemetry.storage import DatabaseStorage
from telemetry.testing import capture


def test_runtime_metrics_sample_the_process(tmp_path: Path) -> None:
    with capture(
        TelemetryConfig(service_name="worker", runtime_metrics=True, flush_interval=3600)
    ) as captured:
        runtime = captured.collector.runtime
        assert isinstance(runtime, RuntimeMetrics)
        garbage: list[list[object]] = [[] for _ in range(1000)]
        for g in garbage:
            g.append(g)  # cycles: something for the collector to collect
        del garbage
        gc.collect()
        sum(i * i for i in range(200_000))  # some CPU time
        points = runtime.collect(time.time_ns())
    by_name: dict[str, list[tuple[dict[str, str], float]]] = {}
    for p in points:
        by_name.setdefault(p.name, []).append((p.tags, p.value))
    assert {
        "process.cpu.time",
        "process.memory.usage",
        "process.memory.virtual",
        "process.open_file_descriptor.count",
        "process.thread.count",
        "cpython.gc.collections",
        "cpython.gc.collected_objects",
        "cpython.gc.pause_time",
    } <= set(by_name)
    modes = {t["cpu.mode"]: v for t, v in by_name["process.cpu.time"]}
    assert modes["user"] > 0
    (rss,) = by_name["process.memory.usage"]
    assert rss[0] == {"service.name": "worker"}
    assert 10 * 2**20 < rss[1] < 10 * 2**30
    gen2 = {t["cpython.gc.generation"]: v for t, v in by_name["cpython.gc.collections"]}
    assert gen2["2"] >= 1
    collected = sum(v for _, v in by_name["cpython.gc.collected_objects"])
    assert collected >= 1000
    assert by_name["process.open_file_descriptor.count"][0][1] >= 3
    # The counters are per interval: right after a sample, the next has no collections.
    again = {p.tags.get("cpython.gc.generation"): p.value for p in runtime.collect(time.time_ns())
             if p.name == "cpython.gc.collections"}  # fmt: skip
    assert again["2"] == 0
    assert runtime._on_gc_hook not in gc.callbacks  # closed with the collector


def test_the_loop_lag_is_how_late_a_callback_runs() -> None:
    with capture(TelemetryConfig(runtime_metrics=True, flush_interval=3600)) as captured:
        runtime = captured.collector.runtime
        assert runtime is not None

        async def main() -> None:
            watch_event_loop(captured.collector)
            runtime.collect(time.time_ns())  # schedules a probe on the loop
            time.sleep(0.2)  # the loop is blocked: the probe waits
            await asyncio.sleep(0)

        asyncio.run(main())
        lag = [
            p.value for p in runtime.collect(time.time_ns()) if p.name == "python.asyncio.loop.lag"
        ]
    assert lag
    assert lag[0] >= 0.2


def test_runtime_sampling_is_cheap() -> None:
    """Measured, not asserted as a speed: the cost per sample is reported in the docs; here
    only that a sample does not read anything unbounded (1,000 samples in under 5 s)."""
    with capture(TelemetryConfig(runtime_metrics=True, flush_interval=3600)) as captured:
        runtime = captured.collector.runtime
        assert runtime is not None
        started = time.perf_counter()
        for _ in range(1000):
            runtime.collect(time.time_ns())
        assert time.perf_counter() - started < 5


CRASH = """
import sys, threading, asyncio
from telemetry import TelemetryCollector, TelemetryConfig
from telemetry.integrations.runtime import watch_event_loop
from telemetry.storage import DatabaseStorage

collector = TelemetryCollector(
    TelemetryConfig(service_name="crasher", capture_exceptions=True, flush_interval=60),
    storage=DatabaseStorage(sys.argv[1]),
)
mode = sys.argv[2]

def fail_in_thread():
    raise LookupError("worker lost its queue")

async def fail_in_task():
    raise ConnectionError("broker went away")

async def main():
    watch_event_loop(collector)
    task = asyncio.get_running_loop().create_task(fail_in_task())
    await asyncio.sleep(0.05)
    del task  # never awaited: its exception reaches the loop's handler when collected
    import gc; gc.collect()
    await asyncio.sleep(0.05)

if mode == "thread":
    t = threading.Thread(target=fail_in_thread, name="worker-1")
    t.start(); t.join()
elif mode == "loop":
    asyncio.run(main())
collector.flush()
if mode == "main":
    raise ZeroDivisionError("division by zero in the billing run")
"""


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("main", (1, "ZeroDivisionError", "the main thread", "division by zero in the billing")),
        ("thread", (0, "LookupError", "thread 'worker-1'", "LookupError: worker lost its queue")),
        ("loop", (0, "ConnectionError", "the event loop", "broker went away")),
    ],
)
def test_an_uncaught_exception_is_stored_before_the_process_goes_on_or_dies(
    tmp_path: Path, mode: str, expected: tuple[int, str, str, str]
) -> None:
    exit_code, kind, where, printed = expected
    db = tmp_path / "t.db"
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent(CRASH))
    done = subprocess.run(
        [sys.executable, str(script), str(db), mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == exit_code, done.stderr
    assert printed in done.stderr  # the previous hook still printed it
    storage = DatabaseStorage(db)
    try:
        (event,) = storage.query_events(source="crasher")
    finally:
        storage.close()
    assert event.event_type.value == "critical"
    assert event.message.startswith(f"uncaught {kind} in {where}")
    assert event.metadata["exception.type"] == kind
    assert "Traceback (most recent call last)" in event.metadata["exception.stacktrace"]
    json.dumps(event.metadata)  # plain data all through


def test_hooks_are_put_back_on_close() -> None:
    before = sys.excepthook
    collector = TelemetryCollector(TelemetryConfig(capture_exceptions=True))
    assert sys.excepthook is not before
    collector.close()
    assert sys.excepthook is before


def test_timed_measures_async_functions_to_their_end() -> None:
    with capture() as captured:

        @captured.collector.timed("fetch", unit="s")
        async def fetch() -> str:
            await asyncio.sleep(0.1)
            return "done"

        assert asyncio.run(fetch()) == "done"
        captured.collector.flush()
        (count,) = [m for m in captured.metrics if m.name == "fetch.count"]
        (longest,) = [m for m in captured.metrics if m.name == "fetch.max"]
    assert count.value == 1
    assert longest.value >= 0.1
