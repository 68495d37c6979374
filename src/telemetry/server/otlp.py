"""The OTLP/HTTP doors: ``POST /v1/logs``, ``/v1/metrics`` and ``/v1/traces``.

The OpenTelemetry default paths, so an SDK's or a Collector's OTLP/HTTP exporter
only needs RIMP's address. Decoding is :mod:`telemetry.protocols.otlp`; the rest
(bounded reads, gzip, back-pressure, the answer once stored) is
:mod:`telemetry.server.doors`. As the OTLP specification says: ``200`` with an
``Export*ServiceResponse`` in the request's content type (``partial_success``
when records were rejected), a ``google.rpc.Status`` body for every error, and
``429``/``503`` with ``Retry-After`` under back-pressure. Exporters send no
idempotency key, so a request is keyed by a hash of its body: a retry of an
accepted request is answered and stored once.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from telemetry.protocols import otlp
from telemetry.protocols.native import Limits
from telemetry.server.doors import Decoded, handle
from telemetry.server.state import ServerState

__all__ = ["OtlpWire", "post_logs", "post_metrics", "post_traces"]

_PROTOBUF = {"application/x-protobuf", "application/protobuf"}
# google.rpc.Code of each error, as the OTLP exporters read them.
_RPC_CODES = {
    "too_many_pending": 8,  # RESOURCE_EXHAUSTED: retry later
    "body_too_large": 8,
    "too_many_records": 8,
    "storage_unavailable": 14,  # UNAVAILABLE: retry later
    "interrupted": 14,
    "unsupported_media_type": 3,
}


class OtlpWire:
    """One OTLP request's decoding and answers, in its content type."""

    door = "otlp"
    ok_status = 200

    def __init__(self, signal: str, *, json: bool, limits: Limits) -> None:
        self.signal = signal
        self.json = json
        self.limits = limits
        self.media_type = "application/json" if json else "application/x-protobuf"

    def decode(self, body: bytes) -> Decoded:
        """The request's records; rejected records are counted, not fatal."""
        result = otlp.decode(self.signal, body, json=self.json, limits=self.limits)
        return Decoded(result.data, result.rejected, message=result.message)

    def accepted(self, decoded: Decoded, folded: int) -> bytes:
        """The ``Export*ServiceResponse`` (with ``partial_success`` for rejects)."""
        return otlp.encode_response(
            self.signal, json=self.json, rejected=decoded.rejected, message=decoded.message
        )

    def error(self, code: str, message: str, field: str | None) -> bytes:
        """A ``google.rpc.Status`` naming the problem."""
        text = f"{field}: {message}" if field else message
        return otlp.encode_status(_RPC_CODES.get(code, 3), text, json=self.json)


async def _door(request: Request, signal: str) -> Response:
    state: ServerState = request.app.state.rimp
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    json = content_type == "application/json"
    wire = OtlpWire(signal, json=json, limits=state.settings.limits)
    if not json and content_type not in _PROTOBUF:
        state.reject("content_type")
        state.count_request("otlp", 415)
        message = (
            f"Content-Type {content_type or '(none)'!r}: send application/x-protobuf "
            "or application/json"
        )
        body = otlp.encode_status(3, message, json=True)
        return Response(body, 415, media_type="application/json")
    return await handle(request, wire, implicit_key=True)


async def post_logs(request: Request) -> Response:
    """``POST /v1/logs``: OTLP logs become events."""
    return await _door(request, "logs")


async def post_metrics(request: Request) -> Response:
    """``POST /v1/metrics``: OTLP metrics become points."""
    return await _door(request, "metrics")


async def post_traces(request: Request) -> Response:
    """``POST /v1/traces``: each span becomes an event and a duration point."""
    return await _door(request, "traces")
