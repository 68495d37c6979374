"""Which ``Host`` and ``Origin`` a request may carry: the guard against DNS rebinding and
cross-site pages reaching a server on loopback.

A server bound to loopback with no tokens is open to this machine; without this
guard any web page the user opens could reach it too, by a WebSocket from its
own origin or by rebinding its DNS name to 127.0.0.1. So, as development
servers do, a request must name an allowed host in ``Host``, and a browser
request that says where it comes from (``Origin``) must come from an allowed
host as well. ``rimp serve`` allows ``localhost``, the loopback addresses, the
address it binds and every ``--allowed-host``.
"""

from __future__ import annotations

import urllib.parse

from starlette.types import ASGIApp, Receive, Scope, Send

from telemetry.server.errors import error_response

__all__ = ["LOOPBACK_NAMES", "HostGuard", "host_name"]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def host_name(value: str) -> str:
    """The host of a ``Host`` header (``[::1]:8787`` → ``::1``), lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class HostGuard:
    """Refuses requests whose ``Host`` or ``Origin`` names a host not in ``allowed``."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = frozenset(host_name(h) for h in allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = origin = None
        for name, value in scope.get("headers", []):
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
        problem = None
        if host is None or host_name(host) not in self.allowed:
            problem = f"Host {host!r} is not served here (allow it with --allowed-host)"
        elif origin is not None and origin != "null":
            origin_host = urllib.parse.urlsplit(origin).hostname or ""
            if origin_host.lower() not in self.allowed:
                problem = (
                    f"Origin {origin!r} may not use this server (allow it with --allowed-host)"
                )
        elif origin == "null":
            problem = "Origin 'null' (a sandboxed or file: page) may not use this server"
        if problem is None:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "forbidden origin"})
            return
        await error_response(403, "forbidden_host", problem)(scope, receive, send)
