"""The WSGI middleware on a real Flask app, driven by Flask's test client: route templates,
statuses, the 500's event, the exception still raised, streaming timed to the last byte."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from flask import Flask, Response, abort, stream_with_context

from telemetry import TelemetryConfig
from telemetry.integrations.wsgi import TelemetryMiddleware
from telemetry.testing import Captured, capture

DURATION = "http.server.request.duration"


@pytest.fixture
def captured() -> Iterator[Captured]:
    with capture(TelemetryConfig(service_name="flaskapp")) as c:
        yield c


def flask_app(collector: object) -> Flask:
    app = Flask(__name__)

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.post("/pay")
    def pay() -> str:
        abort(502)

    @app.get("/boom")
    def boom() -> str:
        raise KeyError("missing basket")

    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[str]:
            for i in range(3):
                time.sleep(0.05)
                yield f"{i}\n"

        return Response(stream_with_context(chunks()))

    app.wsgi_app = TelemetryMiddleware(app.wsgi_app, collector=collector)  # type: ignore[method-assign, arg-type]
    return app


def rows(captured: Captured) -> list[tuple[str, str, str]]:
    return [
        (m.tags["http.request.method"], m.tags["http.route"], m.tags["http.response.status_code"])
        for m in captured.metrics
        if m.name == DURATION
    ]


def test_routes_are_templates_and_statuses_are_recorded(captured: Captured) -> None:
    # buffered=True: the test client reads the whole body, as a server does.
    client = flask_app(captured.collector).test_client()
    assert client.get("/items/1", buffered=True).status_code == 200
    assert client.get("/items/2", buffered=True).status_code == 200
    assert client.get("/nope", buffered=True).status_code == 404
    assert client.post("/pay", buffered=True).status_code == 502
    assert rows(captured) == [
        ("GET", "/items/{item_id}", "200"),
        ("GET", "/items/{item_id}", "200"),
        ("GET", "unmatched", "404"),
        ("POST", "/pay", "502"),
    ]
    pay = [m for m in captured.metrics if m.name == DURATION][-1]
    assert pay.tags["error.type"] == "502"
    assert pay.tags["service.name"] == "flaskapp"
    (event,) = captured.events
    assert event.message == "POST /pay answered 502"


def test_an_exception_is_recorded_and_still_raised(captured: Captured) -> None:
    app = flask_app(captured.collector)
    app.testing = True  # Flask re-raises the view's exception in tests
    with pytest.raises(KeyError, match="missing basket"):
        app.test_client().get("/boom")
    ((method, route, status),) = rows(captured)
    assert (method, route, status) == ("GET", "/boom", "500")
    (event,) = captured.events
    assert event.metadata["exception.type"] == "KeyError"
    assert "raise KeyError" in event.metadata["exception.stacktrace"]


def test_flask_answering_500_itself_keeps_the_exception(captured: Captured) -> None:
    app = flask_app(captured.collector)  # not testing: Flask answers 500 itself
    assert app.test_client().get("/boom", buffered=True).status_code == 500
    assert rows(captured) == [("GET", "/boom", "500")]
    (event,) = captured.events
    assert event.message == "GET /boom raised KeyError: 'missing basket'"
    assert "raise KeyError" in event.metadata["exception.stacktrace"]


def test_a_stream_is_timed_to_its_last_byte(captured: Captured) -> None:
    client = flask_app(captured.collector).test_client()
    assert client.get("/stream").data == b"0\n1\n2\n"
    (point,) = [m for m in captured.metrics if m.name == DURATION]
    assert point.tags["http.route"] == "/stream"
    assert point.value >= 0.15


def test_any_wsgi_app_with_route_of(captured: Captured) -> None:
    def plain(environ: dict[str, object], start_response: object) -> list[bytes]:
        start_response("201 Created", [("Content-Type", "text/plain")])  # type: ignore[operator]
        return [b"ok"]

    app = TelemetryMiddleware(plain, collector=captured.collector, route_of=lambda e: "/jobs")
    from werkzeug.test import Client

    assert Client(app).post("/jobs", buffered=True).status_code == 201
    assert rows(captured) == [("POST", "/jobs", "201")]
