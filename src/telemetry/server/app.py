"""The RIMP server as an ASGI application (Starlette).

One pipeline, many doors: ingest endpoints submit whole batches to a
:class:`~telemetry.collector.TelemetryCollector` and answer ``202`` only once
the storage has the batch; the live hub is a consumer of the collector's
:class:`~telemetry.streaming.TelemetryStream`. No second pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import urllib.parse
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from telemetry.collector import TelemetryCollector
from telemetry.config import TelemetryConfig
from telemetry.errors import TelemetryError, ValidationError
from telemetry.server import dashboard, params
from telemetry.server.auth import Tokens
from telemetry.server.hub import Filters, LiveHub, encode_item
from telemetry.server.selfmetrics import exposition
from telemetry.server.wire import (
    IngestError,
    Limits,
    WireDecoder,
    event_to_wire,
    metric_to_wire,
    rfc3339,
)
from telemetry.storage import Storage
from telemetry.streaming import TelemetryStream

__all__ = ["ServerSettings", "ServerState", "create_app"]

_encode = msgspec.json.Encoder(enc_hook=str).encode
_INGEST_PATHS = {"/api/v1/events", "/api/v1/metrics", "/api/v1/batch"}
_OPEN_PATHS = {"/healthz", "/readyz"}
_JSON_TYPES = {"application/json", "text/json"}
_NDJSON_TYPES = {"application/x-ndjson", "application/ndjson", "application/jsonl"}


class ServerSettings(msgspec.Struct):
    """Everything ``rimp serve`` configures."""

    storage: Storage | None = None
    data_dir: str = "rimp-data"
    tokens: Tokens | None = None
    limits: Limits = Limits()
    max_pending: int = 100_000
    ack_timeout: float = 30.0
    idempotency_keys: int = 100_000
    live_window: int = 10_000
    live_queue: int = 10_000
    demo: bool = False


class ServerState:
    """What the handlers share: the pipeline, the hub and the server's own counters."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.decoder = WireDecoder(settings.limits)
        self.tokens = settings.tokens or Tokens({})
        self.hub = LiveHub(window=settings.live_window, max_queue=settings.live_queue)
        self.received: dict[str, int] = {"event": 0, "metric": 0}
        self.rejected: dict[str, int] = {}
        self.requests: dict[str, int] = {}
        self.idempotent: OrderedDict[str, asyncio.Future[tuple[int, bytes]]] = OrderedDict()
        self.storage_seconds = 0.0
        self.storage_writes = 0
        self.storage_bytes: int | None = None
        self.started = time.time()
        self.collector: TelemetryCollector
        self.stream: TelemetryStream
        self.demo_stop = threading.Event()

    def reject(self, reason: str, n: int = 1) -> None:
        """Count ``n`` rejected records under ``reason``."""
        self.rejected[reason] = self.rejected.get(reason, 0) + n


def _error(
    status: int, code: str, message: str, field: str | None = None, **headers: str
) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return Response(
        _encode({"error": body}), status, media_type="application/json", headers=headers or None
    )


def _json(body: Any, status: int = 200) -> Response:
    return Response(_encode(body), status, media_type="application/json")


