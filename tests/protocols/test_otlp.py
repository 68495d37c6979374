"""The OTLP decoders (pure functions), and the OTLP doors' answers over HTTP in process."""

from __future__ import annotations

import gzip
import json
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, SeverityNumber

from telemetry.errors import RequestError
from telemetry.models import EventType
from telemetry.protocols import otlp
from telemetry.protocols.native import Limits
from tests.helpers import unique

LIMITS = Limits()
TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"


def kv(key: str, value: Any) -> dict[str, Any]:
    """An OTLP-JSON KeyValue."""
    if isinstance(value, str):
        return {"key": key, "value": {"stringValue": value}}
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"doubleValue": value}}


def logs_json(*records: dict[str, Any], service: str = "api", **resource: Any) -> bytes:
    attrs = [kv("service.name", service)] + [kv(k, v) for k, v in resource.items()]
    body = {
        "resourceLogs": [
            {
                "resource": {"attributes": attrs},
                "scopeLogs": [{"scope": {"name": "app.scope"}, "logRecords": list(records)}],
            }
        ]
    }
    return json.dumps(body).encode()


def metrics_json(*metrics: dict[str, Any], service: str = "api") -> bytes:
    body = {
        "resourceMetrics": [
            {
                "resource": {"attributes": [kv("service.name", service)]},
                "scopeMetrics": [{"metrics": list(metrics)}],
            }
        ]
    }
    return json.dumps(body).encode()


