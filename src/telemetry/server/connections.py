"""Connection limits uvicorn does not apply by itself: a deadline and a size for headers.

uvicorn closes an idle keep-alive connection, but a connection that sends
nothing, or half a header block, stays open for as long as the client likes, and
a header block may be as large as the client likes. Either lets a client hold
server memory and sockets without ever making a request. This protocol (the
httptools one uvicorn uses, with two additions) gives every request
``header_timeout`` seconds from its first byte, or from the connection's
opening, to finish its headers, and at most ``max_header_bytes`` of them; past
either it answers ``408`` or ``431`` and closes the connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HEADER_TIMEOUT", "MAX_HEADER_BYTES", "GuardedHttpProtocol"]

HEADER_TIMEOUT = 10.0
MAX_HEADER_BYTES = 64 * 1024


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and a header size limit."""

    header_timeout = HEADER_TIMEOUT
    max_header_bytes = MAX_HEADER_BYTES

    @classmethod
    def with_timeout(cls, seconds: float) -> type[GuardedHttpProtocol]:
        """This protocol with another header deadline (uvicorn takes a class, not options)."""
        return type(cls.__name__, (cls,), {"header_timeout": seconds})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._in_headers = True  # a new connection owes its first header block
        self._header_bytes = 0  # raw bytes of a header block not yet complete
        self._parsed_bytes = 0  # request line and headers the parser has handed over
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        # Still inside a header block after the parser took every byte: all of
        # them were header bytes (a body only starts once the headers end).
        if self._in_headers and not self._refused:
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._refuse(431, "Request Header Fields Too Large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._parsed_bytes = 0
        if not self._in_headers:  # a further request on a kept-alive connection
            self._in_headers = True
            self._header_bytes = 0
            self._arm()

    def on_url(self, url: bytes) -> None:
        self._parsed_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._parsed_bytes += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._parsed_bytes > self.max_header_bytes:  # arrived whole, in one read
            self._refuse(431, "Request Header Fields Too Large")
        if self._refused:
            return
        self._in_headers = False
        self._disarm()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _timed_out(self) -> None:
        self._header_timer = None
        if self._in_headers:
            self._refuse(408, "Request Timeout")

    def _refuse(self, status: int, reason: str) -> None:
        self._refused = True
        self._disarm()
        if self.transport.is_closing():
            return
        body = f'{{"error":{{"code":"http_{status}","message":"{reason}"}}}}'.encode()
        head = (
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        ).encode()
        self.transport.write(head + body)
        self.transport.close()
