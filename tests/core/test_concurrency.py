"""Concurrency: many threads recording while a stream runs; exact accounting."""

from __future__ import annotations

import threading
from typing import Literal

import pytest

from telemetry import TelemetryCollector, TelemetryConfig
from telemetry.storage import MemoryStorage
from telemetry.streaming import TelemetryStream

THREADS = 8
PER_THREAD = 100_000


def hammer(collector: TelemetryCollector) -> None:
    start = threading.Barrier(THREADS)

    def work(n: int) -> None:
        start.wait()
        tags = {"thread": str(n)}
        for i in range(PER_THREAD):
            if i % 10 == 0:
                collector.collect_event("worker", "tick", metadata={"i": i})
            else:
                collector.collect_metric("work", float(i), "", tags)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest.mark.slow
class TestEightThreads:
    @pytest.mark.parametrize("policy", ["drop_newest", "drop_oldest"])
    def test_stored_plus_dropped_equals_collected(
        self, policy: Literal["drop_newest", "drop_oldest"]
    ) -> None:
        """8 x 100,000 records through a small buffer: every record is stored or counted."""
        collector = TelemetryCollector(
            TelemetryConfig(
                buffer_size=500,
                buffer_capacity=2_000,
                overflow_policy=policy,
                flush_interval=0.05,
            )
        )
        storage = MemoryStorage(max_records=None)
        stream = TelemetryStream(collector, storage, interval=0.05)
        stream.start()
        hammer(collector)
        assert stream.stop(30)
        stats = collector.stats()
        stored = storage.stats()
        total = THREADS * PER_THREAD
        assert stats["events_collected"] + stats["metrics_collected"] == total
        assert stored["events"] + stored["metrics"] + stats["records_dropped"] == total
        assert stats["records_flushed"] == stored["events"] + stored["metrics"]
        assert set(stats["dropped_by_reason"]) <= {f"overflow_{policy.split('_')[1]}"}
        collector.close()

    def test_block_policy_loses_nothing(self) -> None:
        """With block and a generous timeout, all 800,000 records are stored."""
        collector = TelemetryCollector(
            TelemetryConfig(
                buffer_size=500,
                buffer_capacity=2_000,
                overflow_policy="block",
                block_timeout=30,
                flush_interval=0.05,
            )
        )
        storage = MemoryStorage(max_records=None)
        stream = TelemetryStream(collector, storage, interval=0.05)
        stream.start()
        hammer(collector)
        assert stream.stop(30)
        stored = storage.stats()
        assert stored["events"] + stored["metrics"] == THREADS * PER_THREAD
        assert collector.stats()["records_dropped"] == 0
        per_thread = {s.tags["thread"] for s in storage.series("work")}
        assert per_thread == {str(n) for n in range(THREADS)}
        collector.close()
