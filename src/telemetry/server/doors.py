"""What every ingest door shares: read, decode, admit, submit, answer, remember.

A door is a wire format (:class:`Wire`): how to decode one request's body into
records and how to write that request's answers. Everything else is the same
for every door and lives here, once: the bounded read (gzip inflated under the
same bound), back-pressure (``429``/``503`` with ``Retry-After`` before anything
is queued), the series limits, submission of the whole batch to the collector,
the answer only once the storage has it, and idempotency: a request sent again
with the same key (an ``Idempotency-Key`` header, or for doors whose clients
send none, a hash of the body) gets the first answer and stores nothing, also
after a restart.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from telemetry.errors import RequestError
from telemetry.models import TelemetryData
from telemetry.server.errors import retry_headers
from telemetry.server.idempotency import IdempotencyCache, IngestAnswer, check_key
from telemetry.server.state import ServerState

__all__ = [
    "Decoded",
    "PlainTextAnswers",
    "Wire",
    "body_key",
    "gunzip",
    "handle",
    "read_body",
]

Outcome = tuple[int, bytes, "asyncio.Future[IngestAnswer] | None"]
"""An answer, and when the batch stays queued past the wait, the future of its final answer."""


@dataclass
class Decoded:
    """One request's records, and what was refused of it (the protocol's partial success)."""

    data: TelemetryData
    rejected: int = 0
    details: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""


class Wire(Protocol):
    """One door's format: decoding a request and writing its answers."""

    door: str
    """The door's name in ``/metrics`` (``native``, ``otlp``...)."""
    media_type: str
    ok_status: int

    def decode(self, body: bytes) -> Decoded:
        """The request's records. Raises RequestError for a body refused whole."""

    def accepted(self, decoded: Decoded, folded: int) -> bytes:
        """The success answer's body."""

    def error(self, code: str, message: str, field: str | None) -> bytes:
        """An error answer's body."""


