"""In-process tests of bearer tokens with ingest and read scopes, in headers and in the URL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pytest
from starlette.websockets import WebSocketDisconnect

from tests.helpers import (
    AppServer,
    error_of,
    event,
    events_of,
    post,
    server_settings,
    unique,
    ws_path,
    ws_until,
)

READ, INGEST, BOTH, URLSAFE = "read-tok-1", "ingest-tok-1", "both-tok-1", "Url_safe-tok.en~1"


@pytest.fixture(scope="class")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """A server with read, ingest and both tokens."""
    tokens = {READ: "read", INGEST: "ingest", BOTH: "ingest,read", URLSAFE: "read"}
    data = tmp_path_factory.mktemp("secured") / "data"
    with AppServer(server_settings(data, tokens=tokens)) as srv:
        yield srv


@contextlib.contextmanager
def as_client(secured: AppServer, token: str | None = None) -> Iterator[httpx.Client]:
    """The server's client, sending ``token`` as a bearer token until the block ends."""
    client = secured.client
    saved = client.headers.copy()
    if token:
        client.headers["Authorization"] = f"Bearer {token}"
    try:
        yield client
    finally:
        client.headers = saved


class TestAuth:
    """Bearer tokens with ingest and read scopes."""

    def test_no_or_unknown_token_is_401(self, secured: AppServer) -> None:
        """Without a token, or with an unknown one, reads and writes are 401 with a challenge."""
        src = unique("anon")
        for token in (None, "wrong-token"):
            with as_client(secured, token) as c:
                r = c.post("/api/v1/events", json=[event(src)])
                error_of(r, 401)
                assert r.headers["www-authenticate"].lower().startswith("bearer")
                error_of(c.get("/api/v1/events"), 401)
        with as_client(secured, READ) as c:
            assert events_of(c, src) == []

    def test_read_token_queries_but_cannot_ingest(self, secured: AppServer) -> None:
        """A read token may query (200) but a POST is 403 and stores nothing."""
        src = unique("read-only")
        with as_client(secured, READ) as c:
            error_of(c.post("/api/v1/events", json=[event(src)]), 403)
            error_of(c.post("/api/v1/batch", json={"events": [event(src)]}), 403)
            assert c.get("/api/v1/series").status_code == 200
            assert c.get("/metrics").status_code == 200
            assert events_of(c, src) == []

    def test_ingest_token_posts_but_cannot_read(self, secured: AppServer) -> None:
        """An ingest token may post (202) but reading is 403."""
        src = unique("ingest-only")
        with as_client(secured, INGEST) as c:
            r = c.post("/api/v1/events", json=[event(src, id=f"{src}-1")])
            assert r.status_code == 202, r.text
            error_of(c.get("/api/v1/events", params={"source": src}), 403)
            error_of(c.get("/api/v1/stream"), 403)
        with as_client(secured, READ) as c:
            assert [e["id"] for e in events_of(c, src)] == [f"{src}-1"]

    def test_token_in_query_works_for_sse(self, secured: AppServer) -> None:
        """An EventSource cannot set headers, so ?token= authenticates the SSE stream."""
        src = unique("sse-token")
        with as_client(secured) as c:
            error_of(c.get("/api/v1/stream"), 401)
        with secured.sse({"token": READ, "source": src}) as sse, as_client(secured, BOTH) as c:
            assert sse.response is not None
            assert sse.response.status_code == 200
            post(c, "/api/v1/events", [event(src, id=f"{src}-1")])
            (got,) = sse.until(lambda m: m.id == f"{src}-1")
        assert got.json()["source"] == src

    def test_websocket_needs_a_token(self, secured: AppServer) -> None:
        """A WebSocket without a token is refused; with ?token= it streams."""
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            secured.client.websocket_connect(ws_path({"kind": "event"})),
        ):
            pass
        assert refused.value.code == 1008  # closed before the handshake completes
        src = unique("ws-token")
        with as_client(secured, BOTH) as c, secured.websocket({"token": READ, "source": src}) as ws:
            post(c, "/api/v1/events", [event(src, "hello", id=f"{src}-1")])
            got = ws_until(ws, lambda m: m["record"]["id"] == f"{src}-1")
        assert got[-1]["record"]["message"] == "hello"

    def test_health_is_open(self, secured: AppServer) -> None:
        """/healthz and /readyz need no token (for load balancers and orchestrators)."""
        with as_client(secured) as c:
            assert c.get("/healthz").status_code == 200
            assert c.get("/readyz").status_code == 200

    def test_query_token_with_unreserved_characters(self, secured: AppServer) -> None:
        """?token= works for tokens of letters, digits and - _ . ~ (as docs/server.md advises)."""
        with as_client(secured) as c:
            r = c.get("/api/v1/events", params={"token": URLSAFE, "limit": 1})
            assert r.status_code == 200, r.text
            error_of(c.post("/api/v1/events", params={"token": URLSAFE}, json=[event("x")]), 403)
