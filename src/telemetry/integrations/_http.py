"""What every HTTP integration records, recorded one way.

A server request is a point of ``http.server.request.duration`` (seconds) tagged
``service.name``, ``http.request.method``, ``http.route`` (the route *template*, never the
raw path: a path per user id would be a series per user), ``http.response.status_code``
and, for a 5xx or an exception, ``error.type``; ``http.server.active_requests`` counts the
requests in flight. A 5xx or an exception is also an ``error`` event whose source is the
service and whose metadata holds the status, the exception's type, message and traceback.
A client request is a point of ``http.client.request.duration`` tagged with the method,
``server.address``, ``server.port`` and the status (or ``error.type``).
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

from telemetry._excepthook import exception_metadata
from telemetry.models import EventType

if TYPE_CHECKING:
    from telemetry.collector import TelemetryCollector
    from telemetry.instruments import Gauge

__all__ = ["UNMATCHED", "ClientMetrics", "ServerMetrics", "method_of", "template_of"]

UNMATCHED = "unmatched"
"""The ``http.route`` of a request no route matched (404s, scanners): one value for all."""
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
_CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_MAX_KEYS = 10_000  # tag sets kept ready; past that, built per request (still correct)


def method_of(method: str) -> str:
    """The method as a tag: a standard one, or ``_OTHER`` (OpenTelemetry's rule: arbitrary
    methods from clients must not make series)."""
    upper = method.upper()
    return upper if upper in _METHODS else "_OTHER"


@functools.lru_cache(maxsize=4096)
def template_of(rule: str) -> str:
    """A Flask/Werkzeug or Django route (``/items/<int:item_id>``) written as OpenAPI and
    Starlette write it (``/items/{item_id}``), so every framework's routes look alike.
    (Cached: an app has few routes, and this runs on every request.)"""
    text = _CONVERTER.sub(r"{\1}", rule)
    return text if text.startswith("/") else "/" + text


class ServerMetrics:
    """Records server requests into ``collector`` for ``service``."""

    def __init__(self, collector: TelemetryCollector, service: str | None = None) -> None:
        self.collector = collector
        self.service = service or collector.config.resolved_service_name()
        self._tags: dict[tuple[str, str, int], dict[str, str]] = {}
        self._active: dict[str, Gauge] = {}

    def active(self, method: str) -> Gauge:
        """The in-flight gauge of ``method`` (``http.server.active_requests``)."""
        gauge = self._active.get(method)
        if gauge is None:
            gauge = self._active[method] = self.collector.gauge(
                "http.server.active_requests",
                tags={"service.name": self.service, "http.request.method": method},
            )
        return gauge

    def record(
        self,
        method: str,
        route: str,
        status: int,
        seconds: float,
        exc: BaseException | None = None,
    ) -> None:
        """One finished request. Never raises: telemetry must not break the request."""
        # HOT PATH (every request): a dict lookup and one collect_metric; the tags of a
        # (method, route, status) are built once. Errors take the slow path below.
        key = (method, route, status)
        tags = self._tags.get(key)
        if tags is None:
            tags = {
                "service.name": self.service,
                "http.request.method": method,
                "http.route": route,
                "http.response.status_code": str(status),
            }
            if status >= 500:
                tags["error.type"] = str(status)
            if len(self._tags) < _MAX_KEYS:
                self._tags[key] = tags
        try:
            if exc is not None:
                tags = {**tags, "error.type": _type_name(exc)}
                self._error(method, route, status, exc)
            elif status >= 500:
                self._error(method, route, status, None)
            self.collector.collect_metric("http.server.request.duration", seconds, "s", tags)
        except Exception:
            pass

    def _error(self, method: str, route: str, status: int, exc: BaseException | None) -> None:
        meta: dict[str, Any] = {
            "http.request.method": method,
            "http.route": route,
            "http.response.status_code": status,
        }
        if exc is not None:
            meta.update(exception_metadata(exc))
            message = f"{method} {route} raised {meta['exception.type']}: {exc}"
        else:
            message = f"{method} {route} answered {status}"
        self.collector.collect_event(self.service, message, EventType.ERROR, meta)


class ClientMetrics:
    """Records outgoing requests into ``collector``."""

    def __init__(self, collector: TelemetryCollector, service: str | None = None) -> None:
        self.collector = collector
        self.service = service or collector.config.resolved_service_name()

    def record(
        self,
        method: str,
        host: str,
        port: int | None,
        *,
        status: int | None,
        seconds: float,
        exc: BaseException | None = None,
    ) -> None:
        """One finished (or failed) request. Never raises."""
        tags = {
            "service.name": self.service,
            "http.request.method": method_of(method),
            "server.address": host,
        }
        if port is not None:
            tags["server.port"] = str(port)
        if status is not None:
            tags["http.response.status_code"] = str(status)
        if exc is not None:
            tags["error.type"] = _type_name(exc)
        elif status is not None and status >= 500:
            tags["error.type"] = str(status)
        try:
            self.collector.collect_metric("http.client.request.duration", seconds, "s", tags)
            if exc is not None:
                meta: dict[str, Any] = {
                    "http.request.method": tags["http.request.method"],
                    "server.address": host,
                    **exception_metadata(exc),
                }
                if port is not None:
                    meta["server.port"] = port
                self.collector.collect_event(
                    self.service,
                    f"{tags['http.request.method']} {host} failed: {meta['exception.type']}: {exc}",
                    EventType.ERROR,
                    meta,
                )
        except Exception:
            pass


def _type_name(exc: BaseException) -> str:
    kind = type(exc)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
