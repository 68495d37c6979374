"""``BusExporter``: an application inside the cluster publishes straight to the RIMP bus.

The same guarantees as :class:`~telemetry.exporters.HTTPExporter`, without a RIMP node
in the way: each batch is encoded into bus messages and appended to an on-disk spool
(durable on return), and a sender publishes the spool's messages in order to the
JetStream stream the RIMP nodes' writers consume, each with a ``Nats-Msg-Id`` of its own
so a publish retried after a lost acknowledgement is dropped by JetStream, not stored
twice. A message leaves the spool only once JetStream acknowledged it. Needs the
``nats`` extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import threading
from pathlib import Path
from typing import Any

from telemetry.bus import Bus, BusError, BusSettings
from telemetry.bus.codec import encode_counted
from telemetry.errors import SpoolFull, StorageError
from telemetry.exporters._spooled import Outcome, SpoolingExporter
from telemetry.exporters.http import default_spool_dir
from telemetry.models import TelemetryData

__all__ = ["BusExporter"]

_SEP = b"\n"  # spool entry: "<key> <records>", a newline, the message


class BusExporter(SpoolingExporter):
    """A storage that publishes every batch to a RIMP bus (NATS JetStream).

    Example::

        from telemetry.exporters.bus import BusExporter

        sink = BusExporter("nats://nats.internal:4222", stream="RIMP")
        collector = TelemetryCollector(TelemetryConfig(storage_backend=sink))

    Args:
        url: the NATS server (``nats://host:port``).
        stream: the JetStream stream of the RIMP nodes (``--bus-stream``).
        settings: every bus setting at once, instead of ``url`` and ``stream``; they
            must match the nodes' (stream, subject).
        spool_dir: where unsent messages wait (default: a directory per URL and
            stream under ``$XDG_CACHE_HOME/rimp/spool``).
        max_spool_bytes: bound of the spool; beyond it the oldest messages are dropped
            (counted as ``spool_full``).
        max_backoff: longest wait between retries, in seconds.
        close_timeout: default bound of :meth:`close`.

    Raises:
        StorageError: the spool is unusable. An unreachable NATS is not an error
            here: batches wait in the spool until it answers.
    """

    thread_name = "rimp-bus-exporter"

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        stream: str = "RIMP",
        settings: BusSettings | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        max_spool_bytes: int = 256 * 2**20,
        max_backoff: float = 30.0,
        close_timeout: float = 5.0,
    ) -> None:
        self.settings = settings or BusSettings(url=url, stream=stream)
        where = f"{self.settings.url}/{self.settings.stream}"
        directory = Path(spool_dir) if spool_dir is not None else default_spool_dir(where)
        self._init_spool(directory, max_spool_bytes, max_backoff, close_timeout)
        # nats-py lives on an event loop: the exporter runs one of its own, on a thread,
        # and the sender hands it one publish at a time.
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self._loop.run_forever, name="rimp-bus-exporter-loop", daemon=True
        )
        self._loop_thread.start()
        self._bus: Bus | None = None
        self._start()

    def __repr__(self) -> str:
        return f"BusExporter({self.settings.url!r}, stream={self.settings.stream!r})"

    def store(self, data: TelemetryData) -> None:
        """Spool the batch's messages (durable on return); the sender publishes them.

        Raises:
            StorageError: the spool could not be written (the collector retries), or a
                record is larger than a bus message.
        """
        if not data:
            return
        try:
            messages = encode_counted(data, self.settings.max_msg_bytes)
        except ValueError as exc:
            raise StorageError(f"{self!r}: {exc}") from exc
        for records, payload in messages:
            header = f"{self._next_key()} {records}".encode()
            try:
                lost = self.spool.append(header + _SEP + payload)
            except SpoolFull:  # a StorageError: the collector keeps and counts the batch
                self._count_drop("spool_full", len(data))
                raise
            if lost:
                self._count_drop("spool_full", lost)  # messages, not records
        self._wake.set()

    def _call(self, work: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout)

    def _send(self, payload: bytes) -> tuple[Outcome, float | None]:
        """Publish one spooled message; JetStream's acknowledgement means stored."""
        header, _, message = payload.partition(_SEP)
        key, _, records = header.partition(b" ")
        s = self.settings
        self.requests += 1
        try:
            if self._bus is None:
                self._bus = self._call(Bus.connect(s), s.connect_timeout + 5)
            assert self._bus is not None
            self._call(
                self._bus.publish_encoded([message], _message_id(key)), s.request_timeout + 5
            )
        except (BusError, TimeoutError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            return "retry", None
        self.sent += int(records)
        self.last_error = None
        return "stored", None

    def _shutdown(self) -> None:
        if self._bus is not None:
            with contextlib.suppress(BusError, TimeoutError):  # a connection already gone
                self._call(self._bus.close(), 5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join(5)
        self._loop.close()


def _message_id(key: bytes) -> str:
    # Spool keys are unique per exporter session; the digest keeps ids short and opaque.
    return "rimp-x-" + hashlib.blake2b(key, digest_size=12).hexdigest()