# --- ingest -------------------------------------------------------------------------


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise IngestError("body_too_large", f"body is over {limit} bytes", status=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise IngestError("body_too_large", f"body is over {limit} bytes", status=413)
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = inflater.decompress(body, limit + 1)
        except zlib.error as exc:
            raise IngestError("malformed_body", f"gzip body does not inflate: {exc}") from None
        if len(body) > limit or inflater.unconsumed_tail:
            raise IngestError(
                "body_too_large", f"body is over {limit} bytes once decompressed", status=413
            )
    elif encoding not in ("identity", ""):
        raise IngestError(
            "unsupported_encoding", f"Content-Encoding {encoding!r}: use gzip or none", status=415
        )
    return body


async def _ingest(request: Request, kind: str) -> Response:
    state: ServerState = request.app.state.rimp
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    ndjson = content_type in _NDJSON_TYPES
    if not ndjson and content_type not in _JSON_TYPES:
        state.reject("content_type")
        return _error(
            415,
            "unsupported_media_type",
            f"Content-Type {content_type or '(none)'!r}: send application/json or "
            "application/x-ndjson",
        )
    key = request.headers.get("idempotency-key")
    if not key:
        status, payload, _ = await _accept(request, state, kind, ndjson)
        return _answer(status, payload)
    seen = state.idempotent.get(key)
    if seen is not None:  # the same request again, stored or still in flight: one answer
        try:
            return _answer(
                *await asyncio.wait_for(asyncio.shield(seen), state.settings.ack_timeout)
            )
        except TimeoutError:
            return _answer(503, _NOT_YET)
    # Registered before the body is even read, so a retry racing the first
    # attempt waits for it instead of storing the batch a second time.
    future: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
    state.idempotent[key] = future
    while len(state.idempotent) > state.settings.idempotency_keys:
        state.idempotent.popitem(last=False)
    try:
        status, payload, late = await _accept(request, state, kind, ndjson)
    except BaseException:
        state.idempotent.pop(key, None)
        future.set_result((503, _encode({"error": {"code": "interrupted", "message": "retry"}})))
        raise
    if late is not None:
        # Not stored in time, but still queued: retries with this key wait for (or
        # get) the real outcome instead of storing the batch again.
        state.idempotent[key] = late
        late.add_done_callback(lambda f: _forget_failed(state, key, f))
    elif status >= 500 or status == 429:  # not stored: a retry with this key must try again
        state.idempotent.pop(key, None)
    future.set_result((status, payload))
    return _answer(status, payload)


def _forget_failed(
    state: ServerState, key: str, outcome: asyncio.Future[tuple[int, bytes]]
) -> None:
    if outcome.result()[0] != 202 and state.idempotent.get(key) is outcome:
        del state.idempotent[key]


def _answer(status: int, payload: bytes) -> Response:
    # 429 and 503 say when to come back (API.md: back-pressure answers carry Retry-After).
    headers = {"Retry-After": "1" if status == 429 else "2"} if status in (429, 503) else None
    return Response(payload, status, media_type="application/json", headers=headers)


Outcome = tuple[int, bytes, "asyncio.Future[tuple[int, bytes]] | None"]
_NOT_YET = _encode(
    {
        "error": {
            "code": "storage_unavailable",
            "message": "the batch is not stored yet; retry with the same Idempotency-Key",
        }
    }
)


async def _accept(request: Request, state: ServerState, kind: str, ndjson: bool) -> Outcome:
    """Read, decode, check back-pressure and submit: the answer's status and body, and,
    when the batch stays queued past the wait, the future of its final answer."""
    try:
        body = await _read_body(request, state.settings.limits.max_body_bytes)
        partial = request.query_params.get("partial", "").lower() in ("1", "true", "yes")
        data, rejected = state.decoder.decode(kind, body, ndjson=ndjson, partial=partial)
    except IngestError as err:
        state.reject(err.code)
        return err.status, _encode({"error": err.to_json()}), None
    if rejected:
        state.reject("invalid_field", len(rejected))
    collector = state.collector
    if collector.stats()["awaiting_retry"]:
        state.reject("storage_unavailable", len(data))
        return (
            503,
            _encode(
                {
                    "error": {
                        "code": "storage_unavailable",
                        "message": "storage is failing; retry later",
                    }
                }
            ),
            None,
        )
    pending = collector.pending()
    # A batch bigger than the bound is taken when nothing else waits, or it never could be.
    if pending and pending + len(data) > state.settings.max_pending:
        state.reject("backpressure", len(data))
        return (
            429,
            _encode(
                {
                    "error": {
                        "code": "too_many_pending",
                        "message": "more records are waiting for storage than the server holds; "
                        "retry later",
                    }
                }
            ),
            None,
        )
    return await _submit(state, data, kind, rejected)


async def _submit(
    state: ServerState, data: Any, kind: str, rejected: list[dict[str, Any]]
) -> Outcome:
    body: dict[str, Any] = {"accepted": len(data)}
    if kind == "batch":
        body.update(events=len(data.events), metrics=len(data.metrics))
    if rejected:
        body["rejected"] = rejected
    accepted = _encode(body)
    if not data:
        return 202, accepted, None
    loop = asyncio.get_running_loop()
    stored: asyncio.Future[bool] = loop.create_future()

    def ack(ok: bool) -> None:  # on the dispatch thread
        loop.call_soon_threadsafe(_settle, stored, ok)

    def count(ok: bool) -> None:
        if ok:
            state.received["event"] += len(data.events)
            state.received["metric"] += len(data.metrics)

    started = time.perf_counter()
    state.collector.submit(data, ack)
    try:
        ok = await asyncio.wait_for(asyncio.shield(stored), state.settings.ack_timeout)
    except TimeoutError:
        late: asyncio.Future[tuple[int, bytes]] = loop.create_future()

        def settle_late(f: asyncio.Future[bool]) -> None:
            count(f.result())
            late.set_result((202, accepted) if f.result() else (503, _NOT_YET))

        stored.add_done_callback(settle_late)
        return 503, _NOT_YET, late
    state.storage_seconds += time.perf_counter() - started
    state.storage_writes += 1
    count(ok)
    return (202, accepted, None) if ok else (503, _NOT_YET, None)


def _settle(future: asyncio.Future[bool], ok: bool) -> None:
    if not future.done():
        future.set_result(ok)


async def post_events(request: Request) -> Response:
    """``POST /api/v1/events``."""
    return await _ingest(request, "events")


async def post_metrics(request: Request) -> Response:
    """``POST /api/v1/metrics``."""
    return await _ingest(request, "metrics")


async def post_batch(request: Request) -> Response:
    """``POST /api/v1/batch``."""
    return await _ingest(request, "batch")


# --- queries ---------------------------------------------------------------------------


def _query_error(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except IngestError as err:
            return _error(err.status, err.code, err.message, err.field)
        except ValidationError as err:
            field = str(err).split("=", 1)[0] if "=" in str(err) else None
            return _error(400, "invalid_parameter", str(err), field)
        except TelemetryError as err:
            return _error(503, "storage_unavailable", str(err), **{"Retry-After": "2"})

    return wrapped


@_query_error
async def get_events(request: Request) -> Response:
    """``GET /api/v1/events``: newest first."""
    state: ServerState = request.app.state.rimp
    q = request.query_params
    found = await run_in_threadpool(
        state.collector.storage.query_events,
        source=q.get("source") or None,
        event_type=params.parse_event_type(q.get("type")),
        since=params.parse_time(q.get("since"), "since"),
        until=params.parse_time(q.get("until"), "until"),
        search=q.get("search") or None,
        limit=params.parse_limit(q.get("limit"), 100, 10_000),
    )
    return _json({"events": [event_to_wire(e) for e in found]})


def _groups(buckets: list[Any]) -> list[dict[str, Any]]:
    groups: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for b in buckets:
        key = tuple(sorted(b.tags.items()))
        group = groups.get(key)
        if group is None:
            group = groups[key] = {"tags": b.tags, "buckets": []}
        group["buckets"].append(
            {
                "start": rfc3339(b.start_ns),
                "start_ns": b.start_ns,
                "value": b.value,
                "count": b.count,
            }
        )
    return list(groups.values())


@_query_error
async def get_event_counts(request: Request) -> Response:
    """``GET /api/v1/events/counts``."""
    state: ServerState = request.app.state.rimp
    q = request.query_params
    group_by = [
        "event_type" if g == "type" else g for g in params.parse_list(q.getlist("group_by"))
    ] or ["event_type"]
    since = params.parse_time(q.get("since"), "since")
    buckets = await run_in_threadpool(
        state.collector.storage.count_events,
        bucket=params.parse_bucket(q.get("bucket")),
        since=since if since is not None else time.time_ns() - 3600 * 1_000_000_000,
        until=params.parse_time(q.get("until"), "until"),
        source=q.get("source") or None,
        event_type=params.parse_event_type(q.get("type")),
        group_by=group_by,
    )
    groups = _groups(buckets)
    for group in groups:
        if "event_type" in group["tags"]:
            group["tags"]["type"] = group["tags"].pop("event_type")
    return _json({"groups": groups})


@_query_error
async def get_series(request: Request) -> Response:
    """``GET /api/v1/series``."""
    state: ServerState = request.app.state.rimp
    found = await run_in_threadpool(
        state.collector.storage.series, request.query_params.get("name") or None
    )
    return _json(
        {
            "series": [
                {
                    "name": s.name,
                    "unit": s.unit,
                    "tags": s.tags,
                    "last_value": s.last_value,
                    "last_timestamp": rfc3339(s.last_time_ns),
                    "last_time_ns": s.last_time_ns,
                }
                for s in found
            ]
        }
    )


@_query_error
async def get_metric(request: Request) -> Response:
    """``GET /api/v1/metrics/{name}``: points oldest first."""
    state: ServerState = request.app.state.rimp
    q = request.query_params
    name = request.path_params["name"]
    points = await run_in_threadpool(
        state.collector.storage.query_metrics,
        name,
        tags=params.parse_tags(q.getlist("tags")),
        since=params.parse_time(q.get("since"), "since"),
        until=params.parse_time(q.get("until"), "until"),
        limit=params.parse_limit(q.get("limit"), 10_000, 1_000_000),
    )
    return _json({"name": name, "points": [metric_to_wire(p) for p in points]})


@_query_error
async def get_aggregate(request: Request) -> Response:
    """``GET /api/v1/metrics/{name}/aggregate``: last hour by default."""
    state: ServerState = request.app.state.rimp
    q = request.query_params
    name = request.path_params["name"]
    agg = q.get("agg") or "avg"
    bucket = params.parse_bucket(q.get("bucket"))
    since = params.parse_time(q.get("since"), "since")
    buckets = await run_in_threadpool(
        state.collector.storage.aggregate,
        name,
        agg=agg,
        bucket=bucket,
        since=since if since is not None else time.time_ns() - 3600 * 1_000_000_000,
        until=params.parse_time(q.get("until"), "until"),
        tags=params.parse_tags(q.getlist("tags")),
        group_by=params.parse_list(q.getlist("group_by")) or None,
    )
    return _json({"name": name, "agg": agg, "bucket": bucket, "groups": _groups(buckets)})


# --- live ---------------------------------------------------------------------------------


def _filters(request: Request | WebSocket) -> tuple[Filters, bool]:
    q = request.query_params
    kind = q.get("kind") or None
    if kind not in (None, "event", "metric"):
        raise IngestError("invalid_parameter", f"kind={kind!r}: must be event or metric", "kind")
    types = frozenset(t.lower() for t in params.parse_list(q.getlist("type")))
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
    except IngestError as err:
        return _error(err.status, err.code, err.message, err.field)
    last = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    client = state.hub.connect(filters, last_event_id=last, sample=sample)

    async def events() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 1000\n: connected\n\n"
            while True:
                items = await client.next(15.0)
                if items:
                    yield b"".join(_sse_frame(kind, record) for kind, record in items)
                elif client.closed_reason is None:
                    yield b": keep-alive\n\n"
                if client.missed:
                    yield b"event: missed\ndata: %d\n\n" % client.missed
                    client.missed = 0
                if client.closed_reason is not None:
                    reason = _encode(
                        {"error": {"code": client.closed_code, "message": client.closed_reason}}
                    )
                    yield b"event: error\ndata: %s\n\n" % reason
                    return
        finally:
            state.hub.disconnect(client)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _sse_frame(kind: str, record: Any) -> bytes:
    rid = record.id
    # Ingest refuses ids with line breaks; never let one split an SSE frame anyway.
    id_line = b"id: %s\n" % rid.encode() if rid.isprintable() else b""
    return b"event: %s\n%sdata: %s\n\n" % (kind.encode(), id_line, encode_item((kind, record)))


async def stream_ws(websocket: WebSocket) -> None:
    """``WS /api/v1/stream/ws``: the live feed as JSON messages."""
    state: ServerState = websocket.app.state.rimp
    try:
        filters, sample = _filters(websocket)
    except IngestError as err:
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
            items = await client.next(15.0)
            for kind, record in items:
                record_json = encode_item((kind, record)).decode()
                await websocket.send_text(f'{{"kind":"{kind}","record":{record_json}}}')
            if client.missed:
                await websocket.send_text(f'{{"kind":"missed","count":{client.missed}}}')
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


# --- health and self-metrics -------------------------------------------------------------


async def healthz(request: Request) -> Response:
    """Liveness: the process answers."""
    return _json({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Readiness: the storage answers a query."""
    state: ServerState = request.app.state.rimp
    try:
        await run_in_threadpool(state.collector.storage.query_events, limit=1)
    except Exception as exc:
        return _error(503, "storage_unavailable", f"storage does not answer: {exc}")
    if state.collector.stats()["awaiting_retry"]:
        return _error(503, "storage_unavailable", "storage writes are failing")
    return _json({"status": "ready"})


def _storage_bytes(storage: Storage) -> int | None:
    # File sizes only: storage.stats() counts rows, too slow for every scrape.
    path = getattr(storage, "path", None)
    if not isinstance(path, Path):
        return None
    files = [path, path.with_name(path.name + "-wal")] if path.is_file() else list(path.glob("*"))
    return sum(f.stat().st_size for f in files if f.is_file())


async def metrics(request: Request) -> Response:
    """``GET /metrics``: Prometheus text exposition of the server and the stored series."""
    state: ServerState = request.app.state.rimp
    series = await run_in_threadpool(state.collector.storage.series)
    state.storage_bytes = _storage_bytes(state.collector.storage)
    text = exposition(state, series)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")


# --- auth ----------------------------------------------------------------------------------


class AuthMiddleware:
    """Bearer tokens with scopes; open when no tokens are configured."""

    def __init__(self, app: ASGIApp, tokens: Tokens) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.tokens.enabled:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in _OPEN_PATHS or path == "/" or path.startswith("/static/"):
            await self.app(scope, receive, send)
            return
        needed = "ingest" if scope.get("method") == "POST" else "read"
        token = None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                text = value.decode("latin-1")
                if text[:7].lower() == "bearer ":
                    token = text[7:].strip()
        if token is None:
            query = scope.get("query_string", b"").decode("latin-1")
            for name, value in urllib.parse.parse_qsl(query):
                if name == "token":
                    token = value
        granted = self.tokens.scopes(token)
        if granted is not None and needed in granted:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "unauthorized"})
            return
        if granted is None:
            response = _error(
                401,
                "unauthorized",
                "a valid bearer token is required (Authorization: Bearer TOKEN)",
                **{"WWW-Authenticate": 'Bearer realm="rimp"'},
            )
        else:
            response = _error(403, "forbidden", f"this token lacks the {needed!r} scope")
        await response(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    """404, 405 and the like in the API's JSON error format."""
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    code = codes.get(exc.status_code, "http_error")
    return _error(exc.status_code, code, str(exc.detail), **(exc.headers or {}))


# --- the application -----------------------------------------------------------------------


def create_app(settings: ServerSettings | None = None) -> Starlette:
    """Build the ASGI application; the pipeline starts with the app's lifespan."""
    settings = settings or ServerSettings()
    state = ServerState(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        storage = settings.storage
        if storage is None:
            from telemetry.storage import DatabaseStorage

            storage = DatabaseStorage(Path(settings.data_dir) / "telemetry.db")
        config = TelemetryConfig(
            realtime_mode=True,
            flush_interval=1.0,
            buffer_size=10_000,
            buffer_capacity=max(settings.max_pending, 10_000),
            shutdown_timeout=30.0,
        )
        state.collector = TelemetryCollector(config, storage=storage)
        state.stream = TelemetryStream(state.collector, storage, interval=1.0)
        state.hub.bind(asyncio.get_running_loop())
        state.stream.add_consumer(state.hub.publish, name="live-hub")
        state.stream.start()
        demo_thread = None
        if settings.demo:
            from telemetry.demo import run_traffic

            demo_thread = threading.Thread(
                target=run_traffic, args=(state.collector, state.demo_stop), daemon=True
            )
            demo_thread.start()
        try:
            yield
        finally:
            state.demo_stop.set()
            if demo_thread is not None:
                demo_thread.join(5)
            await run_in_threadpool(state.stream.stop, 30.0)
            await run_in_threadpool(state.collector.close, 30.0)
            storage.close()

    app = Starlette(
        routes=[
            Route("/api/v1/events", post_events, methods=["POST"]),
            Route("/api/v1/events", get_events, methods=["GET"]),
            Route("/api/v1/metrics", post_metrics, methods=["POST"]),
            Route("/api/v1/batch", post_batch, methods=["POST"]),
            Route("/api/v1/events/counts", get_event_counts, methods=["GET"]),
            Route("/api/v1/series", get_series, methods=["GET"]),
            Route("/api/v1/metrics/{name:path}/aggregate", get_aggregate, methods=["GET"]),
            Route("/api/v1/metrics/{name:path}", get_metric, methods=["GET"]),
            Route("/api/v1/stream", get_stream, methods=["GET"]),
            WebSocketRoute("/api/v1/stream/ws", stream_ws),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            *dashboard.routes(),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
    )
    app.state.rimp = state
    app.add_middleware(AuthMiddleware, tokens=state.tokens)
    return app
