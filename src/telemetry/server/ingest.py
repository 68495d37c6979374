"""The native ingest doors: ``POST /api/v1/events``, ``/api/v1/metrics`` and ``/api/v1/batch``.

A request is read (bounded, gzip inflated under the same bound), decoded by
:class:`~telemetry.protocols.native.WireDecoder`, checked against back-pressure
and submitted whole to the collector; it is answered ``202`` only once the
storage has the batch. A request with an ``Idempotency-Key`` is stored once
however often it is sent: its answer is remembered, and a retry racing the
first attempt waits for it instead of storing the batch again.
"""

from __future__ import annotations

import asyncio
import time
import zlib

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from telemetry._jsonform import encode
from telemetry.errors import RequestError
from telemetry.models import TelemetryData
from telemetry.server.errors import error_body, error_response, json_response, request_error
from telemetry.server.idempotency import IdempotencyCache, IngestAnswer, check_key
from telemetry.server.state import ServerState

__all__ = ["post_batch", "post_events", "post_metrics", "read_body"]

MAX_REJECTS_LISTED = 1000
"""Most rejected records an answer lists (``rejected_count`` always says how many)."""
_JSON_TYPES = {"application/json", "text/json"}
_NDJSON_TYPES = {"application/x-ndjson", "application/ndjson", "application/jsonl"}

_NOT_YET = error_body(
    "storage_unavailable", "the batch is not stored yet; retry with the same Idempotency-Key"
)
_FAILING = error_body("storage_unavailable", "storage is failing; retry later")
_TOO_MANY = error_body(
    "too_many_pending",
    "more records are waiting for storage than the server holds; retry later",
)
_INTERRUPTED = error_body("interrupted", "retry")

