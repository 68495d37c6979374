"""RIMP past one machine: PostgreSQL storage, queries, and a whole cluster on this box.

Run with the project's environment, PostgreSQL on 127.0.0.1:5432 and NATS with JetStream on
127.0.0.1:4222 (``.ci/run`` starts both)::

    ./dev bench scaleout                  # all three parts (about 4 minutes)
    ./dev bench scaleout --part storage   # writer path against a bare COPY + upsert loop
    ./dev bench scaleout --part queries   # the three queries on 1 M events
    ./dev bench scaleout --part cluster --seconds 60
    ./dev bench scaleout --quick          # smaller sizes, 15 s of cluster load

Parts:

- **storage**: the writer's path (``PostgresStorage.store_many``, what a bus writer calls:
  row preparation, binary COPY into staging, ``INSERT ... ON CONFLICT DO NOTHING``, the
  per-minute counts) against a bare loop written here (the same COPY into staging and the
  same upsert into a table of the same shape, nothing else), on the same batches,
  interleaved batch by batch, in one run.
- **queries**: 1 M events over one day (20 sources, 5 types) and one series with a point
  per second, then: the latest 100 errors of a source, events per minute and type over the
  day, the series' day in 1-minute buckets. Medians of 20 runs after one warm-up.
- **cluster**: NATS, PostgreSQL, two ``rimp serve --bus`` nodes and a load generator
  (processes posting batches of 1,000 events with ids of their own, half to each node),
  for ``--seconds``. Reports events/s answered 202, then checks in PostgreSQL that every
  acknowledged id is stored exactly once, and how the CPU time split between processes.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psycopg

from _net import free_port
from telemetry.models import Event, EventType, Metric, TelemetryData, new_id
from telemetry.storage.postgres import PostgresStorage

PG = os.environ.get("RIMP_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
NATS = os.environ.get("RIMP_BENCH_NATS", "nats://127.0.0.1:4222")
DAY_NS = 86_400 * 10**9
T0 = 1_796_083_200 * 10**9  # a whole day
TYPES = list(EventType)


def events(n: int, start: int = 0, total: int | None = None) -> list[Event]:
    """Events ``start`` to ``start + n`` of ``total`` (default ``n``) spread evenly over one
    day: 20 sources, every type."""
    step = DAY_NS // max(total or n, 1)
    return [
        Event(
            f"svc-{i % 20}",
            f"request {i} finished in {i % 997} ms",
            TYPES[i % len(TYPES)],
            {"i": i, "user": f"u{i % 1000}"},
            T0 + (start + i) * step,
            new_id(),
        )
        for i in range(n)
    ]


# --- storage -----------------------------------------------------------------------------------

BARE_TABLE = """
CREATE TABLE bare_events (
    time_ns bigint NOT NULL, id text NOT NULL, source text NOT NULL, event_type text NOT NULL,
    message text NOT NULL, metadata text NOT NULL, PRIMARY KEY (id, time_ns)
) PARTITION BY RANGE (time_ns);
CREATE INDEX ON bare_events (time_ns);
CREATE INDEX ON bare_events (source, time_ns);
CREATE INDEX ON bare_events (event_type, time_ns);
CREATE TABLE bare_events_d PARTITION OF bare_events FOR VALUES FROM ({lo}) TO ({hi});
CREATE TEMP TABLE bare_stage (
    time_ns bigint, id text, source text, event_type text, message text, metadata text
) ON COMMIT DELETE ROWS;
"""
_meta = msgspec.json.Encoder()


def bare_store(conn: psycopg.Connection[Any], batch: list[Event]) -> None:
    """The loop the writer's path is held against: rows, COPY, upsert, commit."""
    with conn.transaction(), conn.cursor() as cur:
        with cur.copy("COPY bare_stage FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["bigint", "text", "text", "text", "text", "text"])
            for e in batch:
                copy.write_row(
                    (e.time_ns, e.id, e.source, e.event_type.value, e.message,
                     _meta.encode(e.metadata).decode())
                )  # fmt: skip
        cur.execute("INSERT INTO bare_events SELECT * FROM bare_stage ON CONFLICT DO NOTHING")


def part_storage(total: int, batch_size: int) -> list[str]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    storage = PostgresStorage(PG, schema=schema)
    bare = psycopg.connect(PG, autocommit=True)
    bare.execute(f"SET search_path TO {schema}")
    day = T0 // DAY_NS
    bare.execute(BARE_TABLE.format(lo=day * DAY_NS, hi=(day + 1) * DAY_NS))
    data = events(total)
    batches = [data[i : i + batch_size] for i in range(0, total, batch_size)]
    rimp_s = bare_s = 0.0
    try:
        for b in batches:  # interleaved, so both meet the same noise
            t = time.perf_counter()
            storage.store_many([TelemetryData(events=b)])
            rimp_s += time.perf_counter() - t
            t = time.perf_counter()
            bare_store(bare, b)
            bare_s += time.perf_counter() - t
        again = time.perf_counter()
        storage.store_many([TelemetryData(events=b) for b in batches[:10]])
        replay = 10 * batch_size / (time.perf_counter() - again)
    finally:
        bare.close()
        storage.drop()
    rimp, plain = total / rimp_s, total / bare_s
    return [
        "### Writer path against a bare COPY + upsert loop\n",
        f"{total:,} events in batches of {batch_size:,}, interleaved batch by batch.\n",
        "| path | events/s | ratio |",
        "|---|---:|---:|",
        f"| bare staging COPY + `INSERT ... ON CONFLICT DO NOTHING` | {plain:,.0f} | 1.00 |",
        f"| `PostgresStorage.store_many` (+ per-minute counts) | {rimp:,.0f} | "
        f"{rimp / plain:.2f} (target >= 0.80) |",
        f"| the same batches again (a redelivery: nothing stored) | {replay:,.0f} | |",
        "",
    ]


# --- queries -----------------------------------------------------------------------------------


def timed(fn: Any, runs: int = 20) -> float:
    fn()
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000


def part_queries(total: int) -> list[str]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    storage = PostgresStorage(PG, schema=schema)
    try:
        t = time.perf_counter()
        for start in range(0, total, 10_000):
            storage.store(TelemetryData(events=events(10_000, start, total)))
        step = 10**9
        points = [
            Metric("latency", float(i % 500), "ms", {"host": "a"}, T0 + i * step, new_id())
            for i in range(86_400)
        ]
        for i in range(0, len(points), 10_000):
            storage.store(TelemetryData(metrics=points[i : i + 10_000]))
        load = time.perf_counter() - t
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f"ANALYZE {schema}.events")  # what autovacuum does after a load
        rows = [
            ("latest 100 errors of a source",
             lambda: storage.query_events(source="svc-3", event_type="error", limit=100), 2),
            ("events per minute and type over the day",
             lambda: storage.count_events(since=T0, until=T0 + DAY_NS), 50),
            ("one series' day in 1-minute buckets",
             lambda: storage.aggregate("latency", agg="avg", bucket=60, since=T0,
                                       until=T0 + DAY_NS), 30),
        ]  # fmt: skip
        lines = [
            f"### Queries on {total:,} events in PostgreSQL\n",
            f"Loaded through `PostgresStorage.store` in {load:.1f} s (plus 86,400 points of one "
            "series); medians of 20 runs.\n",
            "| query | ms | target |",
            "|---|---:|---|",
        ]
        for label, fn, target in rows:
            ms = timed(fn)
            verdict = "met" if ms <= target else "**missed**"
            lines.append(f"| {label} | {ms:.2f} | <= {target} ms: {verdict} |")
        return [*lines, ""]
    finally:
        storage.drop()


