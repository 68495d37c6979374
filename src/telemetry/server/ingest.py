"""The native ingest doors: ``POST /api/v1/events``, ``/api/v1/metrics`` and ``/api/v1/batch``.

RIMP's own JSON (an array, one object, or NDJSON), decoded by
:class:`~telemetry.protocols.native.WireDecoder`; everything a door does beyond
decoding (bounded reads, back-pressure, idempotency, the answer only once
stored) is :mod:`telemetry.server.doors`. Answers are ``202`` with the counts,
and with ``?partial=true`` the rejected records by index.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from telemetry._jsonform import encode
from telemetry.protocols.native import WireDecoder
from telemetry.server.doors import Decoded, handle
from telemetry.server.errors import error_body, error_response
from telemetry.server.state import ServerState

__all__ = ["MAX_REJECTS_LISTED", "NativeWire", "post_batch", "post_events", "post_metrics"]

MAX_REJECTS_LISTED = 1000
"""Most rejected records an answer lists (``rejected_count`` always says how many)."""
_JSON_TYPES = {"application/json", "text/json"}
_NDJSON_TYPES = {"application/x-ndjson", "application/ndjson", "application/jsonl"}


class NativeWire:
    """RIMP's JSON: one request's decoding and answers."""

    door = "native"
    media_type = "application/json"
    ok_status = 202

    def __init__(self, decoder: WireDecoder, kind: str, *, ndjson: bool, partial: bool) -> None:
        self.decoder = decoder
        self.kind = kind
        self.ndjson = ndjson
        self.partial = partial

    def decode(self, body: bytes) -> Decoded:
        """The valid records, and (with ``partial``) the rejected ones by index."""
        data, rejected = self.decoder.decode(
            self.kind, body, ndjson=self.ndjson, partial=self.partial
        )
        return Decoded(data, len(rejected), rejected)

    def accepted(self, decoded: Decoded, folded: int) -> bytes:
        """``{"accepted": n, ...}``: per kind for a batch, rejects, folded points."""
        data = decoded.data
        body: dict[str, Any] = {"accepted": len(data)}
        if self.kind == "batch":
            body.update(events=len(data.events), metrics=len(data.metrics))
        if decoded.rejected:
            # Listed up to a bound, so an answer (and what idempotency remembers of it)
            # stays small; the count is always whole.
            body["rejected"] = decoded.details[:MAX_REJECTS_LISTED]
            body["rejected_count"] = decoded.rejected
        if folded:  # stored, but under an overflow series: the client is told
            body["folded"] = folded
        return encode(body)

    def error(self, code: str, message: str, field: str | None) -> bytes:
        """The API's JSON error body."""
        return error_body(code, message, field)


async def post_events(request: Request) -> Response:
    """``POST /api/v1/events``."""
    return await _ingest(request, "events")


async def post_metrics(request: Request) -> Response:
    """``POST /api/v1/metrics``."""
    return await _ingest(request, "metrics")


async def post_batch(request: Request) -> Response:
    """``POST /api/v1/batch``."""
    return await _ingest(request, "batch")


async def _ingest(request: Request, kind: str) -> Response:
    state: ServerState = request.app.state.rimp
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    ndjson = content_type in _NDJSON_TYPES
    if not ndjson and content_type not in _JSON_TYPES:
        state.reject("content_type")
        state.count_request("native", 415)
        return error_response(
            415,
            "unsupported_media_type",
            f"Content-Type {content_type or '(none)'!r}: send application/json or "
            "application/x-ndjson",
        )
    partial = request.query_params.get("partial", "").lower() in ("1", "true", "yes")
    wire = NativeWire(state.decoder, kind, ndjson=ndjson, partial=partial)
    return await handle(request, wire)
