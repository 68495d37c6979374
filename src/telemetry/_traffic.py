"""Synthetic traffic: three fake services recording requests, latencies and the odd error.

Used by ``rimp demo`` (the library demo) and ``rimp serve --demo`` (the server
with live demo data); it needs nothing but a collector.

Each request is also the point the HTTP integrations record
(``http.server.request.duration``, by service, method, route and status), so the
dashboard's services view has something to show. Every six minutes the services have
incidents, so the demo's alert rules
(``demo_rules.yml``) fire and resolve while you watch: billing fails a fifth of its
requests for a minute (from 0:20), search is four times slower for 90 seconds (from
2:00), and api goes silent for 90 seconds (from 4:00).
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

from telemetry.collector import TelemetryCollector
from telemetry.models import EventType

__all__ = ["DEMO_RULES", "SERVICES", "incident", "run_traffic", "start_traffic"]

DEMO_RULES = Path(__file__).with_name("demo_rules.yml")
"""The alert rules ``rimp serve --demo`` runs when given none."""
CYCLE = 360.0
INCIDENTS = {"billing": (20.0, 80.0), "search": (120.0, 210.0), "api": (240.0, 330.0)}
"""Seconds into each cycle during which a service misbehaves."""

SERVICES = {
    "api": ["/users", "/orders", "/search"],
    "billing": ["/charge", "/refund"],
    "search": ["/query", "/suggest"],
}
ROUTES = {
    "/users": ("GET", "/users/{user_id}"),
    "/orders": ("POST", "/orders"),
    "/search": ("GET", "/search"),
    "/charge": ("POST", "/charges"),
    "/refund": ("POST", "/charges/{charge_id}/refund"),
    "/query": ("GET", "/query"),
    "/suggest": ("GET", "/suggest"),
}
"""Each endpoint as the HTTP integrations would record it: method and route template."""


def incident(name: str, elapsed: float) -> bool:
    """Whether service ``name`` is in its incident ``elapsed`` seconds after traffic began."""
    start, end = INCIDENTS[name]
    return start <= elapsed % CYCLE < end


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
    began = time.monotonic()
    while not stop.wait(1.0 / rate):
        trouble = incident(name, time.monotonic() - began)
        if trouble and name == "api":
            continue  # gone silent: records nothing
        ep = rng.choice(SERVICES[name])
        ms = rng.lognormvariate(3.0, 0.6) * (3 if name == "search" else 1)
        if trouble and name == "search":
            ms *= 4
        requests[ep].inc()
        latency[ep].observe(ms)
        collector.collect_metric("response_time", ms, "ms", {"service": name, "endpoint": ep})
        queue.set(rng.randint(0, 40))
        roll = rng.random()
        failed = roll < (0.2 if trouble and name == "billing" else 0.002)
        method, route = ROUTES[ep]
        # What TelemetryMiddleware records for each request (docs/integrations.md).
        tags = {
            "service.name": name,
            "http.request.method": method,
            "http.route": route,
            "http.response.status_code": "502" if failed else "200",
        }
        if failed:
            tags["error.type"] = "502"
        collector.collect_metric("http.server.request.duration", ms / 1000, "s", tags)
        if failed:
            collector.collect_event(
                name,
                f"{ep} failed: upstream timeout",
                EventType.ERROR,
                {"endpoint": ep, "latency_ms": round(ms, 1)},
            )
        elif roll < 0.04:
            collector.collect_event(
                name, f"{ep} slow: {ms:.0f} ms", EventType.WARNING, {"endpoint": ep}
            )
        elif roll < 0.07:
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
