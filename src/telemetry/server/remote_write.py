"""The Prometheus remote_write door: ``POST /api/v1/write`` (also ``/prometheus/api/v1/write``).

Point a Prometheus server's ``remote_write`` at it and its scraped series arrive as
RIMP metric points (decoding: :mod:`telemetry.protocols.remote_write`). ``204`` once
stored; ``400`` (plain text, as Prometheus logs it) for a body it cannot decode,
which Prometheus does not retry; ``415`` for a remote-write 2.0 body; ``429`` and
``503`` with ``Retry-After`` under back-pressure, which Prometheus retries. A
retried request (the same bytes) is answered and stored once.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from telemetry.errors import RequestError
from telemetry.protocols import remote_write
from telemetry.protocols.native import Limits
from telemetry.server.doors import Decoded, PlainTextAnswers, handle
from telemetry.server.state import ServerState

__all__ = ["RemoteWriteWire", "post_write"]


class RemoteWriteWire(PlainTextAnswers):
    """remote_write 1.0: decoding and answers (``204``; errors as plain text)."""

    door = "remote_write"

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.skipped = 0

    def decode(self, body: bytes) -> Decoded:
        """The points; NaN samples and stale markers are skipped (counted by the door)."""
        result = remote_write.decode(body, limits=self.limits)
        self.skipped = result.skipped
        return Decoded(result.data, result.rejected, message=result.message)


async def post_write(request: Request) -> Response:
    """``POST /api/v1/write``: Prometheus remote_write 1.0."""
    state: ServerState = request.app.state.rimp
    try:
        remote_write.check_content_type(request.headers.get("content-type", ""))
    except RequestError as err:
        state.reject(err.code)
        state.count_request("remote_write", err.status)
        return PlainTextResponse(f"{err.code}: {err.message}\n", err.status)
    wire = RemoteWriteWire(state.settings.limits)
    response = await handle(request, wire, gzip=False, raw=("snappy",), implicit_key=True)
    if wire.skipped:
        state.count_records("remote_write", "skipped", wire.skipped)
    return response
