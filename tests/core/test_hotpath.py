"""The compiled recording path (``telemetry._hotpath``) against the pure-Python methods, its
reference: the same records, errors, messages and accounting for any input (hypothesis),
ids unique across the two paths, threads and forks, and no reference leaked."""

from __future__ import annotations

import gc
import math
import os
import sys
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry import EventType, TelemetryCollector, TelemetryConfig
from telemetry.collector import COMPILED
from telemetry.storage import MemoryStorage

pytestmark = pytest.mark.skipif(
    not COMPILED, reason="the compiled path is off (RIMP_PURE_PYTHON=1) or not built"
)


def test_the_compiled_path_is_built_and_active_unless_asked_otherwise() -> None:
    """Where the test command runs (CI included) the editable install compiled it."""
    collector = TelemetryCollector()
    try:
        assert type(collector.collect_metric).__module__ == "telemetry._hotpath"
        assert type(collector.collect_event).__module__ == "telemetry._hotpath"
    finally:
        collector.close()


def test_pure_python_can_be_forced() -> None:
    code = (
        "from telemetry.collector import COMPILED; from telemetry import TelemetryCollector;"
        "c = TelemetryCollector(); print(COMPILED, type(c.collect_metric).__name__)"
    )
    import subprocess

    env = {**os.environ, "RIMP_PURE_PYTHON": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    assert done.stdout.split() == ["False", "method"]


def pair(**config: Any) -> tuple[TelemetryCollector, TelemetryCollector]:
    """A compiled collector and one on the pure methods, same config, no pump draining."""
    config.setdefault("buffer_size", min(1000, config.get("buffer_capacity", 1000)))
    cfg = TelemetryConfig(flush_interval=3600, **config)
    fast = TelemetryCollector(cfg, storage=MemoryStorage())
    pure = TelemetryCollector(cfg, storage=MemoryStorage())
    pure.collect_metric = TelemetryCollector.collect_metric.__get__(pure)  # type: ignore[method-assign]
    pure.collect_event = TelemetryCollector.collect_event.__get__(pure)  # type: ignore[method-assign]
    return fast, pure


def outcome(call: Any) -> tuple[str, Any]:
    try:
        record = call()
    except Exception as exc:
        return "raised", (type(exc).__name__, str(exc), getattr(exc, "field", None))
    if record is None:
        return "none", None
    fields = {f: getattr(record, f) for f in record.__struct_fields__ if f not in ("id", "time_ns")}
    return "record", fields


texts = st.one_of(st.text(max_size=8), st.just(""), st.integers(), st.none(), st.just(b"x"))
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**1100), max_value=2**1100),
    st.booleans(),
    st.just(-0.0),
    st.text(max_size=3),
    st.none(),
)
str_dict = st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=4)
tags_st = st.one_of(
    st.none(),
    str_dict,
    st.dictionaries(
        st.one_of(st.text(max_size=3), st.integers()),
        st.one_of(st.text(max_size=3), st.integers()),
        max_size=3,
    ),
    st.lists(st.tuples(st.text(max_size=3), st.text(max_size=3)), max_size=2),
)
stamps = st.one_of(st.none(), st.integers(min_value=0, max_value=2**62))


@settings(max_examples=400, deadline=None)
@given(
    args=st.tuples(texts, values, st.one_of(st.just(""), texts), tags_st, stamps),
    keywords=st.booleans(),
)
def test_collect_metric_matches_the_pure_method(args: tuple[Any, ...], keywords: bool) -> None:
    name, value, unit, tags, ts = args
    fast, pure = pair()
    try:
        results = []
        for c in (fast, pure):
            copy = dict(tags) if isinstance(tags, dict) else tags
            if keywords:
                results.append(
                    outcome(
                        lambda c=c, t=copy: c.collect_metric(
                            name=name, value=value, unit=unit, tags=t, timestamp=ts
                        )
                    )
                )
            else:
                results.append(
                    outcome(lambda c=c, t=copy: c.collect_metric(name, value, unit, t, ts))
                )
        assert results[0] == results[1]
        if results[0][0] == "record" and ts is not None:
            assert fast._metrics[-1].time_ns == pure._metrics[-1].time_ns == ts
        assert fast.stats()["metrics_collected"] == pure.stats()["metrics_collected"]
    finally:
        fast.close()
        pure.close()


