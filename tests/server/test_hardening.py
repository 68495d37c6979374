"""In-process tests of the server against hostile or careless clients: every input is
answered in the JSON error format (never a 500), every bound holds, nothing is changed or
lost without the client being told. Each class is one finding of the hardening review."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, MutableMapping
from typing import Any

import httpx
import pytest

from telemetry.models import Event, EventType, Metric
from telemetry.server.hub import Chunk, Filters, LiveHub, chunk_of
from telemetry.server.idempotency import IdempotencyCache
from tests.helpers import (
    NDJSON,
    AppServer,
    error_of,
    event,
    events_of,
    metric,
    ndjson,
    points_of,
    prometheus,
    unique,
)

JSON = {"Content-Type": "application/json"}


def rejected(client: httpx.Client, reason: str) -> float:
    """``rimp_records_rejected_total{reason}`` now."""
    return prometheus(client).get(
        ("rimp_records_rejected_total", frozenset({("reason", reason)})), 0.0
    )


class TestNesting:
    def test_deep_nesting_is_400_too_deep_and_counted(self, client: httpx.Client) -> None:
        """JSON nested past what the decoder takes is a JSON 400, counted, in any field."""
        before = rejected(client, "too_deep")
        for body in (
            b'[{"source":"a","message":"b","ignored":' + b"[" * 5000 + b"]" * 5000 + b"}]",
            b'{"source":"a","message":"b","metadata":{"x":' + b"[" * 5000 + b"]" * 5000 + b"}}",
        ):
            r = client.post("/api/v1/events", content=body, headers=JSON)
            assert error_of(r, 400)["code"] == "too_deep"
        assert rejected(client, "too_deep") == before + 2

    def test_metadata_deeper_than_32_levels_is_refused_naming_it(
        self, client: httpx.Client
    ) -> None:
        """Metadata may nest 32 levels; the 33rd is refused, naming the record's metadata."""
        src = unique("deep")

        def nested(levels: int) -> dict[str, Any]:
            value: Any = []
            for _ in range(levels - 2):
                value = [value]
            return {"x": value}

        ok = client.post("/api/v1/events", json=[event(src, metadata=nested(32))])
        assert ok.status_code == 202, ok.text
        error = error_of(client.post("/api/v1/events", json=[event(src, metadata=nested(33))]), 400)
        assert (error["code"], error["field"]) == ("too_deep", "$[0].metadata")
        assert len(events_of(client, src)) == 1


class TestGzip:
    def test_every_member_is_inflated(self, client: httpx.Client) -> None:
        """A body of two gzip members stores the records of both, as gzip -d would."""
        src = unique("members")
        body = gzip.compress(ndjson([event(src, "one")])) + gzip.compress(
            ndjson([event(src, "two")])
        )
        r = client.post(
            "/api/v1/events", content=body, headers={**NDJSON, "Content-Encoding": "gzip"}
        )
        assert r.status_code == 202, r.text
        assert r.json()["accepted"] == 2
        assert sorted(e["message"] for e in events_of(client, src)) == ["one", "two"]

    @pytest.mark.parametrize(
        ("mangle", "words"),
        [
            (lambda b: b + b"garbage", "after the end"),
            (lambda b: b[:-6], "cut short"),
            (lambda b: b[:-8] + bytes(4) + b[-4:], "does not inflate"),  # a wrong CRC
        ],
        ids=["trailing-bytes", "truncated", "bad-crc"],
    )
    def test_a_damaged_body_is_400_and_stores_nothing(
        self, client: httpx.Client, mangle: Callable[[bytes], bytes], words: str
    ) -> None:
        """Trailing bytes, a cut body or a wrong CRC: 400 malformed_body, nothing stored."""
        src = unique("gz")
        body = mangle(gzip.compress(ndjson([event(src, "x"), event(src, "y")])))
        r = client.post(
            "/api/v1/events", content=body, headers={**NDJSON, "Content-Encoding": "gzip"}
        )
        error = error_of(r, 400)
        assert error["code"] == "malformed_body"
        assert words in error["message"]
        assert events_of(client, src) == []


class TestSeriesLimits:
    def test_folded_points_are_reported_and_counted(self, client: httpx.Client) -> None:
        """Points past max_tag_sets are stored under the overflow series, and said so."""
        name = unique("wide")
        before = prometheus(client).get(("rimp_series_folded_total", frozenset()), 0.0)
        points = [metric(name, float(i), tags={"user": str(i)}) for i in range(2100)]
        r = client.post("/api/v1/metrics", json=points)
        assert r.status_code == 202, r.text
        assert r.json() == {"accepted": 2100, "folded": 100}
        stored = points_of(client, name)
        assert sum(p["tags"] == {"rimp_overflow": "true"} for p in stored) == 100
        after = prometheus(client)[("rimp_series_folded_total", frozenset())]
        assert after == before + 100


