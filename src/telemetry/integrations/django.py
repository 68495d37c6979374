"""``TelemetryMiddleware`` for Django.

Example (``settings.py``)::

    from telemetry import TelemetryCollector, TelemetryConfig
    RIMP = TelemetryCollector(TelemetryConfig(endpoint="http://127.0.0.1:8787"))
    # or RIMP = {"collector": ..., "service": "shop"}
    MIDDLEWARE = ["telemetry.integrations.django.TelemetryMiddleware", *MIDDLEWARE]

Put it first, so it times the other middleware too. Each request records
``http.server.request.duration`` with its route template (the ``path()`` that matched,
``items/<int:item_id>/`` written ``/items/{item_id}/``; ``unmatched`` for 404s), method and
status, and ``http.server.active_requests``. A view's exception is recorded (an ``error``
event with its traceback) and Django handles it as before (its 500 page, or the test
client raising it). A streaming response is timed to its last chunk.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from telemetry.collector import TelemetryCollector
from telemetry.integrations._http import UNMATCHED, ServerMetrics, method_of, template_of

__all__ = ["TelemetryMiddleware"]


def _settings() -> tuple[TelemetryCollector, str | None]:
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    conf = getattr(settings, "RIMP", None)
    if isinstance(conf, TelemetryCollector):
        return conf, None
    if isinstance(conf, dict) and isinstance(conf.get("collector"), TelemetryCollector):
        return conf["collector"], conf.get("service")
    raise ImproperlyConfigured(
        "settings.RIMP: must be a TelemetryCollector, or a dict with 'collector' (a "
        f"TelemetryCollector) and optionally 'service'; got {conf!r}"
    )


class TelemetryMiddleware:
    """Django middleware recording every request (synchronous views)."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        collector, service = _settings()
        self.metrics = ServerMetrics(collector, service)

    def __call__(self, request: Any) -> Any:
        method = method_of(request.method or "GET")
        active = self.metrics.active(method)
        active.inc()
        started = time.perf_counter()
        try:
            response = self.get_response(request)
        except Exception as exc:  # only when Django lets it through (DEBUG_PROPAGATE_EXCEPTIONS)
            active.dec()
            self._record(request, method, 500, started, exc)
            raise
        failure = getattr(request, "_rimp_exception", None)
        if getattr(response, "streaming", False):
            response.streaming_content = self._timed(
                response.streaming_content, request, method, response.status_code, started
            )
            return response
        active.dec()
        self._record(request, method, response.status_code, started, failure)
        return response

    def process_exception(self, request: Any, exception: Exception) -> None:
        """Keep the view's exception for the record; Django goes on handling it."""
        request._rimp_exception = exception

    def _timed(
        self, content: Iterable[bytes], request: Any, method: str, status: int, started: float
    ) -> Iterator[bytes]:
        failure: BaseException | None = None
        try:
            yield from content
        except Exception as exc:
            failure = exc
            raise
        finally:
            self.metrics.active(method).dec()
            self._record(request, method, 500 if failure else status, started, failure)

    def _record(
        self, request: Any, method: str, status: int, started: float, failure: BaseException | None
    ) -> None:
        elapsed = time.perf_counter() - started
        match = getattr(request, "resolver_match", None)
        route = getattr(match, "route", None)
        self.metrics.record(
            method, template_of(route) if route else UNMATCHED, status, elapsed, failure
        )
