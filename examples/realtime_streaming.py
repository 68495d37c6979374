"""Real-time streaming: consumers see every record moments after it is recorded.

A fake checkout service records events and metrics. A ``TelemetryStream`` in
realtime mode writes each batch to a ``MemoryStorage`` and hands it to three
consumers, each in its own worker thread:

- ``alert``: prints every error as soon as it arrives;
- ``Totals``: a callable object that counts what it has seen;
- ``forward``: an ``async def`` consumer (run on its own event loop).

Run it with ``.venv/bin/python examples/realtime_streaming.py``; it takes about
half a second and prints the same lines on every run.
"""

from __future__ import annotations

import asyncio
import time

from telemetry import EventType, TelemetryCollector, TelemetryConfig, TelemetryData
from telemetry.storage import MemoryStorage
from telemetry.streaming import TelemetryStream

ORDERS = 40


def alert(data: TelemetryData) -> None:
    """Print the errors of a batch the moment the stream delivers it."""
    for event in data.events:
        if event.event_type is EventType.ERROR:
            print(f"ALERT {event.source}: {event.message} (order {event.metadata['order']})")


class Totals:
    """A consumer with state: counts events per type and sums the order amounts."""

    def __init__(self) -> None:
        self.events: dict[str, int] = {}
        self.revenue = 0.0

    def __call__(self, data: TelemetryData) -> None:
        for event in data.events:
            kind = event.event_type.value
            self.events[kind] = self.events.get(kind, 0) + 1
        self.revenue += sum(m.value for m in data.metrics if m.name == "checkout.amount")


forwarded: list[str] = []


async def forward(data: TelemetryData) -> None:
    """An async consumer, e.g. one that would send batches over the network."""
    await asyncio.sleep(0)  # stands in for an awaitable client call
    forwarded.extend(e.id for e in data.events)


def checkout_service(collector: TelemetryCollector) -> None:
    """Simulate orders arriving every 10 ms; every 8th is declined."""
    latency = collector.histogram("checkout.latency", unit="ms")
    for order in range(1, ORDERS + 1):
        declined = order % 8 == 0
        collector.collect_event(
            "checkout",
            "payment declined" if declined else "order placed",
            EventType.ERROR if declined else EventType.INFO,
            {"order": order},
        )
        collector.collect_metric("checkout.amount", 10.0 * order, "EUR", {"currency": "EUR"})
        latency.observe(20.0 + order % 7)
        time.sleep(0.01)


def main() -> None:
    config = TelemetryConfig(realtime_mode=True, flush_interval=1.0)
    collector = TelemetryCollector(config)
    storage = MemoryStorage()
    stream = TelemetryStream(collector, storage, interval=1.0)

    totals = Totals()
    stream.add_consumer(alert)
    stream.add_consumer(totals, name="totals")
    stream.add_consumer(forward)

    stream.start()
    try:
        checkout_service(collector)
    finally:
        stream.stop()  # drains the buffer through the stream, waits for the consumers
        collector.close()

    events = ", ".join(f"{k}={n}" for k, n in sorted(totals.events.items()))
    print(f"totals consumer: events {events}; revenue {totals.revenue:g} EUR")
    print(f"async consumer forwarded {len(forwarded)} events")
    print(f"storage: {len(storage.query_events(limit=None))} events")
    print(f"storage: {len(storage.query_metrics('checkout.amount'))} checkout.amount points")
    # The histogram reports once per interval (1 s here) and once more at stop().
    counts = storage.query_metrics("checkout.latency.count")
    print(f"checkout.latency observations: {sum(p.value for p in counts):g}")

    for name, figures in stream.stats()["consumers"].items():
        print(
            f"  consumer {name}: errors={figures['errors']} "
            f"dropped={figures['dropped_records']} pending={figures['pending_batches']}"
        )
    print(f"collector dropped {collector.stats()['records_dropped']} records")


if __name__ == "__main__":
    main()
