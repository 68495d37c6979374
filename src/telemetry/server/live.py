"""The live feed: ``GET /api/v1/stream`` (Server-Sent Events) and ``WS /api/v1/stream/ws``.

Both are views of one :class:`~telemetry.server.hub.LiveHub` client: the hub
queues what the client's filters accept (bounded), and these handlers only
format and send. SSE frames carry the record id, so a browser resumes with
``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from telemetry._jsonform import encode
from telemetry.errors import RequestError
from telemetry.models import Event, Metric
from telemetry.server import params
from telemetry.server.errors import error_body, request_error
from telemetry.server.hub import Filters, encode_item
from telemetry.server.state import ServerState

__all__ = ["get_stream", "stream_ws"]

_KEEP_ALIVE_S = 15.0
# The ingest paths say "events" and "metrics": the feed takes both forms.
_KINDS = {"event": "event", "events": "event", "metric": "metric", "metrics": "metric"}


def _filters(request: Request | WebSocket) -> tuple[Filters, bool]:
    q = request.query_params
    given = q.get("kind") or None
    kind = _KINDS.get(given.lower()) if given is not None else None
    if given is not None and kind is None:
        raise RequestError(
            "invalid_parameter", f"kind={given!r}: must be event or metric (or events, metrics)",
            "kind",
        )  # fmt: skip
    types = frozenset(
        params.parse_event_type(t) or "" for t in params.parse_list(q.getlist("type"))
    )
    filters = Filters(
        kind=kind,
        sources=frozenset(params.parse_list(q.getlist("source"))),
        types=types,
        names=frozenset(params.parse_list(q.getlist("name"))),
    )
    return filters, q.get("mode") == "sample"


async def get_stream(request: Request) -> Response:
    """``GET /api/v1/stream``: Server-Sent Events, resumable with ``Last-Event-ID``."""
    state: ServerState = request.app.state.rimp
    try:
        filters, sample = _filters(request)
    except RequestError as err:
        return request_error(err)
    last = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    client = state.hub.connect(filters, last_event_id=last, sample=sample)

    async def events() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 1000\n: connected\n\n"
            while True:
                items = await client.next(_KEEP_ALIVE_S)
                if items:
                    yield b"".join(_sse_frame(kind, record) for kind, record, _ in items)
                elif client.closed_reason is None:
                    yield b": keep-alive\n\n"
                if client.missed:
                    yield b"event: missed\ndata: %d\n\n" % client.missed
                    client.missed = 0
                if client.closed_reason is not None:
                    reason = error_body(client.closed_code, client.closed_reason)
                    yield b"event: error\ndata: %s\n\n" % reason
                    return
        finally:
            state.hub.disconnect(client)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _sse_frame(kind: str, record: Event | Metric) -> bytes:
    rid = record.id
    # Ingest refuses ids with line breaks; never let one split an SSE frame anyway.
    id_line = b"id: %s\n" % rid.encode() if rid.isprintable() else b""
    return b"event: %s\n%sdata: %s\n\n" % (kind.encode(), id_line, encode_item(kind, record))


async def stream_ws(websocket: WebSocket) -> None:
    """``WS /api/v1/stream/ws``: the live feed as JSON messages."""
    state: ServerState = websocket.app.state.rimp
    try:
        filters, sample = _filters(websocket)
    except RequestError as err:
        await websocket.close(code=1008, reason=err.message[:120])
        return
    await websocket.accept()
    client = state.hub.connect(filters, sample=sample)

    async def watch_for_close() -> None:
        # The feed only sends; reading here is how a client's close is noticed at
        # once (not at the next send), so it stops counting as a live client.
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
        client.close("client closed", "closed")

    watcher = asyncio.create_task(watch_for_close())
    try:
        while True:
            items = await client.next(_KEEP_ALIVE_S)
            for kind, record, _ in items:
                record_json = encode_item(kind, record).decode()
                await websocket.send_text(f'{{"kind":"{kind}","record":{record_json}}}')
            if client.missed:
                await websocket.send_text(
                    encode({"kind": "missed", "count": client.missed}).decode()
                )
                client.missed = 0
            if client.closed_reason is not None:
                if not watcher.done():
                    # 1001: going away (shutdown); 1013: try again later (too slow)
                    code = 1001 if client.closed_code == "shutting_down" else 1013
                    await websocket.close(code=code, reason=client.closed_reason[:120])
                return
            if not items:
                await websocket.send_text('{"kind":"keep-alive"}')
    except (WebSocketDisconnect, RuntimeError):  # closed under us
        pass
    finally:
        watcher.cancel()
        state.hub.disconnect(client)
