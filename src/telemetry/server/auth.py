"""Bearer tokens with scopes (``ingest``, ``read``, ``admin``), from a file or
``RIMP_TOKENS``, and the middleware that checks them on every request."""

from __future__ import annotations

import hmac
import ipaddress
import os
import urllib.parse
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from telemetry.errors import TokenError
from telemetry.server.errors import error_response

__all__ = ["SCOPES", "AuthMiddleware", "Tokens", "is_loopback"]

SCOPES = ("ingest", "read", "admin")
# Open even with tokens: probes, and the dashboard page that asks for a token itself.
_OPEN_PATHS = {"/healthz", "/readyz", "/", "/openapi.json"}


class Tokens:
    """The configured tokens and their scopes; checks are constant-time.

    File format: one token per line, ``TOKEN SCOPE[,SCOPE]`` (``#`` starts a
    comment). ``RIMP_TOKENS``: ``TOKEN:SCOPE[,SCOPE];TOKEN:SCOPE...``.
    """

    def __init__(self, entries: dict[str, frozenset[str]]) -> None:
        self._entries = [(t.encode(), scopes) for t, scopes in entries.items()]

    @property
    def enabled(self) -> bool:
        """True when at least one token is configured."""
        return bool(self._entries)

    def scopes(self, token: str | None) -> frozenset[str] | None:
        """The scopes of ``token``, or None when it is unknown."""
        if token is None:
            return None
        given = token.encode()
        found = None
        for known, scopes in self._entries:  # compare with every token: no early exit
            if hmac.compare_digest(known, given):
                found = scopes
        return found

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None, env: str | None) -> Tokens:
        """Tokens from a file and/or the ``RIMP_TOKENS`` text.

        Raises:
            TokenError: a line or entry is malformed, naming where.
        """
        entries: dict[str, frozenset[str]] = {}
        if path is not None:
            for n, line in enumerate(Path(path).read_text().splitlines(), 1):
                text = line.split("#", 1)[0].strip()
                if not text:
                    continue
                parts = text.split()
                if len(parts) != 2:
                    raise TokenError(f"{path}:{n}: expected 'TOKEN SCOPE[,SCOPE]'", field=str(path))
                entries[parts[0]] = _scopes(parts[1], f"{path}:{n}")
        if env:
            for item in env.split(";"):
                if not item.strip():
                    continue
                token, sep, scopes = item.strip().rpartition(":")
                if not sep or not token:
                    raise TokenError(
                        f"RIMP_TOKENS: {item!r}: expected TOKEN:SCOPE[,SCOPE]", field="RIMP_TOKENS"
                    )
                entries[token] = _scopes(scopes, "RIMP_TOKENS")
        return cls(entries)


def _scopes(text: str, where: str) -> frozenset[str]:
    scopes = frozenset(s for s in text.split(",") if s)
    unknown = scopes - set(SCOPES)
    if not scopes or unknown:
        raise TokenError(
            f"{where}: scopes must be among {', '.join(SCOPES)}, got {text!r}", field=where
        )
    return scopes


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class AuthMiddleware:
    """Bearer tokens with scopes; open when no tokens are configured.

    Writing records needs the ``ingest`` scope; silencing alerts and reloading rules
    ``admin``; everything else ``read``. A token comes
    in ``Authorization: Bearer TOKEN`` or, for browsers' EventSource and
    WebSocket, as ``?token=``.
    """

    def __init__(self, app: ASGIApp, tokens: Tokens) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.tokens.enabled:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in _OPEN_PATHS or path.startswith("/static/"):
            await self.app(scope, receive, send)
            return
        needed = _needed(scope.get("method", "GET"), path)
        granted = self.tokens.scopes(_token_of(scope))
        if granted is not None and needed in granted:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "unauthorized"})
            return
        if granted is None:
            response = error_response(
                401,
                "unauthorized",
                "a valid bearer token is required (Authorization: Bearer TOKEN)",
                headers={"WWW-Authenticate": 'Bearer realm="rimp"'},
            )
        else:
            response = error_response(403, "forbidden", f"this token lacks the {needed!r} scope")
        await response(scope, receive, send)


def _needed(method: str, path: str) -> str:
    """The scope a request needs: ``admin`` changes what alerting does (silences, rule
    reloads), ``ingest`` writes records, ``read`` reads."""
    if method not in ("GET", "HEAD", "POST") or path.startswith(_ADMIN_PATHS):
        return "admin" if method != "GET" else "read"
    return "ingest" if method == "POST" and _writes(path) else "read"


_ADMIN_PATHS = ("/api/v1/silences", "/api/v1/rules/reload")


def _writes(path: str) -> bool:
    # Grafana sends its PromQL queries as form POSTs: reading, whatever the method.
    return not path.startswith(_QUERY_API) or path == _QUERY_API + "write"


_QUERY_API = "/prometheus/api/v1/"


def _token_of(scope: Scope) -> str | None:
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
    return token