Outcome = tuple[int, bytes, "asyncio.Future[IngestAnswer] | None"]
"""An answer, and when the batch stays queued past the wait, the future of its final answer."""


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, gzip inflated, never more than ``limit`` bytes before or after.

    Raises:
        RequestError: over the limit (413), a gzip body that does not inflate (400),
            or an encoding other than gzip (415).
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError("body_too_large", f"body is over {limit} bytes", status=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError("body_too_large", f"body is over {limit} bytes", status=413)
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding == "gzip":
        return gunzip(body, limit)
    if encoding not in ("identity", ""):
        raise RequestError(
            "unsupported_encoding", f"Content-Encoding {encoding!r}: use gzip or none", status=415
        )
    return body


def gunzip(body: bytes, limit: int) -> bytes:
    """Inflate a gzip body as ``gzip -d`` does: every member, each one's CRC checked.

    Raises:
        RequestError: a member that does not inflate, is cut short or fails its
            CRC, or bytes after the last member that are not another member (400);
            more than ``limit`` bytes once inflated (413).
    """
    out: list[bytes] = []
    size = 0
    rest = body
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            chunk = inflater.decompress(rest, limit + 1 - size)
        except zlib.error as exc:  # also a CRC or length mismatch in the trailer
            raise RequestError("malformed_body", f"gzip body does not inflate: {exc}") from None
        size += len(chunk)
        if size > limit or inflater.unconsumed_tail:
            raise RequestError(
                "body_too_large", f"body is over {limit} bytes once decompressed", status=413
            )
        out.append(chunk)
        if not inflater.eof:
            raise RequestError("malformed_body", "gzip body is cut short (no end of stream)")
        rest = inflater.unused_data
        if not rest:
            return b"".join(out)
        if rest[:2] != b"\x1f\x8b":
            raise RequestError(
                "malformed_body", f"{len(rest)} bytes after the end of the gzip body"
            )


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
        return error_response(
            415,
            "unsupported_media_type",
            f"Content-Type {content_type or '(none)'!r}: send application/json or "
            "application/x-ndjson",
        )
    key = request.headers.get("idempotency-key")
    if key is not None:
        try:
            check_key(key)
        except RequestError as err:
            state.reject(err.code)
            return request_error(err)
    if not key:
        status, payload, _ = await _accept(request, state, kind, ndjson, None)
        return json_response(payload, status)
    status, payload = await _idempotent(request, state, kind, ndjson, key)
    return json_response(payload, status)


async def _idempotent(
    request: Request, state: ServerState, kind: str, ndjson: bool, key: str
) -> IngestAnswer:
    cache = state.idempotent
    seen = cache.get(key)
    if seen is not None:  # the same request again, stored or still in flight: one answer
        try:
            return await asyncio.wait_for(asyncio.shield(seen), state.settings.ack_timeout)
        except TimeoutError:
            return 503, _NOT_YET
    # Registered before the body is even read, so a retry racing the first
    # attempt waits for it instead of storing the batch a second time.
    future: asyncio.Future[IngestAnswer] = asyncio.get_running_loop().create_future()
    cache.put(key, future)
    try:
        stored = await run_in_threadpool(state.collector.storage.receipt, key)
        if stored is not None:  # answered before a restart: the records are stored
            status, payload, late = 202, stored, None
        else:
            status, payload, late = await _accept(request, state, kind, ndjson, key)
    except BaseException:
        cache.forget(key, future)
        future.set_result((503, _INTERRUPTED))
        raise
    if late is not None:
        # Not stored in time, but still queued: retries with this key wait for (or
        # get) the real outcome instead of storing the batch again.
        cache.put(key, late)
        late.add_done_callback(lambda f: _forget_failed(cache, key, f))
    elif status >= 500 or status == 429:  # not stored: a retry with this key must try again
        cache.forget(key, future)
    future.set_result((status, payload))
    return status, payload


def _forget_failed(
    cache: IdempotencyCache, key: str, outcome: asyncio.Future[IngestAnswer]
) -> None:
    if outcome.result()[0] != 202:
        cache.forget(key, outcome)


async def _accept(
    request: Request, state: ServerState, kind: str, ndjson: bool, key: str | None
) -> Outcome:
    """Read, decode, check back-pressure and submit."""
    try:
        body = await read_body(request, state.settings.limits.max_body_bytes)
        partial = request.query_params.get("partial", "").lower() in ("1", "true", "yes")
        data, rejected = state.decoder.decode(kind, body, ndjson=ndjson, partial=partial)
    except RequestError as err:
        state.reject(err.code)
        return err.status, error_body(err.code, err.message, err.field), None
    if rejected:
        state.reject("invalid_field", len(rejected))
    collector = state.collector
    if collector.awaiting_retry():
        state.reject("storage_unavailable", len(data))
        return 503, _FAILING, None
    pending = collector.pending()
    # A batch bigger than the bound is taken when nothing else waits, or it never could be.
    if pending and pending + len(data) > state.settings.max_pending:
        state.reject("backpressure", len(data))
        return 429, _TOO_MANY, None
    body_ok: dict[str, object] = {"accepted": len(data)}
    if kind == "batch":
        body_ok.update(events=len(data.events), metrics=len(data.metrics))
    if rejected:
        # Listed up to a bound, so an answer (and what idempotency remembers of it)
        # stays small; the count is always whole.
        body_ok["rejected"] = rejected[:MAX_REJECTS_LISTED]
        body_ok["rejected_count"] = len(rejected)
    return await _submit(state, data, body_ok, key)


async def _submit(
    state: ServerState, data: TelemetryData, body: dict[str, object], key: str | None
) -> Outcome:
    if not data:
        return 202, encode(body), None
    loop = asyncio.get_running_loop()
    stored: asyncio.Future[bool] = loop.create_future()

    def ack(ok: bool) -> None:  # on the dispatch thread
        loop.call_soon_threadsafe(_settle, stored, ok)

    def count(ok: bool) -> None:
        if ok:
            state.received["event"] += len(data.events)
            state.received["metric"] += len(data.metrics)

    folded = state.collector.limit_series(data)
    if folded:  # stored, but under an overflow series: the client is told
        body["folded"] = folded
    accepted = encode(body)
    if key is not None:
        # Stored with the records, in their transaction: after a restart a retry
        # with this key gets this answer instead of storing the batch again.
        data.receipts[key] = accepted
    started = time.perf_counter()
    state.collector.submit(data, ack, limited=True)
    try:
        ok = await asyncio.wait_for(asyncio.shield(stored), state.settings.ack_timeout)
    except TimeoutError:
        late: asyncio.Future[IngestAnswer] = loop.create_future()

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
