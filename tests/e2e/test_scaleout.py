"""RIMP nodes on NATS JetStream and PostgreSQL: real ``rimp serve`` processes, the machine's
NATS and PostgreSQL, a stream and a schema of their own per test.

What is checked is the contract of docs/scaling.md: a record answered 202 by any node is
stored exactly once, whatever dies; every node's live feed and queries show every node's
records; a node that cannot reach its bus or its database does not start; a node that
loses its bus answers 503 until the bus is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import (
    RimpServer,
    SSEClient,
    free_port,
    missing_service,
    poll,
)

psycopg = pytest.importorskip("psycopg", reason="needs the postgres extra")
nats = pytest.importorskip("nats", reason="needs the nats extra")

NATS_URL = os.environ.get("RIMP_TEST_NATS", "nats://127.0.0.1:4222")


def _reachable(url: str) -> bool:
    host, port = url.removeprefix("nats://").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        return False
    return True


@pytest.fixture
def stream() -> Iterator[str]:
    """A JetStream stream name of this test's own, deleted after."""
    if not _reachable(NATS_URL):
        missing_service(f"NATS with JetStream is not running at {NATS_URL} (nats-server -js)")
    name = f"RIMP_T_{uuid.uuid4().hex[:10]}"
    yield name
    asyncio.run(_delete_stream(NATS_URL, name))


async def _delete_stream(url: str, name: str) -> None:
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=1)
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()


@pytest.fixture
def database(postgres_url: str) -> Iterator[str]:
    """A storage URL on this run's database, in a schema of this test's own."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    yield f"{postgres_url}?schema={schema}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def stored_ids(url: str) -> list[str]:
    """Every stored event id, once per row (duplicates would show twice)."""
    base, schema = url.split("?schema=")
    with psycopg.connect(base) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (f"{schema}.events",)).fetchone()
        if exists is None or exists[0] is None:
            return []
        return [r[0] for r in conn.execute(f"SELECT id FROM {schema}.events").fetchall()]


def node(
    tmp_path: Path, name: str, database: str, bus: str, stream: str, *extra: str
) -> RimpServer:
    return RimpServer(
        tmp_path / name,
        "--storage", database,
        "--bus", bus,
        "--bus-stream", stream,
        "--bus-ack-wait", "3",
        "--ack-timeout", "5",
        *extra,
    )  # fmt: skip


def batch(prefix: str, n: int) -> list[dict[str, Any]]:
    """``n`` events with ids chosen here, so what is stored can be checked by id."""
    return [
        {"source": "scale", "message": f"{prefix} {i}", "id": uuid.uuid4().hex[:16]}
        for i in range(n)
    ]


def wait_stored(url: str, want: set[str], timeout: float = 60) -> list[str]:
    """Poll the database until every id of ``want`` is stored; return all stored ids."""
    found: list[str] = []

    def done() -> bool:
        found[:] = stored_ids(url)
        return want <= set(found)

    assert poll(done, timeout, 0.2), f"{len(want - set(found))} accepted events never stored"
    return found


class TestTwoNodes:
    def test_a_record_accepted_by_one_node_is_live_and_queried_on_the_other(
        self, tmp_path: Path, database: str, stream: str
    ) -> None:
        """A, B on one stream and one database: an event posted to A reaches B's SSE feed
        (once stored) and B's queries; 10,000 events through both are stored exactly once."""
        with (
            node(tmp_path, "a", database, NATS_URL, stream) as a,
            node(tmp_path, "b", database, NATS_URL, stream) as b,
            a.client() as ca,
            b.client(timeout=30) as cb,
            SSEClient(cb, params={"source": "scale"}) as feed,
        ):
            hello = batch("hello", 1)
            assert ca.post("/api/v1/events", json=hello).status_code == 202
            (message,) = feed.until(lambda m: m.event == "event")
            assert message.json()["id"] == hello[0]["id"]
            # The live feed shows stored records only: B's queries have it already.
            found = cb.get("/api/v1/events", params={"source": "scale"}).json()["events"]
            assert [e["id"] for e in found] == [hello[0]["id"]]

            sent = {hello[0]["id"]}
            for k in range(10):
                for client in (ca, cb):
                    records = batch(f"load {k}", 500)
                    assert client.post("/api/v1/events", json=records).status_code == 202
                    sent |= {r["id"] for r in records}
            stored = wait_stored(database, sent)
            metrics = cb.get("/metrics").text
            assert "rimp_bus_connected 1.0" in metrics
            assert "# TYPE rimp_bus_feed_ack_floor gauge" in metrics
            assert cb.get("/readyz").status_code == 200
        assert len(sent) == 10_001
        assert len(stored) == len(set(stored)) == 10_001, "an event was stored twice"
        assert set(stored) == sent

    def test_kill_9_of_a_node_loses_nothing_it_acknowledged(
        self, tmp_path: Path, database: str, stream: str
    ) -> None:
        """Clients post to both nodes; A is killed with SIGKILL mid-run. Every event
        answered 202 (by A or B) is stored once, and nothing else is stored."""
        a = node(tmp_path, "a", database, NATS_URL, stream).start()
        b = node(tmp_path, "b", database, NATS_URL, stream).start()
        acked: set[str] = set()
        sent: set[str] = set()
        lock = threading.Lock()
        a_posted = threading.Event()

        def post_to(server: RimpServer, batches: int, signal_after: int | None) -> None:
            with server.client(timeout=10) as client:
                for k in range(batches):
                    records = batch(f"k{k}", 100)
                    with lock:
                        sent.update(r["id"] for r in records)
                    try:
                        response = client.post("/api/v1/events", json=records)
                    except httpx.TransportError:
                        return  # the node is gone: this batch may or may not be stored
                    if response.status_code == 202:
                        with lock:
                            acked.update(r["id"] for r in records)
                    if signal_after is not None and k == signal_after:
                        a_posted.set()

        try:
            posters = [
                threading.Thread(target=post_to, args=(a, 200, 20)),
                threading.Thread(target=post_to, args=(b, 60, None)),
            ]
            for t in posters:
                t.start()
            assert a_posted.wait(60), "node A never took 20 batches"
            a.kill()  # SIGKILL: no drain, no goodbye
            for t in posters:
                t.join(120)
            stored = wait_stored(database, acked)
        finally:
            a.kill()
            b.stop()
        assert len(acked) >= 2_000
        assert len(stored) == len(set(stored)), "an event was stored twice"
        assert set(stored) <= sent, "an event nobody sent was stored"


