"""The live hub's chunks: filters pick exactly the records a per-record test would, a
client is handed its queue in order and in bounded slices, and the sizes add up."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry._jsonform import encode
from telemetry.models import Event, EventType, Metric
from telemetry.server.hub import Client, Filters, LiveHub, chunk_of, encode_item

SOURCES = ["api", "db", "web"]
NAMES = ["cpu", "mem"]
EVENTS = st.lists(
    st.builds(
        lambda i, source, kind: Event(source, f"m{i}", kind, {"i": i}, i, f"id-{i}"),
        st.integers(0, 10**6),
        st.sampled_from(SOURCES),
        st.sampled_from(list(EventType)),
    ),
    min_size=1,
    max_size=30,
)
POINTS = st.lists(
    st.builds(
        lambda i, name: Metric(name, float(i), "", {"host": "a"}, i, f"p-{i}"),
        st.integers(0, 10**6),
        st.sampled_from(NAMES),
    ),
    min_size=1,
    max_size=30,
)
FILTERS = st.builds(
    Filters,
    kind=st.sampled_from([None, "event", "metric"]),
    sources=st.frozensets(st.sampled_from(SOURCES), max_size=2),
    types=st.frozensets(st.sampled_from([t.value for t in EventType]), max_size=2),
    names=st.frozensets(st.sampled_from(NAMES), max_size=1),
)


def wanted_one_by_one(filters: Filters, kind: str, record: Any) -> bool:
    """The filters' meaning, written record by record (the reference)."""
    if filters.kind is not None and kind != filters.kind:
        return False
    if kind == "event":
        return (
            not filters.names
            and (not filters.sources or record.source in filters.sources)
            and (not filters.types or record.event_type.value in filters.types)
        )
    return not (filters.sources or filters.types) and (
        not filters.names or record.name in filters.names
    )


@settings(max_examples=300, deadline=None)
@given(FILTERS, EVENTS, POINTS)
def test_filters_select_what_the_per_record_test_accepts(
    filters: Filters, events: list[Event], points: list[Metric]
) -> None:
    """Any filters over any batch: the same records, in the same order."""
    for kind, records in (("event", events), ("metric", points)):
        expected = [r for r in records if wanted_one_by_one(filters, kind, r)]
        assert list(filters.select(kind, records)) == expected
        one_by_one = [bool(filters.select(kind, [r])) for r in records]
        assert one_by_one == [r in expected for r in records]


def test_a_client_is_handed_its_queue_in_order_in_slices_of_bounded_bytes() -> None:
    """Chunks bigger than one send are handed over across calls, in order, each call within
    the byte bound (but never empty), and the client's counters go back to zero."""

    async def drain() -> None:
        client = Client(Filters(), max_queue=10_000, max_bytes=10**9, sample=False)
        events = [Event("s", "x" * 100, EventType.INFO, {}, i, f"id-{i}") for i in range(250)]
        for part in (events[:100], events[100:230], events[230:]):
            client.offer(chunk_of("event", part))
        each = chunk_of("event", events)[2]
        got: list[str] = []
        while client.queued:
            items = await client.next(0.1, max_bytes=each * 30 + 1)
            assert 1 <= len(items) <= 30
            assert sum(size for _, _, size in items) <= each * 30 + 1
            got += [record.id for _, record, _ in items]
        assert got == [f"id-{i}" for i in range(250)]
        assert client.queued == client.queued_bytes == 0
        assert client.sent == 250
        one_big = await _one_record_over_the_bound()
        assert one_big == 1

    async def _one_record_over_the_bound() -> int:
        client = Client(Filters(), max_queue=10, max_bytes=10**9, sample=False)
        client.offer(chunk_of("event", [Event("s", "y" * 5000, EventType.INFO, {}, 0, "big")]))
        return len(await client.next(0.1, max_bytes=100))  # one record, even past the bound

    asyncio.run(drain())


@pytest.mark.parametrize("kind", ["event", "metric"])
def test_a_chunks_size_is_close_to_its_records_json(kind: str) -> None:
    """What the bounds count for a batch is within a fifth of its records' JSON as sent."""
    records: list[Any]
    if kind == "event":
        records = [
            Event(f"svc{i % 4}", f"request {i} handled", EventType.INFO, {"i": i, "path": "/x"},
                  1_796_000_000_000_000_000 + i, f"{i:016x}")
            for i in range(500)
        ]  # fmt: skip
    else:
        records = [
            Metric("http.server.duration", i / 7, "s", {"route": "/api/users", "code": "200"},
                   1_796_000_000_000_000_000 + i, f"{i:016x}")
            for i in range(500)
        ]  # fmt: skip
    _, _, each = chunk_of(kind, records)
    actual = sum(len(encode_item(kind, r)) for r in records)
    assert 0.8 * actual <= each * len(records) <= 1.2 * actual


def test_the_window_holds_the_newest_records_across_chunks_of_both_kinds() -> None:
    """Events and points in one window: bounded by count, the newest kept, a resume from a
    held id gets the rest of both kinds in order."""
    hub = LiveHub(window=7, window_bytes=10**9)
    events = [Event("s", f"m{i}", EventType.INFO, {}, i, f"e{i}") for i in range(5)]
    points = [Metric("cpu", 1.0, "", {}, i, f"p{i}") for i in range(5)]
    hub._fanout([chunk_of("event", events[:3]), chunk_of("metric", points[:3])])
    hub._fanout([chunk_of("event", events[3:]), chunk_of("metric", points[3:])])
    assert hub.stats()["window"] == 7
    rest = [(kind, r.id) for kind, records, _ in hub._since("p1") for r in records]
    assert rest == [("metric", "p2"), ("event", "e3"), ("event", "e4"), ("metric", "p3"),
                    ("metric", "p4")]  # fmt: skip
    assert hub._since("e1") == []  # forgotten: the 7 newest begin at e2
    assert encode(hub.stats())  # plain numbers, as /metrics reads them