async def read_body(
    request: Request, limit: int, *, gzip: bool = True, raw: tuple[str, ...] = ()
) -> bytes:
    """The request body, gzip inflated, never more than ``limit`` bytes before or after.

    ``raw`` names encodings the door decodes itself (remote_write's ``snappy``).

    Raises:
        RequestError: over the limit (413), a gzip body that does not inflate (400),
            or an encoding the door does not take (415).
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
    if encoding == "gzip" and gzip:
        return gunzip(body, limit)
    if encoding not in ("identity", "", *raw):
        accepted = " or ".join([*raw, *(["gzip"] if gzip else []), "none"])
        raise RequestError(
            "unsupported_encoding", f"Content-Encoding {encoding!r}: use {accepted}", status=415
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


class PlainTextAnswers:
    """Answers of the doors whose clients want no body on success and text on error
    (remote_write, Loki): mixed into their wires."""

    media_type = "text/plain; charset=utf-8"
    ok_status = 204

    def accepted(self, decoded: Decoded, folded: int) -> bytes:
        """No body: ``204``."""
        return b""

    def error(self, code: str, message: str, field: str | None) -> bytes:
        """The problem in one line of text."""
        return f"{code}: {message}\n".encode()


def body_key(door: str, body: bytes) -> str:
    """The implicit idempotency key of a body, for doors whose clients send no key: a
    retried request is byte for byte the first one."""
    return f"{door}:{hashlib.blake2b(body, digest_size=16).hexdigest()}"


def _respond(wire: Wire, status: int, payload: bytes) -> Response:
    headers = retry_headers(status)
    if status == 204:
        return Response(status_code=204, headers=headers)
    return Response(payload, status, media_type=wire.media_type, headers=headers)


async def handle(
    request: Request,
    wire: Wire,
    *,
    gzip: bool = True,
    raw: tuple[str, ...] = (),
    implicit_key: bool = False,
) -> Response:
    """Take one ingest request through ``wire``; the response to send.

    Args:
        request: the request.
        wire: the door's format (decoding and answers).
        gzip: whether the door takes ``Content-Encoding: gzip``.
        raw: content encodings the wire decodes itself (left as they came).
        implicit_key: without an ``Idempotency-Key`` header, key the request by a
            hash of its body (for protocols whose clients retry without keys).
    """
    state: ServerState = request.app.state.rimp
    key = request.headers.get("idempotency-key")
    if key is not None:
        try:
            check_key(key)
        except RequestError as err:
            return _refuse(state, wire, err)
        status, payload = await _once(
            state,
            wire,
            key,
            lambda: _read_then_accept(request, state, wire, key, gzip=gzip, raw=raw),
        )
        return _respond(wire, status, payload)
    if not implicit_key:
        status, payload, _ = await _read_then_accept(request, state, wire, None, gzip=gzip, raw=raw)
        return _respond(wire, status, payload)
    try:
        body = await read_body(request, state.settings.limits.max_body_bytes, gzip=gzip, raw=raw)
    except RequestError as err:
        return _refuse(state, wire, err)
    key = body_key(wire.door, body)
    status, payload = await _once(
        state, wire, key, lambda: _accept(state, wire, body, key), read_already=True
    )
    return _respond(wire, status, payload)


def _refuse(state: ServerState, wire: Wire, err: RequestError) -> Response:
    state.reject(err.code)
    state.count_request(wire.door, err.status)
    return _respond(wire, err.status, wire.error(err.code, err.message, err.field))


async def _once(
    state: ServerState,
    wire: Wire,
    key: str,
    produce: Callable[[], Awaitable[Outcome]],
    *,
    read_already: bool = False,
) -> IngestAnswer:
    """The answer of the request keyed ``key``: the remembered one, or ``produce``'s."""
    cache: IdempotencyCache = state.idempotent
    seen = cache.get(key)
    if seen is not None:  # the same request again, stored or still in flight: one answer
        try:
            return await asyncio.wait_for(asyncio.shield(seen), state.settings.ack_timeout)
        except TimeoutError:
            return 503, wire.error("storage_unavailable", _NOT_YET, None)
    # Registered before the body is read (when it is not read yet), so a retry racing
    # the first attempt waits for it instead of storing the batch a second time.
    future: asyncio.Future[IngestAnswer] = asyncio.get_running_loop().create_future()
    cache.put(key, future)
    try:
        stored = await run_in_threadpool(state.storage.receipt, key)
        if stored is not None:  # answered before a restart: the records are stored
            status, payload, late = wire.ok_status, stored, None
        else:
            status, payload, late = await produce()
    except BaseException:
        cache.forget(key, future)
        future.set_result((503, wire.error("interrupted", "retry", None)))
        raise
    if late is not None:
        # Not stored in time, but still queued: retries with this key wait for (or
        # get) the real outcome instead of storing the batch again.
        cache.put(key, late)
        late.add_done_callback(lambda f: _forget_failed(cache, key, wire.ok_status, f))
    elif status >= 500 or status == 429:  # not stored: a retry with this key must try again
        cache.forget(key, future)
    future.set_result((status, payload))
    return status, payload


def _forget_failed(
    cache: IdempotencyCache, key: str, ok: int, outcome: asyncio.Future[IngestAnswer]
) -> None:
    if outcome.result()[0] != ok:
        cache.forget(key, outcome)


_NOT_YET = "the batch is not stored yet; retry the same request"


async def _read_then_accept(
    request: Request,
    state: ServerState,
    wire: Wire,
    key: str | None,
    *,
    gzip: bool,
    raw: tuple[str, ...],
) -> Outcome:
    try:
        body = await read_body(request, state.settings.limits.max_body_bytes, gzip=gzip, raw=raw)
    except RequestError as err:
        state.reject(err.code)
        state.count_request(wire.door, err.status)
        return err.status, wire.error(err.code, err.message, err.field), None
    return await _accept(state, wire, body, key)


