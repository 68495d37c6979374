"""Tests of telemetry.streaming: delivery, ordering, isolation of consumers, lifecycle."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from telemetry import TelemetryCollector, TelemetryConfig, TelemetryData, TelemetryError
from telemetry.storage import MemoryStorage
from telemetry.streaming import TelemetryStream
from tests.helpers import poll, run_python


def collector(**options: Any) -> TelemetryCollector:
    options.setdefault("flush_interval", 60.0)
    return TelemetryCollector(TelemetryConfig(**options), storage=MemoryStorage(max_records=None))


class Recorder:
    """A consumer that keeps every batch and signals each arrival."""

    def __init__(self) -> None:
        self.batches: list[TelemetryData] = []
        self.arrived = threading.Event()

    def __call__(self, data: TelemetryData) -> None:
        self.batches.append(data)
        self.arrived.set()

    @property
    def events(self) -> list[str]:
        return [e.message for b in self.batches for e in b.events]


class TestSeedExample:
    def test_records_collected_before_start_reach_the_stream(self) -> None:
        """The seed's order (collect, then create and start a stream) delivers those records."""
        c = collector(realtime_mode=True, flush_interval=5.0)
        c.collect_event(source="api_server", message="Request received")
        c.collect_metric(name="response_time", value=125.5, unit="ms", tags={"status": "200"})
        storage = MemoryStorage()
        stream = TelemetryStream(c, storage, interval=1.0)
        seen = Recorder()
        stream.add_consumer(seen)
        stream.start()
        assert seen.arrived.wait(5)
        stream.stop()
        assert (len(seen.batches[0].events), len(seen.batches[0].metrics)) == (1, 1)
        assert len(storage.query_events()) == 1
        c.close()


class TestDelivery:
    def test_realtime_mode_delivers_within_milliseconds(self) -> None:
        """With realtime_mode a record reaches the consumer without waiting for the interval."""
        c = collector(realtime_mode=True)
        stream = TelemetryStream(c, MemoryStorage(), interval=60)
        seen = Recorder()
        stream.add_consumer(seen)
        stream.start()
        latencies = []
        for i in range(20):
            seen.arrived.clear()
            started = time.perf_counter()
            c.collect_event("s", str(i))
            assert seen.arrived.wait(2)
            latencies.append(time.perf_counter() - started)
        stream.stop()
        c.close()
        assert seen.events == [str(i) for i in range(20)]
        assert sorted(latencies)[10] < 0.05  # median well under the 60 s interval

    def test_interval_mode_batches_until_buffer_size(self) -> None:
        """Without realtime, buffer_size waiting records wake the loop early."""
        c = collector(buffer_size=25)
        stream = TelemetryStream(c, MemoryStorage(), interval=60)
        seen = Recorder()
        stream.add_consumer(seen)
        stream.start()
        for i in range(25):
            c.collect_event("s", str(i))
        assert seen.arrived.wait(5)
        stream.stop()
        c.close()
        assert seen.events == [str(i) for i in range(25)]

    def test_storage_is_written_before_consumers_see_a_batch(self) -> None:
        """When a consumer runs, the batch is already in the stream's storage."""
        c = collector(realtime_mode=True)
        storage = MemoryStorage()
        stream = TelemetryStream(c, storage)
        found: list[int] = []
        stream.add_consumer(lambda data: found.append(len(storage.query_events(limit=None))))
        stream.start()
        c.collect_event("s", "m")
        assert poll(lambda: bool(found))
        stream.stop()
        c.close()
        assert found[0] >= 1

    def test_stop_drains_everything_and_is_idempotent(self) -> None:
        """stop() delivers all buffered records to storage and consumers; twice is harmless."""
        c = collector()
        storage = MemoryStorage(max_records=None)
        stream = TelemetryStream(c, storage, interval=60)
        seen = Recorder()
        stream.add_consumer(seen)
        stream.start()
        for i in range(1000):
            c.collect_metric("x", float(i))
        assert stream.stop(5) is True
        assert stream.stop(5) is True
        assert len(storage.query_metrics("x")) == 1000
        assert sum(len(b.metrics) for b in seen.batches) == 1000
        c.close()

    def test_after_stop_the_collector_flushes_to_its_own_storage(self) -> None:
        """Records collected after stop() go to collector.storage again."""
        c = collector()
        stream = TelemetryStream(c, MemoryStorage())
        stream.start()
        stream.stop()
        c.collect_event("s", "later")
        c.flush(5)
        assert [e.message for e in c.storage.query_events()] == ["later"]
        c.close()

    def test_async_consumers_are_awaited(self) -> None:
        """A coroutine-function consumer is run to completion for each batch."""
        c = collector(realtime_mode=True)
        stream = TelemetryStream(c, MemoryStorage())
        got: list[int] = []

        async def consume(data: TelemetryData) -> None:
            await asyncio.sleep(0)
            got.append(len(data.events))

        stream.add_consumer(consume)
        stream.start()
        c.collect_event("s", "m")
        assert poll(lambda: sum(got) == 1)
        stream.stop()
        c.close()

    def test_only_one_stream_per_collector(self) -> None:
        """Starting a second stream on the same collector raises TelemetryError."""
        c = collector()
        first = TelemetryStream(c, MemoryStorage()).start()
        with pytest.raises(TelemetryError, match="already has a running TelemetryStream"):
            TelemetryStream(c, MemoryStorage()).start()
        first.stop()
        c.close()


