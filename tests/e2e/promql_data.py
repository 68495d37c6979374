"""The dataset of the PromQL comparison (tests/e2e/test_promql_vs_prometheus.py): one hour of
samples every 15 s, deterministic and exactly representable, written two ways.

Every value is an integer or a multiple of 1/16, so that the OpenMetrics text Prometheus loads
and the JSON RIMP ingests carry the same binary doubles. The series:

- ``http_requests_total``: counters by job, instance, route and status; one resets half way,
  one starts a quarter of the way in, one rarely moves.
- ``memory_usage_bytes`` and ``temperature_celsius``: gauges that go up and down (the
  temperatures cross zero and land on halves, for ``abs`` and ``round``).
- ``queue_depth``: a gauge that ends at BASE + 1500 s, for the 5-minute lookback.
- ``http_request_duration_seconds``: a classic histogram (``_bucket{le}``, ``_sum``,
  ``_count``) on two instances.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

BASE = 1_796_126_400  # 2026-12-01T12:00:00Z, on the hour (and on a 2 h block boundary)
STEP = 15  # seconds between two samples of a series
SAMPLES = 240  # one hour
END = BASE + STEP * (SAMPLES - 1)  # the last sample: BASE + 3585 s
QUEUE_END = 100  # queue_depth's samples stop before this index (its last one is BASE + 1485 s)
RESET_AT = 130  # the index at which one counter restarts from a small value
LATE_START = 60  # the index of the first sample of the late counter
BUCKETS = ("0.1", "0.25", "0.5", "1", "+Inf")

Labels = tuple[tuple[str, str], ...]  # sorted, __name__ first
NS = 1_000_000_000


@dataclass(frozen=True)
class Series:
    """One series: its labels (``__name__`` included) and its samples, oldest first."""

    labels: Labels
    samples: tuple[tuple[int, float], ...]  # (seconds, value)

    @property
    def name(self) -> str:
        """The metric name."""
        return self.labels[0][1]

    @property
    def tags(self) -> dict[str, str]:
        """The labels without ``__name__``."""
        return dict(self.labels[1:])


def _labels(name: str, **labels: str) -> Labels:
    return (("__name__", name), *sorted(labels.items()))


def _series(name: str, values: Callable[[int], float | None], **labels: str) -> Series:
    samples = []
    for i in range(SAMPLES):
        v = values(i)
        if v is not None:
            samples.append((BASE + STEP * i, float(v)))
    return Series(_labels(name, **labels), tuple(samples))


def _counter(increment: Callable[[int], int], start: int = 0) -> Callable[[int], float | None]:
    """A counter whose value at index i is the sum of ``increment`` over 0..i, from ``start``."""
    totals: list[float] = []
    total = 0
    for i in range(SAMPLES):
        total += increment(i)
        totals.append(float(total))
    return lambda i: totals[i] if i >= start else None


def _reset_counter(i: int) -> float:
    """Grows by 3 or 4 a sample, drops to 2 at RESET_AT and grows by 5 or 6 from there."""
    if i < RESET_AT:
        return float(sum(3 + k % 2 for k in range(i + 1)))
    return float(2 + sum(5 + k % 2 for k in range(RESET_AT + 1, i + 1)))


def _histogram(instance: str, seed: int) -> list[Series]:
    """Cumulative buckets, ``_sum`` and ``_count`` of observations made every 15 s."""
    counts = [0] * len(BUCKETS)
    total_sum = 0.0
    bucket_rows: list[list[tuple[int, float]]] = [[] for _ in BUCKETS]
    sum_rows: list[tuple[int, float]] = []
    count_rows: list[tuple[int, float]] = []
    for i in range(SAMPLES):
        t = BASE + STEP * i
        for k in range(4 + (i * seed) % 5):  # 4 to 8 observations per step
            slot = (i * 3 + k * seed + k * k) % 10
            b = (0, 0, 0, 1, 1, 1, 2, 2, 3, 4)[slot]  # the bucket of this observation
            for j in range(b, len(BUCKETS)):  # cumulative: every bucket from b up
                counts[j] += 1
            total_sum += (1, 3, 6, 12, 20)[b] / 16  # seconds, within the bucket
        for j, row in enumerate(bucket_rows):
            row.append((t, float(counts[j])))
        sum_rows.append((t, total_sum))
        count_rows.append((t, float(counts[-1])))
    base = "http_request_duration_seconds"
    out = [
        Series(_labels(f"{base}_bucket", job="api", instance=instance, le=le), tuple(row))
        for le, row in zip(BUCKETS, bucket_rows, strict=True)
    ]
    out.append(Series(_labels(f"{base}_sum", job="api", instance=instance), tuple(sum_rows)))
    out.append(Series(_labels(f"{base}_count", job="api", instance=instance), tuple(count_rows)))
    return out


def dataset() -> list[Series]:
    """Every series of the comparison, in a fixed order."""
    req = "http_requests_total"
    series = [
        _series(req, _counter(lambda i: 3 + (i * 7) % 5),
                job="api", instance="a:9100", route="/users", status="200"),
        _series(req, _counter(lambda i: int(i % 4 == 0)),
                job="api", instance="a:9100", route="/users", status="500"),
        _series(req, _counter(lambda i: 2 + i % 3),
                job="api", instance="b:9100", route="/users", status="200"),
        _series(req, _reset_counter,
                job="api", instance="b:9100", route="/orders", status="200"),
        _series(req, _counter(lambda i: (i * i) % 7),
                job="worker", instance="w1:9100", route="/jobs", status="200"),
        _series(req, _counter(lambda i: 1 + i % 2, start=LATE_START),
                job="worker", instance="w2:9100", route="/jobs", status="500"),
        _series("memory_usage_bytes", lambda i: 1_000_000 + 50_000 * ((i * 37) % 11),
                job="api", instance="a:9100"),
        _series("memory_usage_bytes", lambda i: 1_200_000 + 4_096 * abs(i % 40 - 20),
                job="api", instance="b:9100"),
        _series("memory_usage_bytes", lambda i: 800_000 + 1_000 * ((i * i) % 97),
                job="worker", instance="w1:9100"),
        _series("temperature_celsius", lambda i: 20 + 0.25 * ((i * 13) % 17 - 8),
                instance="a:9100", room="r1"),
        _series("temperature_celsius", lambda i: 0.5 * ((i * 5) % 13 - 6),
                instance="b:9100", room="r2"),
        _series("queue_depth", lambda i: (i * 11) % 23 if i < QUEUE_END else None,
                job="worker", instance="w1:9100"),
    ]  # fmt: skip
    series += _histogram("a:9100", 3)
    series += _histogram("b:9100", 7)
    return series


def _number(v: float) -> str:
    if v.is_integer():
        return str(int(v))
    return repr(v)


def openmetrics(series: list[Series]) -> str:
    """The series as OpenMetrics text for ``promtool tsdb create-blocks-from openmetrics``.

    Each family is declared ``unknown``, so that every sample keeps its name as given (a
    ``counter`` family would want its samples named ``<family>_total``); a family's samples
    are contiguous, each series' samples in time order; the text ends with ``# EOF``.
    """
    by_name: dict[str, list[Series]] = {}
    for s in series:
        by_name.setdefault(s.name, []).append(s)
    lines: list[str] = []
    for name, members in by_name.items():
        lines.append(f"# TYPE {name} unknown")
        for s in members:
            labels = ",".join(f'{k}="{v}"' for k, v in s.labels[1:])
            for t, v in s.samples:
                lines.append(f"{name}{{{labels}}} {_number(v)} {t}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def records(series: list[Series]) -> Iterator[dict[str, Any]]:
    """The samples as records of RIMP's native ``POST /api/v1/metrics``."""
    for s in series:
        for t, v in s.samples:
            yield {"name": s.name, "value": v, "tags": s.tags, "time_ns": t * NS}