class TestLogs:
    def test_a_json_log_record_becomes_an_event(self) -> None:
        """Source, type, message, time, attributes, scope, hex ids and severity text."""
        record = {
            "timeUnixNano": "1796126400000000001",
            "severityNumber": 13,
            "severityText": "WARN",
            "body": {"stringValue": "disk low"},
            "attributes": [kv("disk", "/var"), kv("free", 0.05), kv("n", 2**40)],
            "traceId": TRACE,
            "spanId": SPAN,
            "unknownField": {"ignored": True},
        }
        result = otlp.decode(
            "logs",
            logs_json(record, **{"host.name": "db-1", "os.type": "x"}),
            json=True,
            limits=LIMITS,
        )
        [event] = result.data.events
        assert (event.source, event.message, event.event_type) == (
            "api",
            "disk low",
            EventType.WARNING,
        )
        assert event.time_ns == 1796126400000000001
        assert event.metadata == {
            "disk": "/var",
            "free": 0.05,
            "n": 2**40,
            "severity_text": "WARN",
            "scope": "app.scope",
            "trace_id": TRACE,
            "span_id": SPAN,
            "service.name": "api",
            "host.name": "db-1",
        }

    @pytest.mark.parametrize(
        ("number", "text", "kind"),
        [
            (1, "", EventType.DEBUG),
            (8, "", EventType.DEBUG),
            (9, "", EventType.INFO),
            (16, "", EventType.WARNING),
            (17, "", EventType.ERROR),
            (24, "", EventType.CRITICAL),
            (0, "Error", EventType.ERROR),
            (0, "", EventType.INFO),
            (0, "odd", EventType.INFO),
        ],
    )
    def test_severity_maps_by_range_then_text(
        self, number: int, text: str, kind: EventType
    ) -> None:
        """Severity numbers map by range; 0 falls back to the text, else info."""
        record = {"severityNumber": number, "severityText": text, "body": {"stringValue": "m"}}
        [event] = otlp.decode("logs", logs_json(record), json=True, limits=LIMITS).data.events
        assert event.event_type is kind

    def test_a_structured_body_and_a_missing_service(self) -> None:
        """A non-string body is the message as JSON; no service.name is unknown_service."""
        body = {
            "resourceLogs": [
                {
                    "scopeLogs": [
                        {
                            "logRecords": [
                                {
                                    "body": {"kvlistValue": {"values": [kv("user", "ann")]}},
                                    "observedTimeUnixNano": 1796126400000000000,
                                }
                            ]
                        }
                    ]
                }
            ]
        }
        result = otlp.decode("logs", json.dumps(body).encode(), json=True, limits=LIMITS)
        [event] = result.data.events
        assert event.source == "unknown_service"
        assert json.loads(event.message) == {"user": "ann"}
        assert event.time_ns == 1796126400000000000  # observed time when time is zero

    def test_protobuf_and_json_decode_alike(self) -> None:
        """The same record as protobuf and as OTLP-JSON gives the same event."""
        request = ExportLogsServiceRequest()
        resource_logs = request.resource_logs.add()
        resource_logs.resource.attributes.append(
            KeyValue(key="service.name", value=AnyValue(string_value="api"))
        )
        record = LogRecord(
            time_unix_nano=1796126400000000000,
            severity_number=SeverityNumber.SEVERITY_NUMBER_ERROR,  # 17
            body=AnyValue(string_value="boom"),
            trace_id=bytes.fromhex(TRACE),
        )
        resource_logs.scope_logs.add().log_records.append(record)
        from_proto = otlp.decode("logs", request.SerializeToString(), json=False, limits=LIMITS)
        as_json = {
            "timeUnixNano": "1796126400000000000",
            "severityNumber": 17,
            "body": {"stringValue": "boom"},
            "traceId": TRACE,
        }
        from_json = otlp.decode("logs", logs_json(as_json), json=True, limits=LIMITS)
        [a], [b] = from_proto.data.events, from_json.data.events
        assert (a.source, a.message, a.event_type, a.time_ns) == (
            b.source,
            b.message,
            b.event_type,
            b.time_ns,
        )
        assert a.metadata["trace_id"] == b.metadata["trace_id"] == TRACE

    def test_a_bad_record_is_rejected_alone(self) -> None:
        """A message over the limit is counted as rejected; the other records are kept."""
        records = [{"body": {"stringValue": "ok"}}, {"body": {"stringValue": "x" * 70_000}}]
        result = otlp.decode("logs", logs_json(*records), json=True, limits=LIMITS)
        assert [e.message for e in result.data.events] == ["ok"]
        assert result.rejected == 1
        assert "longer than" in result.message

    @pytest.mark.parametrize(
        ("body", "json_"),
        [
            (b"\xff\xff\xff", False),
            (b"{not json", True),
            (b'{"resourceLogs": 5}', True),
            (
                json.dumps(
                    {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz"}]}]}]}
                ).encode(),
                True,
            ),
        ],
        ids=["protobuf", "json-syntax", "json-shape", "bad-hex-id"],
    )
    def test_an_undecodable_body_is_refused_whole(self, body: bytes, json_: bool) -> None:
        """Not an OTLP message: a RequestError (400), nothing decoded."""
        with pytest.raises(RequestError) as refused:
            otlp.decode("logs", body, json=json_, limits=LIMITS)
        assert refused.value.status == 400


class TestMetrics:
    def test_gauges_and_sums_are_points_with_allow_listed_tags(self) -> None:
        """Data point attributes and service.name become tags; delta sums are tagged so."""
        gauge = {
            "name": "cpu",
            "unit": "%",
            "gauge": {
                "dataPoints": [
                    {
                        "asDouble": 0.5,
                        "timeUnixNano": "1796126400000000000",
                        "attributes": [kv("core", 1)],
                    }
                ]
            },
        }
        delta = {
            "name": "requests",
            "sum": {
                "aggregationTemporality": 1,
                "isMonotonic": True,
                "dataPoints": [{"asInt": "7", "timeUnixNano": "1796126400000000000"}],
            },
        }
        result = otlp.decode("metrics", metrics_json(gauge, delta), json=True, limits=LIMITS)
        cpu, requests = result.data.metrics
        assert (cpu.name, cpu.value, cpu.unit, cpu.tags) == (
            "cpu",
            0.5,
            "%",
            {"service.name": "api", "core": "1"},
        )
        assert (requests.name, requests.value) == ("requests", 7.0)
        assert requests.tags["otel.temporality"] == "delta"

    def test_a_histogram_is_count_sum_and_cumulative_buckets(self) -> None:
        """Buckets are prefix-summed, +Inf last, so histogram_quantile works over them."""
        histogram = {
            "name": "lat",
            "unit": "ms",
            "histogram": {
                "aggregationTemporality": 2,
                "dataPoints": [
                    {
                        "count": "6",
                        "sum": 60.5,
                        "bucketCounts": ["1", "2", "3"],
                        "explicitBounds": [10, 100],
                        "timeUnixNano": "1796126400000000000",
                    }
                ],
            },
        }
        points = otlp.decode("metrics", metrics_json(histogram), json=True, limits=LIMITS)
        by_name: dict[str, list[Any]] = {}
        for m in points.data.metrics:
            by_name.setdefault(m.name, []).append(m)
        assert [m.value for m in by_name["lat_count"]] == [6.0]
        assert [m.value for m in by_name["lat_sum"]] == [60.5]
        assert [(m.tags["le"], m.value) for m in by_name["lat_bucket"]] == [
            ("10.0", 1.0),
            ("100.0", 3.0),
            ("+Inf", 6.0),
        ]

    def test_summaries_and_exponential_histograms(self) -> None:
        """A summary gives _count, _sum and {quantile}; an exponential histogram _count/_sum."""
        summary = {
            "name": "rt",
            "summary": {
                "dataPoints": [
                    {
                        "count": "4",
                        "sum": 10.0,
                        "quantileValues": [
                            {"quantile": 0.5, "value": 2.0},
                            {"quantile": 0.99, "value": 5.0},
                        ],
                    }
                ]
            },
        }
        exponential = {
            "name": "size",
            "exponentialHistogram": {
                "dataPoints": [
                    {
                        "count": "3",
                        "sum": 9.0,
                        "scale": 1,
                        "positive": {"offset": 0, "bucketCounts": ["3"]},
                    }
                ]
            },
        }
        result = otlp.decode(
            "metrics", metrics_json(summary, exponential), json=True, limits=LIMITS
        )
        got = {(m.name, m.tags.get("quantile")): m.value for m in result.data.metrics}
        assert got == {
            ("rt_count", None): 4.0,
            ("rt_sum", None): 10.0,
            ("rt", "0.5"): 2.0,
            ("rt", "0.99"): 5.0,
            ("size_count", None): 3.0,
            ("size_sum", None): 9.0,
        }

    def test_a_non_finite_point_is_rejected_alone(self) -> None:
        """NaN is refused (counted); the other points are kept."""
        gauge = {"name": "g", "gauge": {"dataPoints": [{"asDouble": "NaN"}, {"asDouble": 1.0}]}}
        result = otlp.decode("metrics", metrics_json(gauge), json=True, limits=LIMITS)
        assert [m.value for m in result.data.metrics] == [1.0]
        assert result.rejected == 1


class TestAnswers:
    def test_partial_success_in_both_encodings(self) -> None:
        """The response counts rejects and says why, as protobuf or as JSON."""
        raw = otlp.encode_response("logs", json=False, rejected=2, message="too long")
        response = ExportLogsServiceResponse()
        response.ParseFromString(raw)
        assert response.partial_success.rejected_log_records == 2
        as_json = json.loads(otlp.encode_response("logs", json=True, rejected=2, message="m"))
        assert as_json == {"partialSuccess": {"rejectedLogRecords": "2", "errorMessage": "m"}}
        assert json.loads(otlp.encode_response("logs", json=True, rejected=0, message="")) == {}

    def test_a_status_body_decodes_as_google_rpc_status(self) -> None:
        """The hand-encoded protobuf Status has the code and message fields."""
        raw = otlp.encode_status(8, "retry later", json=False)
        assert raw == b"\x08\x08\x12\x0bretry later"


class TestDoorsOverHttp:
    def test_json_and_gzip_protobuf_are_accepted(self, client: httpx.Client) -> None:
        """200 with an empty Export*ServiceResponse, in the request's content type."""
        service = unique("svc")
        r = client.post(
            "/v1/logs",
            content=logs_json({"body": {"stringValue": "a"}}, service=service),
            headers={"Content-Type": "application/json"},
        )
        assert (r.status_code, r.json()) == (200, {})
        request = ExportLogsServiceRequest()
        request.resource_logs.add().scope_logs.add().log_records.append(
            LogRecord(body=AnyValue(string_value="b"))
        )
        r = client.post(
            "/v1/logs",
            content=gzip.compress(request.SerializeToString()),
            headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
        )
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/x-protobuf"
        assert r.content == b""

    def test_a_retried_request_is_stored_once(self, client: httpx.Client) -> None:
        """Exporters retry without keys: the same body again is answered, not stored again."""
        service = unique("retry")
        body = logs_json({"body": {"stringValue": "once"}}, service=service)
        for _ in range(3):
            r = client.post("/v1/logs", content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 200
        stored = client.get("/api/v1/events", params={"source": service}).json()["events"]
        assert [e["message"] for e in stored] == ["once"]

    def test_errors_are_status_messages(self, client: httpx.Client) -> None:
        """415 for another type; 400 for a bad body, with a google.rpc.Status naming it."""
        r = client.post("/v1/metrics", content=b"x", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
        assert "application/x-protobuf" in r.json()["message"]
        r = client.post(
            "/v1/traces", content=b"{oops", headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 400
        assert r.json()["code"] == 3
        assert "JSON" in r.json()["message"]


class TestDoorsNeedTheIngestScope:
    @pytest.mark.parametrize(
        ("path", "content_type"),
        [
            ("/v1/logs", "application/json"),
            ("/api/v1/write", "application/x-protobuf"),
            ("/loki/api/v1/push", "application/json"),
        ],
    )
    def test_tokens_guard_every_standard_door(
        self, make_app_server: Any, path: str, content_type: str
    ) -> None:
        """With tokens configured, a door answers 401 without one, 403 with a read token."""
        server = make_app_server(tokens={"w": "ingest", "r": "read"})
        headers = {"Content-Type": content_type}
        assert server.client.post(path, content=b"{}", headers=headers).status_code == 401
        as_reader = {**headers, "Authorization": "Bearer r"}
        assert server.client.post(path, content=b"{}", headers=as_reader).status_code == 403
        as_writer = {**headers, "Authorization": "Bearer w"}
        assert server.client.post(path, content=b"{}", headers=as_writer).status_code not in (
            401,
            403,
        )