class TestIsolation:
    def test_a_raising_consumer_does_not_stop_others_and_is_counted(self) -> None:
        """A consumer that raises is counted; the loop and the other consumers go on."""
        c = collector(realtime_mode=True)
        stream = TelemetryStream(c, MemoryStorage())

        def broken(data: TelemetryData) -> None:
            raise RuntimeError("boom")

        seen = Recorder()
        stream.add_consumer(broken, name="broken")
        stream.add_consumer(seen)
        stream.start()
        for i in range(3):
            c.collect_event("s", str(i))
            c.flush(5)
        assert stream.stop(5)
        assert seen.events == ["0", "1", "2"]
        assert c.stats()["consumer_errors"] == 3
        assert stream.stats()["consumers"]["broken"]["errors"] == 3
        c.close()

    def test_a_slow_consumer_does_not_starve_others_and_loses_only_its_own_backlog(self) -> None:
        """A stuck consumer's queue is bounded; the others receive everything; storage has all."""
        c = collector(realtime_mode=True)
        storage = MemoryStorage(max_records=None)
        stream = TelemetryStream(c, storage, max_pending=3)
        release = threading.Event()
        stuck_started = threading.Event()

        def stuck(data: TelemetryData) -> None:
            stuck_started.set()
            release.wait(10)

        seen = Recorder()
        stream.add_consumer(stuck, name="stuck")
        stream.add_consumer(seen, name="fast")
        stream.start()
        for i in range(10):
            c.collect_event("s", str(i))
            c.flush(5)
            # The fast consumer keeps up (on a loaded machine its thread may not run
            # between two flushes; then it too would lag past max_pending).
            delivered = i + 1
            assert poll(lambda: len(seen.events) == delivered)  # noqa: B023 - used at once
        assert stuck_started.wait(5)
        lagging = stream.stats()["consumers"]["stuck"]
        assert lagging["dropped_batches"] >= 6
        assert lagging["pending_batches"] == 3
        assert len(storage.query_events(limit=None)) == 10
        release.set()
        assert stream.stop(5)
        c.close()

    def test_flush_from_a_consumer_returns_false_instead_of_deadlocking(self) -> None:
        """A consumer calling collector.flush() gets False at once (no self-wait)."""
        c = collector(realtime_mode=True)
        stream = TelemetryStream(c, MemoryStorage())
        results: list[bool] = []
        pump_threads: list[str] = []

        def flusher(data: TelemetryData) -> None:
            pump_threads.append(threading.current_thread().name)
            results.append(c.flush(1))

        stream.add_consumer(flusher)
        stream.start()
        c.collect_event("s", "m")
        assert poll(lambda: bool(results))
        stream.stop()
        c.close()
        assert results == [True]  # consumers run on their own worker, so flush works there
        assert pump_threads[0].startswith("rimp-consumer")


