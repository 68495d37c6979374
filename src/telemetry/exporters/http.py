"""``HTTPExporter``: ship batches from an application to a RIMP server.

Every batch is first appended to an on-disk spool (durable, checksummed), so
``store()`` is fast and nothing is lost while the server is down or the
process restarts. A sender thread posts the spool's records in order to
``POST /api/v1/batch`` (gzip, ``Idempotency-Key``, bearer token), retrying
with exponential back-off and jitter, honouring ``Retry-After`` on 429/503.
A record leaves the spool only once the server answered 202 (stored).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import urllib.parse
from pathlib import Path
from typing import Any

import msgspec

from telemetry._jsonform import encode as _encode
from telemetry._jsonform import event_to_wire, metric_to_wire
from telemetry.errors import SpoolFull, StorageError
from telemetry.exporters._spooled import ExporterStats, Outcome, SpoolingExporter
from telemetry.models import TelemetryData

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_RECORDS",
    "ExporterStats",
    "HTTPExporter",
    "default_spool_dir",
]

MAX_RECORDS = 10_000  # per request; the server's default limit is 50,000
MAX_BODY_BYTES = 8 * 2**20  # per request before gzip; the server's default limit is 10 MiB

_log = logging.getLogger("telemetry.exporters.http")
_decode = msgspec.json.Decoder(dict[str, Any]).decode


def default_spool_dir(endpoint: str) -> Path:
    """``$XDG_CACHE_HOME/rimp/spool/<hash of endpoint>`` (``~/.cache`` by default)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha256(endpoint.encode()).hexdigest()[:16]
    return base / "rimp" / "spool" / digest


class HTTPExporter(SpoolingExporter):
    """A storage that forwards every batch to a RIMP server.

    Example::

        collector = TelemetryCollector(TelemetryConfig(endpoint="http://127.0.0.1:8787"))

    Args:
        endpoint: the server's base URL (``http://host:port``; ``https`` too).
        token: a bearer token with the ``ingest`` scope, if the server needs one.
        spool_dir: where unsent batches wait (default :func:`default_spool_dir`).
        max_spool_bytes: bound of the spool; beyond it the oldest batches are
            dropped (counted as ``spool_full``).
        timeout: seconds per HTTP request.
        max_backoff: longest wait between retries, in seconds.
        close_timeout: default bound of :meth:`close` (the collector passes its
            ``shutdown_timeout``).

    Raises:
        StorageError: the endpoint is not an http(s) URL or the spool is unusable.
    """

    thread_name = "rimp-http-exporter"

    def __init__(
        self,
        endpoint: str,
        *,
        token: str | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        max_spool_bytes: int = 256 * 2**20,
        timeout: float = 10.0,
        max_backoff: float = 30.0,
        close_timeout: float = 5.0,
    ) -> None:
        url = urllib.parse.urlsplit(endpoint)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise StorageError(f"endpoint={endpoint!r}: must be an http:// or https:// URL")
        self.endpoint = endpoint.rstrip("/")
        self._url = url
        self._path = (url.path.rstrip("/") or "") + "/api/v1/batch"
        self.token = token
        self.timeout = timeout
        directory = Path(spool_dir) if spool_dir is not None else default_spool_dir(endpoint)
        self._init_spool(directory, max_spool_bytes, max_backoff, close_timeout)
        self._conn: http.client.HTTPConnection | None = None
        self._start()

    def __repr__(self) -> str:
        return f"HTTPExporter({self.endpoint!r})"

    # --- the Storage side ------------------------------------------------------------

    def store(self, data: TelemetryData) -> None:
        """Spool the batch (durable on return); the sender ships it in order.

        Raises:
            StorageError: the spool could not be written (the collector retries).
        """
        if not data:
            return
        events = [event_to_wire(e) for e in data.events]
        metrics = [metric_to_wire(m) for m in data.metrics]
        # The server takes at most 50,000 records or 10 MiB per request: spool
        # requests well inside both, halving any part that encodes too big.
        parts: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = [
            (events[i : i + MAX_RECORDS], []) for i in range(0, len(events), MAX_RECORDS)
        ]
        parts += [([], metrics[i : i + MAX_RECORDS]) for i in range(0, len(metrics), MAX_RECORDS)]
        while parts:
            part_events, part_metrics = parts.pop(0)
            key = self._next_key()
            payload = _encode({"key": key, "events": part_events, "metrics": part_metrics})
            n = len(part_events) + len(part_metrics)
            if len(payload) > MAX_BODY_BYTES and n > 1:
                half_e, half_m = len(part_events) // 2, len(part_metrics) // 2
                parts[:0] = [
                    (part_events[:half_e], part_metrics[:half_m]),
                    (part_events[half_e:], part_metrics[half_m:]),
                ]
                continue
            try:
                lost = self.spool.append(payload)
            except SpoolFull:  # a StorageError: the collector keeps and counts the batch
                self._count_drop("spool_full", n)
                raise
            if lost:
                self._count_drop("spool_full", lost)  # requests, not records: sizes are gone
        self._wake.set()

    # --- the sender --------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = (
                http.client.HTTPSConnection
                if self._url.scheme == "https"
                else http.client.HTTPConnection
            )
            self._conn = cls(self._url.hostname or "", self._url.port, timeout=self.timeout)
        return self._conn

    def _send(self, payload: bytes) -> tuple[Outcome, float | None]:
        """POST one spooled request; 202 is stored, another 4xx refused for ever."""
        record = _decode(payload)
        key = record.pop("key")
        body = gzip.compress(_encode(record), 5)
        headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Idempotency-Key": key,
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self.requests += 1
        try:
            conn = self._connection()
            conn.request("POST", self._path, body=body, headers=headers)
            response = conn.getresponse()
            text = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._close_connection()
            self.last_error = f"{type(exc).__name__}: {exc}"
            return "retry", None
        status = response.status
        if status == 202:
            self.sent += len(record["events"]) + len(record["metrics"])
            self.last_error = None
            return "stored", None
        self.last_error = f"HTTP {status}: {text[:200]!r}"
        if status in (429, 502, 503, 504) or status >= 500:
            retry_after = response.getheader("Retry-After")
            try:
                return "retry", float(retry_after) if retry_after else None
            except ValueError:
                return "retry", None
        if status in (401, 403):
            _log.error("RIMP exporter: the server refused the token (%s); will retry", status)
            return "retry", 30.0
        # 4xx: the server will never accept this batch (it says why): drop it, counted.
        _log.error("RIMP exporter: batch rejected (%s), dropping it: %s", status, text[:200])
        self._count_drop("rejected", len(record["events"]) + len(record["metrics"]))
        return "rejected", None

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _shutdown(self) -> None:
        self._close_connection()
