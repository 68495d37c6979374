"""PromQL evaluated over the storage protocol.

The expression is parsed by ``promql-parser`` (a Rust implementation) into a typed
tree, and this module evaluates the tree for every step of a query at once: each
selector's points are read from the storage once, for the whole query window, and
every node returns its value at each step. Any ``Storage`` that answers ``series``
and ``query_metrics`` answers PromQL.

Semantics follow Prometheus 2.x: an instant selector takes a series' latest point
within the 5-minute lookback (inclusive); a range selector the points in
``[t - range, t]``; ``rate``, ``increase`` and ``delta`` extrapolate as Prometheus
does, with counter resets; arithmetic drops ``__name__``; comparisons filter unless
``bool``. What is outside the supported subset is a ``bad_data`` error naming it,
never a wrong number.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any

import numpy as np
import promql_parser as pp

from telemetry._promnames import sanitize_label, sanitize_name
from telemetry._quantiles import percentile
from telemetry.storage import Storage

__all__ = ["LOOKBACK_NS", "Evaluator", "PromQLError", "Reads", "Result", "Series", "parse"]

LOOKBACK_NS = 5 * 60 * 1_000_000_000
Labels = tuple[tuple[str, str], ...]
"""A series' labels, ``__name__`` included, sorted: hashable and comparable."""
Vector = dict[Labels, float]


class PromQLError(Exception):
    """A query that cannot be answered; ``kind`` is the API's ``errorType``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass
class Series:
    """One series' points in time order (ns, value)."""

    labels: Labels
    times: Sequence[int] = field(default_factory=list)
    values: Sequence[float] = field(default_factory=list)

    @cached_property
    def columns(self) -> tuple[Any, Any]:
        """``times`` and ``values`` as numpy int64 and float64 arrays (no copy when the
        storage answered ``array.array`` columns)."""
        return np.asarray(self.times, dtype=np.int64), np.asarray(self.values, dtype=np.float64)


@dataclass
class Result:
    """A query's answer: ``kind`` is vector, matrix, scalar or string, per step."""

    kind: str
    steps: list[int]
    vectors: list[Vector] = field(default_factory=list)
    scalars: list[float] = field(default_factory=list)
    string: str = ""


def parse(query: str) -> Any:
    """The syntax tree of ``query``.

    Raises:
        PromQLError: ``bad_data`` with the parser's message.
    """
    try:
        return pp.parse(query)
    except (ValueError, TypeError) as exc:
        raise PromQLError("bad_data", f"parse error: {exc}") from None


def _ns(delta: timedelta | None) -> int:
    return 0 if delta is None else round(delta.total_seconds() * 1e9)


def _drop_name(labels: Labels) -> Labels:
    return tuple(kv for kv in labels if kv[0] != "__name__")


@dataclass
class Reads:
    """What evaluators may share: the catalogue of series and the points already read.

    Rules of one group are evaluated at the same instant and often read the same series
    over the same window (a recording rule and the alert on it); one ``Reads`` for the
    group's evaluation reads each once. Never share it across instants: the storage
    moves on.
    """

    catalogue: list[tuple[Labels, str, dict[str, str]]] | None = None
    latest: dict[Labels, tuple[int, float]] = field(default_factory=dict)
    points: dict[tuple[Labels, int, int], tuple[Sequence[int], Sequence[float]]] = field(
        default_factory=dict
    )


