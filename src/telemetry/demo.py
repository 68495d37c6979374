"""A self-contained demo: fake services → collector → stream → terminal and FileStorage."""

from __future__ import annotations

import contextlib
import random
import sys
import threading
from pathlib import Path

from telemetry.collector import TelemetryCollector
from telemetry.config import TelemetryConfig
from telemetry.models import EventType, TelemetryData
from telemetry.storage import FileStorage
from telemetry.streaming import TelemetryStream

__all__ = ["run_demo", "run_traffic"]

_COLOURS = {
    EventType.DEBUG: "\033[2m",
    EventType.INFO: "\033[36m",
    EventType.WARNING: "\033[33m",
    EventType.ERROR: "\033[31m",
    EventType.CRITICAL: "\033[1;31m",
}
_RESET = "\033[0m"
_SERVICES = {
    "api": ["/users", "/orders", "/search"],
    "billing": ["/charge", "/refund"],
    "search": ["/query", "/suggest"],
}


def _service(collector: TelemetryCollector, name: str, rate: float, stop: threading.Event) -> None:
    rng = random.Random(name)
    requests = {
        ep: collector.counter("requests", tags={"service": name, "endpoint": ep})
        for ep in _SERVICES[name]
    }
    latency = {
        ep: collector.histogram("latency", unit="ms", tags={"service": name, "endpoint": ep})
        for ep in _SERVICES[name]
    }
    queue = collector.gauge("queue_depth", tags={"service": name})
    while not stop.wait(1.0 / rate):
        ep = rng.choice(_SERVICES[name])
        ms = rng.lognormvariate(3.0, 0.6) * (3 if name == "search" else 1)
        requests[ep].inc()
        latency[ep].observe(ms)
        collector.collect_metric("response_time", ms, "ms", {"service": name, "endpoint": ep})
        queue.set(rng.randint(0, 40))
        roll = rng.random()
        if roll < 0.01:
            collector.collect_event(
                name,
                f"{ep} failed: upstream timeout",
                EventType.ERROR,
                {"endpoint": ep, "latency_ms": round(ms, 1)},
            )
        elif roll < 0.05:
            collector.collect_event(
                name, f"{ep} slow: {ms:.0f} ms", EventType.WARNING, {"endpoint": ep}
            )
        elif roll < 0.08:
            collector.collect_event(name, f"{ep} served", EventType.INFO, {"endpoint": ep})


def run_traffic(collector: TelemetryCollector, stop: threading.Event, rate: float = 20.0) -> None:
    """Record synthetic traffic from the fake services until ``stop`` is set."""
    threads = [
        threading.Thread(target=_service, args=(collector, s, rate, stop), daemon=True)
        for s in _SERVICES
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def run_demo(*, duration: float, out: str, rate: float, quiet: bool) -> int:
    """Run the demo for ``duration`` seconds; return the process exit code."""
    path = Path(out)
    storage = FileStorage(path, fsync="interval")
    collector = TelemetryCollector(
        TelemetryConfig(realtime_mode=True, flush_interval=1.0), storage=storage
    )
    stream = TelemetryStream(collector, storage, interval=1.0)
    tty = sys.stdout.isatty()

    def show(data: TelemetryData) -> None:
        if quiet:
            return
        for e in data.events:
            colour, reset = (_COLOURS[e.event_type], _RESET) if tty else ("", "")
            stamp = e.timestamp.strftime("%H:%M:%S.%f")[:-3]
            print(f"{stamp} {colour}{e.event_type.value:<8}{reset} {e.source:<8} {e.message}")
        rates = [m for m in data.metrics if m.name == "latency.p95"]
        for m in rates:
            where = f"{m.tags['service']}{m.tags['endpoint']}"
            print(f"         p95 latency {where:<16} {m.value:7.1f} ms")

    stream.add_consumer(show, name="terminal")
    stream.start()
    stop = threading.Event()
    threads = [
        threading.Thread(target=_service, args=(collector, s, rate, stop), daemon=True)
        for s in _SERVICES
    ]
    for t in threads:
        t.start()
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait(duration)
    stop.set()
    for t in threads:
        t.join()
    stream.stop()
    collector.close()

    print("\n== stored in", path.resolve())
    whole_run = 2**31  # one epoch-aligned bucket (1970-2038) holds the whole run
    for b in storage.count_events(bucket=whole_run, group_by=["event_type"]):
        print(f"   {b.tags['event_type']:<8} {int(b.value):>6} events")
    for b in storage.aggregate("response_time", agg="p95", bucket=whole_run, group_by=["service"]):
        print(
            f"   p95 response_time {b.tags['service']:<8} {b.value:7.1f} ms over {b.count} points"
        )
    stats = collector.stats()
    print(
        f"== collector: {stats['events_collected']} events, {stats['metrics_collected']} metrics, "
        f"{stats['records_flushed']} stored, {stats['records_dropped']} dropped"
    )
    storage.close()
    return 0