class TestOneNodeOnPostgres:
    def test_without_a_bus_a_node_stores_and_answers_from_postgres(
        self, tmp_path: Path, database: str
    ) -> None:
        """``rimp serve --storage postgresql://...`` alone: ingest, the JSON queries and
        the Prometheus API all work on PostgreSQL."""
        now = time.time_ns()
        points = [
            {"name": "pg.rt", "value": float(i), "tags": {"host": "a"}, "time_ns": now - i * 10**9}
            for i in range(60)
        ]
        with RimpServer(tmp_path / "n", "--storage", database) as server, server.client() as c:
            assert c.post("/api/v1/events", json=batch("alone", 3)).status_code == 202
            assert c.post("/api/v1/metrics", json=points).status_code == 202
            found = c.get("/api/v1/events", params={"source": "scale"}).json()["events"]
            assert len(found) == 3
            groups = c.get(
                "/api/v1/metrics/pg.rt/aggregate",
                params={"agg": "count", "bucket": "1h", "since": "-2h"},
            ).json()["groups"]
            assert sum(b["count"] for g in groups for b in g["buckets"]) == 60
            answer = c.get("/prometheus/api/v1/query", params={"query": "pg_rt"}).json()
            assert answer["status"] == "success"
            assert answer["data"]["result"][0]["value"][1] == "0"