class Evaluator:
    """Evaluates one query over ``storage`` at ``steps`` (ns, ascending); evaluators given
    the same ``reads`` share what they read."""

    def __init__(self, storage: Storage, steps: Sequence[int], reads: Reads | None = None) -> None:
        self.storage = storage
        self.steps = list(steps)
        self.step_array = np.asarray(self.steps, dtype=np.int64)
        self._reads = reads if reads is not None else Reads()
        self._latest = self._reads.latest

    # --- entry ------------------------------------------------------------------------------

    def run(self, tree: Any) -> Result:
        """The value of ``tree`` at every step."""
        kind, value = self.eval(tree)
        if kind == "scalar":
            return Result("scalar", self.steps, scalars=value)
        if kind == "string":
            return Result("string", self.steps, string=value)
        if kind == "matrix":
            raise PromQLError(
                "bad_data",
                "a range vector is only allowed as a function argument or in an instant query",
            )
        return Result("vector", self.steps, vectors=value)

    def eval(self, node: Any) -> tuple[str, Any]:
        """(kind, per-step values) of a node: vector, scalar or string."""
        handler = _NODES.get(type(node).__name__)
        if handler is None:
            raise PromQLError("bad_data", f"unsupported expression: {type(node).__name__}")
        return handler(self, node)

    # --- data --------------------------------------------------------------------------------

    def catalogue(self) -> list[tuple[Labels, str, dict[str, str]]]:
        """Every stored series: (Prometheus labels, RIMP name, RIMP tags)."""
        if self._reads.catalogue is None:
            found = []
            for info in self.storage.series():
                labels = {sanitize_label(k): v for k, v in info.tags.items()}
                labels["__name__"] = sanitize_name(info.name)
                key = tuple(sorted(labels.items()))
                found.append((key, info.name, info.tags))
                self._latest[key] = (info.last_time_ns, info.last_value)
            self._reads.catalogue = found
        return self._reads.catalogue

    def select(self, selector: Any, back_ns: int, *, latest_will_do: bool = False) -> list[Series]:
        """The matching series' points in ``[first step - back - offset, last step - offset]``.

        With ``latest_will_do`` (an instant selector at one step), a series whose latest
        point lies in the window is answered from the catalogue, without reading points:
        the common "current value" query reads no chunk at all.
        """
        matchers = _matchers(selector)
        offset = _ns(selector.offset)
        lo = self.steps[0] - back_ns - offset
        hi = self.steps[-1] - offset
        out = []
        for labels, name, tags in self.catalogue():
            as_dict = dict(labels)
            if not all(m(as_dict) for m in matchers):
                continue
            if latest_will_do:
                last_time, last_value = self._latest[labels]
                if lo <= last_time <= hi:
                    out.append(Series(labels, [last_time], [last_value]))
                    continue
                if last_time < lo:  # nothing in the window
                    continue
            read = (labels, max(lo, 0), hi + 1)
            cached = self._reads.points.get(read)
            if cached is None:
                cached = self._reads.points[read] = self.storage.series_points(
                    name, tags, since=read[1], until=read[2]
                )
            times, values = cached
            if times:
                out.append(Series(labels, times, values))
        return out


def _matchers(selector: Any) -> list[Callable[[dict[str, str]], bool]]:
    out: list[Callable[[dict[str, str]], bool]] = []
    if selector.name:
        name = selector.name
        out.append(lambda labels: labels.get("__name__") == name)
    out.extend(_matcher(m.name, m.op, m.value) for m in selector.matchers.matchers)
    if selector.matchers.or_matchers:
        raise PromQLError("bad_data", "'or' inside a selector is not supported")
    return out


def _matcher(name: str, op: Any, value: str) -> Callable[[dict[str, str]], bool]:
    kind = str(op).rsplit(".", 1)[-1]
    if kind == "Equal":
        return lambda labels: labels.get(name, "") == value
    if kind == "NotEqual":
        return lambda labels: labels.get(name, "") != value
    pattern = re.compile(f"^(?:{value})$")
    if kind == "Re":
        return lambda labels: pattern.match(labels.get(name, "")) is not None
    if kind == "NotRe":
        return lambda labels: pattern.match(labels.get(name, "")) is None
    raise PromQLError("bad_data", f"unsupported matcher {kind}")


# --- selectors -------------------------------------------------------------------------------


def _window(series: Series, lo: int, hi: int) -> tuple[Sequence[int], Sequence[float]]:
    """The points with ``lo <= t <= hi``."""
    from bisect import bisect_left, bisect_right

    i, j = bisect_left(series.times, lo), bisect_right(series.times, hi)
    return series.times[i:j], series.values[i:j]


def _latest(series: Series, his: Any) -> tuple[Any, Any]:
    """For each step's end in ``his``: the index of the series' latest point within the
    lookback ``[hi - 5m, hi]``, and whether there is one (numpy, every step at once)."""
    times, _ = series.columns
    j = np.searchsorted(times, his, side="right") - 1
    found = (j >= 0) & (times[np.maximum(j, 0)] >= his - LOOKBACK_NS)
    return j, found


def _vector_selector(ev: Evaluator, node: Any) -> tuple[str, list[Vector]]:
    if node.at is not None:
        raise PromQLError("bad_data", "the @ modifier is not supported")
    offset = _ns(node.offset)
    out: list[Vector] = [{} for _ in ev.steps]
    if len(ev.steps) == 1:
        # The "current value" query, often over many series: a bisection per series
        # costs less than numpy's per-call overhead.
        hi = ev.steps[0] - offset
        for series in ev.select(node, LOOKBACK_NS, latest_will_do=True):
            _, values = _window(series, hi - LOOKBACK_NS, hi)
            if values:
                out[0][series.labels] = values[-1]
        return "vector", out
    his = ev.step_array - offset
    for series in ev.select(node, LOOKBACK_NS):
        j, found = _latest(series, his)
        steps = np.flatnonzero(found)
        values = series.columns[1][j[steps]]
        for step, value in zip(steps.tolist(), values.tolist(), strict=True):
            out[step][series.labels] = value
    return "vector", out


