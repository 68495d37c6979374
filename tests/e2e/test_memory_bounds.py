"""Memory stays bounded while a real `rimp serve` is attacked, and ingest keeps answering.

Each attack once grew the server without bound: remembered answers of keyed partial
requests, slow live readers of large records, metric names and tag sets without end, and a
storm of readers that never read. The server's resident memory (VmRSS from /proc) is read
while each attack runs; it must stay under a stated bound, and a small request sent in the
middle must be answered promptly.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import RimpServer, event, metric, running, unique

pytestmark = pytest.mark.slow

RSS_BOUND_MB = 400  # an idle server is ~100 MB; each attack once reached 700 MB to 5 GB


def rss_mb(pid: int) -> float:
    """The resident memory of process ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RimpServer]:
    """One server for every attack: what one attack leaves behind counts for the next."""
    with running(tmp_path_factory.mktemp("mem") / "data") as s:
        yield s


def under_attack(server: RimpServer, attack: Callable[[httpx.Client], None]) -> float:
    """Run ``attack``; return the peak RSS seen meanwhile. A probe request must succeed."""
    assert server.proc is not None
    pid = server.proc.pid
    peak = rss_mb(pid)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.05):
            peak = max(peak, rss_mb(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with server.client(timeout=60) as c:
            attack(c)
            probe = c.post("/api/v1/events", json=[event(unique("probe"))], timeout=10)
            assert probe.status_code == 202, probe.text
    finally:
        done.set()
        sampler.join(5)
    return max(peak, rss_mb(pid))


class TestMemoryBounds:
    def test_keyed_partial_requests(self, server: RimpServer) -> None:
        """100 keyed requests with 20,000 bad records each: answers are summarised and bounded."""
        src = unique("partial")
        body = [event(src)] + [{"source": src, "message": 1} for _ in range(20_000)]

        def attack(c: httpx.Client) -> None:
            for i in range(100):
                r = c.post("/api/v1/events?partial=true", json=body,
                           headers={"Idempotency-Key": f"{src}-{i}"})  # fmt: skip
                assert r.status_code == 202
                assert len(r.json()["rejected"]) == 1000

        assert under_attack(server, attack) < RSS_BOUND_MB

    def test_slow_sampling_readers_of_large_events(self, server: RimpServer) -> None:
        """4 SSE readers in mode=sample that never read, 64 KiB messages: bounded queues."""
        src = unique("large")

        def attack(c: httpx.Client) -> None:
            readers = []
            for _ in range(4):
                sock = socket.create_connection(("127.0.0.1", server.port))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.sendall(b"GET /api/v1/stream?mode=sample HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                readers.append(sock)
            try:
                for _ in range(40):
                    r = c.post("/api/v1/events", json=[event(src, "x" * 64_000)] * 50)
                    assert r.status_code == 202
            finally:
                for sock in readers:
                    sock.close()

        assert under_attack(server, attack) < RSS_BOUND_MB

    def test_names_and_tag_sets_without_end(self, server: RimpServer) -> None:
        """30,000 metric names and 30,000 tag sets: folded past the limits, /metrics bounded."""
        base = unique("card")

        def attack(c: httpx.Client) -> None:
            for chunk in range(6):
                names = [metric(f"{base}.{chunk}.{i}", 1.0) for i in range(5000)]
                tags = [metric(base, 1.0, tags={"user": f"{chunk}-{i}"}) for i in range(5000)]
                assert c.post("/api/v1/metrics", json=names + tags).status_code == 202
            exposition = c.get("/metrics", timeout=30)
            assert exposition.status_code == 200
            assert len(exposition.content) < 20 * 2**20

        assert under_attack(server, attack) < RSS_BOUND_MB

    def test_a_storm_of_readers_that_never_read(self, server: RimpServer) -> None:
        """200 SSE connections that never read while records flow: cut, and ingest answers."""
        src = unique("storm")

        def attack(c: httpx.Client) -> None:
            sockets = []
            try:
                for _ in range(200):
                    sock = socket.create_connection(("127.0.0.1", server.port))
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                    sock.sendall(b"GET /api/v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    sockets.append(sock)
                for _ in range(30):
                    r = c.post("/api/v1/events", json=[event(src, "y" * 2_000)] * 1000)
                    assert r.status_code == 202
            finally:
                for sock in sockets:
                    sock.close()

        assert under_attack(server, attack) < RSS_BOUND_MB
