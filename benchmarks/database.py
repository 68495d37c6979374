"""Embedded database storage: RIMP's DatabaseStorage against plain SQLite (and DuckDB).

Dataset (generated here, deterministic): 5,000,000 points in 50 series over 24 h
(5 metrics x 10 tag sets: host h0..h4 x region a/b), 1,000,000 events from
20 sources (one in 100,000 carries the rare word "kraken"). Every engine ingests
the same records in the same batches, then
answers the same queries; each query runs 7 times and the median and min
are reported. Run:

    ./dev bench database            # the full dataset (several minutes)
    ./dev bench database --quick    # 1/10 of it
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from telemetry import Event, EventType, Metric, TelemetryData
from telemetry.models import new_id
from telemetry.storage.database import DatabaseStorage

DAY_NS = 86_400 * 1_000_000_000
T0 = 1_796_083_200 * 1_000_000_000  # 2026-12-01 00:00 UTC, minute aligned
METRICS = ["cpu", "mem", "latency", "requests", "queue"]
TAGSETS = [{"host": f"h{h}", "region": r} for h in range(5) for r in ("a", "b")]
SOURCES = [f"svc{i}" for i in range(20)]
TYPES = [EventType.DEBUG, EventType.INFO, EventType.INFO, EventType.INFO, EventType.WARNING,
         EventType.ERROR]  # fmt: skip


def make_points(total: int) -> list[Metric]:
    """``total`` points over 50 series and 24 h, each series on a regular cadence with up to
    1 ms of jitter (as a periodic emitter records them), interleaved across series."""
    rng = random.Random(42)
    per_series = total // (len(METRICS) * len(TAGSETS))
    step = DAY_NS // per_series
    series = [(m, t) for m in METRICS for t in TAGSETS]
    levels = [50.0] * len(series)
    out: list[Metric] = []
    for i in range(per_series):
        base = T0 + i * step
        for s, (name, tags) in enumerate(series):
            if name == "latency":
                value = round(rng.lognormvariate(3, 0.6), 3)
            elif name == "requests":
                value = float(rng.randint(0, 20))
            else:
                levels[s] = min(100.0, max(0.0, levels[s] + rng.gauss(0, 1)))
                value = round(levels[s], 2)
            # a periodic emitter: one point per step, up to 1 ms late
            out.append(Metric(name, value, "", tags, base + rng.randrange(1_000_000), new_id()))
    return out


def make_events(total: int) -> list[Event]:
    """``total`` events over 24 h from 20 sources, ~1/6 of them errors; one in 100,000
    mentions "kraken" (what a search for a rare word looks for)."""
    rng = random.Random(7)
    step = DAY_NS // total
    return [
        Event(
            SOURCES[i % len(SOURCES)],
            f"request {i} handled in {rng.randint(1, 900)} ms"
            + (" by kraken" if i % 100_000 == 50_000 else ""),
            TYPES[rng.randrange(len(TYPES))],
            {"request": i, "path": "/api/users"},
            T0 + i * step,
            new_id(),
        )
        for i in range(total)
    ]


class PlainSQLite:
    """The reference: SQLite done the straightforward way."""

    name = "plain SQLite"

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.executescript(
            """
            PRAGMA journal_mode = WAL;
            PRAGMA synchronous = NORMAL;
            CREATE TABLE series (id INTEGER PRIMARY KEY, name TEXT, tags TEXT,
                                 UNIQUE (name, tags));
            CREATE TABLE points (series_id INTEGER, time_ns INTEGER, value REAL,
                                 PRIMARY KEY (series_id, time_ns)) WITHOUT ROWID;
            CREATE TABLE events (id TEXT, time_ns INTEGER, source TEXT, type TEXT,
                                 message TEXT, metadata TEXT);
            CREATE INDEX events_time ON events (time_ns);
            CREATE INDEX events_src ON events (source, type, time_ns);
            """
        )
        self.ids: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}

    def store(self, data: TelemetryData) -> None:
        c = self.conn
        c.execute("BEGIN")
        rows = []
        for m in data.metrics:
            key = (m.name, tuple(sorted(m.tags.items())))
            sid = self.ids.get(key)
            if sid is None:
                sid = c.execute(
                    "INSERT INTO series (name, tags) VALUES (?, ?)",
                    (m.name, json.dumps(m.tags, sort_keys=True)),
                ).lastrowid
                self.ids[key] = sid  # type: ignore[assignment]
            rows.append((sid, m.time_ns, m.value))
        c.executemany("INSERT INTO points VALUES (?, ?, ?)", rows)
        c.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
            [
                (e.id, e.time_ns, e.source, e.event_type.value, e.message, json.dumps(e.metadata))
                for e in data.events
            ],
        )
        c.execute("COMMIT")

    def sid(self, name: str, tags: dict[str, str]) -> int:
        return self.ids[(name, tuple(sorted(tags.items())))]

    def q1(self) -> Any:
        return self.conn.execute(
            "SELECT time_ns / 60000000000, avg(value), min(value), max(value), count(*) "
            "FROM points WHERE series_id = ? AND time_ns >= ? AND time_ns < ? GROUP BY 1",
            (self.sid("cpu", TAGSETS[0]), T0, T0 + DAY_NS),
        ).fetchall()

    def q2(self) -> Any:
        return self.conn.execute(
            "SELECT json_extract(s.tags, '$.host'), p.time_ns / 60000000000, avg(p.value) "
            "FROM points p JOIN series s ON s.id = p.series_id "
            "WHERE s.name = 'latency' AND p.time_ns >= ? AND p.time_ns < ? GROUP BY 1, 2",
            (T0, T0 + DAY_NS),
        ).fetchall()

    def p95(self) -> Any:
        rows = self.conn.execute(
            "SELECT time_ns, value FROM points WHERE series_id = ? AND time_ns >= ? "
            "AND time_ns < ? ORDER BY time_ns",
            (self.sid("latency", TAGSETS[0]), T0, T0 + DAY_NS),
        ).fetchall()
        buckets: dict[int, list[float]] = {}
        for t, v in rows:
            buckets.setdefault(t - t % 300_000_000_000, []).append(v)
        return {b: sorted(v)[int(0.95 * (len(v) - 1))] for b, v in buckets.items()}

    def errors(self) -> Any:
        return self.conn.execute(
            "SELECT * FROM events WHERE source = 'svc3' AND type = 'error' AND time_ns >= ? "
            "ORDER BY time_ns DESC LIMIT 100",
            (T0 + DAY_NS - 3600 * 1_000_000_000,),
        ).fetchall()

    def q5(self) -> Any:
        return self.conn.execute(
            "SELECT time_ns / 60000000000, type, count(*) FROM events "
            "WHERE time_ns >= ? AND time_ns < ? GROUP BY 1, 2",
            (T0, T0 + DAY_NS),
        ).fetchall()

    def search(self) -> Any:
        return self.conn.execute(
            "SELECT * FROM events WHERE message LIKE '%kraken%' AND time_ns >= ? "
            "AND time_ns < ? ORDER BY time_ns DESC LIMIT 100",
            (T0, T0 + DAY_NS),
        ).fetchall()

    def metric_bytes(self) -> int:
        return sum(
            r[0]
            for r in self.conn.execute(
                "SELECT sum(pgsize) FROM dbstat WHERE name IN ('points', 'series')"
            )
        )

    def event_bytes(self) -> int:
        return sum(
            r[0]
            for r in self.conn.execute(
                "SELECT sum(pgsize) FROM dbstat WHERE name IN "
                "('events', 'events_time', 'events_src')"
            )
        )

    def close(self) -> None:
        self.conn.close()


class Rimp:
    """RIMP's DatabaseStorage through its public protocol."""

    name = "RIMP DatabaseStorage"

    def __init__(self, path: Path) -> None:
        self.storage = DatabaseStorage(path)
        self.path = path

    def store(self, data: TelemetryData) -> None:
        self.storage.store(data)

    def q1(self) -> Any:
        s = self.storage
        window = {"since": T0, "until": T0 + DAY_NS, "tags": TAGSETS[0], "bucket": 60}
        return [s.aggregate("cpu", agg=a, **window) for a in ("avg", "min", "max", "count")]  # type: ignore[arg-type]

    def q2(self) -> Any:
        return self.storage.aggregate(
            "latency", agg="avg", bucket=60, since=T0, until=T0 + DAY_NS, group_by=["host"]
        )

    def p95(self) -> Any:
        return self.storage.aggregate(
            "latency", agg="p95", bucket=300, since=T0, until=T0 + DAY_NS, tags=TAGSETS[0]
        )

    def errors(self) -> Any:
        return self.storage.query_events(
            source="svc3", event_type="error", since=T0 + DAY_NS - 3600 * 1_000_000_000, limit=100
        )

    def q5(self) -> Any:
        return self.storage.count_events(bucket=60, since=T0, until=T0 + DAY_NS)

    def search(self) -> Any:
        return self.storage.query_events(search="kraken", since=T0, until=T0 + DAY_NS)

    def event_bytes(self) -> int:
        return sum(
            r[0] or 0
            for r in self.storage._conn.execute(
                "SELECT sum(pgsize) FROM dbstat WHERE name IN ('events', "
                "'events_source_type_time', 'event_blocks', 'event_blocks_end', "
                "'event_blocks_source_end', 'event_counts', 'event_type_counts')"
            )
        )

    def metric_bytes(self) -> int:
        conn = self.storage._conn
        return sum(
            r[0]
            for r in conn.execute(
                "SELECT sum(pgsize) FROM dbstat WHERE name IN "
                "('series', 'chunks', 'chunks_series_time', 'rollup_1m')"
            )
        )

    def close(self) -> None:
        self.storage.close()