@dataclass
class _Ranges:
    """A range selector's points per step and series."""

    per_step: list[list[tuple[Labels, Sequence[int], Sequence[float]]]]


def _matrix(ev: Evaluator, node: Any) -> _Ranges:
    selector = node.vector_selector
    if selector.at is not None:
        raise PromQLError("bad_data", "the @ modifier is not supported")
    range_ns = _ns(node.range)
    offset = _ns(selector.offset)
    all_series = ev.select(selector, range_ns)
    per_step = []
    for t in ev.steps:
        lo, hi = t - offset - range_ns, t - offset
        rows = []
        for series in all_series:
            times, values = _window(series, lo, hi)
            if times:
                rows.append((series.labels, times, values))
        per_step.append(rows)
    return _Ranges(per_step)


# --- range functions -------------------------------------------------------------------------


def _extrapolate(
    result: Any,
    t_first: Any,
    t_last: Any,
    v_first: Any,
    n: Any,
    *,
    lo: Any,
    hi: Any,
    counter: bool,
    rate: bool,
) -> Any:
    """Prometheus' extrapolation of a change over [lo, hi] from the samples it saw
    (numpy arrays, one element per step; the same operations in the same order as
    Prometheus' ``extrapolatedRate``, so the floats agree)."""
    to_start = (t_first - lo) / 1e9
    to_end = (hi - t_last) / 1e9
    sampled = (t_last - t_first) / 1e9
    average = sampled / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if counter:
            # A counter cannot have been below zero: do not extrapolate past that point.
            to_zero = sampled * (v_first / result)
            limit = (result > 0) & (v_first >= 0)
            to_start = np.where(limit, np.minimum(to_start, to_zero), to_start)
        threshold = average * 1.1
        interval = sampled + np.where(to_start < threshold, to_start, average / 2)
        interval = interval + np.where(to_end < threshold, to_end, average / 2)
        factor = interval / sampled
        if rate:
            factor = factor / ((hi - lo) / 1e9)
        return result * factor


def _fast_range(ev: Evaluator, name: str, node: Any) -> list[Vector]:
    """``rate``, ``increase``, ``delta`` and ``sum``/``count``/``avg_over_time`` for every
    step at once, in numpy: two binary searches per step find each window, running sums
    give its total (and what counter resets lost), and Prometheus' extrapolation is
    computed on whole columns. The cost is per step and series, whatever a range holds."""
    selector = node.vector_selector
    if selector.at is not None:
        raise PromQLError("bad_data", "the @ modifier is not supported")
    range_ns = _ns(node.range)
    his = ev.step_array - _ns(selector.offset)
    los = his - range_ns
    counter = name in ("rate", "increase")
    out: list[Vector] = [{} for _ in ev.steps]
    for series in ev.select(selector, range_ns):
        times, values = series.columns
        first = np.searchsorted(times, los, side="left")
        end = np.searchsorted(times, his, side="right")
        n = end - first
        if name in ("sum_over_time", "count_over_time", "avg_over_time"):
            steps = np.flatnonzero(n > 0)
            first, end, n = first[steps], end[steps], n[steps]
            if name == "count_over_time":
                result = n.astype(np.float64)
            else:
                sums = np.concatenate(([0.0], np.cumsum(values)))
                result = sums[end] - sums[first]
                if name == "avg_over_time":
                    result = result / n
        else:
            steps = np.flatnonzero(n >= 2)
            first, last, n = first[steps], end[steps] - 1, n[steps]
            change = values[last] - values[first]
            if counter:
                # What resets lost: at a drop from a to b the counter restarted, so a is
                # added back. lost[k] sums the drops of the pairs (p, p + 1) with p + 1 < k,
                # so the pairs inside [first, last] are lost[last + 1] - lost[first + 1].
                drops = np.where(values[1:] < values[:-1], values[:-1], 0.0)
                lost = np.concatenate(([0.0, 0.0], np.cumsum(drops)))
                change = change + (lost[last + 1] - lost[first + 1])
            result = _extrapolate(
                change,
                times[first],
                times[last],
                values[first],
                n,
                lo=los[steps],
                hi=his[steps],
                counter=counter,
                rate=name == "rate",
            )
        labels = _drop_name(series.labels)
        for step, value in zip(steps.tolist(), result.tolist(), strict=True):
            out[step][labels] = value
    return out


