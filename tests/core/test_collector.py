"""Tests of telemetry.collector: recording, validation, overflow, flush, close, accounting."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from telemetry import (
    Event,
    EventType,
    Metric,
    TelemetryCollector,
    TelemetryConfig,
    ValidationError,
)
from telemetry.storage import MemoryStorage
from telemetry.testing import FlakyStorage, GatedStorage
from tests.helpers import poll


def make(storage: Any = None, **options: Any) -> TelemetryCollector:
    options.setdefault("flush_interval", 60.0)
    return TelemetryCollector(
        TelemetryConfig(**options), storage=storage or MemoryStorage(max_records=None)
    )


class TestRecording:
    def test_collect_event_returns_the_recorded_event(self) -> None:
        """collect_event returns an Event with the given fields, a fresh id and time."""
        with make() as c:
            before = time.time_ns()
            e = c.collect_event(
                source="api_server",
                message="Request received",
                event_type=EventType.INFO,
                metadata={"endpoint": "/api/users"},
            )
            assert isinstance(e, Event)
            assert (e.source, e.message, e.event_type) == ("api_server", "Request received", "info")
            assert e.metadata == {"endpoint": "/api/users"}
            assert before <= e.time_ns <= time.time_ns()
            assert len(e.id) == 16

    def test_collect_metric_returns_the_recorded_metric(self) -> None:
        """collect_metric returns a Metric with a float value and the tags given."""
        with make() as c:
            m = c.collect_metric(name="response_time", value=125, unit="ms", tags={"status": "200"})
            assert isinstance(m, Metric)
            assert m.value == 125.0
            assert isinstance(m.value, float)
            assert (m.name, m.unit, m.tags) == ("response_time", "ms", {"status": "200"})

    def test_event_type_may_be_a_string(self) -> None:
        """An event type given as its value (any case) is accepted."""
        with make() as c:
            e = c.collect_event("s", "m", event_type="WARNING")
            assert e is not None
            assert e.event_type is EventType.WARNING

    def test_timestamp_may_be_datetime_or_ns(self) -> None:
        """An explicit timestamp is kept, as datetime or int ns."""
        with make() as c:
            moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
            m = c.collect_metric("x", 1.0, timestamp=moment)
            e = c.collect_event("s", "m", timestamp=1_000)
            assert m is not None
            assert m.timestamp == moment
            assert e is not None
            assert e.time_ns == 1_000

    def test_records_reach_storage_on_flush(self) -> None:
        """flush() delivers everything recorded to collector.storage."""
        with make() as c:
            c.collect_event("s", "one")
            c.collect_metric("x", 1.0)
            assert c.flush(5)
            assert [e.message for e in c.storage.query_events()] == ["one"]
            assert [p.value for p in c.storage.query_metrics("x")] == [1.0]

    def test_buffer_size_triggers_a_flush_without_waiting_for_the_interval(self) -> None:
        """Reaching buffer_size wakes the flusher long before flush_interval."""
        with make(buffer_size=10, flush_interval=60.0) as c:
            for i in range(10):
                c.collect_metric("x", float(i))
            assert poll(lambda: len(c.storage.query_metrics("x")) == 10, 5)

    def test_interval_flushes_without_explicit_flush(self) -> None:
        """Records are stored within flush_interval without any call."""
        with make(flush_interval=0.05) as c:
            c.collect_event("s", "m")
            assert poll(lambda: len(c.storage.query_events()) == 1, 5)


class TestValidation:
    @pytest.mark.parametrize(
        ("kwargs", "pattern"),
        [
            ({"value": float("nan")}, r"value=nan: must be finite"),
            ({"value": float("inf")}, r"value=inf: must be finite"),
            ({"value": "1.5"}, r"value='1.5': must be a number"),
            ({"value": None}, r"value=None: must be a number"),
            ({"name": ""}, r"name='': must be a non-empty string"),
            ({"name": 5}, r"name=5: must be a non-empty string"),
            ({"unit": None}, r"unit=None: must be a string"),
            ({"tags": {"status": 200}}, r"tags\['status'\]=200: tag values must be strings"),
            ({"tags": {1: "a"}}, r"tags: key 1 must be a string"),
            ({"tags": ["a"]}, r"tags=\['a'\]: must be a dict"),
        ],
    )
    def test_bad_metric_raises_naming_the_field(self, kwargs: dict[str, Any], pattern: str) -> None:
        """Each bad metric argument raises ValidationError naming the field and the rule."""
        args: dict[str, Any] = {"name": "x", "value": 1.0, "unit": "", "tags": None}
        args.update(kwargs)
        with make() as c:
            with pytest.raises(ValidationError, match=pattern):
                c.collect_metric(**args)
            assert c.stats()["metrics_collected"] == 0

    def test_number_like_values_are_accepted(self) -> None:
        """Ints, bools and objects with __float__ (Decimal) become floats."""
        from decimal import Decimal

        with make() as c:
            number_likes: list[Any] = [3, True, Decimal("2.5")]  # not floats, on purpose
            values = [c.collect_metric("x", v) for v in number_likes]
            assert [m.value for m in values if m] == [3.0, 1.0, 2.5]

    @pytest.mark.parametrize(
        ("kwargs", "pattern"),
        [
            ({"source": None}, r"source=None: must be a string"),
            ({"message": 5}, r"message=5: must be a string"),
            ({"event_type": "fatal"}, r"event_type='fatal': must be one of debug, info"),
            ({"metadata": [1]}, r"metadata=\[1\]: must be a dict"),
            ({"metadata": {str(i): i for i in range(65)}}, r"65 keys is over max_metadata_keys=64"),
            ({"message": "x" * 70_000}, r"70000 characters is over max_message_length=65536"),
        ],
    )
    def test_bad_event_raises_naming_the_field(self, kwargs: dict[str, Any], pattern: str) -> None:
        """Each bad event argument raises ValidationError naming the field and the rule."""
        args: dict[str, Any] = {"source": "s", "message": "m"}
        args.update(kwargs)
        with make() as c:
            with pytest.raises(ValidationError, match=pattern):
                c.collect_event(**args)
            assert c.stats()["events_collected"] == 0


class TestDisabled:
    def test_every_call_returns_none_and_nothing_is_counted(self) -> None:
        """A disabled collector records nothing and its instruments are no-ops."""
        with make(enabled=False) as c:
            assert c.collect_event("s", "m") is None
            assert c.collect_metric("x", 1.0) is None
            c.counter("n").inc()
            c.histogram("h").observe(1.0)
            with c.timer("t"):
                pass
            c.flush(1)
            assert c.stats()["events_collected"] == 0
            assert c.stats()["metrics_collected"] == 0
            assert c.storage.query_events() == []


class TestOverflow:
    def _stalled(self, policy: str, capacity: int = 10) -> tuple[TelemetryCollector, GatedStorage]:
        storage = GatedStorage()
        c = make(
            storage,
            buffer_size=1,
            buffer_capacity=capacity,
            overflow_policy=policy,
            block_timeout=0.05,
        )
        c.collect_metric("x", -1.0)  # taken by the pump, which then stalls in store()
        assert storage.entered.wait(5)
        return c, storage

    def test_drop_newest_keeps_the_first_and_counts(self) -> None:
        """With drop_newest a full buffer refuses new points and counts them."""
        c, storage = self._stalled("drop_newest")
        for i in range(15):
            c.collect_metric("x", float(i))
        stats = c.stats()
        assert stats["dropped_by_reason"] == {"overflow_newest": 5}
        storage.gate.set()
        c.close(5)
        assert [p.value for p in storage.query_metrics("x")] == [-1.0, *range(10)]

    def test_drop_oldest_keeps_the_newest_and_counts(self) -> None:
        """With drop_oldest a full buffer evicts its oldest point for each new one."""
        c, storage = self._stalled("drop_oldest")
        for i in range(15):
            c.collect_metric("x", float(i))
        assert c.stats()["dropped_by_reason"] == {"overflow_oldest": 5}
        storage.gate.set()
        c.close(5)
        assert [p.value for p in storage.query_metrics("x")] == [-1.0, *range(5, 15)]

    def test_block_waits_then_drops_after_the_timeout(self) -> None:
        """With block a caller waits up to block_timeout, then the point is dropped and counted."""
        c, storage = self._stalled("block", capacity=2)
        c.collect_metric("x", 0.0)
        c.collect_metric("x", 1.0)
        started = time.monotonic()
        c.collect_metric("x", 2.0)
        assert time.monotonic() - started >= 0.04
        assert c.stats()["dropped_by_reason"] == {"block_timeout": 1}
        storage.gate.set()
        c.close(5)

    def test_block_resumes_when_room_appears(self) -> None:
        """A blocked caller proceeds as soon as the pump makes room; nothing is dropped."""
        storage = GatedStorage()
        c = make(
            storage, buffer_size=1, buffer_capacity=2, overflow_policy="block", block_timeout=5
        )
        c.collect_metric("x", -1.0)
        assert storage.entered.wait(5)
        c.collect_metric("x", 0.0)
        c.collect_metric("x", 1.0)
        threading.Timer(0.05, storage.gate.set).start()
        c.collect_metric("x", 2.0)  # blocks until the pump drains
        c.close(5)
        assert c.stats()["records_dropped"] == 0
        assert [p.value for p in storage.query_metrics("x")] == [-1.0, 0.0, 1.0, 2.0]


class TestStorageFailures:
    def test_failed_writes_are_retried_in_order_and_counted(self) -> None:
        """A storage that fails at first receives every batch later, in order, none lost."""
        storage = FlakyStorage(failures=3)
        with make(storage) as c:
            for i in range(3):
                c.collect_metric("x", float(i))
                c.flush(5)
            assert poll(lambda: len(storage.query_metrics("x")) == 3, 10)
            assert [p.value for p in storage.query_metrics("x")] == [0.0, 1.0, 2.0]
            stats = c.stats()
            assert stats["storage_errors"] == 3
            assert stats["records_dropped"] == 0

    def test_unstorable_records_are_counted_as_dropped_at_close(self) -> None:
        """Records the storage never took are counted as dropped (storage_error) at close."""
        storage = FlakyStorage(failures=10**9)
        c = make(storage)
        c.collect_metric("x", 1.0)
        c.flush(5)
        assert c.stats()["awaiting_retry"] == 1
        c.close(1)
        assert c.stats()["dropped_by_reason"] == {"storage_error": 1}


class TestCardinality:
    def test_tag_sets_beyond_the_limit_go_to_the_overflow_series(self) -> None:
        """Past max_tag_sets distinct tag sets, points are relabelled and counted, not lost."""
        with make(max_tag_sets=3) as c:
            for i in range(5):
                c.collect_metric("x", float(i), tags={"user": str(i)})
            c.collect_metric("x", 9.0, tags={"user": "0"})  # a known set stays itself
            c.flush(5)
            tags = [p.tags for p in c.storage.query_metrics("x")]
            assert tags[:3] == [{"user": "0"}, {"user": "1"}, {"user": "2"}]
            assert tags[3:5] == [{"rimp_overflow": "true"}] * 2
            assert tags[5] == {"user": "0"}
            assert c.stats()["cardinality_overflow"] == 2


class TestClose:
    def test_close_flushes_and_is_idempotent(self) -> None:
        """close() stores what is buffered; a second close is harmless."""
        c = make()
        c.collect_event("s", "m")
        assert c.close(5) is True
        assert c.close(5) is True
        assert len(c.storage.query_events()) == 1

    def test_records_after_close_are_counted_as_dropped(self) -> None:
        """After close, collect_* returns None and counts a drop with reason closed."""
        c = make()
        c.close(5)
        assert c.collect_event("s", "m") is None
        assert c.collect_metric("x", 1.0) is None
        assert c.stats()["dropped_by_reason"] == {"closed": 2}

    def test_close_is_bounded_when_the_storage_hangs(self) -> None:
        """With a storage that never returns, close(timeout) returns False in time and counts."""
        storage = GatedStorage()
        c = make(storage, buffer_size=1)
        c.collect_metric("x", 1.0)
        assert storage.entered.wait(5)
        c.collect_metric("x", 2.0)
        started = time.monotonic()
        assert c.close(0.2) is False
        assert time.monotonic() - started < 2
        assert c.stats()["dropped_by_reason"] == {"close_timeout": 1}
        storage.gate.set()


class TestStats:
    def test_stats_has_the_documented_keys(self) -> None:
        """stats() holds every key the README documents."""
        with make() as c:
            keys = set(c.stats())
        assert {
            "events_collected",
            "metrics_collected",
            "records_flushed",
            "records_dropped",
            "dropped_by_reason",
            "buffered",
            "consumer_errors",
        } <= keys

    def test_counts_add_up(self) -> None:
        """collected = flushed + buffered + dropped after a flush."""
        with make() as c:
            for i in range(50):
                c.collect_metric("x", float(i))
                c.collect_event("s", str(i))
            c.flush(5)
            s = c.stats()
            assert s["events_collected"] == s["metrics_collected"] == 50
            assert s["records_flushed"] == 100
            assert s["buffered"] == 0


class TestRobustness:
    def test_a_backend_that_cannot_open_fails_at_construction(self, tmp_path: Any) -> None:
        """A storage that cannot be built raises from the constructor, not later in the pump."""
        from telemetry import StorageError

        (tmp_path / "file").write_text("not a directory")
        with pytest.raises(StorageError):
            TelemetryCollector(
                TelemetryConfig(storage_backend="file", storage_path=str(tmp_path / "file"))
            )

    def test_close_keeps_retrying_a_failing_storage_until_its_deadline(self) -> None:
        """close() retries failed writes within its timeout; nothing is lost when they succeed."""
        storage = FlakyStorage(failures=3)
        c = make(storage)
        c.collect_metric("x", 1.0)
        assert c.close(10) is True
        assert [p.value for p in storage.query_metrics("x")] == [1.0]
        assert c.stats()["records_dropped"] == 0

    def test_flush_is_false_while_a_write_awaits_retry(self) -> None:
        """flush() does not report success for records the storage has not taken."""
        storage = FlakyStorage(failures=10**9)
        c = make(storage)
        c.collect_metric("x", 1.0)
        assert c.flush(5) is False
        c.close(0.5)

    def test_records_abandoned_at_close_are_counted_once_and_never_stored(self) -> None:
        """After close() gives up on a stuck storage, counts add up and nothing is stored late."""
        storage = GatedStorage()
        c = make(storage, buffer_size=1)
        c.collect_metric("x", 1.0)
        assert storage.entered.wait(5)
        c.collect_metric("x", 2.0)
        assert c.close(0.2) is False
        s = c.stats()
        assert s["metrics_collected"] == 2
        assert s["buffered"] == 0
        assert s["dropped_by_reason"] == {"close_timeout": 1}
        storage.gate.set()
        assert poll(lambda: len(storage.query_metrics("x")) == 1)
        assert [p.value for p in storage.query_metrics("x")] == [1.0]

    def test_instrument_points_are_counted(self) -> None:
        """Points emitted by instruments appear in instrument_points, so the counts add up."""
        with make() as c:
            c.collect_metric("x", 1.0)
            c.counter("n").inc()
            c.flush(5)
            s = c.stats()
            assert (s["metrics_collected"], s["instrument_points"], s["records_flushed"]) == (
                1,
                1,
                2,
            )


class TestSubmit:
    def test_a_submitted_batch_is_stored_whole_then_acknowledged(self) -> None:
        """submit() stores the batch in one storage write and then calls ack(True)."""
        from telemetry import TelemetryData
        from telemetry.models import new_id

        storage = MemoryStorage(max_records=None)
        writes: list[int] = []
        original = storage.store

        def counting_store(data: TelemetryData) -> None:
            writes.append(len(data))
            original(data)

        storage.store = counting_store  # type: ignore[method-assign]
        acked = threading.Event()
        results: list[bool] = []
        with make(storage) as c:
            batch = TelemetryData(
                [Event("s", str(i), EventType.INFO, {}, i, new_id()) for i in range(50)],
                [Metric("x", 1.0, "", {}, 1, new_id())],
            )

            def ack(ok: bool) -> None:
                results.append(ok)
                acked.set()

            c.submit(batch, ack)
            assert acked.wait(5)
            assert results == [True]
            assert writes == [51]
            assert c.stats()["events_collected"] == 50
            assert c.pending() == 0

    def test_acks_wait_for_a_failing_storage_and_report_failure_at_close(self) -> None:
        """A batch whose write keeps failing is acknowledged False once given up on."""
        from telemetry import TelemetryData
        from telemetry.models import new_id

        results: list[bool] = []
        c = make(FlakyStorage(failures=10**9))
        c.submit(
            TelemetryData([Event("s", "m", EventType.INFO, {}, 1, new_id())], []),
            results.append,
        )
        assert poll(lambda: c.stats()["awaiting_retry"] == 1)
        assert results == []
        assert c.pending() == 1
        c.close(0.3)
        assert results == [False]
        assert c.stats()["dropped_by_reason"] == {"storage_error": 1}

    def test_submit_after_close_is_refused(self) -> None:
        """A closed collector acknowledges a submitted batch with False at once."""
        from telemetry import TelemetryData

        c = make()
        c.close()
        results: list[bool] = []
        c.submit(TelemetryData(), results.append)
        assert results == [False]