class TestWriterKilled:
    def test_kill_9_of_a_writer_between_commit_and_ack_stores_nothing_twice(
        self, tmp_path: Path, database: str, stream: str
    ) -> None:
        """An ingest-only node fills the stream; a writer node dies (exit 137, as after
        kill -9) right after its first commit, before any acknowledgement; a second writer
        gets the same messages again after the ack wait. Every event is stored once."""
        sent: set[str] = set()
        with node(tmp_path, "in", database, NATS_URL, stream, "--role", "ingest") as ingest:
            with ingest.client() as client:
                for k in range(20):
                    records = batch(f"w{k}", 100)
                    assert client.post("/api/v1/events", json=records).status_code == 202
                    sent |= {r["id"] for r in records}
            dying = RimpServer(
                tmp_path / "w1",
                *node(tmp_path, "w1", database, NATS_URL, stream, "--role", "writer").args,
                env={"RIMP_FAILPOINTS": "bus-writer-after-commit=exit"},
            )
            with contextlib.suppress(RuntimeError):  # it may die before it answers
                dying.start()
            assert dying.proc is not None
            assert dying.proc.wait(60) == 137, dying.output()
            assert stored_ids(database), "the dying writer committed nothing before dying"
            with (
                node(tmp_path, "w2", database, NATS_URL, stream, "--role", "writer") as w2,
                w2.client() as c2,
            ):
                # Every message comes back to the second writer, which stores it again.
                assert poll(lambda: redelivered(c2) >= 20, 60, 0.2), redelivered(c2)
                stored = wait_stored(database, sent)
        assert len(stored) == len(set(stored)) == len(sent) == 2_000


