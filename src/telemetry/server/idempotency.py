"""Remembered answers of requests sent with an ``Idempotency-Key``, bounded three ways.

A retry of a request the server already answered gets the same answer and
stores nothing; a retry racing the first attempt waits for it. What is
remembered is bounded in keys, in bytes (the answers' sizes plus the keys') and
in age, so no client can grow the server's memory by sending keys: the oldest
answers are forgotten first.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

from telemetry.errors import RequestError

__all__ = ["MAX_KEY_LENGTH", "IdempotencyCache", "IngestAnswer", "check_key"]

IngestAnswer = tuple[int, bytes]
"""An ingest request's answer as it is sent and remembered: status and JSON body."""
MAX_KEY_LENGTH = 256
_ENTRY_OVERHEAD = 200  # the future, the entry and the dict slot, roughly


def check_key(key: str) -> str:
    """The key, if it is 1-256 printable ASCII characters.

    Raises:
        RequestError: it is not (400, naming the header).
    """
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise RequestError(
            "invalid_header",
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable ASCII characters",
            "Idempotency-Key",
        )
    return key


class _Entry:
    __slots__ = ("answer", "size", "when")

    def __init__(self, answer: asyncio.Future[IngestAnswer], size: int, when: float) -> None:
        self.answer = answer
        self.size = size
        self.when = when


class IdempotencyCache:
    """Answers by key, oldest first; forgets past ``max_keys``, ``max_bytes`` or ``max_age``.

    Runs on the event loop only (no lock).
    """

    def __init__(self, *, max_keys: int, max_bytes: int, max_age: float) -> None:
        self.max_keys = max_keys
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.bytes = 0
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> asyncio.Future[IngestAnswer] | None:
        """The answer (maybe still pending) remembered for ``key``, if any."""
        self._expire()
        entry = self._entries.get(key)
        return entry.answer if entry is not None else None

    def put(self, key: str, answer: asyncio.Future[IngestAnswer]) -> None:
        """Remember ``answer`` for ``key``; its size counts once it is known."""
        self.forget(key)
        entry = _Entry(answer, len(key) + _ENTRY_OVERHEAD, time.monotonic())
        self._entries[key] = entry
        self.bytes += entry.size
        answer.add_done_callback(lambda f: self._sized(key, entry, f))
        self._evict()

    def forget(self, key: str, answer: asyncio.Future[IngestAnswer] | None = None) -> None:
        """Forget ``key`` (only if it still holds ``answer``, when one is given)."""
        entry = self._entries.get(key)
        if entry is not None and (answer is None or entry.answer is answer):
            del self._entries[key]
            self.bytes -= entry.size

    def _sized(self, key: str, entry: _Entry, answer: asyncio.Future[IngestAnswer]) -> None:
        if self._entries.get(key) is not entry or answer.cancelled():
            return
        grown = len(answer.result()[1])
        entry.size += grown
        self.bytes += grown
        self._evict()

    def _evict(self) -> None:
        entries = self._entries
        while entries and (len(entries) > self.max_keys or self.bytes > self.max_bytes):
            _, oldest = entries.popitem(last=False)
            self.bytes -= oldest.size

    def _expire(self) -> None:
        cutoff = time.monotonic() - self.max_age
        entries = self._entries
        while entries:
            oldest = next(iter(entries.values()))
            if oldest.when >= cutoff:
                return
            entries.popitem(last=False)
            self.bytes -= oldest.size