class TestQueryValues:
    @pytest.mark.parametrize(
        ("path", "params", "field"),
        [
            ("/api/v1/events", {"since": "1e300"}, "since"),
            ("/api/v1/events", {"until": "-1e300"}, "until"),
            ("/api/v1/events", {"limit": str(10**30)}, "limit"),
            ("/api/v1/metrics/cpu/aggregate", {"bucket": "9999999999w"}, "bucket"),
            ("/api/v1/metrics/cpu/aggregate", {"bucket": "1" * 400}, "bucket"),
            ("/api/v1/events/counts", {"since": "9" * 400}, "since"),
            ("/api/v1/metrics/cpu", {"since": "2024-01-01"}, "since"),
        ],
    )
    def test_huge_or_odd_values_are_400_naming_the_parameter(
        self, client: httpx.Client, path: str, params: dict[str, str], field: str
    ) -> None:
        """Values past what storage holds are a 400 naming the parameter, never a 500."""
        error = error_of(client.get(path, params=params), 400)
        assert error["field"] == field


class TestNdjsonIndexes:
    def test_indexes_count_records_on_every_decode_path(self, client: httpx.Client) -> None:
        """Blank lines are skipped and only a line feed ends a line: indexes name records."""
        src = unique("idx")
        lines = [
            json.dumps(event(src, "zero")),
            "",
            '{"source": "' + src + '", "message": "bare\r inside"}',  # a bare CR: invalid JSON
            "   ",
            json.dumps(event(src, "two")),
            json.dumps(event(src, "three", type="fatal")),
        ]
        body = ("\n".join(lines) + "\n").encode()
        r = client.post("/api/v1/events?partial=true", content=body, headers=NDJSON)
        assert r.status_code == 202, r.text
        answer = r.json()
        assert answer["accepted"] == 2
        assert [x["index"] for x in answer["rejected"]] == [1, 3]
        assert answer["rejected_count"] == 2
        assert sorted(e["message"] for e in events_of(client, src)) == ["two", "zero"]

    def test_the_rejected_list_is_bounded_and_counted(self, client: httpx.Client) -> None:
        """At most 1,000 rejections are listed; rejected_count says how many there were."""
        src = unique("many")
        body = [event(src, "ok")] + [{"source": src} for _ in range(1500)]
        answer = client.post("/api/v1/events?partial=true", json=body).json()
        assert answer["accepted"] == 1
        assert answer["rejected_count"] == 1500
        assert len(answer["rejected"]) == 1000
        assert answer["rejected"][0]["index"] == 1


class TestIdempotencyBounds:
    @pytest.mark.parametrize("key", ["k" * 257, "clé-ü", "a\tb"], ids=["long", "non-ascii", "tab"])
    def test_a_key_outside_the_rule_is_400(self, client: httpx.Client, key: str) -> None:
        """A key longer than 256 characters, or not printable ASCII, is refused by name."""
        src = unique("key")
        r = client.post(
            "/api/v1/events",
            json=[event(src)],
            headers={b"Idempotency-Key": key.encode("utf-8")},
        )
        error = error_of(r, 400)
        assert (error["code"], error["field"]) == ("invalid_header", "Idempotency-Key")
        assert events_of(client, src) == []

    def test_remembered_answers_stay_under_the_byte_bound(
        self, make_app_server: Callable[..., AppServer]
    ) -> None:
        """Large partial answers under many keys: the cache forgets the oldest past its bytes."""
        server = make_app_server(idempotency_bytes=200_000)
        src = unique("bulk")
        body = [event(src)] + [{"source": src} for _ in range(2000)]
        for i in range(40):
            r = server.client.post(
                "/api/v1/events?partial=true", json=body, headers={"Idempotency-Key": f"k{i}"}
            )
            assert r.status_code == 202
        cache: IdempotencyCache = server.app.state.rimp.idempotent
        assert 0 < cache.bytes <= 200_000
        assert len(cache) < 40
        again = server.client.post(
            "/api/v1/events?partial=true", json=body, headers={"Idempotency-Key": "k39"}
        )
        assert again.json()["accepted"] == 1  # the newest is still remembered
        assert len(events_of(server.client, src)) == 40

    def test_the_cache_forgets_by_count_bytes_and_age(self) -> None:
        """IdempotencyCache drops its oldest answers past max_keys, max_bytes or max_age."""
        import asyncio

        async def fill(cache: IdempotencyCache, n: int, size: int) -> None:
            loop = asyncio.get_running_loop()
            for i in range(n):
                answer: asyncio.Future[tuple[int, bytes]] = loop.create_future()
                cache.put(f"key-{i}", answer)
                answer.set_result((202, b"x" * size))
            await asyncio.sleep(0)  # let the done-callbacks count the answers' sizes

        by_count = IdempotencyCache(max_keys=10, max_bytes=10**9, max_age=3600)
        asyncio.run(fill(by_count, 50, 10))
        assert len(by_count) == 10
        assert by_count.get("key-49") is not None
        assert by_count.get("key-0") is None
        by_bytes = IdempotencyCache(max_keys=10**6, max_bytes=50_000, max_age=3600)
        asyncio.run(fill(by_bytes, 100, 5_000))
        assert by_bytes.bytes <= 50_000
        assert by_bytes.get("key-99") is not None
        by_age = IdempotencyCache(max_keys=10, max_bytes=10**9, max_age=0.0)
        asyncio.run(fill(by_age, 3, 10))
        assert by_age.get("key-2") is None