# --- cluster -----------------------------------------------------------------------------------


def generate(url: str, gen: int, seconds: float, batch: int, out: Any) -> None:
    """One load process: batches of ``batch`` events with ids ``<gen><n>`` to one node;
    reports the acknowledged id ranges."""
    acked: list[tuple[int, int]] = []
    sent = n = 0
    encoder = msgspec.json.Encoder()
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=30) as client:
        while time.monotonic() < deadline:
            body = encoder.encode(
                [
                    {"source": f"gen-{gen}", "message": "load", "id": f"{gen:04x}{n + i:012x}",
                     "metadata": {"i": n + i}}
                    for i in range(batch)
                ]
            )  # fmt: skip
            sent += batch
            try:
                response = client.post(
                    "/api/v1/events", content=body, headers={"Content-Type": "application/json"}
                )
            except httpx.TransportError:
                n += batch
                continue
            if response.status_code == 202:
                acked.append((n, n + batch))
            n += batch
    out.put((gen, acked, sent, time.process_time()))


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def pids_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def part_cluster(seconds: float, generators: int) -> list[str]:
    stream = f"RIMP_BENCH_{uuid.uuid4().hex[:8]}"
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    home = Path(tempfile.mkdtemp(prefix="rimp-scaleout-"))
    storage_url = f"{PG}?schema={schema}"
    nodes = []
    ports = [free_port(), free_port()]
    for k, port in enumerate(ports):
        log = (home / f"node{k}.log").open("wb")
        nodes.append(
            subprocess.Popen(
                [sys.executable, "-m", "telemetry.cli", "serve", "--port", str(port),
                 "--data-dir", str(home / f"n{k}"), "--storage", storage_url, "--bus", NATS,
                 "--bus-stream", stream, "--log-level", "warning", "--max-pending", "200000"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
    try:
        for port in ports:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            else:
                raise SystemExit(f"node on {port} did not start: see {home}")
        watched = {
            "RIMP nodes (ingest + writers)": [p.pid for p in nodes],
            "nats-server": pids_named("nats-server"),
            "PostgreSQL": pids_named("postgres"),
        }
        queue: Any = mp.Queue()
        procs = [
            mp.Process(
                target=generate,
                args=(f"http://127.0.0.1:{ports[g % 2]}", g, seconds, 1000, queue),
            )
            for g in range(generators)
        ]
        before = {k: cpu_seconds(v) for k, v in watched.items()}
        started = time.perf_counter()
        for p in procs:
            p.start()
        results = [queue.get(timeout=seconds + 120) for _ in procs]
        for p in procs:
            p.join(30)
        load_s = time.perf_counter() - started
        acked_total = sum(hi - lo for _, ranges, _, _ in results for lo, hi in ranges)
        sent_total = sum(s for _, _, s, _ in results)
        generators_cpu = sum(c for *_, c in results)
        # Stored: wait until every acknowledged event is in PostgreSQL (the writers drain).
        with psycopg.connect(PG, autocommit=True) as conn:
            deadline = time.monotonic() + 300
            stored = 0
            while time.monotonic() < deadline:
                row = conn.execute(f"SELECT count(*) FROM {schema}.events").fetchone()
                stored = int(row[0]) if row else 0
                if stored >= acked_total:
                    break
                time.sleep(0.5)
            drained_s = time.perf_counter() - started
            after = {k: cpu_seconds(v) for k, v in watched.items()}
            duplicates = conn.execute(
                f"SELECT count(*) - count(DISTINCT id) FROM {schema}.events"
            ).fetchone()
            conn.execute("CREATE TEMP TABLE acked (gen int, lo bigint, hi bigint)")
            with conn.cursor().copy("COPY acked FROM STDIN") as copy:
                for gen, ranges, _, _ in results:
                    for lo, hi in ranges:
                        copy.write_row((gen, lo, hi))
            missing = conn.execute(
                "SELECT count(*) FROM acked a, generate_series(a.lo, a.hi - 1) AS n "
                f"WHERE NOT EXISTS (SELECT 1 FROM {schema}.events e WHERE e.id = "
                "lpad(to_hex(a.gen), 4, '0') || lpad(to_hex(n), 12, '0'))"
            ).fetchone()
    finally:
        for node in nodes:
            node.terminate()
        for node in nodes:
            node.wait(60)
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        subprocess.run(
            [sys.executable, "-c", _DELETE_STREAM, NATS, stream], check=False, timeout=30
        )
    cpu = {k: after[k] - before[k] for k in before}
    cpu["load generators (while loading)"] = generators_cpu
    lines = [
        f"### The whole cluster on this box for {seconds:.0f} s\n",
        f"2 nodes (`rimp serve --bus`, one writer each), NATS, PostgreSQL and {generators} load "
        f"processes posting batches of 1,000 events, half to each node.\n",
        "| figure | value |",
        "|---|---:|",
        f"| events sent | {sent_total:,} |",
        f"| events answered 202 | {acked_total:,} ({acked_total / load_s:,.0f}/s; target "
        f">= 60,000/s) |",
        f"| all acknowledged events stored after | {drained_s:.1f} s "
        f"({stored / drained_s:,.0f}/s stored end to end) |",
        f"| acknowledged but missing | {missing[0] if missing else '?'} |",
        f"| stored twice | {duplicates[0] if duplicates else '?'} |",
        "",
        f"CPU seconds while loading and draining (2 cores: at most {2 * drained_s:.0f} s):\n",
        "| process | CPU s | share |",
        "|---|---:|---:|",
    ]
    busy = sum(cpu.values())
    for name, value in cpu.items():
        lines.append(f"| {name} | {value:.1f} | {value / max(busy, 1e-9):.0%} |")
    return [*lines, ""]


_DELETE_STREAM = """
import asyncio, sys, nats
async def main():
    nc = await nats.connect(sys.argv[1])
    try:
        await nc.jetstream().delete_stream(sys.argv[2])
    finally:
        await nc.close()
asyncio.run(main())
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "storage", "queries", "cluster"), default="all")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=60.0, help="cluster load duration")
    parser.add_argument("--generators", type=int, default=4, help="load processes")
    args = parser.parse_args()
    out = ["## Scale-out: PostgreSQL and NATS JetStream (`./dev bench scaleout`)\n"]
    if args.part in ("all", "storage"):
        out += part_storage(100_000 if args.quick else 300_000, 5_000)
    if args.part in ("all", "queries"):
        out += part_queries(200_000 if args.quick else 1_000_000)
    if args.part in ("all", "cluster"):
        out += part_cluster(15.0 if args.quick else args.seconds, args.generators)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
