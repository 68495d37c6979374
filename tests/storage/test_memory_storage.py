"""Tests of MemoryStorage specifics: the ``max_records`` bound and its eviction order.

The protocol itself is covered by ``test_storage_conformance.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from telemetry import Event, EventType, Metric, TelemetryData, ValidationError
from telemetry.models import new_id
from telemetry.storage import MemoryStorage


def event(t: int, message: str = "") -> Event:
    return Event(
        source="svc",
        message=message or f"e{t}",
        event_type=EventType.INFO,
        metadata={},
        time_ns=t,
        id=new_id(),
    )


def point(t: int, name: str = "rt") -> Metric:
    return Metric(name=name, value=float(t), unit="", tags={}, time_ns=t, id=new_id())


def held(storage: MemoryStorage) -> tuple[list[int], dict[str, list[int]]]:
    """Times of the events and, per metric name, of the points still held."""
    events = sorted(e.time_ns for e in storage.query_events(limit=None))
    names = sorted({s.name for s in storage.series()})
    return events, {n: [p.time_ns for p in storage.query_metrics(n)] for n in names}


class TestBound:
    def test_oldest_stored_records_are_evicted_across_kinds(self) -> None:
        """Past ``max_records`` the records stored first go, whether events or metrics."""
        storage = MemoryStorage(max_records=4)
        storage.store(TelemetryData(events=[event(1)], metrics=[point(2)]))
        storage.store(TelemetryData(metrics=[point(3, "mem")]))
        storage.store(TelemetryData(events=[event(4)]))
        assert held(storage) == ([1, 4], {"mem": [3], "rt": [2]})
        storage.store(TelemetryData(events=[event(5)], metrics=[point(6)]))
        # The batch's events are stored before its metrics: e1 and then m2 go.
        assert held(storage) == ([4, 5], {"mem": [3], "rt": [6]})
        assert storage.stats() == {"events": 2, "metrics": 2, "evicted": 2, "max_records": 4}

    def test_a_batch_larger_than_the_bound_keeps_its_newest(self) -> None:
        """A single batch over the bound keeps only its last ``max_records`` records."""
        storage = MemoryStorage(max_records=3)
        storage.store(TelemetryData(events=[event(t) for t in range(5)], metrics=[point(9)]))
        assert held(storage) == ([3, 4], {"rt": [9]})
        assert storage.stats()["evicted"] == 3

    def test_eviction_order_survives_delete_before(self) -> None:
        """After ``delete_before``, eviction still takes the oldest stored record first."""
        storage = MemoryStorage(max_records=4)
        storage.store(TelemetryData(metrics=[point(10)]))
        storage.store(TelemetryData(events=[event(11)]))
        storage.store(TelemetryData(metrics=[point(12)]))
        storage.store(TelemetryData(events=[event(13)]))
        assert storage.delete_before(0) == 0
        storage.store(TelemetryData(events=[event(14)]))
        assert held(storage) == ([11, 13, 14], {"rt": [12]})
        assert storage.delete_before(12) == 1  # e11
        storage.store(TelemetryData(events=[event(15)], metrics=[point(16)]))
        assert held(storage) == ([13, 14, 15], {"rt": [16]})

    def test_a_metric_with_an_empty_name_is_evicted_as_a_metric(self) -> None:
        """Eviction does not confuse a metric named "" with an event."""
        storage = MemoryStorage(max_records=2)
        storage.store(TelemetryData(metrics=[point(1, name="")]))
        storage.store(TelemetryData(events=[event(2), event(3)]))
        assert storage.query_metrics("") == []
        assert [e.time_ns for e in storage.query_events()] == [3, 2]
        assert storage.stats()["evicted"] == 1

    def test_none_is_unbounded(self) -> None:
        """``max_records=None`` keeps every record and evicts nothing."""
        storage = MemoryStorage(max_records=None)
        storage.store(TelemetryData(events=[event(t) for t in range(500)], metrics=[point(1)]))
        assert storage.stats() == {"events": 500, "metrics": 1, "evicted": 0, "max_records": None}

    def test_the_default_bound_is_one_hundred_thousand(self) -> None:
        """Without arguments the storage holds at most 100,000 records."""
        assert MemoryStorage().max_records == 100_000

    @pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
    def test_invalid_bound_raises_naming_it(self, bad: Any) -> None:
        """``max_records`` must be an integer of at least 1, or None."""
        with pytest.raises(ValidationError, match=r"^max_records="):
            MemoryStorage(max_records=bad)


class TestIsolation:
    def test_queries_return_copies_of_the_held_lists(self) -> None:
        """Mutating a query result does not change what the storage holds."""
        storage = MemoryStorage()
        storage.store(TelemetryData(events=[event(1)], metrics=[point(1)]))
        storage.query_events().clear()
        storage.query_metrics("rt").clear()
        assert held(storage) == ([1], {"rt": [1]})
