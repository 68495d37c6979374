"""``TelemetryMiddleware`` for WSGI apps: Flask, or any WSGI application.

Example::

    from telemetry.integrations.wsgi import TelemetryMiddleware
    app.wsgi_app = TelemetryMiddleware(app.wsgi_app, collector=collector)   # Flask
    application = TelemetryMiddleware(application, collector=collector)     # any WSGI app

Each request records ``http.server.request.duration`` with its route template (Flask's
matched rule, ``/items/<int:item_id>`` written ``/items/{item_id}``, noted by a
``before_request`` function the middleware adds to the Flask app; ``route_of`` for other
frameworks), method and status, and ``http.server.active_requests``. The request is
recorded once its body has been sent (the last chunk of a streamed body), or when the
server closes it unread. An exception (from the app or while streaming) is recorded as
an ``error`` event with its traceback and raised again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from telemetry.integrations._http import UNMATCHED, ServerMetrics, method_of, template_of

if TYPE_CHECKING:
    from telemetry.collector import TelemetryCollector

__all__ = ["TelemetryMiddleware"]

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


class TelemetryMiddleware:
    """Records every request of the wrapped WSGI ``app`` into ``collector``.

    Args:
        app: the WSGI application (for Flask, ``app.wsgi_app``).
        collector: where the metrics and events go.
        service: the ``service.name`` tag and the events' source (default: the
            collector's ``service_name``).
        route_of: ``environ -> route template`` for frameworks other than Flask
            (called once the response is done); without it their routes are ``unmatched``.
    """

    def __init__(
        self,
        app: WSGIApp,
        collector: TelemetryCollector,
        service: str | None = None,
        route_of: Callable[[Environ], str | None] | None = None,
    ) -> None:
        self.app = app
        self.metrics = ServerMetrics(collector, service)
        self.route_of = route_of
        _hook_flask(app)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = method_of(environ.get("REQUEST_METHOD", "GET"))
        status = [0]

        def start(status_line: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            try:
                status[0] = int(status_line.split(" ", 1)[0])
            except ValueError:
                status[0] = 0
            return start_response(status_line, headers, *exc_info)

        active = self.metrics.active(method)
        active.inc()
        started = time.perf_counter()
        try:
            body = self.app(environ, start)
        except Exception as exc:
            active.dec()
            self._done(environ, method, status[0] or 500, started, exc)
            raise
        return _Body(body, lambda failure: self._finish(environ, method, status, started, failure))

    def _finish(
        self,
        environ: Environ,
        method: str,
        status: list[int],
        started: float,
        failure: BaseException | None,
    ) -> None:
        self.metrics.active(method).dec()
        failure = failure or environ.get(_EXCEPTION_KEY)  # one Flask answered 500 for
        self._done(environ, method, status[0] or (500 if failure else 0), started, failure)

    def _done(
        self,
        environ: Environ,
        method: str,
        status: int,
        started: float,
        failure: BaseException | None,
    ) -> None:
        elapsed = time.perf_counter() - started
        self.metrics.record(method, self._route(environ), status, elapsed, failure)

    def _route(self, environ: Environ) -> str:
        if self.route_of is not None:
            return self.route_of(environ) or UNMATCHED
        rule = environ.get(_ROUTE_KEY)
        return template_of(rule) if rule else UNMATCHED


_ROUTE_KEY = "rimp.route"
_EXCEPTION_KEY = "rimp.exception"


def _hook_flask(app: Any) -> None:
    """For Flask (``app.wsgi_app`` is a bound method of the Flask app): note the matched
    rule in the environ first thing in each request, while Flask still knows it (it
    forgets the request before the body is sent), and the exception of a view that Flask
    turns into a 500 itself (its ``got_request_exception`` signal), for the error event."""
    flask_app = getattr(app, "__self__", None)
    funcs = getattr(flask_app, "before_request_funcs", None)
    if not isinstance(funcs, dict):
        return
    from flask import got_request_exception, request

    def note_route() -> None:
        rule = request.url_rule
        request.environ[_ROUTE_KEY] = rule.rule if rule is not None else None

    def note_exception(sender: Any, exception: BaseException, **extra: Any) -> None:
        request.environ[_EXCEPTION_KEY] = exception

    first = funcs.setdefault(None, [])
    if not any(getattr(f, "__name__", "") == "note_route" for f in first):
        first.insert(0, note_route)
        got_request_exception.connect(note_exception, flask_app, weak=False)


class _Body:
    """The response body, passed through; calls ``done`` once: after its last chunk, when
    producing it fails, or when the server closes it unread."""

    def __init__(self, body: Iterable[bytes], done: Callable[[BaseException | None], None]) -> None:
        self._body = body
        self._done = done
        self._finished = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._body
        except Exception as exc:
            self._finish(exc)
            raise
        self._finish(None)  # the last byte is out (close() may come later, or never in tests)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._finish(None)

    def _finish(self, failure: BaseException | None) -> None:
        if not self._finished:
            self._finished = True
            self._done(failure)
