"""A bounded, append-only, checksummed on-disk queue of batches (the exporter's spool).

Layout: ``<dir>/spool-00000001.log`` ... Each record is a 12-byte header
(magic ``RSP1``, payload length, CRC-32 of the payload) and the payload.
A record that is torn (crash mid-write) or fails its checksum ends the readable
part of its segment: opening the spool truncates it there. Acknowledged records
are tracked by a cursor file (segment number and offset), rewritten atomically;
segments wholly behind the cursor are deleted.
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
import threading
import zlib
from pathlib import Path

from telemetry.errors import SpoolFull, StorageError

__all__ = ["Spool"]

_MAGIC = b"RSP1"
_HEADER = struct.Struct("<4sII")
_SEGMENT = re.compile(r"^spool-(\d{8})\.log$")


class Spool:
    """A FIFO of byte payloads on disk, bounded by ``max_bytes``.

    Args:
        directory: where the segments live (created if missing). One process
            owns a directory at a time (a ``flock`` on ``spool.lock``).
        max_bytes: total size bound; appending past it drops the oldest
            segments (reported by :meth:`append`).
        segment_bytes: size at which a new segment begins.

    Raises:
        StorageError: the directory is locked by another process or unusable.
    """

    def __init__(
        self, directory: Path, *, max_bytes: int = 256 * 2**20, segment_bytes: int = 8 * 2**20
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self.repaired_bytes = 0
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(directory / "spool.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError(f"spool {str(directory)!r}: cannot open: {exc}") from exc
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise StorageError(f"spool {str(directory)!r}: in use by another process") from None
        self._cursor_seg, self._cursor_off = self._read_cursor()
        segments = self._segments()
        for number in segments:
            self.repaired_bytes += self._repair(number)
        self._write_seg = segments[-1] if segments else max(self._cursor_seg, 1)
        self._drop_acknowledged()
        self._pending = sum(
            self._count(n, self._cursor_off if n == self._cursor_seg else 0)
            for n in self._segments()
            if n >= self._cursor_seg
        )

    # --- files ---------------------------------------------------------------------

    def _path(self, number: int) -> Path:
        return self.directory / f"spool-{number:08d}.log"

    def _segments(self) -> list[int]:
        found = []
        for p in self.directory.iterdir():
            m = _SEGMENT.match(p.name)
            if m:
                found.append(int(m.group(1)))
        return sorted(found)

    def _read_cursor(self) -> tuple[int, int]:
        try:
            seg, off = (self.directory / "cursor").read_text().split()
            return int(seg), int(off)
        except (OSError, ValueError):
            return 0, 0

    def _write_cursor(self) -> None:
        tmp = self.directory / "cursor.tmp"
        with open(tmp, "w") as f:
            f.write(f"{self._cursor_seg} {self._cursor_off}")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.directory / "cursor")

    def _repair(self, number: int) -> int:
        """Truncate a segment after its last whole, valid record; return bytes cut."""
        path = self._path(number)
        data = path.read_bytes()
        good = 0
        while good + _HEADER.size <= len(data):
            magic, length, crc = _HEADER.unpack_from(data, good)
            end = good + _HEADER.size + length
            if magic != _MAGIC or end > len(data):
                break
            if zlib.crc32(data[good + _HEADER.size : end]) != crc:
                break
            good = end
        if good < len(data):
            with open(path, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())
        return len(data) - good

    def _drop_acknowledged(self) -> None:
        for number in self._segments():
            if number < self._cursor_seg:
                self._path(number).unlink(missing_ok=True)

    # --- the queue -----------------------------------------------------------------

    def size(self) -> int:
        """Bytes on disk in segments."""
        return sum(self._path(n).stat().st_size for n in self._segments())

    def append(self, payload: bytes) -> int:
        """Append one record durably (fsync); return how many older records were dropped
        to stay within ``max_bytes``.

        Raises:
            SpoolFull: the record alone is larger than ``max_bytes``.
            StorageError: the write failed (nothing of it is kept).
        """
        record = _HEADER.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload
        if len(record) > self.max_bytes:
            raise SpoolFull(f"a batch of {len(record)} bytes exceeds the spool's {self.max_bytes}")
        with self._lock:
            dropped = self._make_room(len(record))
            path = self._path(self._write_seg)
            if path.exists() and path.stat().st_size >= self.segment_bytes:
                self._write_seg += 1
                path = self._path(self._write_seg)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                before = os.fstat(fd).st_size
                try:
                    os.write(fd, record)
                    os.fsync(fd)
                except OSError as exc:
                    os.ftruncate(fd, before)
                    raise StorageError(
                        f"spool {str(self.directory)!r}: write failed: {exc}"
                    ) from exc
            finally:
                os.close(fd)
            self._pending += 1 - dropped
            return dropped

    def _make_room(self, need: int) -> int:
        dropped = 0
        segments = self._segments()
        total = sum(self._path(n).stat().st_size for n in segments)
        while total + need > self.max_bytes and len(segments) > 1:
            oldest = segments.pop(0)
            path = self._path(oldest)
            dropped += self._count(oldest, self._cursor_off if oldest == self._cursor_seg else 0)
            total -= path.stat().st_size
            path.unlink()
            if self._cursor_seg <= oldest:
                self._cursor_seg, self._cursor_off = oldest + 1, 0
                self._write_cursor()
        if total + need > self.max_bytes and segments and segments[0] == self._write_seg:
            self._write_seg += 1  # the only segment is full: start a new one next to it
        return dropped

    def _count(self, number: int, start: int) -> int:
        data = self._path(number).read_bytes()
        n = 0
        pos = start
        while pos + _HEADER.size <= len(data):
            _, length, _ = _HEADER.unpack_from(data, pos)
            pos += _HEADER.size + length
            n += 1
        return n

    def peek(self) -> tuple[bytes, tuple[int, int]] | None:
        """The oldest unacknowledged record and its position, or None when empty."""
        with self._lock:
            for number in self._segments():
                if number < self._cursor_seg:
                    continue
                offset = self._cursor_off if number == self._cursor_seg else 0
                with open(self._path(number), "rb") as f:
                    f.seek(offset)
                    header = f.read(_HEADER.size)
                    if len(header) < _HEADER.size:
                        continue  # this segment is used up: look in the next one
                    _, length, _ = _HEADER.unpack(header)
                    payload = f.read(length)
                return payload, (number, offset + _HEADER.size + length)
            return None

    def acknowledge(self, position: tuple[int, int]) -> None:
        """Mark the record :meth:`peek` returned with ``position`` as delivered."""
        with self._lock:
            if position <= (self._cursor_seg, self._cursor_off):
                return  # dropped meanwhile to make room: already counted
            self._pending -= 1
            self._cursor_seg, self._cursor_off = position
            self._write_cursor()
            self._drop_acknowledged()

    def pending(self) -> int:
        """Records not yet acknowledged."""
        return self._pending

    def close(self) -> None:
        """Release the directory lock."""
        os.close(self._lock_fd)