def _divide(a: float, b: float) -> float:
    """``a / b`` as numpy divides float64 (inf or NaN for a zero divisor, never an error)."""
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _instant_range(ev: Evaluator, name: str, node: Any) -> Vector:
    """:func:`_fast_range` at one step, in Python floats: the same operations in the same
    order (running sums left to right, then Prometheus' extrapolation), so the same bits
    as the numpy path, without its per-series setup (a rule evaluates one step)."""
    selector = node.vector_selector
    if selector.at is not None:
        raise PromQLError("bad_data", "the @ modifier is not supported")
    range_ns = _ns(node.range)
    hi = ev.steps[0] - _ns(selector.offset)
    lo = hi - range_ns
    counter = name in ("rate", "increase")
    out: Vector = {}
    for series in ev.select(selector, range_ns):
        times, values = series.times, series.values
        first = bisect.bisect_left(times, lo)
        end = bisect.bisect_right(times, hi)
        n = end - first
        if name in ("sum_over_time", "count_over_time", "avg_over_time"):
            if n <= 0:
                continue
            if name == "count_over_time":
                result = float(n)
            else:
                before = 0.0
                for v in values[:first]:
                    before += v
                total = before
                for v in values[first:end]:
                    total += v
                result = total - before
                if name == "avg_over_time":
                    result = result / n
        else:
            if n < 2:
                continue
            last = end - 1
            change = values[last] - values[first]
            if counter:
                lost = [0.0, 0.0]  # lost[k]: the drops of the pairs (p, p + 1) with p + 1 < k
                running = 0.0
                for p in range(last):
                    a = values[p]
                    running += a if values[p + 1] < a else 0.0
                    lost.append(running)
                change = change + (lost[last + 1] - lost[first + 1])
            result = _extrapolate_one(
                change, times[first], times[last], values[first], n,
                lo=lo, hi=hi, counter=counter, rate=name == "rate",
            )  # fmt: skip
        out[_drop_name(series.labels)] = result
    return out


def _extrapolate_one(
    result: float,
    t_first: int,
    t_last: int,
    v_first: float,
    n: int,
    *,
    lo: int,
    hi: int,
    counter: bool,
    rate: bool,
) -> float:
    """:func:`_extrapolate` for one value, operation for operation."""
    to_start = (t_first - lo) / 1e9
    to_end = (hi - t_last) / 1e9
    sampled = (t_last - t_first) / 1e9
    average = sampled / (n - 1)
    if counter:
        to_zero = sampled * _divide(v_first, result)
        if result > 0 and v_first >= 0:
            to_start = to_zero if to_zero < to_start or math.isnan(to_zero) else to_start
    threshold = average * 1.1
    interval = sampled + (to_start if to_start < threshold else average / 2)
    interval = interval + (to_end if to_end < threshold else average / 2)
    factor = _divide(interval, sampled)
    if rate:
        factor = factor / ((hi - lo) / 1e9)
    return result * factor


_FAST = frozenset(
    {"rate", "increase", "delta", "sum_over_time", "count_over_time", "avg_over_time"}
)


def _irate(times: Sequence[int], values: Sequence[float]) -> float | None:
    if len(times) < 2:
        return None
    last, previous = values[-1], values[-2]
    change = last if last < previous else last - previous
    return change / ((times[-1] - times[-2]) / 1e9)


def _idelta(times: Sequence[int], values: Sequence[float]) -> float | None:
    return values[-1] - values[-2] if len(values) >= 2 else None


def _resets(times: Sequence[int], values: Sequence[float]) -> float | None:
    return float(sum(1 for a, b in itertools.pairwise(values) if b < a))


def _changes(times: Sequence[int], values: Sequence[float]) -> float | None:
    return float(sum(1 for a, b in itertools.pairwise(values) if b != a))


def _deriv(times: Sequence[int], values: Sequence[float]) -> float | None:
    if len(times) < 2:
        return None
    base = times[0]
    xs = [(t - base) / 1e9 for t in times]
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, math.fsum(values) / n
    cov = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, values, strict=True))
    var = sum((x - mean_x) ** 2 for x in xs)
    return cov / var if var else None


def _stddev(values: Sequence[float]) -> float:
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values))


# sum, count and avg_over_time are in _FAST (running sums).
_OVER_TIME: dict[str, Callable[[Sequence[float]], float]] = {
    "min_over_time": min,
    "max_over_time": max,
    "last_over_time": lambda v: v[-1],
    "stddev_over_time": _stddev,
    "stdvar_over_time": lambda v: _stddev(v) ** 2,
}
_SAMPLE_FUNCTIONS: dict[str, Callable[[Sequence[int], Sequence[float]], float | None]] = {
    "irate": _irate,
    "idelta": _idelta,
    "deriv": _deriv,
    "resets": _resets,
    "changes": _changes,
}


