"""What every exporter shares: spool first, then one sender thread that ships in order.

A subclass says how a batch becomes spool entries (:meth:`SpoolingExporter.store`) and how
one entry is delivered (:meth:`SpoolingExporter._send`); this module keeps the rest in one
place: the spool slots, retries with exponential back-off and jitter (honouring a
``Retry-After``), drops counted by reason, ``flush``, ``stats`` and ``close``. An entry
leaves the spool only once its destination has it.
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path
from typing import Literal, TypedDict

from telemetry.errors import StorageError
from telemetry.exporters.spool import Spool
from telemetry.storage.base import Storage

__all__ = ["ExporterStats", "Outcome", "SpoolingExporter", "open_spool"]

Outcome = Literal["stored", "rejected", "retry"]
"""What a delivery attempt came to: the entry leaves the spool (stored, or refused for
ever, counted), or it is tried again later."""


class ExporterStats(TypedDict):
    """What :meth:`SpoolingExporter.stats` returns."""

    sent: int
    requests: int
    retried: int
    spooled: int
    spool_bytes: int
    dropped: dict[str, int]
    last_error: str | None


def open_spool(directory: Path, max_bytes: int) -> Spool:
    """The first free spool slot under ``directory``.

    Several processes of one application may ship to the same destination: each takes
    the first free slot, and a restarted process finds its backlog.
    """
    for slot in range(64):
        try:
            return Spool(directory / f"slot-{slot}", max_bytes=max_bytes)
        except StorageError as exc:
            if "in use" not in str(exc):
                raise
    raise StorageError(f"spool {str(directory)!r}: all 64 slots are in use")


class SpoolingExporter(Storage):
    """Base of the exporters: ``store`` spools, a daemon thread delivers.

    Subclasses call :meth:`_start` at the end of their ``__init__`` and implement
    :meth:`_send` (and :meth:`_shutdown` for what they hold open).
    """

    thread_name = "rimp-exporter"

    def _init_spool(
        self, directory: Path, max_spool_bytes: int, max_backoff: float, close_timeout: float
    ) -> None:
        self.spool = open_spool(directory, max_spool_bytes)
        self.max_backoff = max_backoff
        self.close_timeout = close_timeout
        self._session = f"{os.getpid():x}-{random.getrandbits(48):012x}"
        self._seq = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self.sent = 0
        self.requests = 0
        self.retries = 0
        self.dropped: dict[str, int] = {}
        self.last_error: str | None = None

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def _next_key(self) -> str:
        """A key unique to this exporter's entries (the destination's idempotency key)."""
        with self._lock:
            self._seq += 1
            return f"{self._session}-{self._seq}"

    def _count_drop(self, reason: str, n: int) -> None:
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + n

    # --- the sender --------------------------------------------------------------------

    def _send(self, payload: bytes) -> tuple[Outcome, float | None]:
        """Deliver one spool entry: the outcome, and a ``Retry-After`` in seconds if the
        destination gave one. Runs on the sender thread only."""
        raise NotImplementedError

    def _shutdown(self) -> None:
        """Release what the sender holds (connections); called once, after it stopped."""

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            item = self.spool.peek()
            if item is None:
                with self._idle:
                    self._idle.notify_all()
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            payload, position = item
            outcome, retry_after = self._send(payload)
            if outcome != "retry":  # stored, or refused for ever (counted by _send)
                failures = 0
                self.spool.acknowledge(position)
                continue
            failures += 1
            self.retries += 1
            delay = min(self.max_backoff, 0.1 * 2 ** min(failures, 10))
            delay = random.uniform(delay / 2, delay)  # jitter: no thundering herd on restart
            if retry_after is not None:
                delay = max(delay, retry_after)
            self._stop.wait(delay)

    # --- lifecycle ----------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the spool is empty (everything sent); True if it emptied in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wake.set()
        with self._idle:
            while self.spool.pending():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(0.05 if left is None else min(left, 0.05))
        return True

    def stats(self) -> ExporterStats:
        """``sent`` records, ``requests`` (delivery attempts), ``retried``, ``spooled``
        entries waiting, ``spool_bytes``, ``dropped`` by reason, ``last_error``."""
        return {
            "sent": self.sent,
            "requests": self.requests,
            "retried": self.retries,
            "spooled": self.spool.pending(),
            "spool_bytes": self.spool.size(),
            "dropped": dict(self.dropped),
            "last_error": self.last_error,
        }

    def close(self, timeout: float | None = None) -> None:
        """Send what is spooled for up to ``timeout`` seconds (default ``close_timeout``);
        what is left stays on disk for the next exporter on the same spool. Idempotent."""
        if self._stop.is_set():
            return
        deadline = time.monotonic() + (self.close_timeout if timeout is None else timeout)
        self.flush(max(0.0, deadline - time.monotonic()))
        self._stop.set()
        self._wake.set()
        # A delivery in flight may outlive the deadline: the thread is a daemon and its
        # entry stays in the spool, unacknowledged, so nothing is lost.
        self._thread.join(max(0.0, deadline - time.monotonic()))
        self._shutdown()
        self.spool.close()
