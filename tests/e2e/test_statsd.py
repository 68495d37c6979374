"""The `statsd` and `datadog` (DogStatsD) PyPI clients sending UDP datagrams to a real
`rimp serve --statsd-port`: aggregated points, events and service checks come back through
the query API, and malformed lines are counted on /metrics."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import RimpServer, events_of, poll, running, unique

statsd = pytest.importorskip("statsd")
dogstatsd = pytest.importorskip("datadog.dogstatsd")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def port() -> int:
    """The server's StatsD port."""
    return free_udp_port()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, port: int) -> Iterator[RimpServer]:
    """A server taking StatsD on ``port``, flushing its aggregates every 0.2 s."""
    data = tmp_path_factory.mktemp("statsd") / "data"
    with running(data, "--statsd-port", str(port), "--statsd-flush-interval", "0.2") as s:
        yield s


def points(server: RimpServer, name: str) -> list[dict[str, Any]]:
    with server.client() as c:
        r = c.get(f"/api/v1/metrics/{name}", params={"since": "-1h"})
    assert r.status_code == 200, r.text
    return list(r.json()["points"])


def total(server: RimpServer, name: str) -> float:
    return sum(p["value"] for p in points(server, name))


class TestStatsdClient:
    def test_counters_gauges_timers_and_sets(self, server: RimpServer, port: int) -> None:
        """The plain StatsD client: counters summed (sample rate undone), the last gauge,
        a timer's count/sum/percentiles in ms, a set's distinct values."""
        prefix = unique("app").replace("-", "_")
        client = statsd.StatsClient("127.0.0.1", port, prefix=prefix)
        try:
            for _ in range(5):
                client.incr("requests")
            client.incr("requests", 10, rate=1)
            client.gauge("queue", 7)
            client.gauge("queue", 3, delta=True)
            for ms in (10, 20, 30):
                client.timing("latency", ms)
            client.set("users", "ann")
            client.set("users", "bob")
            client.set("users", "ann")
        finally:
            client.close()
        assert poll(lambda: total(server, f"{prefix}.requests") == 15.0, 10)
        assert poll(lambda: [p["value"] for p in points(server, f"{prefix}.queue")] == [10.0], 5)
        assert poll(lambda: total(server, f"{prefix}.latency.count") == 3.0, 5)
        assert total(server, f"{prefix}.latency.sum") == 60.0
        [p50] = points(server, f"{prefix}.latency.p50")
        assert (p50["value"], p50["unit"]) == (20.0, "ms")
        assert poll(lambda: total(server, f"{prefix}.users") == 2.0, 5)


class TestDogStatsdClient:
    def test_tags_events_and_service_checks(self, server: RimpServer, port: int) -> None:
        """DogStatsD: tags become tags, events and service checks become RIMP events."""
        name = unique("dd").replace("-", "_")
        source = unique("payments")
        client = dogstatsd.DogStatsd(host="127.0.0.1", port=port)
        try:
            client.increment(f"{name}.charges", 2, tags=["region:eu", "tier:gold"])
            client.histogram(f"{name}.amount", 12.5, tags=["region:eu"])
            client.event(
                "Deploy done",
                "version 42 is live",
                alert_type="success",
                tags=[f"source:{source}", "team:core"],
            )
            client.service_check(f"{source}.db", 2, message="connection refused")
        finally:
            client.close_socket()
        assert poll(lambda: total(server, f"{name}.charges") == 2.0, 10)
        [charge] = points(server, f"{name}.charges")
        assert charge["tags"] == {"region": "eu", "tier": "gold"}
        assert total(server, f"{name}.amount.count") == 1.0
        with server.client() as c:
            assert poll(lambda: bool(events_of(c, source)), 5)
            [deploy] = events_of(c, source)
            assert deploy["message"] == "Deploy done: version 42 is live"
            assert deploy["metadata"]["team"] == "core"
            assert poll(lambda: bool(events_of(c, f"{source}.db")), 5)
            [check] = events_of(c, f"{source}.db")
            assert check["type"] == "error"
            assert check["message"] == f"{source}.db is critical: connection refused"


class TestMalformed:
    def test_bad_lines_are_counted_and_the_rest_kept(self, server: RimpServer, port: int) -> None:
        """A datagram with good and bad lines: the good ones count, the bad ones are
        counted on /metrics, nothing fails."""
        name = unique("mixed").replace("-", "_")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(
                f"{name}:1|c\nnot a line\n{name}:x|c\n{name}:2|c\n".encode(),
                ("127.0.0.1", port),
            )
        assert poll(lambda: total(server, name) == 3.0, 10)
        with server.client() as c:
            text = c.get("/metrics").text
        line = next(
            x
            for x in text.splitlines()
            if x.startswith('rimp_door_records_total{door="statsd",outcome="rejected"}')
        )
        assert float(line.split()[-1]) >= 2
        with server.client() as c:
            assert c.get("/healthz").status_code == 200
