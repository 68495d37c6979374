"""The ASGI middleware on real Starlette and FastAPI apps, driven by their own test client:
route templates (never raw paths), statuses, the 500's event with its traceback, the
exception still raised, streaming timed to its last byte, WebSocket and lifespan untouched."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from telemetry import TelemetryConfig
from telemetry.integrations.asgi import TelemetryMiddleware
from telemetry.testing import Captured, capture

DURATION = "http.server.request.duration"


@pytest.fixture
def captured() -> Iterator[Captured]:
    with capture(TelemetryConfig(service_name="shop")) as c:
        yield c


def requests_of(captured: Captured) -> list[tuple[str, str, str, float]]:
    return [
        (
            m.tags["http.request.method"],
            m.tags["http.route"],
            m.tags["http.response.status_code"],
            m.value,
        )
        for m in captured.metrics
        if m.name == DURATION
    ]


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.post("/items")
    async def create() -> dict[str, str]:
        raise HTTPException(status_code=503, detail="busy")

    @app.get("/boom")
    async def boom() -> None:
        raise ValueError("the database is on fire")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                await asyncio.sleep(0.05)
                yield f"{i}\n".encode()

        return StreamingResponse(chunks())

    return app


class TestFastAPI:
    def test_points_carry_the_route_template_method_and_status(self, captured: Captured) -> None:
        app = fastapi_app()
        app.add_middleware(TelemetryMiddleware, collector=captured.collector)
        with TestClient(app) as client:
            assert client.get("/items/1").status_code == 200
            assert client.get("/items/2").status_code == 200
            assert client.get("/items/x").status_code == 422
            assert client.get("/nowhere/42").status_code == 404
        rows = requests_of(captured)
        assert [r[:3] for r in rows] == [
            ("GET", "/items/{item_id}", "200"),
            ("GET", "/items/{item_id}", "200"),
            ("GET", "/items/{item_id}", "422"),
            ("GET", "unmatched", "404"),
        ]
        assert all(0 < r[3] < 5 for r in rows)
        point = next(m for m in captured.metrics if m.name == DURATION)
        assert point.unit == "s"
        assert point.tags["service.name"] == "shop"
        assert "error.type" not in point.tags

    def test_a_5xx_is_an_error_event_and_an_error_type(self, captured: Captured) -> None:
        app = fastapi_app()
        app.add_middleware(TelemetryMiddleware, collector=captured.collector)
        with TestClient(app) as client:
            assert client.post("/items").status_code == 503
        (point,) = [m for m in captured.metrics if m.name == DURATION]
        assert point.tags["error.type"] == "503"
        (event,) = captured.events
        assert (event.source, event.event_type.value) == ("shop", "error")
        assert event.message == "POST /items answered 503"
        assert event.metadata["http.response.status_code"] == 503

    def test_an_exception_is_recorded_with_its_traceback_and_still_raised(
        self, captured: Captured
    ) -> None:
        app = fastapi_app()
        app.add_middleware(TelemetryMiddleware, collector=captured.collector)
        with TestClient(app) as client, pytest.raises(ValueError, match="on fire"):
            client.get("/boom")
        (point,) = [m for m in captured.metrics if m.name == DURATION]
        assert point.tags["http.response.status_code"] == "500"
        assert point.tags["error.type"] == "ValueError"
        (event,) = captured.events
        assert event.message == "GET /boom raised ValueError: the database is on fire"
        meta = event.metadata
        assert meta["exception.type"] == "ValueError"
        assert meta["exception.message"] == "the database is on fire"
        assert 'raise ValueError("the database is on fire")' in meta["exception.stacktrace"]
        assert meta["http.route"] == "/boom"

    def test_a_streaming_response_is_timed_to_its_last_byte(self, captured: Captured) -> None:
        app = fastapi_app()
        app.add_middleware(TelemetryMiddleware, collector=captured.collector)
        with TestClient(app) as client:
            assert client.get("/stream").text == "0\n1\n2\n"
        ((_, route, status, seconds),) = requests_of(captured)
        assert (route, status) == ("/stream", "200")
        assert seconds >= 0.15  # three chunks 50 ms apart: the body, not the headers

    def test_active_requests_go_up_and_down(self, captured: Captured) -> None:
        app = fastapi_app()
        middleware = TelemetryMiddleware(app, collector=captured.collector)
        with TestClient(middleware) as client:
            client.get("/items/1")
        gauge = middleware.metrics.active("GET")
        assert gauge.collect(0)[0].value == 0  # one up, one down
        assert gauge.tags == {"service.name": "shop", "http.request.method": "GET"}


def starlette_app(events: list[str]) -> Starlette:
    async def user(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(request.path_params["uid"]))

    async def file(request: Request) -> PlainTextResponse:
        return PlainTextResponse("f")

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    inner = [Route("/files/{name}", file)]
    return Starlette(
        routes=[
            Route("/users/{uid:int}", user),
            Mount("/orgs/{org}", routes=inner),
            WebSocketRoute("/ws", ws),
        ],
        lifespan=lifespan,
    )


class TestStarlette:
    def test_mounted_routes_are_whole_templates(self, captured: Captured) -> None:
        app = starlette_app([])
        app.add_middleware(TelemetryMiddleware, collector=captured.collector)
        with TestClient(app) as client:
            assert client.get("/users/7").text == "7"
            assert client.get("/orgs/acme/files/a.txt").text == "f"
            assert client.get("/orgs/other/files/b.txt").text == "f"
        routes = [r[1] for r in requests_of(captured)]
        assert routes == ["/users/{uid}", "/orgs/{org}/files/{name}", "/orgs/{org}/files/{name}"]

    def test_websocket_and_lifespan_pass_through_untouched(self, captured: Captured) -> None:
        seen: list[str] = []
        app = starlette_app(seen)
        app.add_middleware(TelemetryMiddleware, collector=captured.collector)
        with TestClient(app) as client, client.websocket_connect("/ws") as socket:
            assert socket.receive_text() == "hi"
        assert seen == ["startup", "shutdown"]
        assert requests_of(captured) == []

    def test_other_methods_are_one_value(self, captured: Captured) -> None:
        app = starlette_app([])
        app.add_middleware(TelemetryMiddleware, collector=captured.collector)
        with TestClient(app) as client:
            client.request("BREW", "/users/1")
        assert requests_of(captured)[0][0] == "_OTHER"


def test_route_of_serves_frameworks_without_starlette_routes(captured: Captured) -> None:
    async def bare(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = TelemetryMiddleware(
        bare,
        collector=captured.collector,
        route_of=lambda s: "/v1/" + s["path"].split("/")[2] + "/{id}",
    )
    client = TestClient(app)  # no lifespan: this bare app answers HTTP only
    assert client.get("/v1/things/9").status_code == 204
    assert requests_of(captured)[0][:3] == ("GET", "/v1/things/{id}", "204")


def test_the_apps_shutdown_waits_for_the_collector_to_flush() -> None:
    """uvicorn ends the process right after the lifespan's shutdown, past exit handlers:
    the middleware reports the shutdown only once the records are stored."""
    with capture(TelemetryConfig(flush_interval=3600, buffer_size=10_000)) as captured:
        app = fastapi_app()
        app.add_middleware(TelemetryMiddleware, collector=captured.collector)
        with TestClient(app) as client:
            client.get("/items/1")
            assert captured.storage.metrics == []  # no flush is due for an hour
        stored = [m for m in captured.storage.metrics if m.name == DURATION]
        assert len(stored) == 1
