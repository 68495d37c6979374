"""Outgoing requests with httpx (sync and async) and requests, against a real HTTP server
in this test: durations tagged with method, address, port and status; failures as events."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import requests

from telemetry import TelemetryConfig
from telemetry.integrations.httpx import AsyncTelemetryTransport, TelemetryTransport
from telemetry.integrations.requests import instrument_session
from telemetry.testing import Captured, capture
from tests.helpers import free_port

DURATION = "http.client.request.duration"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 503 if self.path == "/busy" else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def captured() -> Iterator[Captured]:
    with capture(TelemetryConfig(service_name="caller")) as c:
        yield c


def points(captured: Captured) -> list[dict[str, str]]:
    return [m.tags for m in captured.metrics if m.name == DURATION]


def expect(captured: Captured, port: int) -> None:
    ok, busy = points(captured)
    assert ok == {
        "service.name": "caller",
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "server.port": str(port),
        "http.response.status_code": "200",
    }
    assert busy["http.response.status_code"] == "503"
    assert busy["error.type"] == "503"
    assert captured.events == []  # an answer, even a 503, is not a failure of the call


def test_httpx_sync(server: str, captured: Captured) -> None:
    with httpx.Client(transport=TelemetryTransport(collector=captured.collector)) as client:
        assert client.get(f"{server}/").status_code == 200
        assert client.get(f"{server}/busy").status_code == 503
    expect(captured, int(server.rsplit(":", 1)[1]))


def test_httpx_async(server: str, captured: Captured) -> None:
    async def run() -> None:
        transport = AsyncTelemetryTransport(collector=captured.collector)
        async with httpx.AsyncClient(transport=transport) as client:
            assert (await client.get(f"{server}/")).status_code == 200
            assert (await client.get(f"{server}/busy")).status_code == 503

    asyncio.run(run())
    expect(captured, int(server.rsplit(":", 1)[1]))


def test_requests_session(server: str, captured: Captured) -> None:
    with instrument_session(requests.Session(), collector=captured.collector) as session:
        assert session.get(f"{server}/").status_code == 200
        assert session.get(f"{server}/busy").status_code == 503
    expect(captured, int(server.rsplit(":", 1)[1]))


def test_a_failed_call_is_an_error_event_and_still_raises(captured: Captured) -> None:
    dead = f"http://127.0.0.1:{free_port()}/"
    transport = TelemetryTransport(collector=captured.collector)
    with httpx.Client(transport=transport) as client, pytest.raises(httpx.ConnectError):
        client.get(dead)
    session = instrument_session(requests.Session(), collector=captured.collector)
    with session, pytest.raises(requests.ConnectionError):
        session.get(dead, timeout=5)
    first, second = points(captured)
    assert first["error.type"] == "httpx.ConnectError"
    assert second["error.type"] == "requests.exceptions.ConnectionError"
    assert "http.response.status_code" not in first
    assert [e.event_type.value for e in captured.events] == ["error", "error"]
    assert captured.events[0].message.startswith("GET 127.0.0.1 failed: httpx.ConnectError")
    assert captured.events[0].metadata["server.port"] == int(dead.split(":")[2].rstrip("/"))