class TestInlineConsumers:
    def test_an_inline_consumer_runs_on_the_dispatch_thread_after_storage(self) -> None:
        """inline=True: called on the collector's dispatch thread, each batch already in
        storage when it is called, before the batch is acknowledged to flush()."""
        c = collector(realtime_mode=True)
        storage = MemoryStorage(max_records=None)
        stream = TelemetryStream(c, storage)
        seen: list[tuple[str, int, int]] = []

        def inline(data: TelemetryData) -> None:
            stored = len(storage.query_events(limit=None))
            seen.append((threading.current_thread().name, len(data.events), stored))

        stream.add_consumer(inline, name="inline", inline=True)
        stream.start()
        for i in range(3):
            c.collect_event("s", str(i))
            assert c.flush(5)
            assert len(seen) == i + 1  # called before flush() returned: no queue, no thread
        assert [(n, s) for _, n, s in seen] == [(1, 1), (1, 2), (1, 3)]
        assert {name for name, _, _ in seen} == {"rimp-pump"}
        assert stream.stop(5)
        assert stream.stats()["consumers"]["inline"]["delivered_batches"] == 3
        c.close()

    def test_a_raising_inline_consumer_is_counted_and_stops_nothing(self) -> None:
        """An inline consumer that raises is counted; storage and the others go on."""
        c = collector(realtime_mode=True)
        storage = MemoryStorage(max_records=None)
        stream = TelemetryStream(c, storage)

        def broken(data: TelemetryData) -> None:
            raise RuntimeError("boom")

        seen = Recorder()
        stream.add_consumer(broken, name="broken", inline=True)
        stream.add_consumer(seen)
        stream.start()
        for i in range(3):
            c.collect_event("s", str(i))
            assert c.flush(5)
        assert stream.stop(5)
        assert seen.events == ["0", "1", "2"]
        assert len(storage.query_events(limit=None)) == 3
        assert stream.stats()["consumers"]["broken"]["errors"] == 3
        assert c.stats()["consumer_errors"] == 3
        c.close()

    def test_a_coroutine_function_cannot_run_inline(self) -> None:
        """An async consumer needs its own loop: inline=True is refused, by name."""

        async def consume(data: TelemetryData) -> None:
            return None

        stream = TelemetryStream(collector(), MemoryStorage())
        with pytest.raises(TelemetryError, match="cannot run inline"):
            stream.add_consumer(consume, inline=True)


class TestStopFromAConsumer:
    def test_a_consumer_may_stop_its_own_stream(self) -> None:
        """stream.stop() called inside a consumer returns instead of joining itself."""
        c = collector(realtime_mode=True)
        stream = TelemetryStream(c, MemoryStorage())
        outcome: list[object] = []

        def stopper(data: TelemetryData) -> None:
            try:
                outcome.append(stream.stop(2))
            except Exception as exc:  # the failure this test guards against
                outcome.append(exc)

        stream.add_consumer(stopper)
        stream.start()
        c.collect_event("s", "m")
        assert poll(lambda: bool(outcome))
        assert outcome == [False]
        assert not stream.is_running
        c.close()


class TestConsumerDropsInCollectorStats:
    def test_records_a_lagging_consumer_skipped_are_counted_by_the_collector(self) -> None:
        """collector.stats()['consumer_dropped'] counts what a stuck consumer lost."""
        c = collector(realtime_mode=True)
        stream = TelemetryStream(c, MemoryStorage(), max_pending=1)
        release = threading.Event()
        stream.add_consumer(lambda data: release.wait(10), name="stuck")
        stream.start()
        for i in range(5):
            c.collect_event("s", str(i))
            c.flush(5)
        assert poll(lambda: c.stats()["consumer_dropped"] >= 3)
        release.set()
        stream.stop(5)
        c.close()


class TestExit:
    def test_consumers_receive_the_last_batch_at_interpreter_exit(self) -> None:
        """A program that never stops its stream still delivers the final batch to consumers."""
        result = run_python(
            """
            import time
            from telemetry import TelemetryCollector, TelemetryConfig
            from telemetry.storage import MemoryStorage
            from telemetry.streaming import TelemetryStream
            c = TelemetryCollector(TelemetryConfig(flush_interval=3600))
            s = TelemetryStream(c, MemoryStorage(), interval=3600)
            def slow(data):
                time.sleep(0.1)
                print("consumer saw", len(data.events), flush=True)
            s.add_consumer(slow)
            s.start()
            for i in range(7):
                c.collect_event("job", str(i))
            """
        )
        assert result.returncode == 0, result.stderr
        assert "consumer saw 7" in result.stdout
