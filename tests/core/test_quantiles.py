"""Tests of telemetry._quantiles: exact percentiles and the 1 % sketch."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telemetry._quantiles import PERCENTILES, Sketch, percentile


class TestPercentile:
    @pytest.mark.parametrize(
        ("q", "expected"),
        [
            (0.0, 15.0),
            (0.4, 29.0),  # rank 1.6: 20 + 0.6 * (35 - 20)
            (0.5, 35.0),  # rank 2: exactly the middle value
            (0.9, 46.0),  # rank 3.6: 40 + 0.6 * (50 - 40)
            (0.95, 48.0),  # rank 3.8
            (0.99, 49.6),  # rank 3.96
            (1.0, 50.0),
        ],
    )
    def test_linear_interpolation_between_closest_ranks(self, q: float, expected: float) -> None:
        """The q-quantile interpolates at rank q * (n - 1), as numpy's default method does."""
        assert percentile([15.0, 20.0, 35.0, 40.0, 50.0], q) == pytest.approx(expected, rel=1e-12)

    def test_small_populations(self) -> None:
        """One value is every quantile; two values interpolate between them."""
        assert percentile([7.0], 0.99) == 7.0
        assert percentile([1.0, 2.0], 0.5) == 1.5
        assert percentile([1.0, 2.0], 0.9) == pytest.approx(1.9)
        assert percentile([-3.0, -3.0, 5.0], 0.75) == 1.0

    def test_names_map_to_fractions(self) -> None:
        """The aggregate names p50..p99 map to their fractions."""
        assert PERCENTILES == {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}

    def test_no_values_raises(self) -> None:
        """The percentile of nothing is an error, not a guess."""
        with pytest.raises(ValueError, match="no values"):
            percentile([], 0.5)

    @pytest.mark.parametrize("q", [-0.1, 1.5, math.nan])
    def test_q_outside_zero_to_one_raises(self, q: float) -> None:
        """``q`` must lie in [0, 1]."""
        with pytest.raises(ValueError, match="q="):
            percentile([1.0, 2.0], q)

    @given(
        st.lists(st.floats(min_value=-1e9, max_value=1e9), min_size=1, max_size=50),
        st.floats(min_value=0.0, max_value=1.0),
    )
    def test_result_lies_between_neighbouring_ranks(self, values: list[float], q: float) -> None:
        """The result lies between the values at the ranks just below and above q * (n - 1)."""
        ordered = sorted(values)
        rank = q * (len(ordered) - 1)
        low = ordered[math.floor(rank)]
        high = ordered[math.ceil(rank)]
        assert low <= percentile(ordered, q) <= high


@pytest.fixture(scope="module")
def lognormal() -> list[float]:
    """200,000 lognormal values, sorted."""
    rng = random.Random(20_261_201)
    return sorted(rng.lognormvariate(3.0, 1.5) for _ in range(200_000))


class TestSketch:
    @pytest.mark.parametrize("q", [0.01, 0.25, *PERCENTILES.values(), 0.999])
    def test_relative_error_is_at_most_one_percent(self, lognormal: list[float], q: float) -> None:
        """On 200,000 lognormal values the sketch is within 1 % of the exact quantile."""
        sketch = Sketch()
        sketch.add_all(lognormal)
        exact = percentile(lognormal, q)
        assert abs(sketch.quantile(q) - exact) <= 0.01 * exact
        assert sketch.count == len(lognormal)

    def test_merged_sketches_answer_for_the_union(self, lognormal: list[float]) -> None:
        """Two sketches merged give the count and the 1 % quantiles of all their values."""
        rng = random.Random(5)
        shuffled = rng.sample(lognormal, len(lognormal))
        left, right = Sketch(), Sketch()
        left.add_all(shuffled[:50_000])
        right.add_all(shuffled[50_000:])
        left.merge(right)
        assert left.count == len(lognormal)
        for q in PERCENTILES.values():
            exact = percentile(lognormal, q)
            assert abs(left.quantile(q) - exact) <= 0.01 * exact

    def test_an_empty_sketch_answers_nan(self) -> None:
        """A sketch with no values has no quantile: NaN."""
        assert math.isnan(Sketch().quantile(0.5))
        assert Sketch().count == 0
