"""The Loki push door: ``POST /loki/api/v1/push``.

Promtail, Grafana Alloy, Vector, Fluent Bit and Loki logging handlers push here
unchanged (decoding: :mod:`telemetry.protocols.loki`): JSON (gzip allowed) or
snappy-compressed protobuf. ``204`` once stored; errors in plain text, as Loki
answers them. Shippers retry without keys, so a request is keyed by a hash of
its body: a retried push is answered and stored once.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from telemetry.protocols import loki
from telemetry.protocols.native import Limits
from telemetry.server.doors import Decoded, PlainTextAnswers, handle
from telemetry.server.state import ServerState

__all__ = ["LokiWire", "post_push"]

_PROTOBUF = {"application/x-protobuf", "application/protobuf"}


class LokiWire(PlainTextAnswers):
    """One push's decoding (JSON or snappy protobuf) and answers."""

    door = "loki"

    def __init__(self, *, protobuf: bool, limits: Limits) -> None:
        self.protobuf = protobuf
        self.limits = limits

    def decode(self, body: bytes) -> Decoded:
        """The lines as events; lines that break a rule are counted, not fatal."""
        decode = loki.decode_protobuf if self.protobuf else loki.decode_json
        result = decode(body, limits=self.limits)
        return Decoded(result.data, result.rejected, message=result.message)


async def post_push(request: Request) -> Response:
    """``POST /loki/api/v1/push``."""
    state: ServerState = request.app.state.rimp
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    protobuf = content_type in _PROTOBUF
    if not protobuf and content_type != "application/json":
        state.reject("content_type")
        state.count_request("loki", 415)
        return PlainTextResponse(
            f"unsupported_media_type: Content-Type {content_type or '(none)'!r}: send "
            "application/json or application/x-protobuf\n",
            415,
        )
    wire = LokiWire(protobuf=protobuf, limits=state.settings.limits)
    return await handle(request, wire, gzip=not protobuf, raw=("snappy",), implicit_key=True)
