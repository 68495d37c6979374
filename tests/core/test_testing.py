"""``telemetry.testing``: what users get for testing their own instrumentation."""

from __future__ import annotations

import threading

import pytest

from telemetry import EventType, TelemetryConfig, TelemetryData
from telemetry.testing import FlakyStorage, GatedStorage, capture


class TestCapture:
    def test_captures_events_and_metrics_in_order(self) -> None:
        """Records made through the yielded collector are captured whole, oldest first."""
        with capture() as captured:
            captured.collector.collect_event("checkout", "order placed", metadata={"order": 1})
            captured.collector.collect_event("checkout", "card declined", EventType.WARNING)
            captured.collector.collect_metric("checkout.latency", 42.0, "ms", {"region": "eu"})
            assert [e.message for e in captured.events] == ["order placed", "card declined"]
            assert captured.events[1].event_type is EventType.WARNING
            assert [(m.name, m.value, m.tags) for m in captured.metrics] == [
                ("checkout.latency", 42.0, {"region": "eu"})
            ]

    def test_instrument_points_are_captured(self) -> None:
        """Instruments report into the capture when it is read (it flushes first)."""
        with capture() as captured:
            captured.collector.counter("jobs").inc(3)
            assert [(m.name, m.value) for m in captured.metrics] == [("jobs", 3.0)]

    def test_queries_work_on_the_capture(self) -> None:
        """The capturing storage answers queries like any memory storage."""
        with capture() as captured:
            captured.collector.collect_event("api", "boom", "error")
            captured.collector.collect_event("api", "fine")
            captured.collector.flush()
            found = captured.storage.query_events(event_type="error")
            assert [e.message for e in found] == ["boom"]

    def test_clear_forgets_what_was_captured(self) -> None:
        """clear() empties the capture; later records are captured again."""
        with capture() as captured:
            captured.collector.collect_event("api", "before")
            captured.clear()
            captured.collector.collect_event("api", "after")
            assert [e.message for e in captured.events] == ["after"]

    def test_the_collector_is_closed_on_exit(self) -> None:
        """Leaving the block closes the collector: later calls are dropped and counted."""
        with capture(TelemetryConfig(buffer_size=10)) as captured:
            pass
        captured.collector.collect_event("api", "late")
        assert captured.collector.stats()["dropped_by_reason"] == {"closed": 1}


class TestFakeStorages:
    def test_gated_storage_holds_writes_until_opened(self) -> None:
        """GatedStorage signals a waiting write and stores it once the gate opens."""
        storage = GatedStorage()
        writer = threading.Thread(target=storage.store, args=(TelemetryData(),))
        writer.start()
        assert storage.entered.wait(5)
        assert writer.is_alive()
        storage.gate.set()
        writer.join(5)
        assert not writer.is_alive()

    def test_flaky_storage_fails_then_stores(self) -> None:
        """FlakyStorage raises OSError for its first writes, then stores."""
        storage = FlakyStorage(failures=1)
        with pytest.raises(OSError, match="No space left"):
            storage.store(TelemetryData())
        storage.store(TelemetryData())
        assert storage.attempts == 2
