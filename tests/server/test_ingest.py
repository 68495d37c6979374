"""In-process tests of ingest: POST /api/v1/events, /metrics and /batch, their errors,
limits, the pending bound, and isolation of an unstorable request.

The contract is the HTTP API documented in docs/server.md. The module shares
one in-process server (a DatabaseStorage); tests keep apart by unique sources and names.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from telemetry.testing import GatedStorage
from tests.helpers import (
    JSON,
    NDJSON,
    NS,
    T0,
    AppServer,
    error_of,
    event,
    events_of,
    metric,
    ndjson,
    points_of,
    post,
    prometheus,
    server_settings,
    unique,
)

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
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """A server with a 4 KiB body limit and 5 records per request."""
    data = tmp_path_factory.mktemp("limited") / "data"
    with AppServer(server_settings(data, max_body_bytes=4096, max_records=5)) as srv:
        yield srv


class TestLimits:
    """Bodies over the byte limit (raw or inflated) and requests over the record limit are 413."""

    def test_body_over_the_limit_is_413(self, limited: AppServer) -> None:
        """A body over the byte limit is refused with 413 and nothing is stored."""
        src = unique("big")
        body = json.dumps([event(src, "x" * 1500) for _ in range(3)]).encode()
        assert len(body) > 4096
        c = limited.client
        assert error_of(c.post("/api/v1/events", content=body, headers=JSON), 413)
        assert events_of(c, src) == []

    def test_chunked_body_over_the_limit_is_413(self, limited: AppServer) -> None:
        """A body sent without Content-Length is counted as it arrives."""
        src = unique("chunked")
        body = json.dumps([event(src, "x" * 1500) for _ in range(3)]).encode()

        def chunks() -> Iterator[bytes]:
            for i in range(0, len(body), 1000):
                yield body[i : i + 1000]

        c = limited.client
        r = c.post("/api/v1/events", content=chunks(), headers=JSON)
        assert "content-length" not in r.request.headers
        error_of(r, 413)
        assert events_of(c, src) == []

    def test_gzip_bomb_is_413(self, limited: AppServer) -> None:
        """A gzip body small on the wire but over the limit once inflated is a 413."""
        src = unique("bomb")
        inflated = b"[" + json.dumps(event(src)).encode() + b" " * 1_000_000 + b"]"
        body = gzip.compress(inflated)
        assert len(body) < 4096 < len(inflated)
        c = limited.client
        r = c.post("/api/v1/events", content=body, headers={**JSON, "Content-Encoding": "gzip"})
        error_of(r, 413)
        assert events_of(c, src) == []

    def test_gzip_under_the_limit_is_accepted(self, limited: AppServer) -> None:
        """A gzip body within the limit once inflated is stored (the limit is not a blanket ban)."""
        src = unique("small-gz")
        body = gzip.compress(json.dumps([event(src, "y" * 100)]).encode())
        c = limited.client
        r = c.post("/api/v1/events", content=body, headers={**JSON, "Content-Encoding": "gzip"})
        assert r.status_code == 202, r.text
        assert len(events_of(c, src)) == 1

    @pytest.mark.parametrize("form", ["array", "ndjson", "batch"])
    def test_too_many_records_is_413(self, limited: AppServer, form: str) -> None:
        """More records than the record limit in one request is a 413; five is fine."""
        src, name = unique("many"), unique("many_m")
        c = limited.client
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


class TestPendingBound:
    """The bound on records waiting for storage never refuses a request forever."""

    def test_a_batch_larger_than_the_bound_is_taken_when_nothing_waits(
        self, make_app_server: Callable[..., AppServer]
    ) -> None:
        """With max_pending 2, a 3-record request is stored instead of refused forever."""
        c = make_app_server(max_pending=2).client
        src = unique("big")
        answer = c.post("/api/v1/events", json=[event(src) for _ in range(3)])
        assert answer.status_code == 202
        assert len(c.get("/api/v1/events", params={"source": src}).json()["events"]) == 3

    def test_a_queue_bounded_in_time_refuses_what_would_wait_too_long(
        self, make_app_server: Callable[..., AppServer]
    ) -> None:
        """With max_queue_delay, a request that would wait behind more storing than the
        bound allows is answered 429 at once (counted as back-pressure); once the
        storage catches up, requests are taken again."""
        storage = GatedStorage()
        storage.gate.set()
        server = make_app_server(storage=storage, max_queue_delay=1e-9, ack_timeout=30.0)
        c = server.client
        src = unique("slow")
        assert c.post("/api/v1/events", json=[event(src)] * 10).status_code == 202  # paced
        storage.gate.clear()
        storage.entered.clear()
        first: list[int] = []
        waiting = threading.Thread(
            target=lambda: first.append(c.post("/api/v1/events", json=[event(src)]).status_code)
        )
        waiting.start()
        assert storage.entered.wait(10)  # the first request's batch is being stored
        refused = c.post("/api/v1/events", json=[event(src)] * 5)
        assert refused.status_code == 429, refused.text
        assert refused.headers["retry-after"] == "1"
        assert "to store" in error_of(refused, 429)["message"]
        storage.gate.set()
        waiting.join(30)
        assert first == [202]
        assert c.post("/api/v1/events", json=[event(src)]).status_code == 202
        assert len(events_of(c, src)) == 12


class TestStorageFailureIsolation:
    """One unstorable request must not stop the server from storing anything else."""

    def test_out_of_range_time_is_400_and_ingest_goes_on(
        self, make_app_server: Callable[..., AppServer]
    ) -> None:
        """A timestamp outside the storable range is a 400 naming it; later requests are stored."""
        c = make_app_server().client
        src = unique("ms")
        r = c.post("/api/v1/events", json=[event(src, timestamp=1_733_040_000_000)])
        assert error_of(r, 400)["field"] == "$[0].timestamp"
        post(c, "/api/v1/events", [event(src, "next")])
        assert c.get("/readyz").status_code == 200
