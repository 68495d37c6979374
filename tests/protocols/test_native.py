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
        "time_ns": st.integers(1_700_000_000 * 10**9, 1_800_000_000 * 10**9),
        "id": st.sampled_from(["a1", "b2", "", "x" * 300]),
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


def normalise(data: TelemetryData) -> list[tuple[Any, ...]]:
    """The records without what differs between two decodings (generated ids, now)."""
    return [
        (e.source, e.message, e.event_type, e.metadata, e.time_ns if e.time_ns < 1.8e18 else 0)
        for e in data.events
    ]


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENT, min_size=1, max_size=8), st.booleans())
def test_the_fast_path_answers_as_the_record_by_record_path(
    events: list[dict[str, Any]], partial: bool
) -> None:
    """Any batch, valid or not: the same records (or the same refusal) either way."""
    for e in events:
        e.setdefault("time_ns", 1_750_000_000 * 10**9)  # "now" differs between two calls
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
