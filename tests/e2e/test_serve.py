"""End-to-end tests of a real `rimp serve` process: what needs one.

Startup rules (the CLI refuses unsafe setups before it listens), options reaching the server,
the WebSocket handshake as uvicorn answers it, and SIGTERM: drain, exit code, open streams.
Everything else about the server is tested in process in tests/server/.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from telemetry.storage import DatabaseStorage
from tests.helpers import (
    RimpServer,
    SSEClient,
    event,
    free_port,
    metric,
    poll,
    running,
    serve_env,
    unique,
)


class TestStartupRules:
    """`rimp serve` refuses unsafe or broken setups before it listens."""

    def run_serve(self, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "telemetry.cli", "serve", "--port", str(free_port())]
        cmd += ["--data-dir", str(tmp_path / "data"), *args]
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=30, env=serve_env(), check=False
        )

    def test_public_address_without_tokens_exits(self, tmp_path: Path) -> None:
        """Bound to 0.0.0.0 without tokens, serve exits non-zero saying a token is required."""
        started = time.monotonic()
        done = self.run_serve(tmp_path, "--host", "0.0.0.0")
        assert done.returncode != 0
        assert time.monotonic() - started < 15
        assert "token" in done.stderr.lower()

    def test_malformed_token_file_exits(self, tmp_path: Path) -> None:
        """A token file line without a scope makes serve exit non-zero naming the file."""
        tokens = tmp_path / "tokens"
        tokens.write_text("just-a-token\n")
        done = self.run_serve(tmp_path, "--token-file", str(tokens))
        assert done.returncode != 0
        assert str(tokens) in done.stderr


READ, INGEST = "read-tok-1", "ingest-tok-1"


@pytest.fixture(scope="class")
def configured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RimpServer]:
    """A server on all interfaces (allowed: it has tokens) with limits and a pending bound."""
    data = tmp_path_factory.mktemp("configured") / "data"
    args = ["--host", "0.0.0.0", "--max-body-bytes", "4096", "--max-records", "5"]
    with running(data, *args, "--max-pending", "2", tokens={READ: "read", INGEST: "ingest"}) as srv:
        yield srv


class TestServeOptions:
    """The command line's options reach the server it runs (their effects are tested in
    tests/server/ in process); what uvicorn itself does stays here."""

    def test_a_public_address_with_tokens_serves_and_needs_them(
        self, configured: RimpServer
    ) -> None:
        """--host 0.0.0.0 with --token-file starts, and requests without a token are 401."""
        with configured.client() as c:
            r = c.get("/api/v1/events")
            assert r.status_code == 401, r.text
            assert r.json()["error"]["code"] == "unauthorized"
        with configured.client(READ) as c:
            assert c.get("/api/v1/events").status_code == 200

    def test_limits_and_pending_bound_come_from_the_options(self, configured: RimpServer) -> None:
        """--max-body-bytes and --max-records refuse with 413; --max-pending 2 takes 3 records."""
        src = unique("opts")
        with configured.client(INGEST) as c:
            big = [event(src, "x" * 1500) for _ in range(3)]
            assert c.post("/api/v1/events", json=big).status_code == 413
            assert c.post("/api/v1/events", json=[event(src)] * 6).status_code == 413
            assert c.post("/api/v1/events", json=[event(src)] * 3).status_code == 202
        with configured.client(READ) as c:
            assert len(c.get("/api/v1/events", params={"source": src}).json()["events"]) == 3

    def test_websocket_without_token_is_refused_in_the_handshake(
        self, configured: RimpServer
    ) -> None:
        """uvicorn turns the app's close-before-accept into an HTTP 401 or 403 handshake answer."""
        url = f"ws://127.0.0.1:{configured.port}/api/v1/stream/ws?kind=event"
        with (
            pytest.raises(InvalidStatus) as refused,
            connect(url, open_timeout=10, close_timeout=5, proxy=None),
        ):
            pass
        assert refused.value.response.status_code in (401, 403)


