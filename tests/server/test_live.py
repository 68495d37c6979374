"""In-process tests of the live feeds: Server-Sent Events, WebSockets and slow consumers.

Every feed a test opens is ended by the server after a deadline (``AppServer.watchdog``),
so a read that never gets its record fails instead of hanging.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.helpers import (
    NO_LABELS,
    AppServer,
    LineCounter,
    error_of,
    event,
    metric,
    poll,
    post,
    prometheus,
    unique,
    ws_until,
)


class TestServerSentEvents:
    """GET /api/v1/stream delivers stored records live, filtered and resumable."""

    def test_posted_event_and_metric_arrive(
        self, app_server: AppServer, client: httpx.Client
    ) -> None:
        """An event arrives as `event: event`, a point as `event: metric`, `id:` the record id."""
        src, name = unique("sse"), unique("sse_m")
        with app_server.sse() as sse:
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
        self, app_server: AppServer, client: httpx.Client, kind: str
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
        with app_server.sse(params) as sse:
            post(client, "/api/v1/batch", unwanted)
            kind_of = "events" if "source" in sentinel else "metrics"
            post(client, f"/api/v1/{kind_of}", [sentinel])
            got = sse.until(lambda m: m.id == sentinel["id"])
        assert all(ok(m) for m in got), got
        hidden = {r["id"] for r in unwanted["events"] + unwanted["metrics"]}
        assert not hidden & {m.id for m in got}

    def test_bad_filter_is_400(self, client: httpx.Client) -> None:
        """An unknown `kind` is a 400 naming it."""
        error = error_of(client.get("/api/v1/stream", params={"kind": "log"}), 400)
        assert error["field"] == "kind"

    def test_last_event_id_resumes(self, app_server: AppServer, client: httpx.Client) -> None:
        """Reconnecting with Last-Event-ID delivers exactly the records missed since that id."""
        src = unique("resume")
        with app_server.sse({"source": src}) as sse:
            post(client, "/api/v1/events", [event(src, "first", id=f"{src}-0")])
            (first,) = sse.until(lambda m: m.id == f"{src}-0")
        missed = [f"{src}-{i}" for i in (1, 2, 3)]
        post(client, "/api/v1/events", [event(src, "a", id=missed[0])])
        post(
            client, "/api/v1/events", [event(src, "b", id=missed[1]), event(src, "c", id=missed[2])]
        )
        assert first.id is not None
        with app_server.sse({"source": src}, headers={"Last-Event-ID": first.id}) as again:
            resumed = [again.next() for _ in missed]
            post(client, "/api/v1/events", [event(src, "live", id=f"{src}-live")])
            after = again.next()
        assert [m.id for m in resumed if m is not None] == missed
        assert after is not None
        assert after.id == f"{src}-live"

    def test_last_event_id_without_filters(
        self, app_server: AppServer, client: httpx.Client
    ) -> None:
        """Resuming an unfiltered stream also gives exactly the missed records, in order."""
        src = unique("resume-all")
        with app_server.sse() as sse:
            post(client, "/api/v1/events", [event(src, id=f"{src}-0")])
            last = sse.until(lambda m: m.id == f"{src}-0")[-1]
        name = unique("resume_m")
        post(
            client,
            "/api/v1/batch",
            {"events": [event(src, id=f"{src}-1")], "metrics": [metric(name, id=f"{name}-1")]},
        )
        post(client, "/api/v1/events", [event(src, id=f"{src}-2")])
        with app_server.sse(headers={"Last-Event-ID": last.id or ""}) as again:
            got = [again.next() for _ in range(3)]
            post(client, "/api/v1/events", [event(src, id=f"{src}-end")])
            end = again.next()
        assert [m.id for m in got if m is not None] == [f"{src}-1", f"{name}-1", f"{src}-2"]
        assert end is not None
        assert end.id == f"{src}-end"

    def test_record_id_cannot_break_the_sse_framing(
        self, app_server: AppServer, client: httpx.Client
    ) -> None:
        """An id with a line break is refused (400) or arrives as one intact event."""
        src = unique("inject")
        forged = f"{src}\nevent: metric\ndata: {{}}\n\nid: x"
        with app_server.sse({"source": src}) as sse:
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

    def test_posted_records_arrive(self, app_server: AppServer, client: httpx.Client) -> None:
        """Events and metric points arrive as {"kind": ..., "record": {...}}."""
        src, name = unique("ws"), unique("ws_m")
        with app_server.websocket() as ws:
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

    def test_filters(self, app_server: AppServer, client: httpx.Client) -> None:
        """Query-parameter filters (kind, name) hide non-matching records."""
        name, other = unique("wsf_m"), unique("wsf_o")
        with app_server.websocket({"kind": "metric", "name": name}) as ws:
            post(
                client,
                "/api/v1/batch",
                {"events": [event(name)], "metrics": [metric(other, id=unique("id"))]},
            )
            post(client, "/api/v1/metrics", [metric(name, 1.0, id=f"{name}-end")])
            got = ws_until(ws, lambda m: m["record"]["id"] == f"{name}-end")
        assert all(m["kind"] == "metric" and m["record"]["name"] == name for m in got), got

    def test_source_and_type_filters(self, app_server: AppServer, client: httpx.Client) -> None:
        """`source` and `type` filters apply to WebSocket clients too."""
        src = unique("wss")
        with app_server.websocket([("source", src), ("type", "critical")]) as ws:
            post(
                client, "/api/v1/events", [event(src, "info"), event(unique("x"), type="critical")]
            )
            post(client, "/api/v1/events", [event(src, "end", id=f"{src}-end", type="critical")])
            got = ws_until(ws, lambda m: m["record"]["id"] == f"{src}-end")
        assert all(
            m["record"]["source"] == src and m["record"]["type"] == "critical" for m in got
        ), got

    def test_closed_client_is_forgotten_promptly(
        self, make_app_server: Callable[..., AppServer]
    ) -> None:
        """After a WebSocket client closes, rimp_live_clients drops to 0 within 3 s."""
        key = ("rimp_live_clients", NO_LABELS)
        server = make_app_server()
        with server.websocket({"source": unique("ws-gone")}) as ws:
            assert prometheus(server.client)[key] == 1
            # Only the client's close message: leaving the session would also cancel the
            # handler, which a real connection never does.
            ws.close(1000)
            assert poll(lambda: prometheus(server.client)[key] == 0, 3)


class TestSlowConsumer:
    """A live client that does not read is cut off; one that reads keeps getting everything."""

    def test_slow_client_is_cut_and_reader_gets_everything(
        self, app_server: AppServer, client: httpx.Client
    ) -> None:
        """Past the 10,000-record live queue the idle client gets `event: error`, the reader all."""
        live = ("rimp_live_clients", NO_LABELS)
        start = prometheus(client)
        before = start[("rimp_live_disconnected_slow_total", NO_LABELS)]
        src = unique("flood")
        slow = app_server.sse({"source": src}).open()  # and never read until the end
        reader = LineCounter(app_server.sse({"source": src}).open())
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
                now = prometheus(client)[("rimp_live_disconnected_slow_total", NO_LABELS)]
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
            received = slow.read_to_end()
        finally:
            slow.close()
            reader.close()
        assert b"event: error" in received
        tail = received[received.rindex(b"event: error") :]
        assert b"slow_consumer" in tail
        assert received.count(b"event: event") < len(posted)