def redelivered(client: httpx.Client) -> float:
    """The node's ``rimp_bus_writers_redelivered_total``."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("rimp_bus_writers_redelivered_total "):
            return float(line.split()[1])
    return 0.0


class TestStart:
    def test_an_unreachable_bus_stops_the_start(
        self, tmp_path: Path, database: str, stream: str
    ) -> None:
        """No NATS at the URL: exit code 2 and a message naming the bus and its URL."""
        dead = f"nats://127.0.0.1:{free_port()}"
        server = node(tmp_path, "n", database, dead, stream)
        with pytest.raises(RuntimeError, match="exited with 2"):
            server.start(timeout=30)
        assert "--bus: " in server.output()
        assert dead in server.output()

    def test_an_unreachable_database_stops_the_start(self, tmp_path: Path, stream: str) -> None:
        """No PostgreSQL at the URL: exit code 2 and a message naming the database."""
        dead = f"postgresql://rimp@127.0.0.1:{free_port()}/telemetry"
        server = node(tmp_path, "n", dead, NATS_URL, stream)
        with pytest.raises(RuntimeError, match="exited with 2"):
            server.start(timeout=30)
        assert "PostgresStorage" in server.output()
        assert "cannot connect" in server.output()


def _nats_server(port: int, store: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("nats-server")
    if binary is None:
        missing_service("nats-server is not on PATH (the bus-loss test runs a server of its own)")
    proc = subprocess.Popen(
        [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert poll(lambda: _reachable(f"nats://127.0.0.1:{port}"), 15, 0.05)
    return proc


class TestOutages:
    def test_losing_the_bus_answers_503_until_it_is_back(
        self, tmp_path: Path, database: str
    ) -> None:
        """A node on a NATS server of the test's own: with NATS killed, ingest answers 503
        with Retry-After and /readyz says why; NATS restarted, the node recovers by itself
        and everything it answered 202 is stored."""
        port = free_port()
        store = tmp_path / "nats"
        bus = f"nats://127.0.0.1:{port}"
        nats_proc = _nats_server(port, store)
        server = node(tmp_path, "n", database, bus, "RIMP_OUTAGE", "--ack-timeout", "2").start()
        acked: set[str] = set()
        try:
            with server.client(timeout=15) as client:
                first = batch("before", 10)
                assert client.post("/api/v1/events", json=first).status_code == 202
                acked |= {r["id"] for r in first}
                nats_proc.kill()
                nats_proc.wait(10)

                def refused() -> bool:
                    response = client.post("/api/v1/events", json=batch("during", 1))
                    return response.status_code == 503 and "retry-after" in response.headers

                assert poll(refused, 30, 0.2), "ingest never answered 503 without its bus"
                assert client.get("/readyz").status_code == 503

                nats_proc = _nats_server(port, store)

                def accepted() -> bool:
                    records = batch("after", 10)
                    if client.post("/api/v1/events", json=records).status_code != 202:
                        return False
                    acked.update(r["id"] for r in records)
                    return True

                assert poll(accepted, 60, 0.5), "the node did not recover with its bus"
                assert poll(lambda: client.get("/readyz").status_code == 200, 30, 0.2)
            stored = wait_stored(database, acked)
            assert len(stored) == len(set(stored))
        finally:
            server.stop()
            nats_proc.kill()
            nats_proc.wait(10)

    def test_the_database_restarted_mid_run_loses_nothing(
        self, tmp_path: Path, database: str, stream: str
    ) -> None:
        """PostgreSQL is restarted (pg_ctlcluster) while a client posts: ingest goes on
        (the bus holds the batches), and once the database is back every event answered
        202 is stored exactly once."""
        cluster = _pg_cluster()
        acked: set[str] = set()
        with node(tmp_path, "n", database, NATS_URL, stream) as server, server.client() as c:
            try:
                for k in range(30):
                    records = batch(f"r{k}", 50)
                    if c.post("/api/v1/events", json=records).status_code == 202:
                        acked |= {r["id"] for r in records}
                    if k == 10:
                        subprocess.run(
                            ["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, "restart"],
                            check=True,
                            timeout=120,
                        )
            finally:
                _ensure_running(cluster)
            assert len(acked) == 1_500  # the bus took every batch, database or not
            stored = wait_stored(database, acked, timeout=90)
        assert len(stored) == len(set(stored)) == 1_500


def _pg_cluster() -> tuple[str, str]:
    """The (version, name) of the local cluster on port 5432, for pg_ctlcluster."""
    if shutil.which("pg_lsclusters") is None or os.geteuid() != 0:
        missing_service("restarting PostgreSQL needs pg_ctlcluster and root")
    listing = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True
    ).stdout
    found = [line.split()[:2] for line in listing.splitlines() if line.split()[2:3] == ["5432"]]
    if not found:
        missing_service("no local PostgreSQL cluster on port 5432")
    return found[0][0], found[0][1]


def _ensure_running(cluster: tuple[str, str]) -> None:
    """Never leave the shared PostgreSQL stopped."""
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, "start"], check=False, timeout=120
    )

    def up() -> bool:
        try:
            psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", connect_timeout=2).close()
        except psycopg.OperationalError:
            return False
        return True

    assert poll(up, 60, 0.5), "PostgreSQL did not come back"


class TestBusExporter:
    def test_an_application_publishes_straight_to_the_bus_spool_first(
        self, tmp_path: Path, database: str
    ) -> None:
        """A collector with ``endpoint="nats://..."`` while NATS is down: its batches wait
        in the spool; NATS up and a node running, they are stored, each once."""
        from telemetry import TelemetryCollector, TelemetryConfig
        from telemetry.exporters import BusExporter

        port = free_port()
        bus = f"nats://127.0.0.1:{port}"
        config = TelemetryConfig(endpoint=bus, spool_dir=str(tmp_path / "spool"))
        collector = TelemetryCollector(config)
        assert isinstance(collector.storage, BusExporter)
        sent = set()
        for i in range(500):
            recorded = collector.collect_event("app", f"from the app {i}")
            assert recorded is not None
            sent.add(recorded.id)
        collector.flush()
        assert collector.storage.stats()["spooled"] >= 1  # NATS is not running yet
        nats_proc = _nats_server(port, tmp_path / "nats")
        try:
            with node(tmp_path, "n", database, bus, "RIMP"):
                assert collector.storage.flush(30), collector.storage.stats()
                stored = wait_stored(database, sent)
            assert collector.storage.stats()["sent"] == 500
            assert len(stored) == len(set(stored)) == 500
        finally:
            collector.close()
            nats_proc.kill()
            nats_proc.wait(10)
