"""Error answers: every error body the server sends is built here, one way.

The body is ``{"error": {"code", "message", "field"?}}``; 429 and 503 carry
``Retry-After`` (back-pressure and failing storage say when to come back).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from telemetry._jsonform import encode
from telemetry.errors import RequestError

__all__ = [
    "error_body",
    "error_response",
    "http_exception",
    "json_response",
    "request_error",
    "retry_headers",
]

_RETRY_AFTER = {429: "1", 503: "2"}


def error_body(code: str, message: str, field: str | None = None) -> bytes:
    """The JSON error body."""
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return encode({"error": error})


def retry_headers(status: int) -> dict[str, str] | None:
    """``Retry-After`` for the statuses that ask the client to come back, else nothing."""
    after = _RETRY_AFTER.get(status)
    return {"Retry-After": after} if after is not None else None


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON answer; ``body`` is encoded unless it already is bytes."""
    content = body if isinstance(body, bytes) else encode(body)
    merged = {**(retry_headers(status) or {}), **(headers or {})}
    return Response(content, status, media_type="application/json", headers=merged or None)


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An error answer in the API's format."""
    return json_response(error_body(code, message, field), status, headers)


def request_error(err: RequestError) -> Response:
    """The answer to a request that broke a rule."""
    return error_response(err.status, err.code, err.message, err.field)


async def http_exception(request: Request, exc: Exception) -> Response:
    """404, 405 and the like in the API's JSON error format."""
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    code = codes.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)
