"""The one-step path of PromQL's range functions (instant queries and alert rules) gives
the same bits as the every-step numpy path, for any series: counter resets, duplicate
times, zeros, windows at the edges."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry.models import Metric, TelemetryData
from telemetry.promql.engine import Evaluator, parse
from telemetry.storage import MemoryStorage

S = 1_000_000_000
T = 1_800_000_000 * S

series_st = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=400),  # seconds before T (duplicates allowed)
        st.one_of(
            st.floats(min_value=0, max_value=1e6, allow_nan=False),
            st.sampled_from([0.0, 1.0, 1e300]),
        ),
    ),
    min_size=0,
    max_size=40,
)


def evaluate(storage: MemoryStorage, query: str, steps: list[int]) -> list[dict[Any, float]]:
    return Evaluator(storage, steps).run(parse(query)).vectors


@settings(max_examples=300, deadline=None)
@given(
    points=st.lists(series_st, min_size=1, max_size=3),
    fn=st.sampled_from(
        ["rate", "increase", "delta", "sum_over_time", "count_over_time", "avg_over_time"]
    ),
    window=st.sampled_from(["30s", "1m", "5m", "7m"]),
    at=st.integers(min_value=-30, max_value=30),
)
def test_one_step_equals_every_step(
    points: list[list[tuple[int, float]]], fn: str, window: str, at: int
) -> None:
    storage = MemoryStorage()
    metrics = []
    for s, rows in enumerate(points):
        for i, (back, value) in enumerate(sorted(rows, key=lambda r: -r[0])):
            metrics.append(Metric("m", value, "", {"s": str(s)}, T - back * S, f"{s}-{i}"))
    storage.store(TelemetryData(metrics=metrics))
    query = f"{fn}(m[{window}])"
    t = T + at * S
    (one,) = evaluate(storage, query, [t])
    every = evaluate(storage, query, [t, t + S])[0]
    assert one.keys() == every.keys()
    for key, value in one.items():
        other = every[key]
        assert (math.isnan(value) and math.isnan(other)) or value == other, (key, value, other)


def test_resets_are_added_back_as_prometheus_does() -> None:
    storage = MemoryStorage()
    values = [10.0, 20.0, 5.0, 15.0, 3.0, 8.0]  # two resets: 20 -> 5 and 15 -> 3
    storage.store(
        TelemetryData(
            metrics=[
                Metric("c", v, "", {}, T - (50 - 10 * i) * S, str(i)) for i, v in enumerate(values)
            ]
        )
    )
    (one,) = evaluate(storage, "increase(c[1m])", [T])
    # change 8 - 10 = -2, plus what the resets lost (20 + 15): 33 over the 50 s sampled,
    # extrapolated 10 s back to the window's start (under 1.1 x the 10-s spacing), not past
    # where the counter would have been zero (50 x 10 / 33 = 15 s back).
    assert one[()] == pytest.approx(33 * 60 / 50)
