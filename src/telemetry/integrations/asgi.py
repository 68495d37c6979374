"""``TelemetryMiddleware`` for ASGI apps: Starlette, FastAPI, or any ASGI application.

Example::

    from telemetry.integrations.asgi import TelemetryMiddleware
    app.add_middleware(TelemetryMiddleware, collector=collector)       # Starlette, FastAPI
    app = TelemetryMiddleware(app, collector=collector)                # any ASGI app

Each HTTP request records ``http.server.request.duration`` with its route template
(Starlette's and FastAPI's matched route, mounts included; ``route_of`` for other
frameworks), method and status, and ``http.server.active_requests``
(:mod:`telemetry.integrations._http`). A streaming response is timed to its last byte.
An exception is recorded (an ``error`` event with its traceback) and raised again.
WebSocket and lifespan scopes pass through untouched, but for one wait: the app's shutdown
is reported to the server once the collector has flushed (and, when it ships to a server,
sent), so the last records are not lost where the server ends the process right after
(uvicorn does). The first request also
lets the
collector watch the event loop: its lag (with ``runtime_metrics``) and the exceptions
that reach it (with ``capture_exceptions``).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from telemetry.integrations._http import UNMATCHED, ServerMetrics, method_of
from telemetry.integrations.runtime import watch_event_loop

if TYPE_CHECKING:
    from telemetry.collector import TelemetryCollector

__all__ = ["TelemetryMiddleware"]

_CONVERTOR = re.compile(r"\{(\w+):[^}]*\}")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class TelemetryMiddleware:
    """Records every HTTP request of the wrapped ASGI ``app`` into ``collector``.

    Args:
        app: the ASGI application (Starlette passes it when you ``add_middleware``).
        collector: where the metrics and events go.
        service: the ``service.name`` tag and the events' source (default: the
            collector's ``service_name``).
        route_of: ``scope -> route template`` for frameworks other than Starlette and
            FastAPI (called after the request); without it their routes are ``unmatched``.
    """

    def __init__(
        self,
        app: ASGIApp,
        collector: TelemetryCollector,
        service: str | None = None,
        route_of: Callable[[Scope], str | None] | None = None,
    ) -> None:
        self.app = app
        self.metrics = ServerMetrics(collector, service)
        self.route_of = route_of
        self._mounts: dict[str, str] = {}
        self._loop_seen = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._flush_at_shutdown(send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self._loop_seen:
            self._watch_loop()
        method = method_of(scope.get("method", "GET"))
        root = scope.get("root_path", "")
        status = 0

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        active = self.metrics.active(method)
        active.inc()
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            await self.app(scope, receive, send_status)
        except Exception as exc:
            failure = exc
            raise
        finally:
            # The app returns once the body's last byte went out: streaming included.
            elapsed = time.perf_counter() - started
            active.dec()
            # Failed before answering: the server will answer 500. Cancelled (the client
            # went away) before answering: 499, as nginx logs it.
            code = status or (500 if failure is not None else 499)
            self.metrics.record(method, self._route(scope, root), code, elapsed, failure)

    def _flush_at_shutdown(self, send: Send) -> Send:
        """The lifespan's ``send``, unchanged, except that the app's shutdown is reported only
        once the collector has stored (or spooled) what it holds: servers such as uvicorn
        end the process right after, past the interpreter's exit handlers."""

        async def send_after_flush(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                collector = self.metrics.collector
                await asyncio.get_running_loop().run_in_executor(None, _drain, collector)
            await send(message)

        return send_after_flush

    def _route(self, scope: Scope, root: str) -> str:
        if self.route_of is not None:
            return self.route_of(scope) or UNMATCHED
        route = scope.get("route")
        if route is None:
            return UNMATCHED
        path = getattr(route, "path_format", None) or getattr(route, "path", None) or UNMATCHED
        mounted = scope.get("root_path", "")[len(root) :]
        if mounted:
            # Under a Mount the inner route's path is relative: put the mount's own
            # template (not the matched text, which may hold parameters) in front.
            prefix = self._mounts.get(mounted)
            if prefix is None:
                prefix = _mount_template(scope.get("app"), mounted) or mounted
                if len(self._mounts) < 1000:
                    self._mounts[mounted] = prefix
            path = prefix + path if path != prefix else path
        return str(path)

    def _watch_loop(self) -> None:
        self._loop_seen = True
        watch_event_loop(self.metrics.collector, asyncio.get_running_loop())


def _drain(collector: TelemetryCollector) -> None:
    """Flush the collector, then its exporter if it ships (sent, not only spooled), within
    the collector's ``shutdown_timeout``; the collector stays open."""
    deadline = time.monotonic() + collector.config.shutdown_timeout
    collector.flush(collector.config.shutdown_timeout)
    send_all = getattr(collector.storage, "flush", None)
    if callable(send_all):
        send_all(max(deadline - time.monotonic(), 0.0))


def _mount_template(app: Any, mounted: str) -> str | None:
    """The template of the mounts a request went through (``/users/{uid}/files``), found
    by matching ``mounted`` (the path they matched) against the app's routes."""
    for route in getattr(app, "routes", None) or ():
        regex = getattr(route, "path_regex", None)
        if regex is None or not hasattr(route, "app") or getattr(route, "routes", None) is None:
            continue
        found = regex.match(mounted + "/")
        if found is None:
            continue
        # A Mount's path_format ends in its catch-all ("/{path}"); its path is the
        # template, parameters written with their convertors ("{org:int}").
        own = _CONVERTOR.sub(r"{\1}", str(route.path))
        rest = "/" + found.groupdict().get("path", "")
        rest = rest.rstrip("/")
        if not rest:
            return str(own)
        inner = _mount_template(route.app, rest)
        return str(own) + (inner or rest)
    return None
