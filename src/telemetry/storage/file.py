"""``FileStorage``: append-only JSON Lines segments in a directory.

Layout: ``events-00000001.jsonl``, ``metrics-00000001.jsonl``, ... One line per
record, one ``write`` per batch and kind on an ``O_APPEND`` descriptor. A
segment is sealed and a new one started once it reaches ``max_segment_bytes``.

Durability: with ``fsync="always"`` (the default) ``store()`` returns only once
the batch is on disk; ``"interval"`` syncs at most every ``fsync_interval``
seconds; ``"never"`` leaves it to the OS. A crash can leave a torn last line:
opening the directory truncates it (counted in ``stats()["repaired_bytes"]``).
A write that fails part-way is rolled back to the last whole line and raises
:class:`~telemetry.errors.StorageError`, so acknowledged data is never mixed
with a torn batch.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import msgspec

from telemetry.errors import StorageError, ValidationError
from telemetry.models import Bucket, Event, EventType, Metric, SeriesInfo, TelemetryData, to_ns
from telemetry.storage import _query
from telemetry.storage.base import Storage, TimeArg

__all__ = ["FileStorage"]

_log = logging.getLogger("telemetry.storage.file")

FsyncPolicy = Literal["always", "interval", "never"]
_SEGMENT = re.compile(r"^(events|metrics)-(\d{8})\.jsonl$")
_KINDS = ("events", "metrics")


def _encode_fallback(obj: Any) -> Any:
    # Metadata may hold any object; what JSON cannot carry is stored as its str().
    return str(obj)


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

    def open_newest(self) -> int:
        """Open the newest segment for appending, repairing a torn last line; return bytes cut."""
        paths = self.paths()
        self.number = int(_SEGMENT.match(paths[-1].name).group(2)) if paths else 1  # type: ignore[union-attr]
        path = self.path_of(self.number)
        repaired = _repair_tail(path) if path.exists() else 0
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.size = os.fstat(self.fd).st_size
        return repaired

    def rotate(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
        self.number += 1
        self.fd = os.open(self.path_of(self.number), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.size = 0

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


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


class FileStorage(Storage):
    """Stores records as JSON Lines segment files in ``path`` (a directory, created if missing).

    Example::

        storage = FileStorage("./rimp-data", max_segment_bytes=16 * 2**20, fsync="interval")

    Args:
        path: the directory.
        max_segment_bytes: size at which a segment is sealed and a new one begun.
        fsync: ``"always"``, ``"interval"`` or ``"never"`` (see the module docs).
        fsync_interval: seconds between syncs with ``fsync="interval"``.

    Raises:
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
        if fsync not in ("always", "interval", "never"):
            raise ValidationError(f"fsync={fsync!r}: must be 'always', 'interval' or 'never'")
        if not isinstance(max_segment_bytes, int) or max_segment_bytes < 1024:
            raise ValidationError(
                f"max_segment_bytes={max_segment_bytes!r}: must be an integer of at least 1024"
            )
        self.path = Path(path)
        self.fsync = fsync
        self.fsync_interval = fsync_interval
        self.max_segment_bytes = max_segment_bytes
        self._lock = threading.Lock()
        self._encoder = msgspec.json.Encoder(enc_hook=_encode_fallback)
        self._decoders: dict[str, msgspec.json.Decoder[Any]] = {
            "events": msgspec.json.Decoder(Event),
            "metrics": msgspec.json.Decoder(Metric),
        }
        self._last_sync = time.monotonic()
        self._closed = False
        self._repaired = 0
        self._corrupt_lines = 0
        self._write_errors = 0
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._segments = {kind: _Segments(self.path, kind) for kind in _KINDS}
            for seg in self._segments.values():
                self._repaired += seg.open_newest()
        except OSError as exc:
            raise StorageError(f"FileStorage({str(self.path)!r}): cannot open: {exc}") from exc
        if self._repaired:
            _log.warning(
                "FileStorage(%r): cut %d bytes of a torn last line", str(self.path), self._repaired
            )
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    # --- writing -----------------------------------------------------------

    def store(self, data: TelemetryData) -> None:
        """Append a batch; durable on return with ``fsync="always"``.

        Raises:
            StorageError: the write failed (for instance a full disk); nothing
                of the failed kind's lines was kept.
        """
        encode = self._encoder.encode
        chunks = {
            "events": b"".join([encode(e) + b"\n" for e in data.events]) if data.events else b"",
            "metrics": b"".join([encode(m) + b"\n" for m in data.metrics]) if data.metrics else b"",
        }
        with self._lock:
            if self._closed:
                raise StorageError(f"FileStorage({str(self.path)!r}): closed")
            for kind, payload in chunks.items():
                if payload:
                    self._append(self._segments[kind], payload)
            self._maybe_sync()

    def _append(self, seg: _Segments, payload: bytes) -> None:
        assert seg.fd is not None
        before = seg.size
        try:
            view = memoryview(payload)
            while view:
                written = os.write(seg.fd, view)
                view = view[written:]
        except OSError as exc:
            self._write_errors += 1
            # Roll back to the last whole line so the segment never holds half a batch.
            try:
                os.ftruncate(seg.fd, before)
            except OSError:
                _log.exception("FileStorage: rollback of a failed write failed")
            raise StorageError(
                f"FileStorage({str(self.path)!r}): write to {seg.path_of(seg.number).name} "
                f"failed: {exc}"
            ) from exc
        seg.size = before + len(payload)
        if seg.size >= self.max_segment_bytes:
            if self.fsync != "never":
                os.fsync(seg.fd)
            seg.rotate()

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
            yield from self._decode(decoder, raw)

    def _decode(self, decoder: msgspec.json.Decoder[Any], raw: bytes) -> list[Any]:
        try:
            return decoder.decode_lines(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            out = []
            for line in raw.splitlines():
                if not line.strip():
                    continue
                try:
                    out.append(decoder.decode(line))
                except (msgspec.DecodeError, msgspec.ValidationError):
                    self._corrupt_lines += 1
            return out

    def query_events(
        self,
        *,
        source: str | None = None,
        event_type: EventType | str | None = None,
        since: TimeArg = None,
        until: TimeArg = None,
        search: str | None = None,
        limit: int | None = 100,
    ) -> list[Event]:
        """See :meth:`Storage.query_events`."""
        return _query.filter_events(
            self._records("events"),
            source=source,
            event_type=event_type,
            since=since,
            until=until,
            search=search,
            limit=limit,
        )

    def _points(self, name: str | None) -> Iterator[Metric]:
        for p in self._records("metrics"):
            if name is None or p.name == name:
                yield p

    def query_metrics(
        self,
        name: str,
        *,
        tags: dict[str, str] | None = None,
        since: TimeArg = None,
        until: TimeArg = None,
        limit: int | None = None,
    ) -> list[Metric]:
        """See :meth:`Storage.query_metrics`."""
        lo, hi = _query.window(since, until)
        limit = _query.check_limit(limit)
        found = [
            p
            for p in self._points(name)
            if (lo is None or p.time_ns >= lo)
            and (hi is None or p.time_ns < hi)
            and _query.tags_match(p.tags, tags)
        ]
        found.sort(key=lambda p: p.time_ns)
        return found if limit is None else found[-limit:]

    def aggregate(
        self,
        name: str,
        *,
        agg: str = "avg",
        bucket: float | timedelta = 60,
        since: TimeArg = None,
        until: TimeArg = None,
        tags: dict[str, str] | None = None,
        group_by: Sequence[str] | None = None,
    ) -> list[Bucket]:
        """See :meth:`Storage.aggregate`."""
        return _query.aggregate_points(
            self._points(name),
            agg=agg,
            bucket=bucket,
            since=since,
            until=until,
            tags=tags,
            group_by=group_by,
        )

    def count_events(
        self,
        *,
        bucket: float | timedelta = 60,
        since: TimeArg = None,
        until: TimeArg = None,
        source: str | None = None,
        event_type: EventType | str | None = None,
        group_by: Sequence[str] = ("event_type",),
    ) -> list[Bucket]:
        """See :meth:`Storage.count_events`."""
        return _query.count_event_buckets(
            self._records("events"),
            bucket=bucket,
            since=since,
            until=until,
            source=source,
            event_type=event_type,
            group_by=group_by,
        )

    def series(self, name: str | None = None) -> list[SeriesInfo]:
        """See :meth:`Storage.series`."""
        return _query.latest_series(self._points(name))

    def delete_before(self, t: datetime | int) -> int:
        """Remove older records: whole segments are unlinked, partial ones rewritten atomically."""
        cutoff = to_ns(t, "t")
        removed = 0
        with self._lock:
            for kind, seg in self._segments.items():
                decoder = self._decoders[kind]
                for path in seg.paths():
                    records = self._decode(decoder, path.read_bytes())
                    kept = [r for r in records if r.time_ns >= cutoff]
                    if len(kept) == len(records):
                        continue
                    removed += len(records) - len(kept)
                    active = path == seg.path_of(seg.number)
                    if active:
                        seg.close()
                    if kept or active:
                        tmp = path.with_suffix(".tmp")
                        with tmp.open("wb") as f:
                            f.write(b"".join(self._encoder.encode(r) + b"\n" for r in kept))
                            f.flush()
                            os.fsync(f.fileno())
                        os.replace(tmp, path)
                    else:
                        path.unlink()
                    if active:
                        seg.open_newest()
            self._sync_directory()
        return removed

    def _sync_directory(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def stats(self) -> dict[str, Any]:
        """``bytes``, ``segments``, ``repaired_bytes``, ``corrupt_lines``, ``write_errors``."""
        with self._lock:
            paths = [p for seg in self._segments.values() for p in seg.paths()]
        return {
            "bytes": sum(p.stat().st_size for p in paths if p.exists()),
            "segments": len(paths),
            "repaired_bytes": self._repaired,
            "corrupt_lines": self._corrupt_lines,
            "write_errors": self._write_errors,
        }

    def close(self) -> None:
        """Sync and close the open segments. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for seg in self._segments.values():
                if seg.fd is not None and self.fsync != "never":
                    os.fsync(seg.fd)
                seg.close()