def _range_function(ev: Evaluator, name: str, args: list[Any]) -> tuple[str, list[Vector]]:
    first = args[-1] if name == "quantile_over_time" else args[0]
    if type(first).__name__ != "MatrixSelector":
        raise PromQLError("bad_data", f"{name}() needs a range vector like m[5m]")
    if name in _FAST:
        if len(ev.steps) == 1:  # an instant query or a rule: no columns worth numpy's setup
            return "vector", [_instant_range(ev, name, first)]
        return "vector", _fast_range(ev, name, first)
    ranges = _matrix(ev, first)
    q = _scalar_arg(ev, args[0]) if name == "quantile_over_time" else None
    out: list[Vector] = []
    for step, rows in enumerate(ranges.per_step):
        vector: Vector = {}
        for labels, times, values in rows:
            value: float | None
            if name in _SAMPLE_FUNCTIONS:
                value = _SAMPLE_FUNCTIONS[name](times, values)
            elif name == "quantile_over_time":
                assert q is not None
                value = _quantile(q[step], sorted(values))
            else:
                value = _OVER_TIME[name](values)
            if value is not None:
                out_labels = labels if name == "last_over_time" else _drop_name(labels)
                vector[out_labels] = value
        out.append(vector)
    return "vector", out


def _quantile(q: float, ordered: list[float]) -> float:
    if math.isnan(q) or not ordered:
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    return percentile(ordered, q)


def _scalar_arg(ev: Evaluator, node: Any) -> list[float]:
    kind, value = ev.eval(node)
    if kind != "scalar":
        raise PromQLError("bad_data", "expected a scalar argument")
    return list(value)


# --- instant functions -----------------------------------------------------------------------


def _map(fn: Callable[[float], float]) -> Callable[[Evaluator, list[Any]], tuple[str, Any]]:
    def apply(ev: Evaluator, args: list[Any]) -> tuple[str, Any]:
        kind, value = ev.eval(args[0])
        if kind != "vector":
            raise PromQLError("bad_data", "expected an instant vector argument")
        return "vector", [{_drop_name(k): fn(v) for k, v in vec.items()} for vec in value]

    return apply


def _round(ev: Evaluator, args: list[Any]) -> tuple[str, Any]:
    _, value = ev.eval(args[0])
    to = _scalar_arg(ev, args[1]) if len(args) > 1 else [1.0] * len(ev.steps)
    out = []
    for step, vec in enumerate(value):
        unit = to[step]
        out.append({_drop_name(k): math.floor(v / unit + 0.5) * unit for k, v in vec.items()})
    return "vector", out


def _clamp(lo_arg: int | None, hi_arg: int | None) -> Callable[[Evaluator, list[Any]], Any]:
    def apply(ev: Evaluator, args: list[Any]) -> tuple[str, Any]:
        _, value = ev.eval(args[0])
        los = _scalar_arg(ev, args[lo_arg]) if lo_arg else None
        his = _scalar_arg(ev, args[hi_arg]) if hi_arg else None
        out: list[Vector] = []
        for step, vec in enumerate(value):
            lo = los[step] if los else -math.inf
            hi = his[step] if his else math.inf
            if lo > hi:
                out.append({})
                continue
            out.append({_drop_name(k): max(lo, min(hi, v)) for k, v in vec.items()})
        return "vector", out

    return apply


def _timestamp(ev: Evaluator, args: list[Any]) -> tuple[str, Any]:
    node = args[0]
    if type(node).__name__ != "VectorSelector":  # a computed sample's time is the step's
        _, value = ev.eval(node)
        return "vector", [
            {_drop_name(k): t / 1e9 for k in vec} for t, vec in zip(ev.steps, value, strict=True)
        ]
    his = ev.step_array - _ns(node.offset)
    out: list[Vector] = [{} for _ in ev.steps]
    for series in ev.select(node, LOOKBACK_NS):
        j, found = _latest(series, his)
        steps = np.flatnonzero(found)
        labels = _drop_name(series.labels)
        for step, t in zip(steps.tolist(), series.columns[0][j[steps]].tolist(), strict=True):
            out[step][labels] = t / 1e9
    return "vector", out


def _time(ev: Evaluator, args: list[Any]) -> tuple[str, Any]:
    return "scalar", [t / 1e9 for t in ev.steps]


def _vector(ev: Evaluator, args: list[Any]) -> tuple[str, Any]:
    values = _scalar_arg(ev, args[0])
    return "vector", [{(): v} for v in values]


def _scalar(ev: Evaluator, args: list[Any]) -> tuple[str, Any]:
    kind, value = ev.eval(args[0])
    if kind != "vector":
        raise PromQLError("bad_data", "scalar() needs an instant vector")
    return "scalar", [next(iter(vec.values())) if len(vec) == 1 else math.nan for vec in value]


