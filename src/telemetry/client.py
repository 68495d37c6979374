"""``RimpClient``: a small blocking client of the RIMP server's HTTP API (stdlib only).

Used by the ``rimp`` command line (``tail``, ``query``, ``send``, ``bench``)
and usable from scripts::

    client = RimpClient("http://127.0.0.1:8787", token=None)
    client.post("/api/v1/events", [{"source": "cron", "message": "backup done"}])
    for kind, record in client.stream(kind="event"):
        print(kind, record["message"])
"""

from __future__ import annotations

import gzip
import http.client
import urllib.parse
from collections.abc import Iterator
from typing import Any

import msgspec

from telemetry._jsonform import encode as _encode
from telemetry.errors import ClientError

__all__ = ["RimpClient"]


class RimpClient:
    """Talks to one server; keeps one connection alive between requests.

    Args:
        url: base URL, e.g. ``http://127.0.0.1:8787``.
        token: bearer token, when the server requires one.
        timeout: seconds per request (``stream`` waits indefinitely between records).
    """

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ClientError(f"url={url!r}: must be an http:// or https:// URL")
        self.url = url.rstrip("/")
        self._parts = parts
        self.token = token
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def _new_connection(self, timeout: float | None) -> http.client.HTTPConnection:
        cls = (
            http.client.HTTPSConnection
            if self._parts.scheme == "https"
            else http.client.HTTPConnection
        )
        return cls(self._parts.hostname or "", self._parts.port, timeout=timeout)

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Send a request; return the status and the decoded JSON body.

        Raises:
            ClientError: the server is unreachable (naming the URL) or answered
                4xx/5xx (with the server's error message).
        """
        query = _query(params)
        target = (self._parts.path.rstrip("/") + path) + (f"?{query}" if query else "")
        for attempt in (1, 2):  # a kept-alive connection the server closed: retry once
            if self._conn is None:
                self._conn = self._new_connection(self.timeout)
            try:
                self._conn.request(method, target, body=body, headers=self._headers(headers))
                response = self._conn.getresponse()
                raw = response.read()
                break
            except (ConnectionError, http.client.RemoteDisconnected) as exc:
                self.close()
                if attempt == 2 or isinstance(exc, ConnectionRefusedError):
                    raise ClientError(
                        f"cannot reach the RIMP server at {self.url}: {exc}"
                    ) from None
            except OSError as exc:
                self.close()
                raise ClientError(f"cannot reach the RIMP server at {self.url}: {exc}") from None
        decoded: Any = msgspec.json.decode(raw) if raw else None
        if response.status >= 400:
            error = decoded.get("error") if isinstance(decoded, dict) else None
            if isinstance(error, dict):  # RIMP's own API
                message = error.get("message")
            elif isinstance(error, str):  # the Prometheus query API's envelope
                message = f"{decoded.get('errorType')}: {error}"
            else:
                message = raw[:200].decode(errors="replace")
            raise ClientError(f"HTTP {response.status}: {message}", response.status, decoded)
        return response.status, decoded

    def get(self, path: str, **params: Any) -> Any:
        """GET ``path`` with query ``params`` (lists repeat the key); return the JSON body."""
        return self.request("GET", path, params=params)[1]

    def post(
        self, path: str, records: Any, *, compress: bool = False, key: str | None = None
    ) -> Any:
        """POST JSON (gzip with ``compress``); return the JSON body."""
        body = _encode(records)
        headers = {"Content-Type": "application/json"}
        if compress:
            body = gzip.compress(body, 5)
            headers["Content-Encoding"] = "gzip"
        if key:
            headers["Idempotency-Key"] = key
        return self.request("POST", path, body=body, headers=headers)[1]

    def stream(self, **filters: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(kind, record)`` from the live SSE feed until the server ends it.

        Raises:
            ClientError: unreachable, refused, or cut off (the server's reason).
        """
        conn = self._new_connection(None)
        query = _query(filters)
        target = self._parts.path.rstrip("/") + "/api/v1/stream" + (f"?{query}" if query else "")
        try:
            conn.request("GET", target, headers=self._headers({"Accept": "text/event-stream"}))
            response = conn.getresponse()
        except OSError as exc:
            raise ClientError(f"cannot reach the RIMP server at {self.url}: {exc}") from None
        if response.status != 200:
            raw = response.read()
            raise ClientError(f"HTTP {response.status}: {raw[:200].decode(errors='replace')}")
        event = "message"
        data: list[bytes] = []
        try:
            while True:
                line = response.readline()
                if not line:
                    return
                line = line.rstrip(b"\r\n")
                if not line:
                    if data:
                        payload = msgspec.json.decode(b"\n".join(data))
                        if event == "error":
                            raise ClientError(f"the server ended the stream: {payload}")
                        yield event, payload
                    event, data = "message", []
                elif line.startswith(b"event:"):
                    event = line[6:].strip().decode()
                elif line.startswith(b"data:"):
                    data.append(line[5:].strip())
        finally:
            conn.close()

    def close(self) -> None:
        """Close the kept-alive connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _query(params: dict[str, Any] | None) -> str:
    if not params:
        return ""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None or value == []:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        pairs += [(key, str(v)) for v in values]
    return urllib.parse.urlencode(pairs)