class TestLiveBounds:
    @staticmethod
    def big_events(n: int, size: int) -> list[Chunk]:
        events = [Event("s", "x" * size, EventType.INFO, {}, i, f"id-{i}") for i in range(n)]
        return [chunk_of("event", events)]

    def test_a_sampling_client_holds_at_most_its_byte_bound(self) -> None:
        """mode=sample with large records: the queue keeps a sample that fits its bytes."""
        hub = LiveHub(max_queue=10_000, max_queue_bytes=1_000_000, window_bytes=2_000_000)
        client = hub.connect(Filters(), sample=True)
        for _ in range(20):
            hub._fanout(self.big_events(100, 64_000))
        assert client.queued_bytes <= 1_000_000
        assert 0 < client.queued <= 16
        assert client.missed == 2000 - client.queued
        assert client.closed_reason is None

    def test_a_cutting_client_is_cut_by_bytes(self) -> None:
        """Without sampling, a client past its byte bound is cut off, with a reason."""
        hub = LiveHub(max_queue=10_000, max_queue_bytes=1_000_000)
        client = hub.connect(Filters())
        hub._fanout(self.big_events(100, 64_000))
        assert client.closed_reason is not None
        assert "bytes" in client.closed_reason
        assert hub.stats()["disconnected_slow"] == 1

    def test_the_resume_window_is_bounded_in_bytes(self) -> None:
        """The window of recent records keeps the newest that fit its byte bound."""
        hub = LiveHub(window=10_000, window_bytes=1_000_000)
        for _ in range(10):
            hub._fanout(self.big_events(100, 64_000))
        stats = hub.stats()
        assert stats["window_bytes"] <= 1_000_000
        assert 0 < stats["window"] <= 16

    def test_the_resume_window_keeps_exactly_the_newest_records(self) -> None:
        """Batches of 4 into a window of 10: the 10 newest records, whatever the batch
        boundaries, and a resume from any of them gets the ones after it, in order."""
        hub = LiveHub(window=10, window_bytes=10**9)
        events = [Event("s", f"m{i}", EventType.INFO, {}, i, f"id-{i}") for i in range(23)]
        for start in range(0, 23, 4):
            hub._fanout([chunk_of("event", events[start : start + 4])])
        assert hub.stats()["window"] == 10

        def since(record_id: str) -> list[str]:
            return [r.id for _, records, _ in hub._since(record_id) for r in records]

        assert since("id-13") == [f"id-{i}" for i in range(14, 23)]
        assert since("id-20") == ["id-21", "id-22"]
        assert since("id-22") == []  # the newest: nothing after it
        assert since("id-12") == []  # forgotten: the 10 newest are 13 to 22

    def test_many_stalled_clients_are_cut_and_hold_nothing(self) -> None:
        """200 clients that never read: each is cut at its bound; the hub ends up holding none."""
        hub = LiveHub(max_queue=1_000, max_queue_bytes=4_000_000)
        for _ in range(200):
            hub.connect(Filters(kind="metric"))
        points = [Metric("m", 1.0, "", {}, i, f"p{i}") for i in range(600)]
        for _ in range(3):
            hub._fanout([chunk_of("metric", points)])
        stats = hub.stats()
        assert stats["clients"] == 0
        assert stats["disconnected_slow"] == 200
        assert stats["queued"] == 0