@settings(max_examples=300, deadline=None)
@given(
    source=texts,
    message=st.one_of(st.text(max_size=12), st.integers()),
    etype=st.one_of(
        st.sampled_from(list(EventType)), st.sampled_from(["error", "nope", "INFO"]), st.integers()
    ),
    meta=st.one_of(
        st.none(),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=5),
        st.lists(st.integers(), max_size=2),
    ),
    default_type=st.booleans(),
)  # fmt: skip
def test_collect_event_matches_the_pure_method(
    source: Any, message: Any, etype: Any, meta: Any, default_type: bool
) -> None:
    fast, pure = pair(max_message_length=8, max_metadata_keys=3)
    try:
        if default_type:
            results = [
                outcome(lambda c=c: c.collect_event(source, message, metadata=meta))
                for c in (fast, pure)
            ]
        else:
            results = [
                outcome(lambda c=c: c.collect_event(source, message, etype, meta))
                for c in (fast, pure)
            ]
        assert results[0] == results[1]
        assert fast.stats()["events_collected"] == pure.stats()["events_collected"]
    finally:
        fast.close()
        pure.close()


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest"])
def test_a_full_buffer_is_the_pure_paths_overflow(policy: str) -> None:
    fast, pure = pair(buffer_capacity=3, overflow_policy=policy)
    try:
        for c in (fast, pure):
            for i in range(5):
                c.collect_metric("m", float(i))
            c.collect_event("s", "x")
        for key in (
            "metrics_collected",
            "events_collected",
            "records_dropped",
            "dropped_by_reason",
        ):
            assert fast.stats()[key] == pure.stats()[key], key
        assert [m.value for m in fast._metrics] == [m.value for m in pure._metrics]
    finally:
        fast.close()
        pure.close()


def test_positional_keyword_and_bad_calls_behave_as_python() -> None:
    fast, pure = pair()
    try:
        for c in (fast, pure):
            record: Any = c.collect_metric  # called as users may, against its signature
            with pytest.raises(TypeError):
                record("m", 1.0, "", None, None, "extra")
            with pytest.raises(TypeError):
                record("m", 1.0, nope=1)
            with pytest.raises(TypeError):
                record("m", value=1.0, name="twice")
        assert fast.collect_metric("m", 2, "ms", {"a": "b"}).value == 2.0  # type: ignore[union-attr]
        assert fast.collect_metric(value=3, name="m").unit == ""  # type: ignore[union-attr]
    finally:
        fast.close()
        pure.close()


def test_ids_are_unique_across_both_paths_and_threads() -> None:
    # The pump stays asleep (no flush due, buffer_size never reached): everything stays here.
    big = TelemetryConfig(flush_interval=3600, buffer_size=500_000, buffer_capacity=500_000)
    collector = TelemetryCollector(big)
    try:
        pure = TelemetryCollector.collect_metric.__get__(collector)

        def work(k: int) -> None:
            for i in range(20_000):
                (collector.collect_metric if i % 3 else pure)("m", float(i), tags={"t": str(k)})

        threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ids = [m.id for m in collector._metrics]
        assert len(ids) == 120_000
        assert len(set(ids)) == 120_000
        assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids[:100])
    finally:
        collector.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_records_through_the_compiled_path_with_its_own_ids() -> None:
    collector = TelemetryCollector(TelemetryConfig(flush_interval=3600))
    try:
        parent_ids = {collector.collect_metric("m", 1.0).id for _ in range(10)}  # type: ignore[union-attr]
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report its ids and buffer, then leave at once
            try:
                ids = [collector.collect_metric("m", 2.0).id for _ in range(10)]  # type: ignore[union-attr]
                line = f"{len(collector._metrics)} " + " ".join(ids)
                os.write(write, line.encode())
            finally:
                os._exit(0)
        os.close(write)
        data = b""
        while chunk := os.read(read, 65536):
            data += chunk
        os.close(read)
        os.waitpid(pid, 0)
        count, *child_ids = data.decode().split()
        assert count == "10"  # the child's buffer starts empty: the parent's records stay home
        assert len(set(child_ids)) == 10
        assert not set(child_ids) & parent_ids
        prefixes = {i[:13] for i in child_ids} | {i[:13] for i in parent_ids}
        assert len(prefixes) == 2  # a fresh block in the child
    finally:
        collector.close()


def test_no_reference_is_leaked_on_the_fast_path_or_the_fallback() -> None:
    # Nothing leaves the buffer for storage (which would keep the records, and their refs).
    collector = TelemetryCollector(
        TelemetryConfig(flush_interval=3600, buffer_size=200_000, buffer_capacity=200_000)
    )
    name, unit, tags, source, message = "leak.check", "ms", {"a": "b"}, "src", "msg"
    meta: dict[str, Any] = {"k": 1}
    try:
        for _ in range(1000):  # warm up caches
            collector.collect_metric(name, 1.5, unit, tags)
        collector._metrics.clear()
        gc.collect()
        before = [sys.getrefcount(o) for o in (name, unit, tags, source, message, meta)]
        for _ in range(40_000):
            collector.collect_metric(name, 1.5, unit, tags)
            collector.collect_event(source, message, EventType.ERROR, meta)
            with pytest.raises(ValueError, match="must be finite"):
                collector.collect_metric(name, float("nan"), unit, tags)  # the fallback's error
            collector.collect_metric(name, 2.5, unit, tags, 123)  # the fallback's success
        collector._metrics.clear()
        collector._events.clear()
        gc.collect()
        after = [sys.getrefcount(o) for o in (name, unit, tags, source, message, meta)]
        assert after == before
    finally:
        collector.close()


