"""The OpenTelemetry Python SDK with its stock OTLP/HTTP exporters, pointed at a real
`rimp serve`: logs, metrics and traces come back through the query API, the live feed and
/metrics as docs/integrations.md says."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from telemetry.protocols.otlp import RESOURCE_TAGS
from tests.helpers import RimpServer, events_of, poll, prometheus, running, unique

pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RimpServer]:
    """One real server for the SDK's three exporters."""
    with running(tmp_path_factory.mktemp("otlp") / "data") as s:
        yield s


def points_of(server: RimpServer, name: str) -> list[dict[str, Any]]:
    with server.client() as c:
        r = c.get(f"/api/v1/metrics/{name}", params={"since": "-1h"})
    assert r.status_code == 200, r.text
    return list(r.json()["points"])


class TestLogs:
    def test_sdk_logs_become_events(self, server: RimpServer) -> None:
        """A logging record through the SDK's LoggingHandler and OTLPLogExporter: an event
        of the service, typed by severity, with its attributes and the trace context."""
        with warnings.catch_warnings():  # the logs SDK is still marked experimental
            warnings.simplefilter("ignore")
            from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
            from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

            service = unique("checkout")
            provider = LoggerProvider(resource=Resource.create({"service.name": service,
                                                                "host.name": "web-1",
                                                                "cloud.region": "eu"}))  # fmt: skip
            provider.add_log_record_processor(
                SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{server.url}/v1/logs"))
            )
            log = logging.getLogger(f"otlp.{service}")
            log.propagate = False
            handler = LoggingHandler(level=logging.INFO, logger_provider=provider)
            log.addHandler(handler)
            try:
                log.warning("card declined", extra={"order": 42, "amount": 9.5})
                log.error("charge failed")
                provider.force_flush()
            finally:
                log.removeHandler(handler)
                provider.shutdown()
        with server.client() as c:
            assert poll(lambda: len(events_of(c, service)) == 2, 10)
            by_message = {e["message"]: e for e in events_of(c, service)}
        declined = by_message["card declined"]
        assert declined["type"] == "warning"
        assert by_message["charge failed"]["type"] == "error"
        assert declined["metadata"]["order"] == 42
        assert declined["metadata"]["amount"] == 9.5
        assert declined["metadata"]["host.name"] == "web-1"
        assert "cloud.region" not in declined["metadata"]  # not an allow-listed attribute
        assert declined["metadata"]["severity_text"] == "WARN"


class TestMetrics:
    def test_sdk_metrics_become_points(self, server: RimpServer) -> None:
        """A counter, a histogram and a gauge through OTLPMetricExporter: points with the
        service's tags; the histogram as _count, _sum and cumulative _bucket{le}."""
        service = unique("billing")
        name = service.replace("-", "_")
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{server.url}/v1/metrics"),
            export_interval_millis=3_600_000,
        )
        provider = MeterProvider(
            resource=Resource.create({"service.name": service}), metric_readers=[reader]
        )
        meter = provider.get_meter("test")
        orders = meter.create_counter(f"{name}.orders", unit="1")
        latency = meter.create_histogram(f"{name}.latency", unit="ms")
        orders.add(3, {"region": "eu"})
        for ms in (4.0, 30.0, 300.0):
            latency.record(ms, {"route": "/pay"})
        provider.force_flush()
        provider.shutdown()

        # Cumulative temporality: every export (flush, then shutdown) repeats the totals.
        orders_points = points_of(server, f"{name}.orders")
        assert {p["value"] for p in orders_points} == {3.0}
        tags = orders_points[0]["tags"]
        assert tags["region"] == "eu"
        assert tags["service.name"] == service
        # the SDK's own resource attributes: only the allow-listed ones become tags
        assert set(tags) <= {"region", *RESOURCE_TAGS}
        assert "telemetry.sdk.language" not in tags
        assert {p["value"] for p in points_of(server, f"{name}.latency_count")} == {3.0}
        assert {p["value"] for p in points_of(server, f"{name}.latency_sum")} == {334.0}
        buckets = {p["tags"]["le"]: p["value"] for p in points_of(server, f"{name}.latency_bucket")}
        assert buckets["+Inf"] == 3.0
        assert buckets["5.0"] == 1.0
        assert buckets["50.0"] == 2.0
        values = list(buckets.values())
        assert values == sorted(values)  # cumulative


class TestTraces:
    def test_sdk_spans_become_events_and_durations(self, server: RimpServer) -> None:
        """Spans through OTLPSpanExporter: an event per span (error when its status is), with
        the ids in metadata, and an otel.span.duration point."""
        service = unique("search")
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{server.url}/v1/traces"))
        )
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("GET /search") as parent:
            parent.set_attribute("http.status_code", 500)
            with tracer.start_as_current_span("db.query"):
                pass
            parent.set_status(Status(StatusCode.ERROR, "boom"))
        provider.shutdown()

        with server.client() as c:
            assert poll(lambda: len(events_of(c, service)) == 2, 10)
            by_name = {e["message"]: e for e in events_of(c, service)}
        root, child = by_name["GET /search"], by_name["db.query"]
        assert root["type"] == "error"
        assert child["type"] == "info"
        assert child["metadata"]["parent_span_id"] == root["metadata"]["span_id"]
        assert child["metadata"]["trace_id"] == root["metadata"]["trace_id"]
        assert len(root["metadata"]["trace_id"]) == 32
        assert root["metadata"]["kind"] == "internal"
        assert root["metadata"]["status_message"] == "boom"
        durations = [p for p in points_of(server, "otel.span.duration")
                     if p["tags"]["service.name"] == service]  # fmt: skip
        assert {p["tags"]["span.name"] for p in durations} == {"GET /search", "db.query"}
        assert all(p["unit"] == "ms" and p["value"] >= 0 for p in durations)


class TestAcrossTheServer:
    def test_otlp_records_reach_the_live_feed_and_metrics(self, server: RimpServer) -> None:
        """An OTLP-JSON log is in the live feed, and /metrics counts the door's records."""
        service = unique("live")
        body = {"resourceLogs": [{
            "resource": {"attributes": [{"key": "service.name",
                                         "value": {"stringValue": service}}]},
            "scopeLogs": [{"logRecords": [{"severityNumber": 17,
                                           "body": {"stringValue": "live otlp"},
                                           "timeUnixNano": "1796126400000000000"}]}],
        }]}  # fmt: skip
        with httpx.Client(base_url=server.url, trust_env=False) as c:
            with c.stream("GET", "/api/v1/stream", params={"source": service}) as feed:
                lines = feed.iter_lines()
                assert next(lines).startswith("retry")
                r = c.post("/v1/logs", json=body)
                assert r.status_code == 200, r.text
                assert r.json() == {}
                data = next(line for line in lines if line.startswith("data:"))
            assert '"message":"live otlp"' in data
            assert '"type":"error"' in data
            figures = prometheus(c)
        accepted = figures[("rimp_door_records_total",
                            frozenset({("door", "otlp"), ("outcome", "accepted")}))]  # fmt: skip
        assert accepted >= 1
