"""Tests of telemetry.models: records, ids, time conversion, JSON round trip."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from telemetry import Event, EventType, Metric, TelemetryData, ValidationError
from telemetry._ids import new_ids
from telemetry.models import from_ns, new_id, to_ns

text = st.text(max_size=30)
tag_dicts = st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=10), max_size=4)
finite = st.floats(allow_nan=False, allow_infinity=False)
times = st.integers(min_value=0, max_value=2**62)


class TestEventType:
    def test_values_are_lower_case_names(self) -> None:
        """Every type's value is its lower-case name, including critical."""
        assert [t.value for t in EventType] == ["debug", "info", "warning", "error", "critical"]
        assert EventType("error") is EventType.ERROR


class TestIds:
    def test_ids_are_unique_across_threads(self) -> None:
        """200,000 ids drawn by 8 threads at once are all distinct 16-hex-digit strings."""
        results: list[list[str]] = [[] for _ in range(8)]

        def draw(out: list[str]) -> None:
            out.extend(new_id() for _ in range(25_000))

        threads = [threading.Thread(target=draw, args=(r,)) for r in results]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ids = [i for r in results for i in r]
        assert len(set(ids)) == len(ids) == 200_000
        assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids[:100])

    def test_ids_taken_in_bulk_and_one_by_one_never_repeat(self) -> None:
        """Threads taking batches of ids (sizes across the 4,096-id blocks) while others
        take one at a time: every id distinct, each batch exactly as long as asked."""
        sizes = [1, 999, 4096, 5000, 3]
        results: list[list[str]] = [[] for _ in range(6)]

        def bulk(out: list[str]) -> None:
            for _ in range(20):
                for n in sizes:
                    got = new_ids(n)
                    assert len(got) == n
                    out.extend(got)

        def single(out: list[str]) -> None:
            out.extend(new_id() for _ in range(50_000))

        threads = [
            threading.Thread(target=bulk if i % 2 else single, args=(r,))
            for i, r in enumerate(results)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ids = [i for r in results for i in r]
        assert len(ids) == 3 * 20 * sum(sizes) + 3 * 50_000
        assert len(set(ids)) == len(ids)


class TestTime:
    def test_datetime_and_ns_convert_both_ways(self) -> None:
        """An aware datetime converts to ns and back to the same instant (µs precision)."""
        moment = datetime(2026, 12, 1, 10, 30, 15, 123456, tzinfo=UTC)
        ns = to_ns(moment)
        assert ns == 1_796_121_015_123_456_000
        assert from_ns(ns) == moment
        assert from_ns(ns).tzinfo is UTC

    def test_naive_datetime_is_utc_and_offsets_are_honoured(self) -> None:
        """A naive datetime is taken as UTC; an aware one in another zone converts correctly."""
        naive = datetime(2026, 1, 1, 12, 0)
        plus_two = datetime(2026, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
        assert to_ns(naive) == to_ns(plus_two)

    @pytest.mark.parametrize("bad", [1.5, "2026-01-01", None, True])
    def test_other_types_are_refused_with_the_field_name(self, bad: object) -> None:
        """Floats, strings, None and bools are not times: the error names the field and rule."""
        with pytest.raises(ValidationError, match=r"since=.*datetime or an int of nanoseconds"):
            to_ns(bad, "since")  # type: ignore[arg-type]


class TestRecords:
    def test_timestamp_is_derived_aware_utc(self) -> None:
        """``timestamp`` is the aware UTC datetime of ``time_ns``."""
        m = Metric("cpu", 0.5, "%", {}, 1_700_000_000_000_000_000, new_id())
        assert m.timestamp == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)

    @given(text, text, st.sampled_from(list(EventType)), tag_dicts, times)
    def test_event_json_round_trip(
        self, source: str, message: str, kind: EventType, meta: dict[str, str], t: int
    ) -> None:
        """Any event encodes to JSON and decodes to an equal event."""
        e = Event(source, message, kind, dict(meta), t, new_id())
        assert msgspec.json.decode(msgspec.json.encode(e), type=Event) == e

    @given(st.text(min_size=1, max_size=30), finite, text, tag_dicts, times)
    def test_metric_json_round_trip(
        self, name: str, value: float, unit: str, tags: dict[str, str], t: int
    ) -> None:
        """Any finite metric encodes to JSON and decodes to an equal metric."""
        m = Metric(name, value, unit, tags, t, new_id())
        assert msgspec.json.decode(msgspec.json.encode(m), type=Metric) == m

    def test_batch_length_and_truth(self) -> None:
        """A batch's length counts both kinds; an empty batch is falsy."""
        batch = TelemetryData()
        assert not batch
        assert len(batch) == 0
        batch.metrics.append(Metric("x", 1.0, "", {}, 0, new_id()))
        assert batch
        assert len(batch) == 1
