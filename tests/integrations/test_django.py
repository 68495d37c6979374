"""The Django middleware in a real Django project (configured in this module), driven by
Django's test client: route templates, statuses, the view's exception recorded and still
raised, streaming responses timed to their last chunk, and a clear error without RIMP."""

from __future__ import annotations

import time
from collections.abc import Iterator

import django
import pytest
from django.conf import settings

from telemetry import TelemetryCollector, TelemetryConfig
from telemetry.testing import CapturingStorage

DURATION = "http.server.request.duration"
STORAGE = CapturingStorage()
COLLECTOR = TelemetryCollector(TelemetryConfig(service_name="djangoapp"), storage=STORAGE)

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="tests",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["telemetry.integrations.django.TelemetryMiddleware"],
        RIMP={"collector": COLLECTOR, "service": "shop"},
        INSTALLED_APPS=[],
    )
    django.setup()

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import include, path  # noqa: E402


def item(request: HttpRequest, item_id: int) -> JsonResponse:
    return JsonResponse({"id": item_id})


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("inventory unreachable")


def teapot(request: HttpRequest) -> HttpResponse:
    return HttpResponse(status=503)


def stream(request: HttpRequest) -> StreamingHttpResponse:
    def chunks() -> Iterator[bytes]:
        for i in range(3):
            time.sleep(0.05)
            yield f"{i}\n".encode()

    return StreamingHttpResponse(chunks())


urlpatterns = [
    path("items/<int:item_id>/", item),
    path("api/", include([path("boom/", boom), path("busy/", teapot)])),
    path("stream/", stream),
]


@pytest.fixture
def recorded() -> CapturingStorage:
    COLLECTOR.flush()
    STORAGE.events.clear()
    STORAGE.metrics.clear()
    return STORAGE


def rows(storage: CapturingStorage) -> list[tuple[str, str, str]]:
    COLLECTOR.flush()
    return [
        (m.tags["http.request.method"], m.tags["http.route"], m.tags["http.response.status_code"])
        for m in storage.metrics
        if m.name == DURATION
    ]


def test_routes_are_templates_with_includes(recorded: CapturingStorage) -> None:
    client = Client()
    assert client.get("/items/1/").status_code == 200
    assert client.get("/items/2/").status_code == 200
    assert client.get("/missing/").status_code == 404
    assert client.get("/api/busy/").status_code == 503
    assert rows(recorded) == [
        ("GET", "/items/{item_id}/", "200"),
        ("GET", "/items/{item_id}/", "200"),
        ("GET", "unmatched", "404"),
        ("GET", "/api/busy/", "503"),
    ]
    point = next(m for m in recorded.metrics if m.name == DURATION)
    assert point.tags["service.name"] == "shop"
    (event,) = recorded.events
    assert event.message == "GET /api/busy/ answered 503"


def test_a_views_exception_is_recorded_and_the_test_client_still_raises_it(
    recorded: CapturingStorage,
) -> None:
    with pytest.raises(RuntimeError, match="inventory unreachable"):
        Client().get("/api/boom/")
    assert rows(recorded) == [("GET", "/api/boom/", "500")]
    (event,) = recorded.events
    assert event.metadata["exception.type"] == "RuntimeError"
    assert "inventory unreachable" in event.metadata["exception.stacktrace"]
    (point,) = [m for m in recorded.metrics if m.name == DURATION]
    assert point.tags["error.type"] == "RuntimeError"


def test_a_streaming_response_is_timed_to_its_last_chunk(recorded: CapturingStorage) -> None:
    response = Client().get("/stream/")
    assert b"".join(response.streaming_content) == b"0\n1\n2\n"  # type: ignore[attr-defined]
    assert rows(recorded) == [("GET", "/stream/", "200")]
    (point,) = [m for m in recorded.metrics if m.name == DURATION]
    assert point.tags["http.route"] == "/stream/"
    assert point.value >= 0.15


def test_a_missing_rimp_setting_is_a_clear_error() -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    from telemetry.integrations.django import TelemetryMiddleware

    with override_settings(RIMP=None), pytest.raises(ImproperlyConfigured, match=r"settings\.RIMP"):
        TelemetryMiddleware(lambda r: HttpResponse())