def _absent(ev: Evaluator, args: list[Any]) -> tuple[str, Any]:
    node = args[0]
    _, value = ev.eval(node)
    labels: Labels = ()
    if type(node).__name__ == "VectorSelector":
        equal = [
            (m.name, m.value)
            for m in node.matchers.matchers
            if str(m.op).endswith("Equal") and not str(m.op).endswith("NotEqual")
        ]
        labels = tuple(sorted(kv for kv in equal if kv[0] != "__name__"))
    return "vector", [{} if vec else {labels: 1.0} for vec in value]


def _label_replace(ev: Evaluator, args: list[Any]) -> tuple[str, Any]:
    _, value = ev.eval(args[0])
    dst, replacement, src, regex = (a.val for a in args[1:5])
    pattern = re.compile(f"^(?:{regex})$")
    go_template = re.compile(r"\$(\d+)|\$\{(\w+)\}")
    out = []
    for vec in value:
        new: Vector = {}
        for labels, v in vec.items():
            as_dict = dict(labels)
            found = pattern.match(as_dict.get(src, ""))
            if found:
                groups = found.groups()

                def expand(m: re.Match[str], groups: tuple[Any, ...] = groups) -> str:
                    index = int(m.group(1) or m.group(2) or 0)
                    return (groups[index - 1] or "") if 0 < index <= len(groups) else ""

                result = go_template.sub(expand, replacement)
                if result:
                    as_dict[dst] = result
                else:
                    as_dict.pop(dst, None)
            new[tuple(sorted(as_dict.items()))] = v
        out.append(new)
    return "vector", out


def _histogram_quantile(ev: Evaluator, args: list[Any]) -> tuple[str, Any]:
    qs = _scalar_arg(ev, args[0])
    _, value = ev.eval(args[1])
    out = []
    for step, vec in enumerate(value):
        groups: dict[Labels, list[tuple[float, float]]] = {}
        for labels, v in vec.items():
            as_dict = dict(labels)
            le = as_dict.pop("le", None)
            if le is None:
                continue
            try:
                bound = float(le)
            except ValueError:
                continue
            as_dict.pop("__name__", None)
            groups.setdefault(tuple(sorted(as_dict.items())), []).append((bound, v))
        out.append({k: _bucket_quantile(qs[step], b) for k, b in groups.items()})
    return "vector", out


def _bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    buckets.sort()
    if len(buckets) < 2 or buckets[-1][0] != math.inf:
        return math.nan
    # Counts must not decrease; a rounding dip is smoothed as Prometheus does.
    for i in range(1, len(buckets)):
        if buckets[i][1] < buckets[i - 1][1]:
            buckets[i] = (buckets[i][0], buckets[i - 1][1])
    observations = buckets[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    index = next(i for i, (_, count) in enumerate(buckets) if count >= rank)
    if index == len(buckets) - 1:
        return buckets[-2][0]
    if index == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    start, count_before = (0.0, 0.0) if index == 0 else buckets[index - 1]
    end, count = buckets[index]
    in_bucket = count - count_before
    rank -= count_before
    return start + (end - start) * (rank / in_bucket) if in_bucket else start


_FUNCTIONS: dict[str, Callable[[Evaluator, list[Any]], tuple[str, Any]]] = {
    "abs": _map(abs),
    "ceil": _map(math.ceil),
    "floor": _map(math.floor),
    "exp": _map(math.exp),
    "sqrt": _map(lambda v: math.sqrt(v) if v >= 0 else math.nan),
    "ln": _map(lambda v: math.log(v) if v > 0 else (-math.inf if v == 0 else math.nan)),
    "log2": _map(lambda v: math.log2(v) if v > 0 else (-math.inf if v == 0 else math.nan)),
    "log10": _map(lambda v: math.log10(v) if v > 0 else (-math.inf if v == 0 else math.nan)),
    "round": _round,
    "clamp": _clamp(1, 2),
    "clamp_min": _clamp(1, None),
    "clamp_max": _clamp(None, 1),
    "time": _time,
    "timestamp": _timestamp,
    "vector": _vector,
    "scalar": _scalar,
    "absent": _absent,
    "label_replace": _label_replace,
    "histogram_quantile": _histogram_quantile,
}


def _call(ev: Evaluator, node: Any) -> tuple[str, Any]:
    name = node.func.name
    args = list(node.args)
    if (
        name in _FAST
        or name in _OVER_TIME
        or name in _SAMPLE_FUNCTIONS
        or name == "quantile_over_time"
    ):
        return _range_function(ev, name, args)
    fn = _FUNCTIONS.get(name)
    if fn is None:
        raise PromQLError("bad_data", f"function {name}() is not supported by RIMP")
    return fn(ev, args)


# --- aggregations ----------------------------------------------------------------------------


def _group_key(labels: Labels, modifier: Any) -> Labels:
    if modifier is None:
        return ()
    names = set(modifier.labels)
    if str(modifier.type).endswith("By"):
        return tuple(kv for kv in labels if kv[0] in names)
    return tuple(kv for kv in labels if kv[0] not in names and kv[0] != "__name__")


def _aggregate(ev: Evaluator, node: Any) -> tuple[str, Any]:
    op = str(node.op).lower().strip()
    kind, value = ev.eval(node.expr)
    if kind != "vector":
        raise PromQLError("bad_data", f"{op}() needs an instant vector")
    param = _scalar_arg(ev, node.param) if node.param is not None else None
    out = []
    for step, vec in enumerate(value):
        groups: dict[Labels, list[tuple[Labels, float]]] = {}
        for labels, v in vec.items():
            groups.setdefault(_group_key(labels, node.modifier), []).append((labels, v))
        result: Vector = {}
        for key, members in groups.items():
            values = [v for _, v in members]
            if op in ("topk", "bottomk"):
                assert param is not None
                k = int(param[step])
                ordered = sorted(members, key=lambda m: m[1], reverse=op == "topk")
                for labels, v in ordered[: max(k, 0)]:
                    result[labels] = v
                continue
            result[key] = _AGGREGATES[op](values, param[step] if param else 0.0)
        out.append(result)
    return "vector", out


def _agg_quantile(values: list[float], q: float) -> float:
    return _quantile(q, sorted(values))


_AGGREGATES: dict[str, Callable[[list[float], float], float]] = {
    "sum": lambda v, _: math.fsum(v),
    "avg": lambda v, _: math.fsum(v) / len(v),
    "min": lambda v, _: min(v),
    "max": lambda v, _: max(v),
    "count": lambda v, _: float(len(v)),
    "stddev": lambda v, _: _stddev(v),
    "stdvar": lambda v, _: _stddev(v) ** 2,
    "quantile": _agg_quantile,
    "group": lambda v, _: 1.0,
}


# --- binary operators ------------------------------------------------------------------------

_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b if b else _divide_by_zero(a, b),
    "%": lambda a, b: math.fmod(a, b) if b else math.nan,
    "^": lambda a, b: a**b,
    "atan2": math.atan2,
}


