"""Basic use of RIMP: record events and metrics, use instruments, query the storage.

Run it with ``.venv/bin/python examples/basic_usage.py``. It prints counts and
aggregates only (no clock readings), so the output is the same on every run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from telemetry import EventType, TelemetryCollector, TelemetryConfig
from telemetry.storage import MemoryStorage

# A minute of replayed traffic is recorded with explicit timestamps, so the
# aggregates below fall into the same one-minute bucket on every run.
REPLAY_START = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
ENDPOINTS = ("/api/users", "/api/orders")


def main() -> None:
    storage = MemoryStorage()
    config = TelemetryConfig(enabled=True, realtime_mode=True)

    # The collector flushes everything still buffered when the block ends.
    with TelemetryCollector(config, storage=storage) as collector:
        # 1. The calls of the original README.
        collector.collect_event(
            source="api_server",
            message="Request received",
            event_type=EventType.INFO,
            metadata={"endpoint": "/api/users", "method": "GET"},
        )
        collector.collect_metric(
            name="response_time",
            value=125.5,
            unit="ms",
            tags={"endpoint": "/api/users", "status": "200"},
        )

        # 2. A minute of traffic with explicit timestamps (a datetime or int nanoseconds).
        for second in range(60):
            endpoint = ENDPOINTS[second % 2]
            when = REPLAY_START + timedelta(seconds=second)
            status = "500" if second % 15 == 14 else "200"
            collector.collect_metric(
                "response_time",
                float(10 + second),
                "ms",
                {"endpoint": endpoint, "status": status},
                timestamp=when,
            )
            if status == "500":
                collector.collect_event(
                    "api_server",
                    f"{endpoint} failed",
                    EventType.ERROR,
                    {"endpoint": endpoint, "second": second},
                    timestamp=when,
                )
        collector.collect_event("api_server", "slow disk", "warning", timestamp=REPLAY_START)

        # 3. Instruments: created once, cheap to update, reported at each flush.
        requests = collector.counter("http.requests", tags={"service": "api"})
        in_flight = collector.gauge("http.in_flight", tags={"service": "api"})
        db_latency = collector.histogram("db.query", unit="ms", tags={"table": "users"})
        for i in range(1, 101):
            requests.inc()
            db_latency.observe(float(i))
        in_flight.set(3)
        with collector.timer("report.build"):  # a histogram in milliseconds
            sum(range(10_000))

        collector.flush()  # deliver everything recorded so far, instruments included

        # 4. Queries.
        events = storage.query_events(limit=None)
        print(f"events stored: {len(events)}")
        for e in storage.query_events(event_type=EventType.ERROR, limit=2):
            print(f"  newest errors: {e.source} {e.message} (second {e.metadata['second']})")

        per_type: dict[str, int] = {}
        for bucket in storage.count_events(bucket=60):
            kind = bucket.tags["event_type"]
            per_type[kind] = per_type.get(kind, 0) + bucket.count
        print("events per type:", ", ".join(f"{k}={n}" for k, n in sorted(per_type.items())))

        since, until = REPLAY_START, REPLAY_START + timedelta(minutes=1)  # [since, until)
        for agg in ("count", "avg", "p95", "max"):
            (only,) = storage.aggregate(
                "response_time", agg=agg, bucket=60, since=since, until=until
            )
            print(f"response_time {agg} at {only.start:%H:%M}: {only.value:g}")
        for b in storage.aggregate(
            "response_time", agg="p50", bucket=60, group_by=["endpoint"], since=since, until=until
        ):
            print(f"  p50 {b.tags['endpoint']}: {b.value:g} ms over {b.count} points")
        errors_only = storage.aggregate(
            "response_time",
            agg="count",
            bucket=60,
            tags={"status": "500"},
            since=since,
            until=until,
        )
        print(f"responses with status 500: {sum(b.count for b in errors_only)}")

        total = sum(p.value for p in storage.query_metrics("http.requests"))
        print(f"http.requests counted: {total:g}")
        (p99,) = storage.query_metrics("db.query.p99", limit=1)
        print(f"db.query p99: {p99.value:g} ms")
        print(f"http.in_flight: {storage.query_metrics('http.in_flight', limit=1)[0].value:g}")
        timed = storage.query_metrics("report.build.count")
        print(f"report.build timed {sum(p.value for p in timed):g} time(s)")
        print("series of response_time:", len(storage.series("response_time")))

    stats = collector.stats()
    print(
        f"collector: {stats['events_collected']} events, {stats['metrics_collected']} metrics "
        f"collected, {stats['records_dropped']} dropped, {stats['buffered']} buffered"
    )


if __name__ == "__main__":
    main()
