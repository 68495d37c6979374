"""Outgoing requests made with ``requests``, through an adapter mounted on a session.

Example::

    from telemetry.integrations.requests import instrument_session
    session = instrument_session(requests.Session(), collector=collector)
    session.get("https://api.example.com/users")

Each request records ``http.client.request.duration`` (seconds, until the response's
headers; the whole body when not streamed) tagged ``http.request.method``,
``server.address``, ``server.port``, ``http.response.status_code`` or, when it fails,
``error.type``; a failure (connection error, timeout) is also an ``error`` event, and
is raised as before.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter

from telemetry.integrations._http import ClientMetrics

if TYPE_CHECKING:
    from telemetry.collector import TelemetryCollector

__all__ = ["TelemetryAdapter", "instrument_session"]


class TelemetryAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` that records every request it sends (its other arguments are
    ``HTTPAdapter``'s: pools, retries)."""

    def __init__(
        self, *args: Any, collector: TelemetryCollector, service: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.metrics = ClientMetrics(collector, service)

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Send ``request``, recording it."""
        url = urllib.parse.urlsplit(request.url or "")
        port = url.port or (443 if url.scheme == "https" else 80)
        method = request.method or "GET"
        started = time.perf_counter()
        try:
            response = super().send(request, *args, **kwargs)
        except Exception as exc:
            self.metrics.record(
                method, url.hostname or "", port, status=None,
                seconds=time.perf_counter() - started, exc=exc,
            )  # fmt: skip
            raise
        self.metrics.record(
            method, url.hostname or "", port, status=response.status_code,
            seconds=time.perf_counter() - started,
        )  # fmt: skip
        return response


def instrument_session(
    session: requests.Session, *, collector: TelemetryCollector, service: str | None = None
) -> requests.Session:
    """Mount a :class:`TelemetryAdapter` for ``http://`` and ``https://`` on ``session``;
    return the session."""
    adapter = TelemetryAdapter(collector=collector, service=service)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