class ShutdownRun:
    """Four threads post batches until the server goes away; SIGTERM lands in the middle."""

    def __init__(self, server: RimpServer) -> None:
        self.src, self.name = unique("drain"), unique("drain_m")
        self.acked: list[list[str]] = []
        self.unanswered: list[list[str]] = []
        self.refused: list[int] = []
        self.lock = threading.Lock()
        threads = [threading.Thread(target=self.post, args=(server, n)) for n in range(4)]
        for t in threads:
            t.start()
        try:
            assert poll(lambda: len(self.acked) >= 20, 30), "no traffic before SIGTERM"
        finally:
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)
            for t in threads:
                t.join(60)
        self.code = server.proc.wait(60)
        storage = DatabaseStorage(server.db_path, readonly=True)
        try:
            self.event_ids = Counter(
                e.id for e in storage.query_events(source=self.src, limit=None)
            )
            self.metric_ids = Counter(m.id for m in storage.query_metrics(self.name))
        finally:
            storage.close()

    def post(self, server: RimpServer, n: int) -> None:
        with server.client(timeout=60) as c:
            for i in range(100_000):
                ids = [f"{self.src}-{n}-{i}-{j}" for j in range(150)]
                body = {
                    "events": [event(self.src, id=x) for x in ids[:100]],
                    "metrics": [metric(self.name, id=x) for x in ids[100:]],
                }
                try:
                    r = c.post("/api/v1/batch", json=body)
                except httpx.TransportError:
                    with self.lock:
                        self.unanswered.append(ids)
                    return
                with self.lock:
                    if r.status_code == 202:
                        self.acked.append(ids)
                    else:
                        self.refused.append(r.status_code)
                        self.unanswered.append(ids)
                        return

    def stored(self, record_id: str) -> int:
        """How many copies of ``record_id`` the database holds."""
        return self.event_ids[record_id] + self.metric_ids[record_id]


@pytest.fixture(scope="class")
def shutdown_run(tmp_path_factory: pytest.TempPathFactory) -> ShutdownRun:
    """One server, SIGTERMed while four clients post."""
    server = RimpServer(tmp_path_factory.mktemp("drain") / "data").start()
    try:
        return ShutdownRun(server)
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.kill()


class TestGracefulShutdown:
    """SIGTERM while clients post: everything answered 202 is stored, then exit 0."""

    def test_exit_code_is_zero(self, shutdown_run: ShutdownRun) -> None:
        """The server exits 0 after a SIGTERM."""
        assert shutdown_run.code == 0

    def test_every_acknowledged_record_is_stored_once(self, shutdown_run: ShutdownRun) -> None:
        """Every record of every request answered 202 is in the database exactly once."""
        assert len(shutdown_run.acked) >= 20
        missing = [x for ids in shutdown_run.acked for x in ids if shutdown_run.stored(x) != 1]
        assert missing == []

    def test_unanswered_batches_are_whole_or_absent(self, shutdown_run: ShutdownRun) -> None:
        """A batch that got no 202 is stored whole or not at all, and only answers were refusals."""
        assert set(shutdown_run.refused) <= {503}
        for ids in shutdown_run.unanswered:
            assert len({shutdown_run.stored(x) for x in ids}) == 1, ids[0]
        acked = sum(len(ids) for ids in shutdown_run.acked)
        unanswered = sum(len(ids) for ids in shutdown_run.unanswered if shutdown_run.stored(ids[0]))
        total = sum(shutdown_run.event_ids.values()) + sum(shutdown_run.metric_ids.values())
        assert total == acked + unanswered

    def test_open_live_stream_does_not_delay_exit(self, tmp_path: Path) -> None:
        """With an SSE client connected, SIGTERM still exits promptly (within 3 s) with 0."""
        server = RimpServer(tmp_path / "data").start()
        with server.client() as client:
            sse = SSEClient(client).open()
            try:
                assert server.proc is not None
                server.proc.send_signal(signal.SIGTERM)
                assert server.proc.wait(3) == 0
            finally:
                server.kill()
                sse.close()
