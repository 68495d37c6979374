"""End-to-end tests of ``rimp serve``: a real server process, real HTTP, SSE and WebSockets.

The contract is the API design (API.md §2, documented in docs/server.md). Most classes share one
module-scoped server and keep apart by unique sources, names and ids.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection

from telemetry.storage import DatabaseStorage
from tests.server_support import (
    LineCounter,
    RimpServer,
    SSEClient,
    free_port,
    poll,
    raw_stream_socket,
    read_to_end,
    running,
    serve_env,
    unique,
    ws_connect,
    ws_subscribed,
    ws_until,
)

T0 = 1_704_067_200  # 2024-01-01T00:00:00Z
NS = 1_000_000_000
JSON = {"Content-Type": "application/json"}
NDJSON = {"Content-Type": "application/x-ndjson"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RimpServer]:
    """One open server (loopback, no tokens, default limits) for most tests."""
    with running(tmp_path_factory.mktemp("shared") / "data") as srv:
        yield srv


@pytest.fixture
def client(server: RimpServer) -> Iterator[httpx.Client]:
    """An HTTP client of the shared server."""
    with server.client() as c:
        yield c


# --- helpers -------------------------------------------------------------------------------


def events_of(client: httpx.Client, source: str, **params: Any) -> list[dict[str, Any]]:
    """Every stored event of ``source``, newest first."""
    r = client.get("/api/v1/events", params={"source": source, "limit": 10_000, **params})
    assert r.status_code == 200, r.text
    return list(r.json()["events"])


def points_of(client: httpx.Client, name: str, **params: Any) -> list[dict[str, Any]]:
    """Every stored point of metric ``name``, oldest first."""
    r = client.get(f"/api/v1/metrics/{name}", params=params)
    assert r.status_code == 200, r.text
    return list(r.json()["points"])


def ndjson(records: list[dict[str, Any]]) -> bytes:
    """Records as NDJSON lines."""
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The ``error`` object of a JSON error response with ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error["code"], str)
    assert error["code"]
    assert isinstance(error["message"], str)
    assert error["message"]
    return dict(error)


def event(source: str, message: str = "m", **fields: Any) -> dict[str, Any]:
    """An event as a client sends it."""
    return {"source": source, "message": message, **fields}


def metric(name: str, value: float = 1.0, **fields: Any) -> dict[str, Any]:
    """A metric point as a client sends it."""
    return {"name": name, "value": value, **fields}


def prometheus(client: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``/metrics`` parsed: (sample name, labels) to value."""
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


# --- ingest --------------------------------------------------------------------------------


