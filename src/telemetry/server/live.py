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
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from telemetry._jsonform import encode
from telemetry.errors import RequestError
from telemetry.models import Event, Metric
from telemetry.server import params
from telemetry.server.errors import error_body, request_error
from telemetry.server.hub import Client, Filters, LiveHub, encode_item
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
    return _Feed(state.hub, client, state.settings.live_stall_timeout)


class _Feed(Response):
    """The endless SSE response of one live client.

    Written by hand rather than with ``StreamingResponse`` for two bounds: each write
    holds at most one small slice of the client's queue (the rest waits in the hub,
    where it counts), and a write the reader does not take within ``stall_timeout``
    seconds ends the response unfinished, which makes the server close the connection: a
    reader that stopped reading holds neither memory nor a socket.
    """

    media_type = "text/event-stream"

    def __init__(self, hub: LiveHub, client: Client, stall_timeout: float) -> None:
        # Not Response.__init__: it would add "content-length: 0" to an endless body.
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
            # No request ever follows an endless response: when the feed ends (the
            # client was cut off, or the server stops) the connection goes with it.
            (b"connection", b"close"),
        ]
        self.hub = hub
        self.client = client
        self.stall_timeout = stall_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = self.client

        async def watch_for_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            client.close("client closed", "closed")

        watcher = asyncio.create_task(watch_for_disconnect())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for chunk in self._frames():
                if client.closed_code == "closed":
                    return
                body = {"type": "http.response.body", "body": chunk, "more_body": True}
                try:
                    await asyncio.wait_for(send(body), self.stall_timeout)
                except TimeoutError:
                    self.hub.stalled += 1
                    return  # unfinished: the connection is closed
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # the socket went away under us
            return
        finally:
            watcher.cancel()
            self.hub.disconnect(client)

    async def _frames(self) -> AsyncIterator[bytes]:
        client = self.client
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
            if client.closed_reason is not None and not client.queue:
                reason = error_body(client.closed_code, client.closed_reason)
                yield b"event: error\ndata: %s\n\n" % reason
                return


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

    async def send(text: str) -> None:
        # A reader that takes nothing for live_stall_timeout s is dropped (TimeoutError).
        await asyncio.wait_for(websocket.send_text(text), state.settings.live_stall_timeout)

    try:
        while True:
            items = await client.next(_KEEP_ALIVE_S)
            for kind, record, _ in items:
                record_json = encode_item(kind, record).decode()
                await send(f'{{"kind":"{kind}","record":{record_json}}}')
            if client.missed:
                await send(encode({"kind": "missed", "count": client.missed}).decode())
                client.missed = 0
            if client.closed_reason is not None and not client.queue:
                if not watcher.done():
                    # 1001: going away (shutdown); 1013: try again later (too slow)
                    code = 1001 if client.closed_code == "shutting_down" else 1013
                    await websocket.close(code=code, reason=client.closed_reason[:120])
                return
            if not items:
                await send('{"kind":"keep-alive"}')
    except TimeoutError:
        state.hub.stalled += 1
    except (WebSocketDisconnect, RuntimeError):  # closed under us
        pass
    finally:
        watcher.cancel()
        state.hub.disconnect(client)
