"""``FileStorage``: append-only JSON Lines segments in a directory.

Layout: ``events-00000001.jsonl``, ``metrics-00000001.jsonl``, ... One line per
record, one ``write`` per batch and kind on an ``O_APPEND`` descriptor. A
segment is sealed and a new one started once it reaches ``max_segment_bytes``.

Durability: with ``fsync="always"`` (the default) ``store()`` returns only once
the batch is on disk; ``"interval"`` syncs at most every ``fsync_interval``
seconds; ``"never"`` leaves it to the OS. A crash can leave a torn last line:
the next ``FileStorage`` to find the directory without a writer truncates it,
on opening or on taking the writer role (counted in
``stats()["repaired_bytes"]``). A write that fails part-way is rolled back, for
both kinds, to the last whole line before the batch and raises
:class:`~telemetry.errors.StorageError`: a batch is kept whole or not at all, so
a retry stores no duplicates and acknowledged data is never mixed with a torn one.

One writer per directory: from its first write the writer holds an exclusive
``flock`` on ``writer.lock``. Any other ``FileStorage`` opened on the directory
(another process tailing it, say) reads whole lines only, never repairs while
the writer lives, and can take the writer role over once the lock is free.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import msgspec

from telemetry import _lifecycle
from telemetry._jsonform import ENCODER
from telemetry.errors import StorageError, ValidationError
from telemetry.models import Event, Metric, TelemetryData, to_ns
from telemetry.storage.scanning import ScanningStorage

if sys.platform != "win32":
    import fcntl

__all__ = ["FileStorage"]

_log = logging.getLogger("telemetry.storage.file")

FsyncPolicy = Literal["always", "interval", "never"]
_SEGMENT = re.compile(r"^(events|metrics)-(\d{8})\.jsonl$")
_KINDS = ("events", "metrics")
_LOCK_FILE = "writer.lock"


class _Segments:
    """The segment files of one kind and the descriptor of the newest one."""

    def __init__(self, directory: Path, kind: str) -> None:
        self.directory = directory
        self.kind = kind
        self.fd: int | None = None
        self.size = 0
        self.number = 0

    def paths(self) -> list[Path]:
        found = []
        for p in self.directory.iterdir():
            m = _SEGMENT.match(p.name)
            if m and m.group(1) == self.kind:
                found.append((int(m.group(2)), p))
        return [p for _, p in sorted(found)]

    def path_of(self, number: int) -> Path:
        return self.directory / f"{self.kind}-{number:08d}.jsonl"

    @property
    def name(self) -> str:
        return self.path_of(self.number).name

    def open_newest(self) -> None:
        """Open the newest segment (or the first) for appending."""
        self.close()
        paths = self.paths()
        newest = _SEGMENT.match(paths[-1].name) if paths else None
        self.number = int(newest.group(2)) if newest else 1
        self.fd = os.open(self.path_of(self.number), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.size = os.fstat(self.fd).st_size

    def rotate(self) -> None:
        self.close()
        self.number += 1
        self.fd = os.open(self.path_of(self.number), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.size = 0

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)


class _Handles:
    """Every descriptor a ``FileStorage`` holds, closed together (also when it is collected)."""

    def __init__(self, segments: dict[str, _Segments]) -> None:
        self.segments = segments
        self.lock_fd: int | None = None

    def close(self) -> None:
        for seg in self.segments.values():
            with contextlib.suppress(OSError):  # already gone; nothing else to release
                seg.close()
        if self.lock_fd is not None:
            fd, self.lock_fd = self.lock_fd, None
            os.close(fd)  # releases the writer lock


def _try_lock(fd: int) -> bool:
    """Take the exclusive writer lock on ``fd`` without waiting; False if another holds it."""
    if sys.platform == "win32":  # no flock: one writer per directory is the user's promise
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    if sys.platform != "win32":
        fcntl.flock(fd, fcntl.LOCK_UN)


def _repair_tail(path: Path) -> int:
    """Truncate a torn last line (no trailing newline); return the bytes removed."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with path.open("rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return 0
        # Walk back to the last newline; a segment is bounded, so read it in blocks.
        pos = size
        block = 65_536
        keep = 0
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            pos = start
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return size - keep


