"""Tests of telemetry.instruments: counters, gauges, histograms, timers."""

from __future__ import annotations

import random
import time

import pytest

from telemetry import TelemetryCollector, ValidationError
from telemetry.instruments import FOLD_AT


def values(c: TelemetryCollector, name: str) -> list[float]:
    return [p.value for p in c.storage.query_metrics(name)]


class TestCounter:
    def test_reports_the_increase_per_interval(self, collector: TelemetryCollector) -> None:
        """Each flush emits the increase since the previous one; no point when idle."""
        requests = collector.counter("requests", tags={"route": "/users"})
        requests.inc()
        requests.inc(4)
        collector.flush(5)
        collector.flush(5)
        requests.inc(2.5)
        collector.flush(5)
        assert values(collector, "requests") == [5.0, 2.5]
        assert collector.storage.query_metrics("requests")[0].tags == {"route": "/users"}

    @pytest.mark.parametrize("amount", [-1, float("nan"), float("inf")])
    def test_refuses_negative_or_non_finite(
        self, collector: TelemetryCollector, amount: float
    ) -> None:
        """A counter only increases by a finite amount."""
        with pytest.raises(ValidationError, match="a counter only increases by a finite amount"):
            collector.counter("c").inc(amount)

    def test_same_name_and_tags_give_the_same_instrument(
        self, collector: TelemetryCollector
    ) -> None:
        """Instruments are cached per name, unit and tags (in any order)."""
        a = collector.counter("c", tags={"a": "1", "b": "2"})
        assert collector.counter("c", tags={"b": "2", "a": "1"}) is a
        assert collector.counter("c", tags={"a": "2"}) is not a

    def test_a_name_keeps_its_kind(self, collector: TelemetryCollector) -> None:
        """Asking for a gauge where a counter is registered raises naming the kind."""
        collector.counter("c")
        with pytest.raises(ValidationError, match="already registered as a Counter"):
            collector.gauge("c")

    def test_bad_tags_are_refused_at_binding(self, collector: TelemetryCollector) -> None:
        """Tags are validated once, when the instrument is created."""
        with pytest.raises(ValidationError, match=r"tags\['code'\]=200"):
            collector.counter("c", tags={"code": 200})  # type: ignore[dict-item]


class TestGauge:
    def test_reports_the_current_value_every_interval(self, collector: TelemetryCollector) -> None:
        """A gauge emits its last value at every flush once set."""
        depth = collector.gauge("queue.depth")
        collector.flush(5)
        depth.set(3)
        depth.inc(2)
        depth.dec()
        collector.flush(5)
        collector.flush(5)
        assert values(collector, "queue.depth") == [4.0, 4.0]

    def test_refuses_non_finite(self, collector: TelemetryCollector) -> None:
        """A gauge value must be finite."""
        with pytest.raises(ValidationError, match="value=nan: a gauge value must be finite"):
            collector.gauge("g").set(float("nan"))


class TestHistogram:
    def test_exact_summary_for_small_populations(self, collector: TelemetryCollector) -> None:
        """count, sum, min, max and numpy-linear percentiles of 1..100."""
        latency = collector.histogram("latency", unit="ms")
        for v in random.Random(1).sample(range(1, 101), 100):
            latency.observe(v)
        collector.flush(5)
        got = {
            s: values(collector, f"latency.{s}")[0]
            for s in ("count", "sum", "min", "max", "p50", "p90", "p95", "p99")
        }
        assert got == pytest.approx(
            {
                "count": 100.0,
                "sum": 5050.0,
                "min": 1.0,
                "max": 100.0,
                "p50": 50.5,
                "p90": 90.1,
                "p95": 95.05,
                "p99": 99.01,
            }
        )
        assert collector.storage.query_metrics("latency.p95")[0].unit == "ms"

    def test_large_populations_use_the_sketch_within_one_percent(
        self, collector: TelemetryCollector
    ) -> None:
        """Past FOLD_AT observations, percentiles come from the sketch with ≤1 % error."""
        rng = random.Random(7)
        observed = [rng.lognormvariate(3, 1) for _ in range(FOLD_AT * 3 + 123)]
        hist = collector.histogram("big")
        for v in observed:
            hist.observe(v)
        collector.flush(5)
        observed.sort()
        assert values(collector, "big.count") == [float(len(observed))]
        assert values(collector, "big.min") == [observed[0]]
        assert values(collector, "big.max") == [observed[-1]]
        for name, q in (("p50", 0.5), ("p99", 0.99)):
            exact = observed[round(q * (len(observed) - 1))]
            assert values(collector, f"big.{name}")[0] == pytest.approx(exact, rel=0.011)

    def test_nothing_observed_emits_nothing(self, collector: TelemetryCollector) -> None:
        """An idle histogram emits no points."""
        collector.histogram("idle")
        collector.flush(5)
        assert collector.storage.series() == []


class TestTimer:
    def test_context_manager_and_decorator_observe_durations(
        self, collector: TelemetryCollector
    ) -> None:
        """Both forms record one observation each, in milliseconds by default."""
        timer = collector.timer("work")
        with timer:
            time.sleep(0.01)

        @collector.timer("work")
        def job() -> int:
            return 42

        assert job() == 42
        collector.flush(5)
        assert values(collector, "work.count") == [2.0]
        assert values(collector, "work.max")[0] >= 10.0

    def test_nested_use_of_one_timer(self, collector: TelemetryCollector) -> None:
        """Nested with-blocks on one timer each record their own duration."""
        timer = collector.timer("nested", unit="s")
        with timer, timer:
            pass
        collector.flush(5)
        assert values(collector, "nested.count") == [2.0]

    def test_unit_must_be_ms_or_s(self, collector: TelemetryCollector) -> None:
        """Timers measure in ms or s only."""
        with pytest.raises(ValidationError, match="unit='us'"):
            collector.timer("t", unit="us")