@settings(max_examples=200, deadline=None)
@given(
    points=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "d"]),
            st.dictionaries(
                st.sampled_from(["k", "j"]), st.sampled_from(["1", "2", "3"]), max_size=2
            ),
        ),
        max_size=60,
    ),
    limits=st.tuples(st.integers(min_value=1, max_value=4), st.integers(min_value=1, max_value=5)),
)
def test_the_series_limit_skips_known_series_as_the_python_loop(
    points: list[tuple[str, dict[str, str]]], limits: tuple[int, int]
) -> None:
    """The dispatch thread's series limit lets C skip the points of known series; what it
    folds, and how, is the pure loop's (run with the compiled module taken away)."""
    import telemetry.collector as collector_module
    from telemetry.models import Metric

    max_sets, max_names = limits
    outcomes = []
    for compiled in (True, False):
        c = TelemetryCollector(TelemetryConfig(max_tag_sets=max_sets, max_metric_names=max_names))
        saved = collector_module._HOTPATH
        if not compiled:
            collector_module._HOTPATH = None
        try:
            batch = [Metric(n, 1.0, "", dict(t), 0, str(i)) for i, (n, t) in enumerate(points)]
            # Twice: the second pass meets the series the first let through.
            folded = [c._limit_cardinality(list(batch[: len(batch) // 2])),
                      c._limit_cardinality(batch)]  # fmt: skip
            outcomes.append((folded, [(m.name, m.tags) for m in batch]))
        finally:
            collector_module._HOTPATH = saved
            c.close()
    assert outcomes[0] == outcomes[1]


@settings(max_examples=300, deadline=None)
@given(value=values)
def test_histogram_observe_matches_the_pure_method(value: Any) -> None:
    from telemetry.instruments import Histogram

    fast = Histogram("h", "ms", {})
    pure = Histogram("h", "ms", {})
    results: list[tuple[str, Any]] = []
    for call in (lambda: fast.observe(value), lambda: Histogram.observe_pure(pure, value)):
        try:
            call()
            results.append(("ok", None))
        except Exception as exc:
            results.append(("raised", (type(exc).__name__, str(exc))))
    assert results[0] == results[1]
    assert fast._values == pure._values
    assert [math.copysign(1, v) for v in fast._values] == [
        math.copysign(1, v) for v in pure._values
    ]


def _counted(collector: TelemetryCollector, name: str) -> dict[str, float]:
    """What the dispatch thread reported for histogram ``name`` (it alone folds and collects
    instruments: a test must not collect them from its own thread)."""
    collector.flush()
    points: dict[str, float] = {}
    for m in collector.storage.query_metrics(f"{name}.count"):
        points["count"] = points.get("count", 0) + m.value
    for m in collector.storage.query_metrics(f"{name}.sum"):
        points["sum"] = points.get("sum", 0) + m.value
    for m in collector.storage.query_metrics(f"{name}.max"):
        points["max"] = max(points.get("max", m.value), m.value)
    return points


def test_histogram_hands_a_full_list_over_and_counts_every_observation() -> None:
    from telemetry.instruments import FOLD_AT

    collector = TelemetryCollector(TelemetryConfig(flush_interval=3600), storage=MemoryStorage())
    try:
        h = collector.histogram("h", "ms")
        assert type(type(h).__dict__["observe"]).__name__ == "instancemethod"
        for i in range(FOLD_AT + 5):
            h.observe(float(i))
        points = _counted(collector, "h")
        assert points["count"] == FOLD_AT + 5
        assert points["max"] == FOLD_AT + 4
    finally:
        collector.close()


def test_histogram_observations_from_threads_are_all_counted() -> None:
    collector = TelemetryCollector(TelemetryConfig(flush_interval=3600), storage=MemoryStorage())
    try:
        h = collector.histogram("h", "ms")

        def work() -> None:
            for i in range(30_000):
                h.observe(i % 100)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        points = _counted(collector, "h")
        assert points["count"] == 120_000
        assert points["sum"] == 4 * 300 * sum(range(100))
    finally:
        collector.close()
