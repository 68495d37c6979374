"""End-to-end hardening tests against a real `rimp serve`: what needs a real process, real
sockets or a real disk (the in-process ones are in tests/server/test_hardening.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import RimpServer, event, free_port, poll, running, serve_env, unique


def raw_exchange(port: int, payload: bytes, timeout: float = 15.0) -> tuple[bytes, float]:
    """Send ``payload`` on a fresh connection; return the first answer bytes and the wait."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        started = time.monotonic()
        if payload:
            sock.sendall(payload)
        answer = sock.recv(4096)
        return answer, time.monotonic() - started


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RimpServer]:
    """A server whose header deadline is 1 s, shared by the connection tests."""
    with running(tmp_path_factory.mktemp("conn") / "data", "--header-timeout", "1") as s:
        yield s


class TestConnections:
    def test_a_connection_that_sends_nothing_is_closed(self, server: RimpServer) -> None:
        """An idle new connection gets 408 and is closed once the header deadline passes."""
        answer, waited = raw_exchange(server.port, b"")
        assert answer.startswith(b"HTTP/1.1 408")
        assert 0.5 < waited < 10

    def test_half_a_header_block_is_closed(self, server: RimpServer) -> None:
        """Headers that never end get 408 at the deadline, not a socket held forever."""
        answer, waited = raw_exchange(
            server.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1"
        )
        assert answer.startswith(b"HTTP/1.1 408")
        assert waited < 10

    @pytest.mark.parametrize("shape", ["one-header", "many-headers"])
    def test_headers_over_64_kib_are_431(self, server: RimpServer, shape: str) -> None:
        """A header block over 64 KiB is refused (431) and the connection closed."""
        if shape == "one-header":
            headers = b"X-Big: " + b"a" * 100_000 + b"\r\n"
        else:
            headers = b"X-Many: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n" * 3000
        answer, _ = raw_exchange(
            server.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n"
        )
        assert answer.startswith(b"HTTP/1.1 431")

    def test_normal_requests_are_untouched(self, server: RimpServer) -> None:
        """Kept-alive requests, and a large body after small headers, are served as before."""
        with server.client() as c:
            assert c.get("/healthz").status_code == 200
            src = unique("big")
            r = c.post("/api/v1/events", json=[event(src, "x" * 60_000)] * 50)
            assert r.status_code == 202, r.text
            assert c.get("/healthz").status_code == 200

    def test_a_rebound_host_is_refused_on_loopback(self, server: RimpServer) -> None:
        """Bound to loopback, a Host naming another site is 403 (DNS rebinding)."""
        with server.client() as c:
            assert c.get("/healthz", headers={"Host": "evil.example"}).status_code == 403
            assert c.get("/healthz", headers={"Host": "localhost"}).status_code == 200


class TestStartup:
    def test_a_second_server_on_the_same_database_refuses_to_start(self, tmp_path: Path) -> None:
        """A second `rimp serve` on a database another one writes exits 2 naming the pid."""
        data = tmp_path / "data"
        with running(data) as first:
            assert first.proc is not None
            cmd = [sys.executable, "-m", "telemetry.cli", "serve", "--port", str(free_port()),
                   "--data-dir", str(data)]  # fmt: skip
            second = subprocess.run(
                cmd, capture_output=True, text=True, timeout=30, env=serve_env(), check=False
            )
            assert second.returncode == 2
            assert f"pid {first.proc.pid}" in second.stderr
            with first.client() as c:
                assert c.get("/readyz").status_code == 200

    def test_allowed_host_admits_a_proxied_name(self, tmp_path: Path) -> None:
        """--allowed-host lets requests that name the proxy's host in."""
        allowed = ("--allowed-host", "telemetry.example.com")
        with running(tmp_path / "data", *allowed) as s, s.client() as c:
            ok = c.get("/healthz", headers={"Host": "telemetry.example.com"})
            assert ok.status_code == 200
            assert c.get("/healthz", headers={"Host": "other.example"}).status_code == 403


class TestLogs:
    def test_no_token_reaches_the_log(self, tmp_path: Path) -> None:
        """At debug level, tokens in headers and in (percent-encoded) query strings are redacted."""
        secret = "s3cret-" + uuid.uuid4().hex
        with running(tmp_path / "data", "--log-level", "debug",
                     tokens={secret: "ingest,read"}) as server:  # fmt: skip
            with httpx.Client(base_url=server.url, trust_env=False) as c:
                c.get("/api/v1/events", headers={"Authorization": f"Bearer {secret}"})
                c.get(f"/api/v1/events?%74oken={secret}")
                c.get(f"/api/v1/events?token={secret}")
                c.get(f"/api/v1/events?tok%65n={secret}&limit=1")
                c.get("/nowhere", params={"token": secret})
            output_while_running = server.output()
        assert server.output()  # it logged something at debug
        assert secret not in output_while_running
        assert secret not in server.output()


class TestDurableIdempotency:
    def test_a_retry_after_a_restart_is_answered_not_stored_again(self, tmp_path: Path) -> None:
        """The answer of a keyed request survives a restart with its records: stored once."""
        server = RimpServer(tmp_path / "data")
        src = unique("restart")
        headers = {"Idempotency-Key": "deploy-" + uuid.uuid4().hex}
        try:
            server.start()
            with server.client() as c:
                first = c.post("/api/v1/events", json=[event(src, "once")], headers=headers)
            assert first.status_code == 202
            assert server.stop() == 0
            server.start()
            with server.client() as c:
                again = c.post("/api/v1/events", json=[event(src, "once")], headers=headers)
                stored = c.get("/api/v1/events", params={"source": src}).json()["events"]
            assert (again.status_code, again.content) == (first.status_code, first.content)
            assert [e["message"] for e in stored] == ["once"]
        finally:
            assert server.stop() == 0


@contextlib.contextmanager
def small_disk(path: Path, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (root only); unmounted after."""
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="needs root to mount")
class TestDiskFull:
    def test_ingest_answers_503_and_recovers_when_space_returns(self, tmp_path: Path) -> None:
        """A full data disk: ingest answers 503 with Retry-After, nothing accepted is lost,
        nothing half written, and ingest works again by itself once space returns."""
        with (
            small_disk(tmp_path / "disk") as disk,
            running(disk / "data", "--ack-timeout", "1") as server,
            server.client() as c,
        ):
            src = unique("full")
            before = c.post("/api/v1/events", json=[event(src, "before")])
            assert before.status_code == 202
            filler = disk / "filler"
            with filler.open("wb") as f, contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 65_536)
                    f.flush()
            body = [event(src, "x" * 2_000) for _ in range(500)]
            statuses = set()

            def refused() -> bool:
                r = c.post("/api/v1/events", json=body)
                statuses.add(r.status_code)
                return r.status_code == 503

            assert poll(refused, 30, 0.2), statuses
            r = c.post("/api/v1/events", json=body)
            assert r.status_code == 503
            assert r.headers["retry-after"]
            filler.unlink()

            def accepted() -> bool:
                return c.post("/api/v1/events", json=[event(src, "after")]).status_code == 202

            assert poll(accepted, 60, 0.5)
            stored = c.get("/api/v1/events", params={"source": src, "limit": 10_000})
            messages = [e["message"] for e in stored.json()["events"]]
            assert "before" in messages
            assert "after" in messages
            # What was answered 202 is whole: batches of 500 are stored whole or not at all.
            assert messages.count("x" * 2_000) % 500 == 0