class TestHostAndOrigin:
    @pytest.fixture
    def guarded(self, make_app_server: Callable[..., AppServer]) -> AppServer:
        return make_app_server(allowed_hosts=frozenset({"127.0.0.1", "localhost"}))

    def test_an_allowed_host_is_served(self, guarded: AppServer) -> None:
        """Host 127.0.0.1 (with a port) and localhost are served."""
        for host in ("127.0.0.1:8787", "localhost"):
            r = guarded.client.get("/healthz", headers={"Host": host})
            assert r.status_code == 200, r.text

    def test_another_host_is_403(self, guarded: AppServer) -> None:
        """A rebound DNS name in Host is refused in the JSON error format."""
        r = guarded.client.get("/api/v1/events", headers={"Host": "evil.example"})
        assert error_of(r, 403)["code"] == "forbidden_host"

    @pytest.mark.parametrize("origin", ["http://evil.example", "null"])
    def test_a_foreign_origin_is_403(self, guarded: AppServer, origin: str) -> None:
        """A cross-site page (or a sandboxed one) cannot read the server."""
        r = guarded.client.get("/api/v1/events", headers={"Host": "127.0.0.1", "Origin": origin})
        assert error_of(r, 403)["code"] == "forbidden_host"

    def test_a_foreign_origin_cannot_open_the_websocket(self, guarded: AppServer) -> None:
        """The live WebSocket from another origin is closed before it is accepted."""
        from starlette.websockets import WebSocketDisconnect

        with (
            pytest.raises(WebSocketDisconnect) as closed,
            guarded.client.websocket_connect(
                "/api/v1/stream/ws",
                headers={"Host": "127.0.0.1", "Origin": "http://evil.example"},
            ) as ws,
        ):
            ws.receive_text()
        assert closed.value.code == 1008
        assert guarded.live_clients() == 0

    def test_the_same_origin_is_served(self, guarded: AppServer) -> None:
        """The dashboard's own origin passes."""
        r = guarded.client.get(
            "/api/v1/events", headers={"Host": "127.0.0.1:8787", "Origin": "http://127.0.0.1:8787"}
        )
        assert r.status_code == 200, r.text


class TestLiveFeedParameters:
    @pytest.mark.parametrize("kind", ["events", "metrics", "Event"])
    def test_plural_and_any_case_kinds_are_accepted(self, app_server: AppServer, kind: str) -> None:
        """kind=events and kind=metrics, as the ingest paths say, open the feed."""
        with app_server.sse({"kind": kind}) as sse:
            assert sse.response is not None
            assert sse.response.status_code == 200

    def test_the_feed_closes_its_connection_when_it_ends(self, app_server: AppServer) -> None:
        """An SSE response says Connection: close: a cut-off client keeps no socket."""
        with app_server.sse() as sse:
            assert sse.response is not None
            assert sse.response.headers["connection"] == "close"

    def test_an_unknown_type_is_400(self, client: httpx.Client) -> None:
        """A type that no event can have is refused, as on the query endpoints."""
        error = error_of(client.get("/api/v1/stream", params={"type": "fatal"}), 400)
        assert error["field"] == "type"


class TestLenientInput:
    @pytest.mark.parametrize(
        ("record", "field"),
        [
            (event("api\u0000", "m"), "$[0].source"),
            (event("api", "a\u0000b"), "$[0].message"),
            (event("api", "bell\u0007"), "$[0].message"),
            (metric("cpu\n"), "$[0].name"),
            (metric("cpu", tags={"host": "a\u001bb"}), "$[0].tags"),
            (event("api", "m", timestamp="2024-01-01"), "$[0].timestamp"),
            (event("api", "m", timestamp="2024-W01-1"), "$[0].timestamp"),
        ],
        ids=["nul-source", "nul-message", "bell", "newline-name", "escape-tag", "date", "week"],
    )
    def test_refused_with_the_field_named(
        self, client: httpx.Client, record: dict[str, Any], field: str
    ) -> None:
        """Control characters (but tab and line breaks in a message) and dates without a
        time are refused, naming the field."""
        path = "/api/v1/events" if "source" in record else "/api/v1/metrics"
        error = error_of(client.post(path, json=[record]), 400)
        assert error["field"] == field

    def test_a_message_keeps_tabs_and_line_breaks(self, client: httpx.Client) -> None:
        """Multi-line messages (stack traces) are stored as sent."""
        src = unique("lines")
        text = "Traceback:\n\tline 1\r\n\tline 2"
        assert client.post("/api/v1/events", json=[event(src, text)]).status_code == 202
        assert [e["message"] for e in events_of(client, src)] == [text]

    def test_the_last_duplicate_key_wins(self, client: httpx.Client) -> None:
        """A JSON object with a key twice keeps the last value (documented)."""
        src = unique("dup")
        body = '[{"source": "' + src + '", "message": "first", "message": "last"}]'
        assert client.post("/api/v1/events", content=body, headers=JSON).status_code == 202
        assert [e["message"] for e in events_of(client, src)] == ["last"]

    def test_nanoseconds_of_a_timestamp_are_kept(self, client: httpx.Client) -> None:
        """An RFC 3339 timestamp with 9 fractional digits keeps all of them."""
        src = unique("ns")
        stamp = "2026-12-01T10:30:00.123456789Z"
        assert client.post("/api/v1/events", json=[event(src, timestamp=stamp)]).status_code == 202
        [stored] = events_of(client, src)
        assert stored["timestamp"] == stamp
        assert stored["time_ns"] % 1_000_000_000 == 123_456_789