ENGINES: list[Callable[[Path], Any]] = [PlainSQLite, Rimp]


def timed(fn: Callable[[], Any], repeat: int = 7) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs), min(runs)


def ingest(engine: Any, records: list[Any], batch: int, *, events: bool = False) -> float:
    """Records/s through ``store()`` in ``batch``-sized batches."""
    gc.collect()
    start = time.perf_counter()
    for i in range(0, len(records), batch):
        chunk = records[i : i + batch]
        engine.store(TelemetryData(chunk, []) if events else TelemetryData([], chunk))
    return len(records) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tenth of the dataset")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    points = make_points(5_000_000 // scale)
    events = make_events(1_000_000 // scale)
    print(
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{len(points):,} points in 50 series over 24 h, {len(events):,} events, "
        f"{os.cpu_count()} cores"
    )
    results: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        engines = []
        for make in ENGINES:
            row: dict[str, str] = {}
            small = make(Path(tmp) / f"{make.__name__}-1k.db")
            rate_1k = ingest(small, points[: len(points) // 5], 1_000)
            small.close()
            engine = make(Path(tmp) / f"{make.__name__}.db")
            rate_10k = ingest(engine, points, 10_000)
            row["points/s (batch 1k, first 20 %)"] = f"{rate_1k:,.0f}"
            row["points/s (batch 10k)"] = f"{rate_10k:,.0f}"
            engines.append((engine, row))
        # Events: the engines take turns batch by batch, so both meet the same noise.
        spent = [0.0] * len(engines)
        gc.collect()
        for i in range(0, len(events), 10_000):
            batch = TelemetryData(events[i : i + 10_000], [])
            for k, (engine, _) in enumerate(engines):
                start = time.perf_counter()
                engine.store(batch)
                spent[k] += time.perf_counter() - start
        for k, (engine, row) in enumerate(engines):
            row["events/s (batch 10k, interleaved)"] = f"{len(events) / spent[k]:,.0f}"
            for q in ("q1", "q2", "p95", "errors", "q5", "search"):
                med, low = timed(getattr(engine, q))
                row[q] = f"{med * 1e3:.1f} ms (min {low * 1e3:.1f})"
            row["bytes/point"] = f"{engine.metric_bytes() / len(points):.2f}"
            row["bytes/event"] = f"{engine.event_bytes() / len(events):.1f}"
            engine.close()
            results[engine.name] = row
            print(f"done: {engine.name}", file=sys.stderr)
        plain, rimp = spent
        print(f"events: RIMP / plain SQLite = {plain / rimp:.2f}x", file=sys.stderr)
        irregular_rows = irregular(Path(tmp), 1_000_000 // scale)
    cols = list(next(iter(results.values())))
    print("\n| engine | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for name, row in results.items():
        print(f"| {name} | " + " | ".join(row[c] for c in cols) + " |")
    print("\nIrregular points (10 series over 24 h at random instants, log-normal values):\n")
    print("| times | RIMP bytes/point | plain SQLite bytes/point | points/s RIMP / plain |")
    print("|---|---:|---:|---:|")
    print("\n".join(irregular_rows))


def irregular(tmp: Path, total: int) -> list[str]:
    """Bytes per point and ingest on irregular data as dense as the main dataset: 10
    series over 24 h, each point at a random instant inside its interval (not a cadence),
    log-normal values rounded to two decimals; with times in whole milliseconds (what most
    clients send) and in nanoseconds."""
    rows = []
    for label, unit in (("ms times", 1_000_000), ("ns times", 1)):
        rng = random.Random(3)
        per = total // 10
        step = DAY_NS // per
        points = [
            Metric(
                "latency",
                round(rng.lognormvariate(3, 0.6), 2),
                "ms",
                {"host": f"h{s}"},
                T0 + i * step + rng.randrange(step // unit) * unit,
                new_id(),
            )
            for i in range(per)
            for s in range(10)
        ]
        rates = {}
        sizes = {}
        for make in ENGINES:
            engine = make(tmp / f"irregular-{unit}-{make.__name__}.db")
            rates[engine.name] = ingest(engine, points, 10_000)
            sizes[engine.name] = engine.metric_bytes() / len(points)
            engine.close()
        plain, rimp = (rates[e] for e in ("plain SQLite", "RIMP DatabaseStorage"))
        rows.append(
            f"| {label} | {sizes['RIMP DatabaseStorage']:.2f} | {sizes['plain SQLite']:.2f} | "
            f"{rimp:,.0f} / {plain:,.0f} ({rimp / plain:.2f}x) |"
        )
    return rows


if __name__ == "__main__":
    main()
