"""Synthetic traffic: three fake services recording requests, latencies and the odd error.

Used by ``rimp demo`` (the library demo) and ``rimp serve --demo`` (the server
with live demo data); it needs nothing but a collector.
"""

from __future__ import annotations

import random
import threading

from telemetry.collector import TelemetryCollector
from telemetry.models import EventType

__all__ = ["SERVICES", "run_traffic", "start_traffic"]

SERVICES = {
    "api": ["/users", "/orders", "/search"],
    "billing": ["/charge", "/refund"],
    "search": ["/query", "/suggest"],
}


def _service(collector: TelemetryCollector, name: str, rate: float, stop: threading.Event) -> None:
    rng = random.Random(name)
    requests = {
        ep: collector.counter("requests", tags={"service": name, "endpoint": ep})
        for ep in SERVICES[name]
    }
    latency = {
        ep: collector.histogram("latency", unit="ms", tags={"service": name, "endpoint": ep})
        for ep in SERVICES[name]
    }
    queue = collector.gauge("queue_depth", tags={"service": name})
    while not stop.wait(1.0 / rate):
        ep = rng.choice(SERVICES[name])
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


def start_traffic(
    collector: TelemetryCollector, stop: threading.Event, rate: float = 20.0
) -> list[threading.Thread]:
    """Start one thread per fake service, each recording ``rate`` requests per second
    until ``stop`` is set; return the threads."""
    threads = [
        threading.Thread(
            target=_service, args=(collector, s, rate, stop), name=f"rimp-demo-{s}", daemon=True
        )
        for s in SERVICES
    ]
    for t in threads:
        t.start()
    return threads


def run_traffic(collector: TelemetryCollector, stop: threading.Event, rate: float = 20.0) -> None:
    """Record synthetic traffic from the fake services until ``stop`` is set."""
    for t in start_traffic(collector, stop, rate):
        t.join()