class TestSecurityHeaders:
    def test_the_page_assets_carry_the_page_headers(self, client: httpx.Client) -> None:
        """/static/... answers with the same CSP, nosniff and referrer policy as /."""
        page = client.get("/")
        for path in ("/static/index.html", "/static/app.js"):
            r = client.get(path)
            assert r.status_code == 200
            for header in ("content-security-policy", "x-content-type-options", "referrer-policy"):
                assert r.headers[header] == page.headers[header], (path, header)


class TestOpenAPI:
    def test_the_document_is_valid_and_lists_every_endpoint(self, client: httpx.Client) -> None:
        """/openapi.json is valid OpenAPI 3.1 and names every documented HTTP endpoint."""
        from openapi_spec_validator import validate

        r = client.get("/openapi.json")
        assert r.status_code == 200
        document = r.json()
        validate(document)
        assert set(document["paths"]) >= {
            "/api/v1/events", "/api/v1/metrics", "/api/v1/batch", "/api/v1/events/counts",
            "/api/v1/series", "/api/v1/metrics/{name}", "/api/v1/metrics/{name}/aggregate",
            "/api/v1/stream", "/healthz", "/readyz", "/metrics", "/v1/logs", "/v1/metrics",
            "/v1/traces", "/api/v1/write", "/loki/api/v1/push",
        }  # fmt: skip
        wire_event = document["components"]["schemas"]["WireEvent"]
        assert wire_event["required"] == ["source", "message"]


class TestMetricsExposition:
    def test_every_family_appears_once_and_parses(self, client: httpx.Client) -> None:
        """Series whose sanitised names collide share one family; prometheus_client parses it."""
        from prometheus_client.parser import text_string_to_metric_families

        base = unique("coll").replace("-", "_")
        names = [f"{base}.x", f"{base}_x", f"rimp.{base}", f"stored_rimp_{base}"]
        r = client.post("/api/v1/metrics", json=[metric(n, 1.0, tags={"k": "v"}) for n in names])
        assert r.status_code == 202, r.text
        text = client.get("/metrics").text
        families = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
        assert len(families) == len(set(families))
        parsed = {f.name for f in text_string_to_metric_families(text)}
        assert {f"{base}_x", f"stored_rimp_{base}"} <= parsed


class TestStalledReaders:
    def test_a_reader_that_takes_nothing_is_dropped(self) -> None:
        """An SSE write the reader does not take within the stall timeout ends the response
        unfinished (the server then closes the connection), counted; the hub forgets it."""
        import asyncio

        from telemetry.server.live import _Feed

        async def scenario() -> tuple[int, list[str], int]:
            hub = LiveHub()
            hub.bind(asyncio.get_running_loop())
            client = hub.connect(Filters())
            sent: list[str] = []
            never = asyncio.Event()

            async def receive() -> dict[str, Any]:
                await never.wait()
                return {"type": "http.disconnect"}

            async def send(message: MutableMapping[str, Any]) -> None:
                sent.append(message["type"])
                if message["type"] == "http.response.body":
                    await never.wait()  # a socket whose reader stopped reading

            feed = _Feed(hub, client, stall_timeout=0.2)
            await asyncio.wait_for(feed({"type": "http"}, receive, send), 10)
            return hub.stalled, sent, hub.stats()["clients"]

        stalled, sent, clients = asyncio.run(scenario())
        assert stalled == 1
        assert sent == ["http.response.start", "http.response.body"]  # never completed
        assert clients == 0
