"""``rimp demo``, self-contained: fake services → collector → stream → terminal and FileStorage."""

from __future__ import annotations

import contextlib
import sys
import threading
from pathlib import Path

from telemetry._traffic import start_traffic
from telemetry.cli._style import COLOURS, RESET
from telemetry.collector import TelemetryCollector
from telemetry.config import TelemetryConfig
from telemetry.models import TelemetryData
from telemetry.storage import FileStorage
from telemetry.streaming import TelemetryStream

__all__ = ["run_demo"]


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
            colour, reset = (COLOURS[e.event_type], RESET) if tty else ("", "")
            stamp = e.timestamp.strftime("%H:%M:%S.%f")[:-3]
            print(f"{stamp} {colour}{e.event_type.value:<8}{reset} {e.source:<8} {e.message}")
        rates = [m for m in data.metrics if m.name == "latency.p95"]
        for m in rates:
            where = f"{m.tags['service']}{m.tags['endpoint']}"
            print(f"         p95 latency {where:<16} {m.value:7.1f} ms")

    stream.add_consumer(show, name="terminal")
    stream.start()
    stop = threading.Event()
    threads = start_traffic(collector, stop, rate)
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