def _divide_by_zero(a: float, b: float) -> float:
    # IEEE 754, as Go computes it: x/0 is ±Inf by the signs, 0/0 and NaN/0 are NaN.
    if a == 0 or math.isnan(a):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


_COMPARISON: dict[str, Callable[[float, float], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
}


def _binary(ev: Evaluator, node: Any) -> tuple[str, Any]:
    op = str(node.op).strip()
    lkind, lhs = ev.eval(node.lhs)
    rkind, rhs = ev.eval(node.rhs)
    modifier = node.modifier
    return_bool = bool(modifier is not None and modifier.return_bool)
    if op in ("and", "or", "unless"):
        return "vector", [_set_op(op, a, b, modifier) for a, b in zip(lhs, rhs, strict=True)]
    if lkind == "scalar" and rkind == "scalar":
        if op in _COMPARISON and not return_bool:
            raise PromQLError("bad_data", "comparisons between scalars must use bool")
        return "scalar", [_apply(op, a, b, return_bool) for a, b in zip(lhs, rhs, strict=True)]
    if lkind == "vector" and rkind == "scalar":
        return "vector", [
            _with_scalar(op, vec, s, return_bool, left=True)
            for vec, s in zip(lhs, rhs, strict=True)
        ]
    if lkind == "scalar" and rkind == "vector":
        return "vector", [
            _with_scalar(op, vec, s, return_bool, left=False)
            for s, vec in zip(lhs, rhs, strict=True)
        ]
    return "vector", [
        _vectors(op, a, b, modifier, return_bool) for a, b in zip(lhs, rhs, strict=True)
    ]


def _apply(op: str, a: float, b: float, return_bool: bool) -> float:
    if op in _COMPARISON:
        return 1.0 if _COMPARISON[op](a, b) else 0.0
    fn = _ARITHMETIC.get(op)
    if fn is None:
        raise PromQLError("bad_data", f"operator {op} is not supported")
    try:
        return fn(a, b)
    except (OverflowError, ValueError, ZeroDivisionError):
        return math.nan


def _with_scalar(op: str, vec: Vector, s: float, return_bool: bool, *, left: bool) -> Vector:
    out: Vector = {}
    for labels, v in vec.items():
        a, b = (v, s) if left else (s, v)
        if op in _COMPARISON:
            keep = _COMPARISON[op](a, b)
            if return_bool:
                out[_drop_name(labels)] = 1.0 if keep else 0.0
            elif keep:
                out[labels] = v
            continue
        out[_drop_name(labels)] = _apply(op, a, b, False)
    return out


def _is_on(matching: Any) -> bool:
    # promql-parser calls on(...) Include and ignoring(...) Exclude.
    return str(matching.type).endswith("Include")


def _signature(labels: Labels, modifier: Any) -> Labels:
    matching = modifier.matching if modifier is not None else None
    if matching is None:
        return _drop_name(labels)
    names = set(matching.labels)
    if _is_on(matching):
        return tuple(kv for kv in labels if kv[0] in names)
    return tuple(kv for kv in labels if kv[0] not in names and kv[0] != "__name__")


def _vectors(op: str, lhs: Vector, rhs: Vector, modifier: Any, return_bool: bool) -> Vector:
    """Vector-vector matching as Prometheus does it: one-to-one by default, ``group_left``
    (many on the left) and ``group_right`` (many on the right)."""
    card = str(modifier.card).rsplit(".", 1)[-1] if modifier is not None else "OneToOne"
    lhs_is_many = card != "OneToMany"
    many, one = (lhs, rhs) if lhs_is_many else (rhs, lhs)
    ones: dict[Labels, tuple[Labels, float]] = {}
    for labels, v in one.items():
        key = _signature(labels, modifier)
        if key in ones:
            side = "right" if lhs_is_many else "left"
            raise PromQLError(
                "execution", f"found duplicate series for the match group on the {side} side"
            )
        ones[key] = (labels, v)
    comparison = op in _COMPARISON
    drop_name = not comparison or return_bool
    include = list(modifier.group_labels or []) if modifier is not None else []
    matching = modifier.matching if modifier is not None else None
    out: Vector = {}
    seen: set[Labels] = set()
    for labels, many_value in many.items():
        key = _signature(labels, modifier)
        match = ones.get(key)
        if match is None:
            continue
        if card == "OneToOne":
            if key in seen:
                raise PromQLError(
                    "execution",
                    "many-to-many matching not allowed: found duplicate series "
                    "for the match group on the left side",
                )
            seen.add(key)
        one_labels, one_value = match
        x, y = (many_value, one_value) if lhs_is_many else (one_value, many_value)
        result = dict(labels)
        if drop_name:
            result.pop("__name__", None)
        if card == "OneToOne" and matching is not None:
            names = set(matching.labels)
            if _is_on(matching):
                result = {k: v for k, v in result.items() if k in names}
            else:
                result = {k: v for k, v in result.items() if k not in names}
        one_dict = dict(one_labels)
        for name in include:
            if name in one_dict:
                result[name] = one_dict[name]
            else:
                result.pop(name, None)
        result_key = tuple(sorted(result.items()))
        if comparison:
            keep = _COMPARISON[op](x, y)
            if return_bool:
                out[result_key] = 1.0 if keep else 0.0
            elif keep:
                out[result_key] = x
            continue
        out[result_key] = _apply(op, x, y, False)
    return out


def _set_op(op: str, lhs: Vector, rhs: Vector, modifier: Any) -> Vector:
    keys = {_signature(labels, modifier) for labels in rhs}
    if op == "and":
        return {k: v for k, v in lhs.items() if _signature(k, modifier) in keys}
    if op == "unless":
        return {k: v for k, v in lhs.items() if _signature(k, modifier) not in keys}
    left_keys = {_signature(k, modifier) for k in lhs}
    extra = {k: v for k, v in rhs.items() if _signature(k, modifier) not in left_keys}
    return {**lhs, **extra}


# --- literals and wrappers -------------------------------------------------------------------


def _number(ev: Evaluator, node: Any) -> tuple[str, Any]:
    return "scalar", [float(node.val)] * len(ev.steps)


def _string(ev: Evaluator, node: Any) -> tuple[str, Any]:
    return "string", node.val


def _paren(ev: Evaluator, node: Any) -> tuple[str, Any]:
    return ev.eval(node.expr)


def _unary(ev: Evaluator, node: Any) -> tuple[str, Any]:
    kind, value = ev.eval(node.expr)
    if kind == "scalar":
        return "scalar", [-v for v in value]
    return "vector", [{_drop_name(k): -v for k, v in vec.items()} for vec in value]


def _matrix_node(ev: Evaluator, node: Any) -> tuple[str, Any]:
    return "matrix", _matrix(ev, node)


def _subquery(ev: Evaluator, node: Any) -> tuple[str, Any]:
    raise PromQLError("bad_data", "subqueries are not supported by RIMP")


_NODES: dict[str, Callable[[Evaluator, Any], tuple[str, Any]]] = {
    "VectorSelector": _vector_selector,
    "MatrixSelector": _matrix_node,
    "Call": _call,
    "AggregateExpr": _aggregate,
    "BinaryExpr": _binary,
    "NumberLiteral": _number,
    "StringLiteral": _string,
    "ParenExpr": _paren,
    "UnaryExpr": _unary,
    "SubqueryExpr": _subquery,
}
