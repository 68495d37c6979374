"""In-process tests of the server's own figures: GET /metrics (Prometheus text), /healthz and
/readyz."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.helpers import NO_LABELS, AppServer, event, metric, post, prometheus, unique


class TestPrometheus:
    """GET /metrics is valid Prometheus text with the server's figures and stored series."""

    def test_received_total_counts_stored_records(self, client: httpx.Client) -> None:
        """rimp_records_received_total{kind} rises by exactly the records accepted."""
        key_e = ("rimp_records_received_total", frozenset({("kind", "event")}))
        key_m = ("rimp_records_received_total", frozenset({("kind", "metric")}))
        before = prometheus(client)
        src, name = unique("prom"), unique("prom_m")
        post(client, "/api/v1/events", [event(src) for _ in range(7)])
        post(client, "/api/v1/batch", {"events": [event(src)], "metrics": [metric(name)] * 2})
        after = prometheus(client)
        assert after[key_e] - before.get(key_e, 0) == 8
        assert after[key_m] - before.get(key_m, 0) == 2

    def test_storage_writes_count_transactions(self, client: httpx.Client) -> None:
        """rimp_storage_writes_total rises with each stored request (each waits for its own
        write here), and never by more than the records stored."""
        writes = ("rimp_storage_writes_total", NO_LABELS)
        stored = ("rimp_records_stored_total", NO_LABELS)
        before = prometheus(client)
        src = unique("writes")
        for _ in range(3):
            post(client, "/api/v1/events", [event(src) for _ in range(5)])
        after = prometheus(client)
        assert 3 <= after[writes] - before[writes] <= after[stored] - before[stored]

    def test_live_clients_gauge(self, app_server: AppServer, client: httpx.Client) -> None:
        """rimp_live_clients counts connected live clients."""
        key = ("rimp_live_clients", NO_LABELS)
        assert key in prometheus(client)
        with app_server.sse():
            assert prometheus(client)[key] >= 1

    def test_stored_series_last_value_with_tags_as_labels(self, client: httpx.Client) -> None:
        """Each stored series shows its last value under its sanitised name, tags as labels."""
        name = unique("e2e.request-latency")
        tags = {"host": "web-1", "data-center": 'eu "west"'}
        now = time.time()
        post(
            client,
            "/api/v1/metrics",
            [
                metric(name, v, tags=tags, timestamp=now - 3 + i)
                for i, v in enumerate([1.5, 2.5, 3.25])
            ]
            + [metric(name, 99.0, tags={"host": "web-2"}, timestamp=now)],
        )
        clean = name.replace(".", "_").replace("-", "_")
        samples = prometheus(client)
        labels = frozenset({("host", "web-1"), ("data_center", 'eu "west"')})
        assert samples[(clean, labels)] == 3.25
        assert samples[(clean, frozenset({("host", "web-2")}))] == 99.0


class TestHealth:
    """/healthz (liveness) and /readyz (readiness)."""

    @pytest.mark.parametrize("path", ["/healthz", "/readyz"])
    def test_health_endpoints_answer_200(self, client: httpx.Client, path: str) -> None:
        """Both answer 200 while the server and its storage work."""
        assert client.get(path).status_code == 200