class TestIngest:
    """POST /api/v1/events, /metrics and /batch store what they answer 202 for."""

    @pytest.mark.parametrize("form", ["array", "object", "ndjson"])
    def test_events_in_each_body_form_are_stored_with_their_ids(
        self, client: httpx.Client, form: str
    ) -> None:
        """Events sent as a JSON array, one object or NDJSON answer 202 and are stored as sent."""
        src = unique("ingest-ev")
        sent = [event(src, f"msg {i}", id=f"{src}-{i}", type="warning") for i in range(3)]
        if form == "object":
            sent = sent[:1]
        body = (
            ndjson(sent) if form == "ndjson" else json.dumps(sent[0] if form == "object" else sent)
        )
        headers = NDJSON if form == "ndjson" else JSON
        r = client.post("/api/v1/events", content=body, headers=headers)
        assert r.status_code == 202, r.text
        assert r.json() == {"accepted": len(sent)}
        stored = events_of(client, src)
        assert sorted(e["id"] for e in stored) == sorted(e["id"] for e in sent)
        assert {e["message"] for e in stored} == {e["message"] for e in sent}
        assert {e["type"] for e in stored} == {"warning"}

    @pytest.mark.parametrize("form", ["array", "object", "ndjson"])
    def test_metrics_in_each_body_form_are_stored_with_their_ids(
        self, client: httpx.Client, form: str
    ) -> None:
        """Metric points as an array, one object or NDJSON answer 202 and keep ids, unit, tags."""
        name = unique("ingest_m")
        sent = [
            metric(
                name, 10.5 + i, id=f"{name}-{i}", unit="ms", tags={"host": "a"}, time_ns=T0 * NS + i
            )
            for i in range(3)
        ]
        if form == "object":
            sent = sent[:1]
        body = (
            ndjson(sent) if form == "ndjson" else json.dumps(sent[0] if form == "object" else sent)
        )
        headers = NDJSON if form == "ndjson" else JSON
        r = client.post("/api/v1/metrics", content=body, headers=headers)
        assert r.status_code == 202, r.text
        assert r.json() == {"accepted": len(sent)}
        stored = points_of(client, name)
        assert [p["id"] for p in stored] == [m["id"] for m in sent]
        assert [p["value"] for p in stored] == [m["value"] for m in sent]
        assert all(p["unit"] == "ms" and p["tags"] == {"host": "a"} for p in stored)

    def test_batch_stores_events_and_metrics(self, client: httpx.Client) -> None:
        """A batch answers 202 with accepted, events and metrics counts and stores both kinds."""
        src, name = unique("batch-ev"), unique("batch_m")
        body = {
            "events": [event(src, "a", id=f"{src}-a"), event(src, "b", id=f"{src}-b")],
            "metrics": [metric(name, 3.0, id=f"{name}-1")],
        }
        r = client.post("/api/v1/batch", json=body)
        assert r.status_code == 202, r.text
        assert r.json() == {"accepted": 3, "events": 2, "metrics": 1}
        assert sorted(e["id"] for e in events_of(client, src)) == [f"{src}-a", f"{src}-b"]
        assert [p["id"] for p in points_of(client, name)] == [f"{name}-1"]

    @pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/metrics", "/api/v1/batch"])
    def test_gzip_body_is_accepted_on_every_ingest_path(
        self, client: httpx.Client, path: str
    ) -> None:
        """A body with Content-Encoding: gzip is inflated and stored."""
        src, name = unique("gz-ev"), unique("gz_m")
        if path.endswith("events"):
            records: Any = [event(src, id=f"{src}-1"), event(src, id=f"{src}-2")]
        elif path.endswith("metrics"):
            records = [metric(name, 1.0, id=f"{name}-1"), metric(name, 2.0, id=f"{name}-2")]
        else:
            records = {
                "events": [event(src, id=f"{src}-1")],
                "metrics": [metric(name, id=f"{name}-1")],
            }
        body = gzip.compress(json.dumps(records).encode())
        r = client.post(path, content=body, headers={**JSON, "Content-Encoding": "gzip"})
        assert r.status_code == 202, r.text
        assert r.json()["accepted"] == 2
        stored = [e["id"] for e in events_of(client, src)] + [
            p["id"] for p in points_of(client, name)
        ]
        assert len(stored) == 2

    def test_gzip_ndjson_is_accepted(self, client: httpx.Client) -> None:
        """NDJSON may be gzip-compressed too."""
        src = unique("gz-nd")
        body = gzip.compress(ndjson([event(src, str(i)) for i in range(4)]))
        r = client.post(
            "/api/v1/events", content=body, headers={**NDJSON, "Content-Encoding": "gzip"}
        )
        assert r.status_code == 202, r.text
        assert r.json() == {"accepted": 4}
        assert len(events_of(client, src)) == 4

    @pytest.mark.parametrize(
        ("fields", "stored_type"),
        [
            ({"type": "error"}, "error"),
            ({"event_type": "critical"}, "critical"),
            ({"type": "debug", "event_type": "debug"}, "debug"),
            ({}, "info"),
        ],
    )
    def test_type_and_its_alias_event_type(
        self, client: httpx.Client, fields: dict[str, str], stored_type: str
    ) -> None:
        """`type` sets the event type, `event_type` is its alias, and the default is info."""
        src = unique("type")
        r = client.post("/api/v1/events", json=[event(src, **fields)])
        assert r.status_code == 202, r.text
        assert [e["type"] for e in events_of(client, src)] == [stored_type]

    @pytest.mark.parametrize(
        ("fields", "time_ns"),
        [
            ({"timestamp": "2024-01-01T00:00:00Z"}, T0 * NS),
            ({"timestamp": "2024-01-01T01:00:00.5+01:00"}, T0 * NS + NS // 2),
            ({"timestamp": "2024-01-01T00:00:00.123456Z"}, T0 * NS + 123_456_000),
            ({"timestamp": T0 + 0.5}, T0 * NS + NS // 2),
            ({"timestamp": T0}, T0 * NS),
            ({"time_ns": T0 * NS + 123_456_789}, T0 * NS + 123_456_789),
        ],
    )
    def test_timestamp_forms(
        self, client: httpx.Client, fields: dict[str, Any], time_ns: int
    ) -> None:
        """RFC 3339, Unix seconds and time_ns all set the record's time; both kinds answer both."""
        src, name = unique("ts"), unique("ts_m")
        r = client.post(
            "/api/v1/batch",
            json={"events": [event(src, **fields)], "metrics": [metric(name, **fields)]},
        )
        assert r.status_code == 202, r.text
        (stored_event,) = events_of(client, src)
        (stored_point,) = points_of(client, name, since=T0 - 10)
        for record in (stored_event, stored_point):
            assert record["time_ns"] == time_ns
            seconds, frac = divmod(time_ns, NS)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
            assert record["timestamp"].startswith(stamp)
            assert record["timestamp"].endswith("Z")
            assert int(record["timestamp"][20:-1].ljust(9, "0")) == frac

    def test_record_without_time_is_stamped_on_arrival(self, client: httpx.Client) -> None:
        """A record without timestamp or time_ns gets the server's current time."""
        src = unique("now")
        before = time.time_ns()
        assert client.post("/api/v1/events", json=event(src)).status_code == 202
        after = time.time_ns()
        (stored,) = events_of(client, src)
        assert before - NS <= stored["time_ns"] <= after + NS

    def test_metadata_round_trips(self, client: httpx.Client) -> None:
        """An event's metadata comes back as sent."""
        src = unique("meta")
        meta = {"endpoint": "/api/users", "status": 200, "nested": {"ok": True, "list": [1, 2]}}
        assert client.post("/api/v1/events", json=event(src, metadata=meta)).status_code == 202
        assert events_of(client, src)[0]["metadata"] == meta

    def test_charset_parameter_is_allowed(self, client: httpx.Client) -> None:
        """`application/json; charset=utf-8` is JSON."""
        src = unique("charset")
        r = client.post(
            "/api/v1/events",
            content=json.dumps([event(src, "héllo")]).encode(),
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        assert r.status_code == 202, r.text
        assert events_of(client, src)[0]["message"] == "héllo"


# --- errors --------------------------------------------------------------------------------


class TestIngestErrors:
    """Every refused request answers the specified error and stores nothing."""

    def assert_nothing(self, client: httpx.Client, src: str, name: str | None = None) -> None:
        assert events_of(client, src) == []
        if name is not None:
            assert points_of(client, name) == []

    def test_malformed_json_is_400(self, client: httpx.Client) -> None:
        """A truncated JSON body is a 400 and stores nothing."""
        src = unique("bad-json")
        body = json.dumps([event(src), event(src)])[:-1]
        error = error_of(client.post("/api/v1/events", content=body, headers=JSON), 400)
        assert "json" in error["message"].lower()
        self.assert_nothing(client, src)

    def test_malformed_ndjson_line_is_400_naming_the_line(self, client: httpx.Client) -> None:
        """An NDJSON body with one broken line is a 400 naming that record; none is stored."""
        src = unique("bad-ndjson")
        body = ndjson([event(src)]) + b'{"source": "x", "message": \n' + ndjson([event(src)])
        error = error_of(client.post("/api/v1/events", content=body, headers=NDJSON), 400)
        assert error["field"].startswith("$[1]")
        self.assert_nothing(client, src)

    def test_body_that_is_not_an_object_or_array_is_400(self, client: httpx.Client) -> None:
        """A JSON scalar or an empty body is a 400."""
        for body in (b'"hello"', b"42", b""):
            error_of(client.post("/api/v1/events", content=body, headers=JSON), 400)

    def test_missing_field_is_400_and_stores_nothing(self, client: httpx.Client) -> None:
        """A record without `source` fails the whole request with a 400 about it."""
        src = unique("missing")
        body = [event(src), {"message": "no source"}, event(src)]
        error = error_of(client.post("/api/v1/events", json=body), 400)
        assert error["field"].startswith("$[1]")
        assert "source" in error["field"] + error["message"]
        self.assert_nothing(client, src)

    def test_missing_field_is_named_by_its_path(self, client: httpx.Client) -> None:
        """The error's `field` is the JSON path of the missing field itself."""
        body = [event(unique("missing")), {"message": "no source"}]
        assert error_of(client.post("/api/v1/events", json=body), 400)["field"] == "$[1].source"

    @pytest.mark.parametrize(
        ("record", "field"),
        [
            (metric("x", "fast"), "$[1].value"),  # type: ignore[arg-type]
            ({"name": 5, "value": 1}, "$[1].name"),
            (metric("x", tags=["a"]), "$[1].tags"),
        ],
    )
    def test_wrong_type_is_400_naming_the_field(
        self, client: httpx.Client, record: dict[str, Any], field: str
    ) -> None:
        """A field of the wrong JSON type is a 400 naming it; nothing of the request is stored."""
        name = unique("wrong_type")
        error = error_of(client.post("/api/v1/metrics", json=[metric(name), record]), 400)
        assert error["field"] == field
        assert points_of(client, name) == []

    def test_wrong_type_in_event_is_400(self, client: httpx.Client) -> None:
        """Event metadata must be an object."""
        src = unique("meta-type")
        error = error_of(client.post("/api/v1/events", json=[event(src, metadata=[1, 2])]), 400)
        assert error["field"] == "$[0].metadata"
        self.assert_nothing(client, src)

    def test_unknown_event_type_is_400(self, client: httpx.Client) -> None:
        """An unknown `type` (or `event_type`) is a 400 naming the field and the known types."""
        src = unique("bad-type")
        for fields in ({"type": "fatal"}, {"event_type": "fatal"}):
            body = [event(src), event(src, **fields)]
            error = error_of(client.post("/api/v1/events", json=body), 400)
            assert error["field"] == "$[1].type"
            assert "info" in error["message"]
        self.assert_nothing(client, src)

    def test_non_finite_value_is_400(self, client: httpx.Client) -> None:
        """A value of 1e999 (infinite as a double) is a 400 naming the value; nothing is stored."""
        name = unique("inf")
        body = f'[{{"name": "{name}", "value": 1}}, {{"name": "{name}", "value": 1e999}}]'
        error = error_of(client.post("/api/v1/metrics", content=body, headers=JSON), 400)
        assert error["field"] == "$[1].value"
        assert points_of(client, name) == []

    def test_non_finite_value_in_single_object_names_the_field(self, client: httpx.Client) -> None:
        """1e999 in a one-object body is an invalid value named by its field, as in an array."""
        body = f'{{"name": "{unique("inf")}", "value": 1e999}}'
        error = error_of(client.post("/api/v1/metrics", content=body, headers=JSON), 400)
        assert error.get("field") == "$[0].value"  # a single-object body is record $[0]

    def test_invalid_timestamp_is_400(self, client: httpx.Client) -> None:
        """A timestamp that is not RFC 3339 or a number is a 400 naming it."""
        src = unique("bad-ts")
        body = [event(src), event(src, timestamp="yesterday")]
        assert error_of(client.post("/api/v1/events", json=body), 400)["field"] == "$[1].timestamp"
        self.assert_nothing(client, src)

    def test_huge_unix_timestamp_is_400(self, client: httpx.Client) -> None:
        """A finite but absurd Unix timestamp (1e300) is a 400 naming it, not a server error."""
        body = [event(unique("huge-ts"), timestamp=1e300)]
        assert error_of(client.post("/api/v1/events", json=body), 400)["field"] == "$[0].timestamp"

    @pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
    def test_wrong_content_type_is_415(
        self, client: httpx.Client, content_type: str | None
    ) -> None:
        """A body that is neither JSON nor NDJSON by its Content-Type is a 415."""
        src = unique("ctype")
        headers = {"Content-Type": content_type} if content_type else {}
        body = json.dumps([event(src)]).encode()
        request = client.build_request("POST", "/api/v1/events", content=body, headers=headers)
        if content_type is None:
            request.headers.pop("Content-Type", None)
        error_of(client.send(request), 415)
        self.assert_nothing(client, src)

    def test_unknown_content_encoding_is_415(self, client: httpx.Client) -> None:
        """A Content-Encoding other than gzip (or none) is a 415."""
        src = unique("br")
        r = client.post(
            "/api/v1/events",
            content=json.dumps([event(src)]),
            headers={**JSON, "Content-Encoding": "br"},
        )
        error_of(r, 415)
        self.assert_nothing(client, src)

    def test_body_that_does_not_inflate_is_400(self, client: httpx.Client) -> None:
        """Content-Encoding: gzip on a body that is not gzip is a 400."""
        r = client.post(
            "/api/v1/events", content=b"not gzip", headers={**JSON, "Content-Encoding": "gzip"}
        )
        error_of(r, 400)

    def test_batch_with_one_bad_record_is_rejected_whole(self, client: httpx.Client) -> None:
        """One bad event in a batch fails it: neither its good events nor its metrics are stored."""
        src, name = unique("batch-bad"), unique("batch_bad")
        body = {
            "events": [event(src), event(src, type="fatal")],
            "metrics": [metric(name), metric(name)],
        }
        error = error_of(client.post("/api/v1/batch", json=body), 400)
        assert error["field"] == "$.events[1].type"
        body = {"events": [event(src)], "metrics": [metric(name), {"name": name}]}
        assert error_of(client.post("/api/v1/batch", json=body), 400)["field"].startswith(
            "$.metrics[1]"
        )
        self.assert_nothing(client, src, name)

    def test_batch_that_is_not_an_object_is_400(self, client: httpx.Client) -> None:
        """The batch body must be an object with `events` and `metrics`."""
        src = unique("batch-array")
        error_of(client.post("/api/v1/batch", json=[event(src)]), 400)
        self.assert_nothing(client, src)

    def test_partial_stores_the_good_records(self, client: httpx.Client) -> None:
        """With ?partial=true the good records are stored and the bad listed by index and error."""
        src = unique("partial")
        body = [
            event(src, "good 0", id=f"{src}-0"),
            event(src, type="fatal"),
            {"source": src},
            event(src, "good 3", id=f"{src}-3"),
        ]
        r = client.post("/api/v1/events", params={"partial": "true"}, json=body)
        assert r.status_code == 202, r.text
        answer = r.json()
        assert answer["accepted"] == 2
        assert [x["index"] for x in answer["rejected"]] == [1, 2]
        assert answer["rejected"][0]["error"]["field"] == "$[1].type"
        assert all(x["error"]["code"] and x["error"]["message"] for x in answer["rejected"])
        assert sorted(e["id"] for e in events_of(client, src)) == [f"{src}-0", f"{src}-3"]

    def test_partial_batch_and_ndjson(self, client: httpx.Client) -> None:
        """?partial=true works for batches and NDJSON bodies too."""
        src, name = unique("partial-b"), unique("partial_b")
        body = {
            "events": [event(src), event(src, type="nope")],
            "metrics": [metric(name), {"name": name}],
        }
        r = client.post("/api/v1/batch", params={"partial": "true"}, json=body)
        assert r.status_code == 202, r.text
        assert r.json()["accepted"] == 2
        assert sorted(x["index"] for x in r.json()["rejected"]) == [1, 1]
        assert len(events_of(client, src)) == 1
        assert len(points_of(client, name)) == 1
        lines = ndjson([metric(name, 2.0)]) + b'{"name": "x", "value": 1e999}\n'
        r = client.post("/api/v1/metrics?partial=true", content=lines, headers=NDJSON)
        assert r.status_code == 202, r.text
        assert r.json()["accepted"] == 1
        assert r.json()["rejected"][0]["index"] == 1
        assert [p["value"] for p in points_of(client, name)] == [1.0, 2.0]

    def test_partial_still_refuses_malformed_json(self, client: httpx.Client) -> None:
        """?partial=true cannot save a body that is not JSON at all."""
        src = unique("partial-broken")
        body = json.dumps([event(src)])[:-1]
        r = client.post("/api/v1/events?partial=true", content=body, headers=JSON)
        error_of(r, 400)
        self.assert_nothing(client, src)

    def test_rejections_are_counted_not_received(self, client: httpx.Client) -> None:
        """Refused records raise rimp_records_rejected_total, never rimp_records_received_total."""
        before = prometheus(client)
        src = unique("counted")
        error_of(client.post("/api/v1/events", json=[event(src, type="fatal")]), 400)
        after = prometheus(client)
        key = ("rimp_records_received_total", frozenset({("kind", "event")}))
        assert after.get(key, 0) == before.get(key, 0)
        rejected = sum(v for (n, _), v in after.items() if n == "rimp_records_rejected_total")
        rejected_before = sum(
            v for (n, _), v in before.items() if n == "rimp_records_rejected_total"
        )
        assert rejected == rejected_before + 1


@pytest.fixture(scope="class")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RimpServer]:
    """A server with a 4 KiB body limit and 5 records per request."""
    data = tmp_path_factory.mktemp("limited") / "data"
    with running(data, "--max-body-bytes", "4096", "--max-records", "5") as srv:
        yield srv


class TestLimits:
    """Bodies over --max-body-bytes (raw or inflated) and requests over --max-records are 413."""

    def test_body_over_the_limit_is_413(self, limited: RimpServer) -> None:
        """A body over the byte limit is refused with 413 and nothing is stored."""
        src = unique("big")
        body = json.dumps([event(src, "x" * 1500) for _ in range(3)]).encode()
        assert len(body) > 4096
        with limited.client() as c:
            assert error_of(c.post("/api/v1/events", content=body, headers=JSON), 413)
            assert events_of(c, src) == []

    def test_chunked_body_over_the_limit_is_413(self, limited: RimpServer) -> None:
        """A body sent without Content-Length is counted as it arrives."""
        src = unique("chunked")
        body = json.dumps([event(src, "x" * 1500) for _ in range(3)]).encode()

        def chunks() -> Iterator[bytes]:
            for i in range(0, len(body), 1000):
                yield body[i : i + 1000]

        with limited.client() as c:
            r = c.post("/api/v1/events", content=chunks(), headers=JSON)
            assert "content-length" not in r.request.headers
            error_of(r, 413)
            assert events_of(c, src) == []

    def test_gzip_bomb_is_413(self, limited: RimpServer) -> None:
        """A gzip body small on the wire but over the limit once inflated is a 413."""
        src = unique("bomb")
        inflated = b"[" + json.dumps(event(src)).encode() + b" " * 1_000_000 + b"]"
        body = gzip.compress(inflated)
        assert len(body) < 4096 < len(inflated)
        with limited.client() as c:
            r = c.post("/api/v1/events", content=body, headers={**JSON, "Content-Encoding": "gzip"})
            error_of(r, 413)
            assert events_of(c, src) == []

    def test_gzip_under_the_limit_is_accepted(self, limited: RimpServer) -> None:
        """A gzip body within the limit once inflated is stored (the limit is not a blanket ban)."""
        src = unique("small-gz")
        body = gzip.compress(json.dumps([event(src, "y" * 100)]).encode())
        with limited.client() as c:
            r = c.post("/api/v1/events", content=body, headers={**JSON, "Content-Encoding": "gzip"})
            assert r.status_code == 202, r.text
            assert len(events_of(c, src)) == 1

    @pytest.mark.parametrize("form", ["array", "ndjson", "batch"])
    def test_too_many_records_is_413(self, limited: RimpServer, form: str) -> None:
        """More records than --max-records in one request is a 413; five is fine."""
        src, name = unique("many"), unique("many_m")
        with limited.client() as c:
            if form == "array":
                r = c.post("/api/v1/events", json=[event(src) for _ in range(6)])
            elif form == "ndjson":
                r = c.post(
                    "/api/v1/events", content=ndjson([event(src) for _ in range(6)]), headers=NDJSON
                )
            else:
                body = {"events": [event(src)] * 3, "metrics": [metric(name)] * 3}
                r = c.post("/api/v1/batch", json=body)
            error_of(r, 413)
            assert events_of(c, src) == []
            assert points_of(c, name) == []
            ok = c.post("/api/v1/events", json=[event(src) for _ in range(5)])
            assert ok.status_code == 202, ok.text
            assert len(events_of(c, src)) == 5


# --- idempotency -------------------------------------------------------------------------


class TestIdempotency:
    """A request carrying an Idempotency-Key is stored once however often it is sent."""

    def test_same_request_three_times_is_stored_once(self, client: httpx.Client) -> None:
        """Three sends with one key: three identical 202 answers, one copy stored."""
        src = unique("idem")
        body = json.dumps([event(src, str(i)) for i in range(3)])
        headers = {**JSON, "Idempotency-Key": unique("key")}
        answers = [client.post("/api/v1/events", content=body, headers=headers) for _ in range(3)]
        assert [a.status_code for a in answers] == [202, 202, 202]
        assert all(a.json() == {"accepted": 3} for a in answers)
        stored = events_of(client, src)
        assert sorted(e["message"] for e in stored) == ["0", "1", "2"]

    def test_batch_with_key_is_stored_once(self, client: httpx.Client) -> None:
        """The key works on /api/v1/batch as well."""
        src, name = unique("idem-b"), unique("idem_b")
        body = {"events": [event(src)], "metrics": [metric(name)]}
        headers = {"Idempotency-Key": unique("key")}
        for _ in range(3):
            assert client.post("/api/v1/batch", json=body, headers=headers).status_code == 202
        assert len(events_of(client, src)) == 1
        assert len(points_of(client, name)) == 1

    def test_different_keys_are_stored_separately(self, client: httpx.Client) -> None:
        """Without a shared key, the same body sent twice is two requests."""
        src = unique("idem-diff")
        body = [event(src)]
        for _ in range(2):
            headers = {"Idempotency-Key": unique("key")}
            assert client.post("/api/v1/events", json=body, headers=headers).status_code == 202
        assert len(events_of(client, src)) == 2

    def test_retry_while_the_first_is_in_flight_is_stored_once(self, server: RimpServer) -> None:
        """A retry sent while the first request is still arriving is not stored a second time."""
        src = unique("idem-race")
        body = json.dumps([event(src, str(i)) for i in range(3)]).encode()
        headers = {**JSON, "Idempotency-Key": unique("key")}
        first_sent, release = threading.Event(), threading.Event()
        statuses: dict[str, int] = {}

        def slow_body() -> Iterator[bytes]:
            yield body[:10]
            first_sent.set()
            release.wait(10)
            yield body[10:]

        def send(label: str, content: Any) -> None:
            with server.client() as c:
                r = c.post("/api/v1/events", content=content, headers=headers)
                statuses[label] = r.status_code

        first = threading.Thread(target=send, args=("first", slow_body()))
        first.start()
        assert first_sent.wait(10)
        retry = threading.Thread(target=send, args=("retry", body))
        retry.start()
        retry.join(2)  # a correct server holds (or refuses) the retry; this only bounds the wait
        release.set()
        first.join(30)
        retry.join(30)
        assert statuses["first"] == 202
        assert statuses["retry"] in (202, 409)
        with server.client() as c:
            assert sorted(e["message"] for e in events_of(c, src)) == ["0", "1", "2"]


# --- queries -----------------------------------------------------------------------------


class Dataset:
    """Known records on the shared server, at fixed times in 2024."""

    def __init__(self, client: httpx.Client) -> None:
        self.a, self.b = unique("qa"), unique("qb")
        self.metric = unique("q_latency")
        self.events = [
            event(self.a, "User login ok", id=f"{self.a}-0", type="info", time_ns=T0 * NS),
            event(
                self.a, "Disk FULL on /var", id=f"{self.a}-1", type="error", time_ns=(T0 + 60) * NS
            ),
            event(self.b, "slow query", id=f"{self.b}-2", type="warning", time_ns=(T0 + 120) * NS),
            event(self.a, "user logout", id=f"{self.a}-3", type="info", time_ns=(T0 + 180) * NS),
        ]
        points = [  # (seconds after T0, value, host, region)
            (0, 10.0, "a", "eu"),
            (10, 30.0, "b", "eu"),
            (20, 20.0, "a", "us"),
            (70, 5.0, "a", "eu"),
            (75, 7.0, "b", "eu"),
        ]
        self.points = [
            metric(
                self.metric,
                v,
                id=f"{self.metric}-{i}",
                unit="ms",
                tags={"host": h, "region": r},
                time_ns=(T0 + s) * NS,
            )
            for i, (s, v, h, r) in enumerate(points)
        ]
        r = client.post("/api/v1/batch", json={"events": self.events, "metrics": self.points})
        assert r.status_code == 202, r.text

    def ids(self, *indexes: int) -> list[str]:
        return [self.events[i]["id"] for i in indexes]


@pytest.fixture(scope="class")
def data(server: RimpServer) -> Dataset:
    with server.client() as c:
        return Dataset(c)


def rfc(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class TestQueries:
    """GET /api/v1/events, /events/counts, /series, /metrics/{name} and /aggregate."""

    def test_events_by_source_newest_first(self, client: httpx.Client, data: Dataset) -> None:
        """`source` filters events; they come newest first with every wire field."""
        found = events_of(client, data.a)
        assert [e["id"] for e in found] == data.ids(3, 1, 0)
        first = found[0]
        assert set(first) >= {"id", "source", "message", "type", "metadata", "timestamp", "time_ns"}
        assert first["timestamp"] == "2024-01-01T00:03:00.000000000Z"

    def test_events_by_type(self, client: httpx.Client, data: Dataset) -> None:
        """`type` filters events by type."""
        assert [e["id"] for e in events_of(client, data.a, type="error")] == data.ids(1)
        assert [e["id"] for e in events_of(client, data.a, type="info")] == data.ids(3, 0)

    def test_events_search_is_case_insensitive(self, client: httpx.Client, data: Dataset) -> None:
        """`search` finds a substring of the message, ignoring case."""
        assert [e["id"] for e in events_of(client, data.a, search="disk full")] == data.ids(1)
        assert [e["id"] for e in events_of(client, data.a, search="USER")] == data.ids(3, 0)

    @pytest.mark.parametrize(
        ("since", "until"),
        [
            (rfc(T0 + 60), rfc(T0 + 180)),
            ("2024-01-01T01:01:00+01:00", "2024-01-01T01:03:00+01:00"),
            (str(T0 + 60), str(T0 + 180)),
            (f"{T0 + 59.5}", f"{T0 + 179.999}"),
        ],
    )
    def test_events_window(
        self, client: httpx.Client, data: Dataset, since: str, until: str
    ) -> None:
        """`since` (inclusive) and `until` (exclusive) take RFC 3339 or Unix seconds."""
        found = events_of(client, data.a, since=since, until=until)
        assert [e["id"] for e in found] == data.ids(1)

    def test_events_relative_times(self, client: httpx.Client) -> None:
        """`since` and `until` take relative times like -15m and -1h, and `now`."""
        src = unique("relative")
        now = time.time()
        body = [event(src, "old", timestamp=now - 3600), event(src, "new", timestamp=now - 60)]
        assert client.post("/api/v1/events", json=body).status_code == 202
        assert [e["message"] for e in events_of(client, src, since="-15m")] == ["new"]
        assert [e["message"] for e in events_of(client, src, since="-2h")] == ["new", "old"]
        assert [e["message"] for e in events_of(client, src, until="-30m")] == ["old"]
        assert [e["message"] for e in events_of(client, src, since="-1h", until="now")] == ["new"]

    def test_events_limit(self, client: httpx.Client, data: Dataset) -> None:
        """`limit` keeps the newest events."""
        assert [e["id"] for e in events_of(client, data.a, limit=2)] == data.ids(3, 1)
        r = client.get("/api/v1/events", params={"source": data.a, "limit": 1})
        assert [e["id"] for e in r.json()["events"]] == data.ids(3)

    def test_event_counts(self, client: httpx.Client, data: Dataset) -> None:
        """/events/counts groups by type by default, with buckets aligned to the epoch."""
        params = {"source": data.a, "since": str(T0), "until": str(T0 + 240), "bucket": "60"}
        r = client.get("/api/v1/events/counts", params=params)
        assert r.status_code == 200, r.text
        groups = {g["tags"]["type"]: g["buckets"] for g in r.json()["groups"]}
        assert set(groups) == {"info", "error"}
        assert [(b["start_ns"], b["value"], b["count"]) for b in groups["info"]] == [
            (T0 * NS, 1, 1),
            ((T0 + 180) * NS, 1, 1),
        ]
        assert groups["error"][0]["start"].startswith("2024-01-01T00:01:00")
        assert groups["error"][0]["count"] == 1

    def test_event_counts_bucket_units_and_group_by(
        self, client: httpx.Client, data: Dataset
    ) -> None:
        """`bucket` takes units (2m) and `group_by` takes type and source, comma-separated."""
        params = {
            "since": rfc(T0),
            "until": rfc(T0 + 240),
            "bucket": "2m",
            "group_by": "source,type",
        }
        r = client.get("/api/v1/events/counts", params=params)
        assert r.status_code == 200, r.text
        mine = {
            (g["tags"]["source"], g["tags"]["type"]): [
                (b["start_ns"], b["count"]) for b in g["buckets"]
            ]
            for g in r.json()["groups"]
            if g["tags"]["source"] in (data.a, data.b)
        }
        assert mine == {
            (data.a, "info"): [(T0 * NS, 1), ((T0 + 120) * NS, 1)],
            (data.a, "error"): [(T0 * NS, 1)],
            (data.b, "warning"): [((T0 + 120) * NS, 1)],
        }

    def test_series(self, client: httpx.Client, data: Dataset) -> None:
        """/series lists each series with its unit, tags and last value and time."""
        r = client.get("/api/v1/series")
        assert r.status_code == 200, r.text
        mine = {
            tuple(sorted(s["tags"].items())): s
            for s in r.json()["series"]
            if s["name"] == data.metric
        }
        assert set(mine) == {
            (("host", "a"), ("region", "eu")),
            (("host", "b"), ("region", "eu")),
            (("host", "a"), ("region", "us")),
        }
        last = mine[(("host", "a"), ("region", "eu"))]
        assert last["unit"] == "ms"
        assert last["last_value"] == 5.0
        assert last["last_timestamp"].startswith("2024-01-01T00:01:10")

    def test_metric_points(self, client: httpx.Client, data: Dataset) -> None:
        """/metrics/{name} returns the points oldest first; `tags` k:v filters, repeatable."""
        assert [p["value"] for p in points_of(client, data.metric, since=T0)] == [10, 30, 20, 5, 7]
        assert [p["value"] for p in points_of(client, data.metric, since=T0, tags="host:a")] == [
            10,
            20,
            5,
        ]
        both = points_of(client, data.metric, since=T0, tags=["host:a", "region:eu"])
        assert [p["id"] for p in both] == [data.points[0]["id"], data.points[3]["id"]]
        assert [
            p["value"]
            for p in points_of(client, data.metric, since=rfc(T0 + 15), until=rfc(T0 + 75))
        ] == [
            20,
            5,
        ]

    def test_metric_points_limit_keeps_the_newest(
        self, client: httpx.Client, data: Dataset
    ) -> None:
        """`limit` keeps the newest points, still oldest first."""
        assert [p["value"] for p in points_of(client, data.metric, since=T0, limit=2)] == [5, 7]

    @pytest.mark.parametrize("bucket", ["60", "1m", "60s"])
    def test_aggregate(self, client: httpx.Client, data: Dataset, bucket: str) -> None:
        """/aggregate applies `agg` per bucket of `bucket` (seconds or with a unit)."""
        params = {"agg": "max", "bucket": bucket, "since": str(T0), "until": str(T0 + 3600)}
        r = client.get(f"/api/v1/metrics/{data.metric}/aggregate", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["name"] == data.metric
        assert body["agg"] == "max"
        assert body["bucket"] == 60
        (group,) = body["groups"]
        assert group["tags"] == {}
        assert [(b["start_ns"], b["value"], b["count"]) for b in group["buckets"]] == [
            (T0 * NS, 30, 3),
            ((T0 + 60) * NS, 7, 2),
        ]
        assert group["buckets"][1]["start"].startswith("2024-01-01T00:01:00")

    @pytest.mark.parametrize("group_by", [["host"], ["host,region"], ["host", "region"]])
    def test_aggregate_group_by(
        self, client: httpx.Client, data: Dataset, group_by: list[str]
    ) -> None:
        """`group_by` (repeatable or comma-separated) splits buckets by tag values."""
        params: list[tuple[str, str]] = [("agg", "sum"), ("bucket", "1h"), ("since", str(T0))]
        params += [("group_by", g) for g in group_by]
        r = client.get(f"/api/v1/metrics/{data.metric}/aggregate", params=params)
        assert r.status_code == 200, r.text
        sums = {
            tuple(sorted(g["tags"].items())): g["buckets"][0]["value"] for g in r.json()["groups"]
        }
        if group_by == ["host"]:
            assert sums == {(("host", "a"),): 35.0, (("host", "b"),): 37.0}
        else:
            assert sums == {
                (("host", "a"), ("region", "eu")): 15.0,
                (("host", "a"), ("region", "us")): 20.0,
                (("host", "b"), ("region", "eu")): 37.0,
            }

    def test_aggregate_with_tags_and_other_aggs(self, client: httpx.Client, data: Dataset) -> None:
        """`tags` narrows the aggregate; count, avg and min answer as their names say."""
        url = f"/api/v1/metrics/{data.metric}/aggregate"
        base = {"bucket": "1h", "since": str(T0), "tags": "host:a"}
        expected = {"count": 3, "avg": 35 / 3, "min": 5, "sum": 35}
        for agg, value in expected.items():
            (group,) = client.get(url, params={**base, "agg": agg}).json()["groups"]
            assert group["buckets"][0]["value"] == pytest.approx(value)

    def test_aggregate_defaults_to_the_last_hour(self, client: httpx.Client) -> None:
        """Without `since`, an aggregate covers the last hour only."""
        name = unique("recent")
        now = time.time()
        body = [metric(name, 1.0, timestamp=now - 7200), metric(name, 2.0, timestamp=now - 30)]
        assert client.post("/api/v1/metrics", json=body).status_code == 202
        r = client.get(f"/api/v1/metrics/{name}/aggregate", params={"agg": "count", "bucket": "1d"})
        assert r.status_code == 200, r.text
        assert sum(b["count"] for g in r.json()["groups"] for b in g["buckets"]) == 1

    def test_unknown_metric_is_200_and_empty(self, client: httpx.Client) -> None:
        """An unknown metric name answers 200 with no points and no groups."""
        name = unique("never_sent")
        r = client.get(f"/api/v1/metrics/{name}")
        assert r.status_code == 200
        assert r.json() == {"name": name, "points": []}
        r = client.get(f"/api/v1/metrics/{name}/aggregate", params={"agg": "p95"})
        assert r.status_code == 200
        assert r.json()["groups"] == []
        assert r.json()["name"] == name

    @pytest.mark.parametrize(
        ("path", "params", "field"),
        [
            ("/api/v1/metrics/{m}/aggregate", {"agg": "median"}, "agg"),
            ("/api/v1/metrics/{m}/aggregate", {"since": "yesterday"}, "since"),
            ("/api/v1/metrics/{m}/aggregate", {"until": "tomorrow"}, "until"),
            ("/api/v1/metrics/{m}/aggregate", {"bucket": "soon"}, "bucket"),
            ("/api/v1/metrics/{m}/aggregate", {"tags": "nocolon"}, "tags"),
            ("/api/v1/metrics/{m}", {"since": "yesterday"}, "since"),
            ("/api/v1/metrics/{m}", {"limit": "0"}, "limit"),
            ("/api/v1/metrics/{m}", {"limit": "many"}, "limit"),
            ("/api/v1/events", {"since": "yesterday"}, "since"),
            ("/api/v1/events", {"limit": "-1"}, "limit"),
            ("/api/v1/events/counts", {"bucket": "-5"}, "bucket"),
            ("/api/v1/events/counts", {"group_by": "host"}, "group_by"),
        ],
    )
    def test_bad_parameter_is_400_naming_it(
        self, client: httpx.Client, data: Dataset, path: str, params: dict[str, str], field: str
    ) -> None:
        """A bad query parameter is a 400 whose error names the parameter."""
        error = error_of(client.get(path.format(m=data.metric), params=params), 400)
        assert error["field"] == field
        assert field in error["message"]

    def test_bad_event_type_parameter_is_named_type(self, client: httpx.Client) -> None:
        """An unknown `type` filter is a 400 naming the parameter `type` as the client sent it."""
        error = error_of(client.get("/api/v1/events", params={"type": "bogus"}), 400)
        assert error["field"] == "type"


# --- live ----------------------------------------------------------------------------------


def post(client: httpx.Client, path: str, body: Any) -> None:
    r = client.post(path, json=body)
    assert r.status_code == 202, r.text


@contextlib.contextmanager
def ws_session(
    server: RimpServer, params: Any, probe: Callable[[], str]
) -> Iterator[ClientConnection]:
    """A subscribed WebSocket; after closing it, one more probe wakes the server's handler.

    The server notices a closed WebSocket only when it next sends to it (see
    TestWebSocket.test_closed_client_is_forgotten_promptly); the wake-up keeps
    that from holding the shared server's shutdown for up to 15 s.
    """
    try:
        with ws_connect(server, params) as ws:
            ws_subscribed(ws, probe)
            yield ws
    finally:
        probe()


class TestServerSentEvents:
    """GET /api/v1/stream delivers stored records live, filtered and resumable."""

    def test_posted_event_and_metric_arrive(self, server: RimpServer, client: httpx.Client) -> None:
        """An event arrives as `event: event`, a point as `event: metric`, `id:` the record id."""
        src, name = unique("sse"), unique("sse_m")
        with SSEClient(server) as sse:
            post(client, "/api/v1/events", [event(src, "hello", id=f"{src}-1", type="error")])
            post(client, "/api/v1/metrics", [metric(name, 4.5, id=f"{name}-1", tags={"k": "v"})])
            got = sse.until(lambda m: m.id == f"{name}-1")
        by_id = {m.id: m for m in got}
        ev, pt = by_id[f"{src}-1"], by_id[f"{name}-1"]
        assert ev.event == "event"
        assert pt.event == "metric"
        assert ev.json()["source"] == src
        assert ev.json()["message"] == "hello"
        assert ev.json()["type"] == "error"
        assert {"timestamp", "time_ns", "metadata"} <= set(ev.json())
        assert pt.json()["value"] == 4.5
        assert pt.json()["tags"] == {"k": "v"}

    @pytest.mark.parametrize(
        "kind",
        ["kind=metric", "kind=event", "source", "type", "name", "two sources"],
    )
    def test_filters_hide_other_records(
        self, server: RimpServer, client: httpx.Client, kind: str
    ) -> None:
        """With filters, only matching records arrive; others posted before them never do."""
        src, other, name, other_name = unique("f"), unique("g"), unique("f_m"), unique("g_m")
        wanted_event = event(src, "wanted", id=unique("id"), type="error")
        unwanted = {
            "events": [event(other, "no", id=unique("id")), event(src, "info", id=unique("id"))],
            "metrics": [metric(other_name, id=unique("id")), metric(name, id=unique("id"))],
        }
        sentinel: dict[str, Any]
        if kind == "kind=metric":
            params, sentinel = {"kind": "metric"}, metric(name, 2.0, id=unique("id"))
            unwanted["metrics"] = []

            def ok(m: Any) -> bool:
                return m.event == "metric"

        elif kind == "kind=event":
            params, sentinel = {"kind": "event"}, wanted_event
            unwanted["events"] = []

            def ok(m: Any) -> bool:
                return m.event == "event"

        elif kind == "source":
            params, sentinel = {"source": src}, wanted_event
            unwanted["events"] = unwanted["events"][:1]

            def ok(m: Any) -> bool:
                return m.event == "event" and m.json()["source"] == src

        elif kind == "type":
            params, sentinel = {"type": "error,critical"}, wanted_event

            def ok(m: Any) -> bool:
                return m.event == "event" and m.json()["type"] in ("error", "critical")

        elif kind == "name":
            params, sentinel = {"name": name}, metric(name, 2.0, id=unique("id"))
            unwanted["metrics"] = unwanted["metrics"][:1]

            def ok(m: Any) -> bool:
                return m.event == "metric" and m.json()["name"] == name

        else:
            params, sentinel = {"source": f"{src},{other}"}, wanted_event
            unwanted["events"] = []

            def ok(m: Any) -> bool:
                return m.event == "event" and m.json()["source"] in (src, other)

        assert unwanted["events"] or unwanted["metrics"]
        with SSEClient(server, params) as sse:
            post(client, "/api/v1/batch", unwanted)
            kind_of = "events" if "source" in sentinel else "metrics"
            post(client, f"/api/v1/{kind_of}", [sentinel])
            got = sse.until(lambda m: m.id == sentinel["id"])
        assert all(ok(m) for m in got), got
        hidden = {r["id"] for r in unwanted["events"] + unwanted["metrics"]}
        assert not hidden & {m.id for m in got}

    def test_bad_filter_is_400(self, server: RimpServer) -> None:
        """An unknown `kind` is a 400 naming it."""
        with server.client() as c:
            error = error_of(c.get("/api/v1/stream", params={"kind": "log"}), 400)
        assert error["field"] == "kind"

    def test_last_event_id_resumes(self, server: RimpServer, client: httpx.Client) -> None:
        """Reconnecting with Last-Event-ID delivers exactly the records missed since that id."""
        src = unique("resume")
        with SSEClient(server, {"source": src}) as sse:
            post(client, "/api/v1/events", [event(src, "first", id=f"{src}-0")])
            (first,) = sse.until(lambda m: m.id == f"{src}-0")
        missed = [f"{src}-{i}" for i in (1, 2, 3)]
        post(client, "/api/v1/events", [event(src, "a", id=missed[0])])
        post(
            client, "/api/v1/events", [event(src, "b", id=missed[1]), event(src, "c", id=missed[2])]
        )
        assert first.id is not None
        with SSEClient(server, {"source": src}, headers={"Last-Event-ID": first.id}) as again:
            resumed = [again.next() for _ in missed]
            post(client, "/api/v1/events", [event(src, "live", id=f"{src}-live")])
            after = again.next()
        assert [m.id for m in resumed if m is not None] == missed
        assert after is not None
        assert after.id == f"{src}-live"

    def test_last_event_id_without_filters(self, server: RimpServer, client: httpx.Client) -> None:
        """Resuming an unfiltered stream also gives exactly the missed records, in order."""
        src = unique("resume-all")
        with SSEClient(server) as sse:
            post(client, "/api/v1/events", [event(src, id=f"{src}-0")])
            last = sse.until(lambda m: m.id == f"{src}-0")[-1]
        name = unique("resume_m")
        post(
            client,
            "/api/v1/batch",
            {"events": [event(src, id=f"{src}-1")], "metrics": [metric(name, id=f"{name}-1")]},
        )
        post(client, "/api/v1/events", [event(src, id=f"{src}-2")])
        with SSEClient(server, headers={"Last-Event-ID": last.id or ""}) as again:
            got = [again.next() for _ in range(3)]
            post(client, "/api/v1/events", [event(src, id=f"{src}-end")])
            end = again.next()
        assert [m.id for m in got if m is not None] == [f"{src}-1", f"{name}-1", f"{src}-2"]
        assert end is not None
        assert end.id == f"{src}-end"

    def test_record_id_cannot_break_the_sse_framing(
        self, server: RimpServer, client: httpx.Client
    ) -> None:
        """An id with a line break is refused (400) or arrives as one intact event."""
        src = unique("inject")
        forged = f"{src}\nevent: metric\ndata: {{}}\n\nid: x"
        with SSEClient(server, {"source": src}) as sse:
            r = client.post("/api/v1/events", json=[event(src, "evil", id=forged)])
            if r.status_code == 400:
                assert r.json()["error"]["field"] == "$[0].id"
                return
            assert r.status_code == 202
            post(client, "/api/v1/events", [event(src, "end", id=f"{src}-end")])
            got = sse.until(lambda m: m.id == f"{src}-end")
        assert [(m.event, m.json().get("message")) for m in got] == [
            ("event", "evil"),
            ("event", "end"),
        ]


class TestWebSocket:
    """WS /api/v1/stream/ws delivers the same feed as {"kind", "record"} messages."""

    def test_posted_records_arrive(self, server: RimpServer, client: httpx.Client) -> None:
        """Events and metric points arrive as {"kind": ..., "record": {...}}."""
        src, name = unique("ws"), unique("ws_m")

        def probe() -> str:
            ident = unique("probe")
            post(client, "/api/v1/events", [event(src, "probe", id=ident)])
            return ident

        with ws_session(server, {}, probe) as ws:
            post(client, "/api/v1/events", [event(src, "hi", id=f"{src}-1", metadata={"a": 1})])
            post(client, "/api/v1/metrics", [metric(name, 9.0, id=f"{name}-1", unit="s")])
            got = ws_until(ws, lambda m: m["record"]["id"] == f"{name}-1")
        by_id = {m["record"]["id"]: m for m in got}
        assert set(by_id[f"{src}-1"]) == {"kind", "record"}
        assert by_id[f"{src}-1"]["kind"] == "event"
        assert by_id[f"{src}-1"]["record"]["metadata"] == {"a": 1}
        assert by_id[f"{name}-1"]["kind"] == "metric"
        assert by_id[f"{name}-1"]["record"]["unit"] == "s"
        assert {"timestamp", "time_ns"} <= set(by_id[f"{name}-1"]["record"])

    def test_filters(self, server: RimpServer, client: httpx.Client) -> None:
        """Query-parameter filters (kind, name) hide non-matching records."""
        name, other = unique("wsf_m"), unique("wsf_o")

        def probe() -> str:
            ident = unique("probe")
            post(client, "/api/v1/metrics", [metric(name, -1.0, id=ident)])
            return ident

        with ws_session(server, {"kind": "metric", "name": name}, probe) as ws:
            post(
                client,
                "/api/v1/batch",
                {"events": [event(name)], "metrics": [metric(other, id=unique("id"))]},
            )
            post(client, "/api/v1/metrics", [metric(name, 1.0, id=f"{name}-end")])
            got = ws_until(ws, lambda m: m["record"]["id"] == f"{name}-end")
        assert all(m["kind"] == "metric" and m["record"]["name"] == name for m in got), got

    def test_source_and_type_filters(self, server: RimpServer, client: httpx.Client) -> None:
        """`source` and `type` filters apply to WebSocket clients too."""
        src = unique("wss")

        def probe() -> str:
            ident = unique("probe")
            post(client, "/api/v1/events", [event(src, "probe", id=ident, type="critical")])
            return ident

        with ws_session(server, [("source", src), ("type", "critical")], probe) as ws:
            post(
                client, "/api/v1/events", [event(src, "info"), event(unique("x"), type="critical")]
            )
            post(client, "/api/v1/events", [event(src, "end", id=f"{src}-end", type="critical")])
            got = ws_until(ws, lambda m: m["record"]["id"] == f"{src}-end")
        assert all(
            m["record"]["source"] == src and m["record"]["type"] == "critical" for m in got
        ), got

    def test_closed_client_is_forgotten_promptly(self, tmp_path: Path) -> None:
        """After a WebSocket client closes, rimp_live_clients drops to 0 within 3 s."""
        key = ("rimp_live_clients", frozenset())
        with running(tmp_path / "data") as srv, srv.client() as c:
            src = unique("ws-gone")

            def probe() -> str:
                ident = unique("probe")
                post(c, "/api/v1/events", [event(src, id=ident)])
                return ident

            with ws_connect(srv, {"source": src}) as ws:
                ws_subscribed(ws, probe)
                assert prometheus(c)[key] == 1
            try:
                assert poll(lambda: prometheus(c)[key] == 0, 3)
            finally:
                probe()  # wake the handler so that the server stops promptly


class TestSlowConsumer:
    """A live client that does not read is cut off; one that reads keeps getting everything."""

    def test_slow_client_is_cut_and_reader_gets_everything(
        self, server: RimpServer, client: httpx.Client
    ) -> None:
        """Past the 10,000-record live queue the idle client gets `event: error`, the reader all."""
        live = ("rimp_live_clients", frozenset())
        start = prometheus(client)
        before = start[("rimp_live_disconnected_slow_total", frozenset())]
        src = unique("flood")
        slow = raw_stream_socket(server, f"/api/v1/stream?source={src}")
        reader = LineCounter(server, {"source": src})
        try:
            assert poll(lambda: prometheus(client)[live] >= start[live] + 2, 10), (
                "the slow client did not register"
            )
            posted: list[str] = []
            for n in range(60):  # at most 120,000 records; the cut comes far earlier
                ids = [f"{src}-{n}-{i}" for i in range(2000)]
                post(client, "/api/v1/events", [event(src, "x", id=i) for i in ids])
                posted += ids
                assert reader.wait_for(len(posted)), f"reader stalled at {len(reader.ids)}"
                now = prometheus(client)[("rimp_live_disconnected_slow_total", frozenset())]
                if now > before:
                    break
            else:
                pytest.fail("the idle client was never cut off")
            reader.finish(f"{src}-after")
            post(client, "/api/v1/events", [event(src, "after", id=f"{src}-after")])
            posted.append(f"{src}-after")
            assert reader.wait_for(len(posted))
            assert reader.ids == posted
            assert reader.errors == []
            received = read_to_end(slow)
        finally:
            slow.close()
            reader.close()
        assert b"event: error" in received
        tail = received[received.rindex(b"event: error") :]
        assert b"slow_consumer" in tail
        assert received.count(b"event: event") < len(posted)


# --- /metrics, health ----------------------------------------------------------------------


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

    def test_live_clients_gauge(self, server: RimpServer, client: httpx.Client) -> None:
        """rimp_live_clients counts connected live clients."""
        key = ("rimp_live_clients", frozenset())
        assert key in prometheus(client)
        with SSEClient(server):
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


# --- auth ----------------------------------------------------------------------------------

READ, INGEST, BOTH, URLSAFE = "read-tok-1", "ingest-tok-1", "both-tok-1", "Url_safe-tok.en~1"


@pytest.fixture(scope="class")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RimpServer]:
    """A server on all interfaces (allowed: it has tokens), with read, ingest and both tokens."""
    tokens = {READ: "read", INGEST: "ingest", BOTH: "ingest,read", URLSAFE: "read"}
    data = tmp_path_factory.mktemp("secured") / "data"
    with running(data, "--host", "0.0.0.0", tokens=tokens) as srv:
        yield srv


class TestAuth:
    """Bearer tokens with ingest and read scopes."""

    def test_no_or_unknown_token_is_401(self, secured: RimpServer) -> None:
        """Without a token, or with an unknown one, reads and writes are 401 with a challenge."""
        src = unique("anon")
        for token in (None, "wrong-token"):
            with secured.client(token) as c:
                r = c.post("/api/v1/events", json=[event(src)])
                error_of(r, 401)
                assert r.headers["www-authenticate"].lower().startswith("bearer")
                error_of(c.get("/api/v1/events"), 401)
        with secured.client(READ) as c:
            assert events_of(c, src) == []

    def test_read_token_queries_but_cannot_ingest(self, secured: RimpServer) -> None:
        """A read token may query (200) but a POST is 403 and stores nothing."""
        src = unique("read-only")
        with secured.client(READ) as c:
            error_of(c.post("/api/v1/events", json=[event(src)]), 403)
            error_of(c.post("/api/v1/batch", json={"events": [event(src)]}), 403)
            assert c.get("/api/v1/series").status_code == 200
            assert c.get("/metrics").status_code == 200
            assert events_of(c, src) == []

    def test_ingest_token_posts_but_cannot_read(self, secured: RimpServer) -> None:
        """An ingest token may post (202) but reading is 403."""
        src = unique("ingest-only")
        with secured.client(INGEST) as c:
            r = c.post("/api/v1/events", json=[event(src, id=f"{src}-1")])
            assert r.status_code == 202, r.text
            error_of(c.get("/api/v1/events", params={"source": src}), 403)
            error_of(c.get("/api/v1/stream"), 403)
        with secured.client(READ) as c:
            assert [e["id"] for e in events_of(c, src)] == [f"{src}-1"]

    def test_token_in_query_works_for_sse(self, secured: RimpServer) -> None:
        """An EventSource cannot set headers, so ?token= authenticates the SSE stream."""
        src = unique("sse-token")
        with secured.client() as c:
            error_of(c.get("/api/v1/stream"), 401)
        with SSEClient(secured, {"token": READ, "source": src}) as sse, secured.client(BOTH) as c:
            assert sse.response is not None
            assert sse.response.status_code == 200
            post(c, "/api/v1/events", [event(src, id=f"{src}-1")])
            (got,) = sse.until(lambda m: m.id == f"{src}-1")
        assert got.json()["source"] == src

    def test_websocket_needs_a_token(self, secured: RimpServer) -> None:
        """A WebSocket without a token is refused; with ?token= it streams."""
        with pytest.raises(InvalidStatus) as refused, ws_connect(secured, {"kind": "event"}):
            pass
        assert refused.value.response.status_code in (401, 403)
        src = unique("ws-token")
        with secured.client(BOTH) as c:

            def probe() -> str:
                ident = unique("probe")
                post(c, "/api/v1/events", [event(src, id=ident)])
                return ident

            with ws_session(secured, {"token": READ, "source": src}, probe) as ws:
                post(c, "/api/v1/events", [event(src, "hello", id=f"{src}-1")])
                got = ws_until(ws, lambda m: m["record"]["id"] == f"{src}-1")
        assert got[-1]["record"]["message"] == "hello"

    def test_health_is_open(self, secured: RimpServer) -> None:
        """/healthz and /readyz need no token (for load balancers and orchestrators)."""
        with secured.client() as c:
            assert c.get("/healthz").status_code == 200
            assert c.get("/readyz").status_code == 200

    def test_query_token_with_unreserved_characters(self, secured: RimpServer) -> None:
        """?token= works for tokens of letters, digits and - _ . ~ (as docs/server.md advises)."""
        with httpx.Client(base_url=secured.url, trust_env=False) as c:
            r = c.get("/api/v1/events", params={"token": URLSAFE, "limit": 1})
            assert r.status_code == 200, r.text
            error_of(c.post("/api/v1/events", params={"token": URLSAFE}, json=[event("x")]), 403)


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


# --- shutdown ------------------------------------------------------------------------------


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
        return self.event_ids[record_id] + self.metric_ids[record_id]


@pytest.fixture(scope="class")
def shutdown_run(tmp_path_factory: pytest.TempPathFactory) -> ShutdownRun:
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
        sse = SSEClient(server).open()
        try:
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)
            assert server.proc.wait(3) == 0
        finally:
            server.kill()
            sse.close()


class TestStorageFailureIsolation:
    """One unstorable request must not stop the server from storing anything else."""

    def test_out_of_range_time_is_400_and_ingest_goes_on(self, tmp_path: Path) -> None:
        """A timestamp outside the storable range is a 400 naming it; later requests are stored."""
        server = RimpServer(tmp_path / "data").start()
        try:
            with server.client(timeout=2) as c:
                src = unique("ms")
                r = c.post("/api/v1/events", json=[event(src, timestamp=1_733_040_000_000)])
                assert error_of(r, 400)["field"] == "$[0].timestamp"
                post(c, "/api/v1/events", [event(src, "next")])
                assert c.get("/readyz").status_code == 200
        finally:
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.stop(timeout=2)


class TestHttpErrorsAsJson:
    def test_unknown_paths_and_methods_answer_in_the_error_format(
        self, client: httpx.Client
    ) -> None:
        """404 and 405 carry the API's JSON error body, not plain text."""
        missing = client.get("/api/v1/nothing-here")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
        wrong = client.delete("/api/v1/events")
        assert wrong.status_code == 405
        assert wrong.json()["error"]["code"] == "method_not_allowed"


class TestPendingBound:
    def test_a_batch_larger_than_the_bound_is_taken_when_nothing_waits(
        self, tmp_path: Path
    ) -> None:
        """With --max-pending 2, a 3-record request is stored instead of refused forever."""
        with running(tmp_path / "data", "--max-pending", "2") as srv, srv.client() as c:
            src = unique("big")
            answer = c.post("/api/v1/events", json=[event(src) for _ in range(3)])
            assert answer.status_code == 202
            assert len(c.get("/api/v1/events", params={"source": src}).json()["events"]) == 3
