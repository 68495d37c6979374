"""Outgoing requests made with ``httpx`` (sync and async), through a transport wrapper.

Example::

    from telemetry.integrations.httpx import AsyncTelemetryTransport, TelemetryTransport
    client = httpx.Client(transport=TelemetryTransport(collector=collector))
    async_client = httpx.AsyncClient(transport=AsyncTelemetryTransport(collector=collector))
    # wrapping a transport of your own:
    httpx.Client(transport=TelemetryTransport(httpx.HTTPTransport(retries=2), collector=collector))

Each request records ``http.client.request.duration`` (seconds, from sending to the
response's headers) tagged ``http.request.method``, ``server.address``, ``server.port``,
``http.response.status_code`` or, when it fails, ``error.type``; a failure (a connection
error, a timeout) is also an ``error`` event, and is raised as before.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import httpx

from telemetry.integrations._http import ClientMetrics

if TYPE_CHECKING:
    from telemetry.collector import TelemetryCollector

__all__ = ["AsyncTelemetryTransport", "TelemetryTransport"]


class TelemetryTransport(httpx.BaseTransport):
    """A synchronous ``httpx`` transport that records each request, then hands it to
    ``transport`` (default ``httpx.HTTPTransport()``)."""

    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        *,
        collector: TelemetryCollector,
        service: str | None = None,
    ) -> None:
        self.transport = transport or httpx.HTTPTransport()
        self.metrics = ClientMetrics(collector, service)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the wrapped transport, recording it."""
        started = time.perf_counter()
        try:
            response = self.transport.handle_request(request)
        except Exception as exc:
            _record(self.metrics, request, None, started, exc)
            raise
        _record(self.metrics, request, response.status_code, started, None)
        return response

    def close(self) -> None:
        """Close the wrapped transport."""
        self.transport.close()


class AsyncTelemetryTransport(httpx.AsyncBaseTransport):
    """The asynchronous twin of :class:`TelemetryTransport` (default
    ``httpx.AsyncHTTPTransport()``)."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        collector: TelemetryCollector,
        service: str | None = None,
    ) -> None:
        self.transport = transport or httpx.AsyncHTTPTransport()
        self.metrics = ClientMetrics(collector, service)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the wrapped transport, recording it."""
        started = time.perf_counter()
        try:
            response = await self.transport.handle_async_request(request)
        except Exception as exc:
            _record(self.metrics, request, None, started, exc)
            raise
        _record(self.metrics, request, response.status_code, started, None)
        return response

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self.transport.aclose()


def _record(
    metrics: ClientMetrics,
    request: httpx.Request,
    status: int | None,
    started: float,
    exc: BaseException | None,
) -> None:
    url = request.url
    port = url.port or (443 if url.scheme == "https" else 80)
    metrics.record(
        request.method,
        url.host,
        port,
        status=status,
        seconds=time.perf_counter() - started,
        exc=exc,
    )
