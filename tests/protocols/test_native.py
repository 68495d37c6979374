"""The native JSON decoder's batch-wide fast path for events gives exactly what the
record-by-record checks give: the same records, the same refusals, the same answers."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry.errors import RequestError
from telemetry.models import TelemetryData
from telemetry.protocols.native import Limits, WireDecoder

LIMITS = Limits(max_metadata_bytes=120, max_message_length=40, max_name_length=12)

TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=16)
METADATA = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=12,
)
EVENT = st.fixed_dictionaries(
    {"source": st.sampled_from(["api", "db", "", "x" * 13, "a\x01b"]), "message": TEXT},
    optional={
        "type": st.sampled_from(["info", "ERROR", "warning", "fatal", ""]),
        "event_type": st.sampled_from(["info", "error"]),
        "metadata": st.dictionaries(TEXT, METADATA, max_size=4),
        "time_ns": st.integers(1_700_000_000 * 10**9, 1_750_000_000 * 10**9),
        "timestamp": st.sampled_from(["2025-01-01T00:00:00Z", 1_720_000_000.5, "soon"]),
        "id": st.sampled_from(["a1", "b2", "", "x" * 300, "tab\there"]),
    },
)


def decode(body: bytes, *, partial: bool, fast: bool) -> Any:
    decoder = WireDecoder(LIMITS)
    if not fast:
        decoder._events_at_once = lambda wires, now: None  # type: ignore[method-assign]
    try:
        data, rejected = decoder.decode("events", body, ndjson=False, partial=partial)
    except RequestError as err:
        return ("error", err.code, err.field, str(err))
    return normalise(data), rejected


GIVEN_IDS = {"a1", "b2"}
NOW_AFTER = 1_760_000_000 * 10**9  # given times are before; "now" (2026 on) is after


def normalise(data: TelemetryData) -> list[tuple[Any, ...]]:
    """The records without what differs between two decodings (generated ids, now)."""
    return [
        (
            e.source,
            e.message,
            e.event_type,
            e.metadata,
            e.time_ns if e.time_ns < NOW_AFTER else "now",
            e.id if e.id in GIVEN_IDS else ("generated" if len(e.id) == 16 else e.id),
        )
        for e in data.events
    ]


@settings(max_examples=400, deadline=None)
@given(st.lists(EVENT, min_size=1, max_size=8), st.booleans())
def test_the_fast_path_answers_as_the_record_by_record_path(
    events: list[dict[str, Any]], partial: bool
) -> None:
    """Any batch, valid or not, with or without times and ids: the same records (or the
    same refusal) either way."""
    body = msgspec.json.encode(events)
    assert decode(body, partial=partial, fast=True) == decode(body, partial=partial, fast=False)


@pytest.mark.parametrize(
    "metadata",
    [
        {"note": "a {brace} in a string"},
        {"list": [1, 2, 3]},
        {"deep": {"er": {"still": 1}}},
        {"big": "x" * 200},
    ],
)
def test_metadata_the_fast_path_cannot_vouch_for_takes_the_slow_one(
    metadata: dict[str, Any],
) -> None:
    """Braces in strings, lists, nesting and big metadata: still the same answer."""
    events = [{"source": "api", "message": "m", "metadata": metadata, "time_ns": 10**18}] * 3
    body = msgspec.json.encode(events)
    assert decode(body, partial=True, fast=True) == decode(body, partial=True, fast=False)


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"time_ns": 1_720_000_000 * 10**9},
        {"time_ns": 1_720_000_000 * 10**9, "timestamp": "2025-01-01T00:00:00Z"},
        {"id": "a1", "time_ns": 1_720_000_000 * 10**9},
    ],
    ids=["nothing", "time_ns", "time_ns-and-timestamp", "id-and-time_ns"],
)
def test_uniform_batches_take_the_fast_path(extra: dict[str, Any]) -> None:
    """The shapes clients send (nothing, or times, or times and ids on every event) are
    decoded batch-wide: the fast path returns the records itself, the same ones."""
    events = [
        {"source": "api", "message": f"m{i}", "metadata": {"i": i}, **extra} for i in range(5)
    ]
    body = msgspec.json.encode(events)
    decoder = WireDecoder(LIMITS)
    taken: list[int] = []
    fast = decoder._events_at_once

    def spy(wires: Any, now: int) -> Any:
        found = fast(wires, now)
        taken.append(found is not None)
        return found

    decoder._events_at_once = spy  # type: ignore[method-assign]
    data, _ = decoder.decode("events", body, ndjson=False, partial=False)
    assert taken == [True]
    assert normalise(data) == decode(body, partial=False, fast=False)[0]
    ids = [e.id for e in data.events]
    assert ids == ["a1"] * 5 if "id" in extra else len(set(ids)) == 5


@pytest.mark.parametrize(
    "bad",
    [{"id": ""}, {"id": "x" * 300}, {"id": "tab\there"}, {"time_ns": -1}, {"time_ns": 2**63}],
    ids=["empty-id", "long-id", "control-in-id", "negative-time", "time-past-range"],
)
def test_one_bad_id_or_time_among_good_ones_is_found(bad: dict[str, Any]) -> None:
    """Every event gives an id and a time and one of them is wrong: refused (or, with
    ``partial``, left out) exactly as record by record."""
    events = [
        {"source": "api", "message": "m", "id": f"id{i}", "time_ns": 10**18} for i in range(4)
    ]
    events[2] |= bad
    body = msgspec.json.encode(events)
    for partial in (False, True):
        fast = decode(body, partial=partial, fast=True)
        assert fast == decode(body, partial=partial, fast=False)
        assert fast[0] == "error" if not partial else len(fast[0]) == 3
