"""Percentiles: exact (numpy's linear interpolation) and sketched (DDSketch).

Exact percentiles interpolate linearly between the closest ranks, as numpy's
default method does. For large populations a DDSketch (the ``ddsketch``
library, relative error bound 1 %) keeps memory bounded and merges.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["PERCENTILES", "Sketch", "percentile"]

PERCENTILES: dict[str, float] = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}

RELATIVE_ACCURACY = 0.01


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ascending ``sorted_values``, linearly interpolated.

    Matches ``numpy.quantile(values, q)`` (method ``"linear"``) to the last bit:
    the rank is ``(n - 1) * q`` and the interpolation is computed from the nearer
    neighbour, as numpy does.

    Raises:
        ValueError: ``sorted_values`` is empty, or ``q`` is not within [0, 1].
    """
    n = len(sorted_values)
    if n == 0:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q={q!r}: must be between 0 and 1")
    pos = (n - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    low = sorted_values[lo]
    if not frac:
        return low
    high = sorted_values[hi]
    diff = high - low
    return high - diff * (1.0 - frac) if frac >= 0.5 else low + diff * frac


class Sketch:
    """A mergeable quantile sketch with 1 % relative error (wraps ``ddsketch.DDSketch``)."""

    __slots__ = ("_sketch",)

    def __init__(self) -> None:
        from ddsketch import DDSketch  # only histograms past FOLD_AT need it: keep imports cheap

        self._sketch: Any = DDSketch(RELATIVE_ACCURACY)

    def add_all(self, values: Iterable[float]) -> None:
        """Add every value."""
        add = self._sketch.add
        for v in values:
            add(v)

    def merge(self, other: Sketch) -> None:
        """Fold ``other`` into this sketch."""
        self._sketch.merge(other._sketch)

    @property
    def count(self) -> float:
        """Number of values added."""
        return float(self._sketch.count)

    def quantile(self, q: float) -> float:
        """Approximate ``q``-quantile (0..1)."""
        value = self._sketch.get_quantile_value(q)
        return float("nan") if value is None else float(value)