def _write_all(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class FileStorage(ScanningStorage):
    """Stores records as JSON Lines segment files in ``path`` (a directory, created if missing).

    Example::

        storage = FileStorage("./rimp-data", max_segment_bytes=16 * 2**20, fsync="interval")

    One ``FileStorage`` at a time writes to a directory: from its first
    ``store`` (or ``delete_before``) to ``close()`` it holds an exclusive lock
    (``flock`` on ``writer.lock``; a forked child shares its parent's). Any
    other one opened on the directory, in this process or another, reads
    everything written so far (whole lines only) and raises ``StorageError``
    from ``store`` and ``delete_before`` until the lock is free; it never
    repairs a tail that is the writer's write in progress.

    Args:
        path: the directory.
        max_segment_bytes: size at which a segment is sealed and a new one begun.
        fsync: ``"always"``, ``"interval"`` or ``"never"`` (see the module docs).
        fsync_interval: seconds between syncs with ``fsync="interval"``.

    Raises:
        ValidationError: an option is invalid (nothing is created).
        StorageError: the directory cannot be created or opened.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_segment_bytes: int = 64 * 2**20,
        fsync: FsyncPolicy = "always",
        fsync_interval: float = 1.0,
    ) -> None:
        if not isinstance(fsync, str) or fsync not in ("always", "interval", "never"):
            raise ValidationError(
                f"fsync={fsync!r}: must be 'always', 'interval' or 'never'", field="fsync"
            )
        if (
            not isinstance(fsync_interval, int | float)
            or isinstance(fsync_interval, bool)
            or not math.isfinite(fsync_interval)
            or fsync_interval < 0
        ):
            raise ValidationError(
                f"fsync_interval={fsync_interval!r}: must be a finite number of seconds >= 0",
                field="fsync_interval",
            )
        if (
            not isinstance(max_segment_bytes, int)
            or isinstance(max_segment_bytes, bool)
            or max_segment_bytes < 1024
        ):
            raise ValidationError(
                f"max_segment_bytes={max_segment_bytes!r}: must be an integer of at least 1024",
                field="max_segment_bytes",
            )
        self.path = Path(path)
        self.fsync = fsync
        self.fsync_interval = float(fsync_interval)
        self.max_segment_bytes = max_segment_bytes
        self._lock = threading.Lock()
        self._encoder = ENCODER
        self._decoders: dict[str, msgspec.json.Decoder[Any]] = {
            "events": msgspec.json.Decoder(Event),
            "metrics": msgspec.json.Decoder(Metric),
        }
        self._last_sync = time.monotonic()
        self._closed = False
        self._writer = False
        self._repaired = 0
        self._corrupt: dict[str, int] = {}  # segment name -> lines skipped by its latest read
        self._write_errors = 0
        self._segments = {kind: _Segments(self.path, kind) for kind in _KINDS}
        self._handles = _Handles(self._segments)
        # Descriptors are released when the storage is collected without close();
        # not at exit, where a collector may still be flushing into it.
        self._finalizer = weakref.finalize(self, self._handles.close)
        self._finalizer.atexit = False  # type: ignore[misc]  # a property typeshed misses
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            lock_fd = os.open(self.path / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            self._handles.lock_fd = lock_fd
            if _try_lock(lock_fd):
                # No one writes: repair now, so that reads see the state a writer
                # will find, but leave the lock free until this storage writes.
                try:
                    self._repair()
                finally:
                    _unlock(lock_fd)
        except OSError as exc:
            self._finalizer()
            raise StorageError(f"FileStorage({str(self.path)!r}): cannot open: {exc}") from exc
        _lifecycle.track(
            self, _lifecycle.Phase.STORAGE, after_fork=FileStorage._after_fork_in_child
        )

    def _repair(self) -> None:
        """Cut torn tails and leftovers of an interrupted rewrite; hold the writer lock."""
        repaired = 0
        for seg in self._segments.values():
            paths = seg.paths()
            if paths:
                repaired += _repair_tail(paths[-1])
        for leftover in self.path.glob("*.jsonl.tmp"):  # a rewrite cut short by a crash
            leftover.unlink()
        if repaired:
            self._repaired += repaired
            _log.warning(
                "FileStorage(%r): cut %d bytes of a torn last line", str(self.path), repaired
            )

    def _take_writer_role(self) -> bool:
        """Become the directory's writer unless another storage is; False if one is.

        The lock is taken at the first write and kept until ``close()``; taking
        it over repairs what a writer that died may have left.
        """
        if self._writer:
            return True
        lock_fd = self._handles.lock_fd
        assert lock_fd is not None
        if not _try_lock(lock_fd):
            return False
        try:
            self._repair()
            for seg in self._segments.values():
                seg.open_newest()
        except OSError:
            for seg in self._segments.values():
                seg.close()
            _unlock(lock_fd)
            raise
        self._writer = True
        return True

    def _check_writable(self, method: str) -> None:
        if self._closed:
            raise StorageError(f"FileStorage({str(self.path)!r}): closed")
        try:
            writer = self._take_writer_role()
        except OSError as exc:
            raise StorageError(f"FileStorage({str(self.path)!r}): cannot open: {exc}") from exc
        if not writer:
            raise StorageError(
                f"FileStorage({str(self.path)!r}): cannot {method}(): another FileStorage "
                "(in this process or another) is writing to this directory; this one only reads"
            )

    # --- writing -----------------------------------------------------------

    def store(self, data: TelemetryData) -> None:
        """Append a batch; durable on return with ``fsync="always"``.

        Raises:
            StorageError: the storage is closed, another ``FileStorage`` writes to
                the directory, or the write failed (for instance a full disk); then
                nothing of the batch was kept.
        """
        # encode_lines writes the newline-delimited batch in one C call.
        encode_lines = self._encoder.encode_lines
        chunks = (
            ("events", encode_lines(data.events) if data.events else b""),
            ("metrics", encode_lines(data.metrics) if data.metrics else b""),
        )
        with self._lock:
            self._check_writable("store")
            written: list[tuple[_Segments, int]] = []
            for kind, payload in chunks:
                if not payload:
                    continue
                seg = self._segments[kind]
                try:
                    if seg.fd is None:  # a previous rotation failed to open the next segment
                        seg.open_newest()
                    assert seg.fd is not None
                    # The file's own size, not our count: a forked child may append too.
                    before = os.fstat(seg.fd).st_size
                    written.append((seg, before))
                    _write_all(seg.fd, payload)
                except OSError as exc:
                    self._write_errors += 1
                    self._roll_back(written)
                    raise StorageError(
                        f"FileStorage({str(self.path)!r}): write to {seg.name} failed: {exc}"
                    ) from exc
                seg.size = before + len(payload)
            try:
                self._maybe_sync()
                for seg, _ in written:
                    if seg.size >= self.max_segment_bytes:
                        self._rotate(seg)
            except OSError as exc:
                self._write_errors += 1
                raise StorageError(
                    f"FileStorage({str(self.path)!r}): sync or rotation failed: {exc}"
                ) from exc

    def _roll_back(self, written: list[tuple[_Segments, int]]) -> None:
        # Cut every segment this batch touched back to its last whole line, so the
        # batch is stored whole or not at all and a retry stores no duplicates.
        for seg, before in written:
            try:
                if seg.fd is not None:
                    os.ftruncate(seg.fd, before)
                seg.size = before
            except OSError:
                _log.exception("FileStorage: rollback of a failed write failed")

    def _rotate(self, seg: _Segments) -> None:
        if self.fsync != "never" and seg.fd is not None:
            os.fsync(seg.fd)  # the sealed segment is complete on disk
        seg.rotate()
        if self.fsync == "always":
            self._sync_directory()  # the new segment's name survives a crash

    def _maybe_sync(self) -> None:
        if self.fsync == "never":
            return
        now = time.monotonic()
        if self.fsync == "interval" and now - self._last_sync < self.fsync_interval:
            return
        for seg in self._segments.values():
            if seg.fd is not None:
                os.fsync(seg.fd)
        self._last_sync = now

    # --- reading -----------------------------------------------------------

    def _records(self, kind: str) -> Iterator[Any]:
        decoder = self._decoders[kind]
        with self._lock:
            paths = self._segments[kind].paths()
        for path in paths:
            try:
                raw = path.read_bytes()
            except FileNotFoundError:  # removed by delete_before meanwhile
                continue
            yield from self._decode(decoder, path.name, raw)

    def _decode(self, decoder: msgspec.json.Decoder[Any], name: str, raw: bytes) -> list[Any]:
        """Decode the whole lines of segment ``name``, skipping (and counting) bad ones.

        Bytes after the last newline are a write in progress (or a torn tail the
        writer repairs when it opens): they are not a record yet, nor corrupt.
        """
        end = raw.rfind(b"\n") + 1
        if end < len(raw):
            raw = raw[:end]
        try:
            records: list[Any] = decoder.decode_lines(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            records = []
            bad = 0
            for line in raw.split(b"\n"):
                if not line.strip():
                    continue
                try:
                    records.append(decoder.decode(line))
                except (msgspec.DecodeError, msgspec.ValidationError):
                    bad += 1
            self._corrupt[name] = bad
            if bad:
                _log.warning(
                    "FileStorage(%r): skipped %d corrupt lines of %s", str(self.path), bad, name
                )
        else:
            self._corrupt.pop(name, None)
        return records

    def scan_events(self) -> Iterator[Event]:
        return self._records("events")

    def scan_points(self, name: str | None) -> Iterator[Metric]:
        for p in self._records("metrics"):
            if name is None or p.name == name:
                yield p

    def delete_before(self, t: datetime | int) -> int:
        """Remove older records: whole segments are unlinked, partial ones rewritten atomically.

        Raises:
            StorageError: the storage is closed, another ``FileStorage`` writes to
                the directory, or the files cannot be rewritten.
        """
        cutoff = to_ns(t, "t")
        removed = 0
        with self._lock:
            self._check_writable("delete_before")
            try:
                for kind, seg in self._segments.items():
                    removed += self._delete_from(kind, seg, cutoff)
                self._sync_directory()
            except OSError as exc:
                raise StorageError(
                    f"FileStorage({str(self.path)!r}): delete_before failed: {exc}"
                ) from exc
        return removed

    def _delete_from(self, kind: str, seg: _Segments, cutoff: int) -> int:
        decoder = self._decoders[kind]
        removed = 0
        for path in seg.paths():
            records = self._decode(decoder, path.name, path.read_bytes())
            kept = [r for r in records if r.time_ns >= cutoff]
            if len(kept) == len(records):
                continue
            removed += len(records) - len(kept)
            active = path == seg.path_of(seg.number)
            if kept or active:
                tmp = path.with_name(path.name + ".tmp")
                with tmp.open("wb") as f:
                    f.write(self._encoder.encode_lines(kept))
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)  # the open descriptor still points at the old file
            else:
                path.unlink()
            self._corrupt.pop(path.name, None)  # the rewrite kept only good records
            if active:
                seg.open_newest()
        return removed

    def _sync_directory(self) -> None:
        if sys.platform == "win32":  # directories cannot be opened for fsync there
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _after_fork_in_child(self) -> None:
        # A thread of the parent may have held this storage's lock at fork time.
        self._lock = threading.Lock()

    def stats(self) -> dict[str, Any]:
        """``bytes``, ``segments``, ``repaired_bytes``, ``corrupt_lines``, ``write_errors``.

        ``corrupt_lines`` counts the lines the latest read of each segment had to
        skip; ``repaired_bytes`` the bytes of torn last lines this storage cut;
        ``writer`` whether it holds the directory's writer lock.
        """
        with self._lock:
            paths = [p for seg in self._segments.values() for p in seg.paths()]
        size = 0
        for p in paths:
            with contextlib.suppress(FileNotFoundError):  # removed by delete_before meanwhile
                size += p.stat().st_size
        return {
            "bytes": size,
            "segments": len(paths),
            "repaired_bytes": self._repaired,
            "corrupt_lines": sum(self._corrupt.values()),
            "write_errors": self._write_errors,
            "writer": self._writer and not self._closed,
        }

    def close(self) -> None:
        """Sync and close the open segments and give the writer lock back. Idempotent.

        Raises:
            StorageError: the final sync failed (the descriptors are closed anyway).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._writer and self.fsync != "never":
                    for seg in self._segments.values():
                        if seg.fd is not None:
                            os.fsync(seg.fd)
            except OSError as exc:
                raise StorageError(
                    f"FileStorage({str(self.path)!r}): sync on close failed: {exc}"
                ) from exc
            finally:
                self._finalizer()