async def _accept(state: ServerState, wire: Wire, body: bytes, key: str | None) -> Outcome:
    """Decode, check back-pressure and submit."""
    try:
        decoded = wire.decode(body)
    except RecursionError:  # a decoder's last line of defence: never a 500
        err = RequestError("too_deep", "the body nests deeper than the decoder allows")
        state.reject(err.code)
        state.count_request(wire.door, 400)
        return 400, wire.error(err.code, err.message, None), None
    except RequestError as err:
        state.reject(err.code)
        state.count_request(wire.door, err.status)
        return err.status, wire.error(err.code, err.message, err.field), None
    data = decoded.data
    if decoded.rejected:
        state.reject("invalid_field", decoded.rejected)
        state.count_records(wire.door, "rejected", decoded.rejected)
    collector = state.collector
    if state.settings.role == "writer":
        state.count_request(wire.door, 503)
        message = "this node only stores (--role writer); send batches to an ingest node"
        return 503, wire.error("not_an_ingest_node", message, None), None
    if collector.awaiting_retry():
        state.reject("storage_unavailable", len(data))
        state.count_request(wire.door, 503)
        return 503, wire.error("storage_unavailable", "storage is failing; retry later", None), None
    pending = collector.pending()
    # A batch bigger than the bound is taken when nothing else waits, or it never could be.
    if pending and pending + len(data) > state.settings.max_pending:
        state.reject("backpressure", len(data))
        state.count_request(wire.door, 429)
        message = "more records are waiting for storage than the server holds; retry later"
        return 429, wire.error("too_many_pending", message, None), None
    delay = state.settings.max_queue_delay
    if delay is not None and pending and collector.queue_delay(pending + len(data)) > delay:
        state.reject("backpressure", len(data))
        state.count_request(wire.door, 429)
        message = f"the records waiting would take over {delay:g} s to store; retry later"
        return 429, wire.error("too_many_pending", message, None), None
    return await _submit(state, wire, decoded, key)


async def _submit(state: ServerState, wire: Wire, decoded: Decoded, key: str | None) -> Outcome:
    data = decoded.data
    if not data:
        state.count_request(wire.door, wire.ok_status)
        return wire.ok_status, wire.accepted(decoded, 0), None
    loop = asyncio.get_running_loop()
    stored: asyncio.Future[bool] = loop.create_future()

    def ack(ok: bool) -> None:  # on the dispatch thread
        loop.call_soon_threadsafe(_settle, stored, ok)

    def count(ok: bool) -> None:
        state.count_request(wire.door, wire.ok_status if ok else 503)
        if ok:
            state.received["event"] += len(data.events)
            state.received["metric"] += len(data.metrics)
            state.count_records(wire.door, "accepted", len(data))

    folded = state.collector.limit_series(data)
    accepted = wire.accepted(decoded, folded)
    if key is not None:
        # Stored with the records, in their transaction: after a restart a retry
        # with this key gets this answer instead of storing the batch again.
        data.receipts[key] = accepted
    started = time.perf_counter()
    state.collector.submit(data, ack, limited=True)
    not_yet = wire.error("storage_unavailable", _NOT_YET, None)
    try:
        ok = await asyncio.wait_for(asyncio.shield(stored), state.settings.ack_timeout)
    except TimeoutError:
        late: asyncio.Future[IngestAnswer] = loop.create_future()

        def settle_late(f: asyncio.Future[bool]) -> None:
            count(f.result())
            late.set_result((wire.ok_status, accepted) if f.result() else (503, not_yet))

        stored.add_done_callback(settle_late)
        return 503, not_yet, late
    state.storage_seconds += time.perf_counter() - started
    state.storage_writes += 1
    count(ok)
    return (wire.ok_status, accepted, None) if ok else (503, not_yet, None)


def _settle(future: asyncio.Future[bool], ok: bool) -> None:
    if not future.done():
        future.set_result(ok)
