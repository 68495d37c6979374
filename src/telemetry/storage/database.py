"""``DatabaseStorage``: the embedded time-series store on one SQLite file.

Design (measured and explained in ``docs/storage.md``):

- ``series``: a dictionary of series (name + canonical tags JSON) → small id.
- ``chunks``: the points of one series, sorted by time, in compressed columns
  (see ``_chunks``). Each ``store()`` writes one chunk per series; small chunks
  are merged into large ones as they accumulate, so a day of one series is a
  few dozen rows.
- ``rollup_1m``: per series and minute, count/sum/min/max and the last point,
  written in the same transaction as the points. Aggregates whose buckets are
  whole minutes over minute-aligned windows read these instead of points.
- ``event_blocks``: the events of one source in compressed columns (see
  ``_eventblocks``); ``events`` holds the recent rows of small batches until they
  are merged into blocks. ``event_type_counts`` (per minute and type) and
  ``event_source_counts`` (per minute and source) answer the event-rate queries.

Every ``store()`` is one transaction (WAL mode, ``synchronous=NORMAL``): a
reader in another process sees a batch whole or not at all, and is never
blocked by the writer. One process writes: a second one gets a clear
:class:`~telemetry.errors.StorageError` on its first write.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import functools
import heapq
import json
import logging
import os
import sqlite3
import threading
import time
import urllib.parse
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from telemetry import _lifecycle
from telemetry._jsonform import encode as _encode
from telemetry.config import check_int
from telemetry.errors import StorageError
from telemetry.models import (
    Bucket,
    Event,
    EventType,
    Metric,
    SeriesInfo,
    TelemetryData,
    duration_ns,
    to_ns,
)
from telemetry.storage import _chunks, _eventblocks, _query
from telemetry.storage.base import Storage, TimeArg

__all__ = ["SCHEMA_VERSION", "DatabaseStorage"]

_log = logging.getLogger("telemetry.storage.database")

MINUTE_NS = 60_000_000_000
SCHEMA_VERSION = 4
SMALL_CHUNK = 1024  # chunks under this many points are merged once enough accumulate
MERGE_AT = 2048  # points in a series' small chunks that trigger a merge
MAX_CHUNK = 16_384  # points in one merged chunk
BLOCK_MIN = 16  # events of one source in a batch that go straight into a block (measured:
# a block beats rows from 8 events up, counting the later merge of the rows)
EVENT_MERGE_AT = 1024  # a source's events in rows that are moved into blocks
MAX_BLOCK = 8192  # events in one block

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        unit TEXT NOT NULL,
        tags TEXT NOT NULL,
        UNIQUE (name, tags)
    );
    CREATE TABLE chunks (
        id INTEGER PRIMARY KEY,
        series_id INTEGER NOT NULL,
        start_ns INTEGER NOT NULL,
        end_ns INTEGER NOT NULL,
        n INTEGER NOT NULL,
        times BLOB NOT NULL,
        vals BLOB NOT NULL,
        ids BLOB NOT NULL
    );
    CREATE INDEX chunks_series_time ON chunks (series_id, start_ns);
    CREATE TABLE rollup_1m (
        series_id INTEGER NOT NULL,
        bucket_ns INTEGER NOT NULL,
        count INTEGER NOT NULL,
        sum REAL NOT NULL,
        min REAL NOT NULL,
        max REAL NOT NULL,
        last_ns INTEGER NOT NULL,
        last_value REAL NOT NULL,
        PRIMARY KEY (series_id, bucket_ns)
    ) WITHOUT ROWID;
    CREATE TABLE events (
        time_ns INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        id TEXT NOT NULL,
        source TEXT NOT NULL,
        event_type TEXT NOT NULL,
        message TEXT NOT NULL,
        metadata BLOB NOT NULL,
        ascii INTEGER NOT NULL,
        PRIMARY KEY (time_ns, seq)
    ) WITHOUT ROWID;
    CREATE INDEX events_source_type_time ON events (source, event_type, time_ns);
    CREATE TABLE event_counts (
        bucket_ns INTEGER NOT NULL,
        source TEXT NOT NULL,
        event_type TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (bucket_ns, source, event_type)
    ) WITHOUT ROWID;
    """,
    # The answers of idempotent requests, written with their records (server restarts).
    2: """
    CREATE TABLE receipts (
        key TEXT PRIMARY KEY,
        time_ns INTEGER NOT NULL,
        answer BLOB NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX receipts_time ON receipts (time_ns);
    """,
    # Events in compressed blocks per source (storage/_eventblocks.py); the events
    # table keeps the recent rows of small batches until they are merged into blocks.
    # Counts per minute and type, without the source, for the day-long count.
    3: """
    CREATE TABLE event_blocks (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        start_ns INTEGER NOT NULL,
        end_ns INTEGER NOT NULL,
        last_seq INTEGER NOT NULL,
        n INTEGER NOT NULL,
        types INTEGER NOT NULL,
        times BLOB NOT NULL,
        seqs BLOB NOT NULL,
        kinds BLOB NOT NULL,
        ids BLOB NOT NULL,
        messages BLOB NOT NULL,
        metadata BLOB NOT NULL
    );
    CREATE INDEX event_blocks_end ON event_blocks (end_ns);
    CREATE INDEX event_blocks_source_end ON event_blocks (source, end_ns);
    CREATE TABLE event_type_counts (
        bucket_ns INTEGER NOT NULL,
        event_type TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (bucket_ns, event_type)
    ) WITHOUT ROWID;
    INSERT INTO event_type_counts
        SELECT bucket_ns, event_type, sum(count) FROM event_counts GROUP BY bucket_ns, event_type;
    CREATE TABLE event_source_counts (
        bucket_ns INTEGER NOT NULL,
        source TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (bucket_ns, source)
    ) WITHOUT ROWID;
    INSERT INTO event_source_counts
        SELECT bucket_ns, source, sum(count) FROM event_counts GROUP BY bucket_ns, source;
    DROP TABLE event_counts;
    """,
    # A bit set of each ASCII block's message trigrams: a search skips blocks without
    # the word's trigrams (storage/_eventblocks.py). Older blocks keep NULL: read, as before.
    4: """
    ALTER TABLE event_blocks ADD COLUMN grams BLOB;
    """,
}
RECEIPT_TTL_NS = 24 * 3600 * 1_000_000_000  # how long an idempotency answer is kept
_PRUNE_EVERY = 256  # stores between two deletions of expired receipts

_ROLLUP_UPSERT = """
INSERT INTO rollup_1m (series_id, bucket_ns, count, sum, min, max, last_ns, last_value)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (series_id, bucket_ns) DO UPDATE SET
    count = count + excluded.count,
    sum = sum + excluded.sum,
    min = min(min, excluded.min),
    max = max(max, excluded.max),
    last_value = CASE WHEN excluded.last_ns >= last_ns THEN excluded.last_value
                      ELSE last_value END,
    last_ns = max(last_ns, excluded.last_ns)
"""
_EVENT_SOURCE_COUNT_UPSERT = """
INSERT INTO event_source_counts (bucket_ns, source, count) VALUES (?, ?, ?)
ON CONFLICT (bucket_ns, source) DO UPDATE SET count = count + excluded.count
"""
_EVENT_TYPE_COUNT_UPSERT = """
INSERT INTO event_type_counts (bucket_ns, event_type, count) VALUES (?, ?, ?)
ON CONFLICT (bucket_ns, event_type) DO UPDATE SET count = count + excluded.count
"""
_BLOCK_INSERT = (
    "INSERT INTO event_blocks (source, start_ns, end_ns, last_seq, n, types, times, seqs, "
    "kinds, ids, messages, metadata, grams) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_BLOCK_COLUMNS = "types, source, times, seqs, kinds, ids, messages, metadata, grams"
# How each aggregate reads the minute rollups (``last``: SQLite takes the bare
# column from the row holding the max(); ``rate`` divides by the bucket seconds).
_ROLLUP_VALUE = {
    "count": "sum(count)",
    "sum": "sum(sum)",
    "avg": "sum(sum) / sum(count)",
    "min": "min(min)",
    "max": "max(max)",
    "rate": "sum(sum) / ?",
    "last": "last_value, max(last_ns)",
}
_ROLLUP_AGGS = frozenset(_ROLLUP_VALUE)


_F = TypeVar("_F", bound=Callable[..., Any])


def _reads(method: _F) -> _F:
    """Report SQLite errors of a read as StorageError naming the database."""

    @functools.wraps(method)
    def wrapper(self: DatabaseStorage, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise StorageError(f"{self._label}: {method.__name__} failed: {exc}") from exc

    return wrapper  # type: ignore[return-value]


_decode_metadata = msgspec.json.Decoder(dict[str, Any]).decode


def _canonical_tags(tags: dict[str, str]) -> str:
    return json.dumps(tags, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class _Series:
    """The in-memory copy of the series dictionary."""

    __slots__ = ("by_canonical", "by_fast_key", "info", "max_id")

    def __init__(self) -> None:
        self.info: dict[int, tuple[str, str, dict[str, str]]] = {}
        self.by_canonical: dict[tuple[str, str], int] = {}
        # (name, tags JSON in the caller's key order) -> id: skips sorting for known series.
        self.by_fast_key: dict[tuple[str, bytes], int] = {}
        self.max_id = 0

    def add(self, sid: int, name: str, unit: str, tags_json: str) -> None:
        tags = json.loads(tags_json)
        self.info[sid] = (name, unit, tags)
        self.by_canonical[(name, tags_json)] = sid
        self.max_id = max(self.max_id, sid)


class DatabaseStorage(Storage):
    """Stores records in one SQLite file, as a time-series store.

    Example::

        storage = DatabaseStorage("rimp-data/telemetry.db", retention="30d", raw_retention="7d")
        storage.aggregate("response_time", agg="p95", bucket=300, group_by=["endpoint"])

    Args:
        path: the database file (created with its directory if missing).
        retention: drop everything older than this (``"30d"``, ``"12h"``, seconds, or None).
        raw_retention: drop raw points older than this but keep minute rollups, so
            count/sum/avg/min/max/rate/last stay answerable for whole minutes
            until ``retention`` (percentiles need raw points).
        maintenance_interval: seconds between background retention passes.
        readonly: open for reading only (any number of processes may).
        event_block_min: events of one source in one batch that are written straight
            into a compressed block; fewer are written as rows, moved into blocks once
            1,024 of a source accumulate.

    Raises:
        StorageError: the file is not a SQLite database, not RIMP's, corrupt,
            newer than this RIMP, or cannot be created.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retention: str | float | None = None,
        raw_retention: str | float | None = None,
        maintenance_interval: float = 60.0,
        readonly: bool = False,
        event_block_min: int = BLOCK_MIN,
    ) -> None:
        if "://" in str(path):
            raise StorageError(
                f"DatabaseStorage({str(path)!r}): a URL is not a SQLite file; for PostgreSQL "
                "use PostgresStorage(url)"
            )
        self.path = Path(path)
        self.retention_ns = None if retention is None else duration_ns(retention, "retention")
        self.raw_retention_ns = (
            None if raw_retention is None else duration_ns(raw_retention, "raw_retention")
        )
        self.readonly = readonly
        check_int("event_block_min", event_block_min, minimum=1)
        self.event_block_min = event_block_min
        self._label = f"DatabaseStorage({str(self.path)!r})"
        self._lock = threading.RLock()
        self._closed = False
        self._lock_fd: int | None = None
        self._series = _Series()
        self._small: dict[int, int] = {}  # series id -> points in its small chunks
        self._small_events: dict[str, int] = {}  # source -> its events still in rows
        self._write_errors = 0
        self._stores_with_receipts = 0
        self._merge_errors = 0
        self._event_seq = 0
        self._next_event_seq = 0
        self._pending_small: dict[str, int] = {}  # source -> rows written by this store
        self._conn = self._open()
        self._load_series()
        self._stop = threading.Event()
        self._maintenance: threading.Thread | None = None
        if not readonly and (self.retention_ns or self.raw_retention_ns):
            self._maintenance = threading.Thread(
                target=self._maintain,
                args=(maintenance_interval,),
                name="rimp-db-maintenance",
                daemon=True,
            )
            self._maintenance.start()
        _lifecycle.track(
            self, _lifecycle.Phase.STORAGE, after_fork=DatabaseStorage._after_fork_in_child
        )

    def __repr__(self) -> str:
        return self._label

    def _after_fork_in_child(self) -> None:
        # A SQLite connection must not cross a fork, and the writer lock is the
        # parent's: the child gets its own connection and must claim the lock
        # anew (which fails while the parent writes).
        self._lock = threading.RLock()
        self._lock_fd = None  # left open: closing it could not release the parent's lock
        self._maintenance = None
        if not self._closed:
            self._conn = self._open()

    # --- opening -------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            if self.readonly:
                if not self.path.exists():
                    raise StorageError(f"{self._label}: no such database file")
                uri = f"file:{urllib.parse.quote(str(self.path.resolve()))}?mode=ro"
                conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.isolation_level = None
            conn.execute("PRAGMA busy_timeout = 5000")
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"{self._label}: not a readable SQLite database: {exc}") from exc
        except OSError as exc:
            raise StorageError(f"{self._label}: cannot open: {exc}") from exc
        if tables and "rimp_meta" not in tables:
            conn.close()
            raise StorageError(
                f"{self._label}: is a SQLite database but not RIMP's "
                f"(tables: {', '.join(sorted(tables))})"
            )
        try:
            if not self.readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA temp_store = MEMORY")
            # Registered once: SQLite refuses to (re)define a function while another
            # statement is active on the connection.
            conn.create_function("rimp_casefold", 1, _casefold, deterministic=True)
            conn.execute("PRAGMA cache_size = -65536")
            # No integrity scan here: it reads the whole file. Corruption met later
            # surfaces as a StorageError from the operation that meets it.
            self._migrate(conn, fresh=not tables)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StorageError(f"{self._label}: database is corrupt: {exc}") from exc
        return conn

    def _migrate(self, conn: sqlite3.Connection, *, fresh: bool) -> None:
        if fresh:
            if self.readonly:
                raise StorageError(f"{self._label}: empty database opened read-only")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("CREATE TABLE rimp_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.execute("INSERT INTO rimp_meta VALUES ('schema_version', '0')")
            conn.execute("COMMIT")
        version = int(
            conn.execute("SELECT value FROM rimp_meta WHERE key = 'schema_version'").fetchone()[0]
        )
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"{self._label}: schema version {version} is newer than this RIMP "
                f"understands ({SCHEMA_VERSION}); upgrade RIMP"
            )
        if version == SCHEMA_VERSION or self.readonly:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[step].split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(
                "UPDATE rimp_meta SET value = ? WHERE key = 'schema_version'",
                (str(SCHEMA_VERSION),),
            )
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    def claim_writer(self) -> None:
        """Take the single-writer lock now rather than at the first write.

        A server calls this at start, so a second one on the same file fails
        there, with the first one's pid, instead of reporting healthy.

        Raises:
            StorageError: another process (or storage) writes this database, or
                it was opened read-only.
        """
        with self._lock:
            if self._closed:
                raise StorageError(f"{self._label}: closed")
            self._claim_writer()

    def _claim_writer(self) -> None:
        """Take the single-writer lock (a ``flock`` beside the database) on first write."""
        if self._lock_fd is not None:
            return
        if self.readonly:
            raise StorageError(f"{self._label}: opened read-only")
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            who = (
                "another DatabaseStorage in this process"
                if holder == str(os.getpid())
                else f"another process (pid {holder})"
            )
            raise StorageError(
                f"{self._label}: {who} is writing to this database; "
                "one writer at a time, others open it with readonly=True"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd
        # Events are clustered by (time_ns, seq); seq orders equal times by arrival.
        self._event_seq = self._conn.execute(
            "SELECT max((SELECT coalesce(max(seq), 0) FROM events), "
            "(SELECT coalesce(max(last_seq), 0) FROM event_blocks))"
        ).fetchone()[0]
        self._small_events = dict(
            self._conn.execute("SELECT source, count(*) FROM events GROUP BY source").fetchall()
        )

    def _load_series(self) -> None:
        rows = self._conn.execute(
            "SELECT id, name, unit, tags FROM series WHERE id > ? ORDER BY id",
            (self._series.max_id,),
        ).fetchall()
        for sid, name, unit, tags_json in rows:
            self._series.add(sid, name, unit, tags_json)
        if not self.readonly and not self._small:
            for sid, points in self._conn.execute(
                "SELECT series_id, sum(n) FROM chunks WHERE n < ? GROUP BY series_id",
                (SMALL_CHUNK,),
            ):
                self._small[sid] = points

    # --- writing -------------------------------------------------------------

    def _series_id(self, m: Metric) -> int:
        series = self._series
        fast_key = (m.name, _encode(m.tags))
        sid = series.by_fast_key.get(fast_key)
        if sid is not None:
            return sid
        tags_json = _canonical_tags(m.tags)
        sid = series.by_canonical.get((m.name, tags_json))
        if sid is None:
            cur = self._conn.execute(
                "INSERT INTO series (name, unit, tags) VALUES (?, ?, ?)",
                (m.name, m.unit, tags_json),
            )
            sid = int(cur.lastrowid or 0)
            series.add(sid, m.name, m.unit, tags_json)
        series.by_fast_key[fast_key] = sid
        return sid

    @contextlib.contextmanager
    def _immediate(
        self, failure: str, *, counted: bool = True, undo: Callable[[], None] | None = None
    ) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back (then ``undo``)
        when it raises. A SQLite error becomes StorageError ``"<label>: <failure>: ..."``,
        counted in ``write_errors`` unless the caller counts it itself."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                if undo is not None:
                    undo()
                raise
        except sqlite3.Error as exc:
            if counted:
                self._write_errors += 1
            raise StorageError(f"{self._label}: {failure}: {exc}") from exc

    def store(self, data: TelemetryData) -> None:
        """Write a batch in one transaction; durable on return (WAL, ``synchronous=NORMAL``).

        Raises:
            StorageError: the write failed (disk full, I/O error, another writer);
                nothing of the batch was stored.
        """
        if not data and not data.receipts:
            return
        with self._lock:
            if self._closed:
                raise StorageError(f"{self._label}: closed")
            self._claim_writer()
            self._pending_small = {}
            with self._immediate("write failed", undo=self._forget_uncommitted_series):
                merged = self._write(data)
            self._event_seq = self._next_event_seq
            for sid, points in merged.items():
                self._small[sid] = self._small.get(sid, 0) + points
            for source, n in self._pending_small.items():
                self._small_events[source] = self._small_events.get(source, 0) + n
            # The batch is committed: a failed merge must not make store() fail (the
            # caller would store it again). Small chunks and event rows stay readable;
            # merging is retried on a later store().
            try:
                self._merge_small_chunks()
                self._merge_small_events()
            except StorageError as exc:
                self._merge_errors += 1
                _log.warning("%s", exc)

    @_reads
    def receipt(self, key: str) -> bytes | None:
        """The answer stored with idempotency ``key`` in the last 24 hours, if any."""
        with self._lock:
            if self._closed:
                raise StorageError(f"{self._label}: closed")
            row = self._conn.execute(
                "SELECT answer, time_ns FROM receipts WHERE key = ?", (key,)
            ).fetchone()
        if row is None or row[1] < time.time_ns() - RECEIPT_TTL_NS:
            return None
        return bytes(row[0])

    def _forget_uncommitted_series(self) -> None:
        # Series inserted by the rolled-back transaction must not stay in the cache.
        self._series = _Series()
        self._load_series()

    def _write(self, data: TelemetryData) -> dict[int, int]:
        conn = self._conn
        small: dict[int, int] = {}
        if data.receipts:
            now = time.time_ns()
            conn.executemany(
                "INSERT OR IGNORE INTO receipts (key, time_ns, answer) VALUES (?, ?, ?)",
                [(key, now, answer) for key, answer in data.receipts.items()],
            )
            self._stores_with_receipts += 1
            if self._stores_with_receipts % _PRUNE_EVERY == 1:
                conn.execute("DELETE FROM receipts WHERE time_ns < ?", (now - RECEIPT_TTL_NS,))
        if data.metrics:
            by_series: dict[int, list[Metric]] = {}
            series_id = self._series_id
            for m in data.metrics:
                sid = series_id(m)
                points = by_series.get(sid)
                if points is None:
                    by_series[sid] = [m]
                else:
                    points.append(m)
            chunk_rows = []
            rollups: list[tuple[int, int, int, float, float, float, int, float]] = []
            for sid, points in by_series.items():
                points.sort(key=_time_of)
                times = [p.time_ns for p in points]
                values = [p.value for p in points]
                is_small = len(points) < SMALL_CHUNK
                chunk_rows.append(
                    (
                        sid,
                        times[0],
                        times[-1],
                        len(points),
                        _chunks.encode_times(times, compress=not is_small),
                        _chunks.encode_values(values, compress=not is_small),
                        _chunks.encode_ids([p.id for p in points], compress=not is_small),
                    )
                )
                if is_small:
                    small[sid] = small.get(sid, 0) + len(points)
                rollups.extend(_minute_rollups(sid, times, values))
            conn.executemany(
                "INSERT INTO chunks (series_id, start_ns, end_ns, n, times, vals, ids) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                chunk_rows,
            )
            conn.executemany(_ROLLUP_UPSERT, rollups)
        if data.events:
            self._write_events(data.events)
        return small

    def _write_events(self, events: Sequence[Event]) -> None:
        """A source with many events in the batch gets a block; the others rows, merged
        into blocks later. Per-minute counts, by source and without, either way.

        Hot for event ingest: the events are read once, column by column (list
        comprehensions: ~20 ns an event each, 4x cheaper than transposing ``attrgetter``
        tuples), a source's part is picked by ``itemgetter`` and counted by ``Counter``,
        both in C; the only Python loop over the events groups them by source."""
        conn = self._conn
        first = self._event_seq + 1
        sources = [e.source for e in events]
        times = [e.time_ns for e in events]
        values = [_KIND_VALUE[e.event_type] for e in events]
        ids = [e.id for e in events]
        messages = [e.message for e in events]
        metadata = [e.metadata for e in events]
        low, high = min(times), max(times)
        minute = low - low % MINUTE_NS
        one_minute = high - high % MINUTE_NS == minute  # as most batches are
        counts: Counter[tuple[int, str, str]] = (
            Counter() if one_minute else _event_counts(times, sources, values)
        )
        rows: list[tuple[Any, ...]] = []
        blocks: list[_eventblocks.BlockParts] = []
        for source, positions in _positions_by_source(sources).items():
            if len(positions) == len(events):  # one source: the columns are its part
                pick: Callable[[Sequence[Any]], Sequence[Any]] = _whole
            elif len(positions) == 1:
                pick = _one(positions[0])
            else:
                pick = itemgetter(*positions)
            part_values = pick(values)
            if one_minute:
                for kind, n in Counter(part_values).items():
                    counts[minute, source, kind] = n
            seqs = [first + i for i in positions]
            if len(positions) >= self.event_block_min:
                blocks += _block_parts(
                    source,
                    times=pick(times),
                    seqs=seqs,
                    kinds=bytes(map(_eventblocks.KIND_CODES.__getitem__, part_values)),
                    ids=pick(ids),
                    messages=pick(messages),
                    metadata=pick(metadata),
                )
                continue
            part_messages = pick(messages)
            rows += zip(
                pick(times),
                seqs,
                pick(ids),
                repeat(source),
                part_values,
                part_messages,
                map(_encode, pick(metadata)),
                map(str.isascii, part_messages),
            )
            self._pending_small[source] = self._pending_small.get(source, 0) + len(positions)
        if rows:
            conn.executemany(
                "INSERT INTO events (time_ns, seq, id, source, event_type, message, metadata, "
                "ascii) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        if blocks:
            conn.executemany(_BLOCK_INSERT, _eventblocks.encode_blocks(blocks))
        self._next_event_seq = first + len(events) - 1
        _upsert_counts(conn, counts)

    def _merge_small_events(self) -> None:
        """Move a source's event rows into blocks once enough accumulated (at most
        ``16 * MAX_BLOCK`` rows per source per call, so one call stays short)."""
        due = [src for src, n in self._small_events.items() if n >= EVENT_MERGE_AT]
        if not due:
            return
        # On failure the events are safe in their rows; merging is retried next time.
        with self._immediate("merging events failed", counted=False) as conn:
            for source in due:
                rows = conn.execute(
                    "SELECT time_ns, seq, id, event_type, message, metadata FROM events "
                    "WHERE source = ? ORDER BY seq LIMIT ?",
                    (source, 16 * MAX_BLOCK),
                ).fetchall()
                if rows:
                    conn.executemany(_BLOCK_INSERT, _blocks_of_rows(source, rows))
                    conn.execute(
                        "DELETE FROM events WHERE source = ? AND seq <= ?",
                        (source, rows[-1][1]),
                    )
        for source in due:
            left = conn.execute(
                "SELECT count(*) FROM events WHERE source = ?", (source,)
            ).fetchone()[0]
            self._small_events[source] = left

    def _merge_small_chunks(self) -> None:
        """Rewrite a series' small chunks as large ones once enough points accumulated."""
        due = [sid for sid, points in self._small.items() if points >= MERGE_AT]
        if not due:
            return
        # On failure the points are safe in their small chunks; merging is retried later.
        with self._immediate("merging chunks failed", counted=False) as conn:
            for sid in due:
                rows = conn.execute(
                    "SELECT id, times, vals, ids FROM chunks WHERE series_id = ? AND n < ? "
                    "ORDER BY id",
                    (sid, SMALL_CHUNK),
                ).fetchall()
                points: list[tuple[int, float, str]] = []
                for _, t_blob, v_blob, i_blob in rows:
                    points.extend(
                        zip(
                            _chunks.decode_times(t_blob),
                            _chunks.decode_values(v_blob),
                            _chunks.decode_ids(i_blob),
                            strict=True,
                        )
                    )
                points.sort(key=_first)  # stable: equal times keep their stored order
                conn.executemany("DELETE FROM chunks WHERE id = ?", [(r[0],) for r in rows])
                conn.executemany(
                    "INSERT INTO chunks (series_id, start_ns, end_ns, n, times, vals, ids) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        _chunk_row(sid, points[i : i + MAX_CHUNK])
                        for i in range(0, len(points), MAX_CHUNK)
                    ],
                )
        for sid in due:
            self._small[sid] = 0

    # --- reading -------------------------------------------------------------

    def _refresh(self) -> None:
        latest = self._conn.execute("SELECT max(id) FROM series").fetchone()[0] or 0
        if latest > self._series.max_id:
            self._load_series()

    def _matching_series(
        self, name: str, tags: dict[str, str] | None
    ) -> list[tuple[int, dict[str, str]]]:
        self._refresh()
        return [
            (sid, stags)
            for sid, (sname, _, stags) in self._series.info.items()
            if sname == name and _query.tags_match(stags, tags)
        ]

    def _chunk_rows(self, sid: int, lo: int | None, hi: int | None, columns: str) -> list[Any]:
        sql = f"SELECT {columns} FROM chunks WHERE series_id = ?"
        args: list[Any] = [sid]
        if hi is not None:
            sql += " AND start_ns < ?"
            args.append(hi)
        if lo is not None:
            sql += " AND end_ns >= ?"
            args.append(lo)
        sql += " ORDER BY id"
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _columns_of(
        self, sid: int, lo: int | None, hi: int | None
    ) -> Iterator[tuple[array.array[int], array.array[float]]]:
        for t_blob, v_blob in self._chunk_rows(sid, lo, hi, "times, vals"):
            yield _chunks.decode_times(t_blob), _chunks.decode_values(v_blob)

    def _points_of(
        self, sid: int, lo: int | None, hi: int | None
    ) -> Iterator[tuple[int, float, str]]:
        for t_blob, v_blob, i_blob in self._chunk_rows(sid, lo, hi, "times, vals, ids"):
            for t, v, i in zip(
                _chunks.decode_times(t_blob),
                _chunks.decode_values(v_blob),
                _chunks.decode_ids(i_blob),
                strict=True,
            ):
                if (lo is None or t >= lo) and (hi is None or t < hi):
                    yield t, v, i

    def _metrics(
        self, name: str, tags: dict[str, str] | None, lo: int | None, hi: int | None
    ) -> list[Metric]:
        out: list[Metric] = []
        for sid, stags in self._matching_series(name, tags):
            unit = self._series.info[sid][1]
            out.extend(
                Metric(name, v, unit, stags, t, i) for t, v, i in self._points_of(sid, lo, hi)
            )
        out.sort(key=_time_of)
        return out

    @_reads
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
        found = self._metrics(name, _query.check_tags(tags), lo, hi)
        return found if limit is None else found[-limit:]

    @_reads
    def series_points(
        self, name: str, tags: dict[str, str], *, since: TimeArg = None, until: TimeArg = None
    ) -> tuple[Sequence[int], Sequence[float]]:
        """See :meth:`Storage.series_points`. Concatenates decoded chunk columns as
        ``array.array`` (``q`` and ``d``); no record is built, which makes a day of
        100k points ~10x cheaper than :meth:`query_metrics`."""
        lo, hi = _query.window(since, until)
        self._refresh()
        sid = self._series.by_canonical.get((name, _canonical_tags(tags)))
        times = array.array("q")
        values = array.array("d")
        if sid is None:
            return times, values
        ordered = True
        for chunk_times, chunk_values in self._columns_of(sid, lo, hi):
            if times and chunk_times and chunk_times[0] < times[-1]:
                ordered = False  # a late chunk not merged yet: sort below
            times.extend(chunk_times)
            values.extend(chunk_values)
        if not ordered:
            pairs = sorted(zip(times, values, strict=True), key=itemgetter(0))
            times = array.array("q", [t for t, _ in pairs])
            values = array.array("d", [v for _, v in pairs])
        if times and ((lo is not None and times[0] < lo) or (hi is not None and times[-1] >= hi)):
            start = bisect_left(times, lo) if lo is not None else 0
            end = bisect_left(times, hi) if hi is not None else len(times)
            times, values = times[start:end], values[start:end]
        return times, values

    @_reads
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
        """See :meth:`Storage.aggregate`. Whole-minute buckets over minute-aligned
        windows are answered from the minute rollups; the rest from the points."""
        _query.check_agg(agg)
        width = _query.bucket_width_ns(bucket)
        lo, hi = _query.window(since, until)
        keys = _query.check_group_by(group_by)
        tags = _query.check_tags(tags)
        if (
            agg in _ROLLUP_AGGS
            and width % MINUTE_NS == 0
            and (lo is None or lo % MINUTE_NS == 0)
            and (hi is None or hi % MINUTE_NS == 0)
            and (lo is None or lo >= 0)
        ):
            return self._aggregate_rollups(
                name, agg=agg, width=width, lo=lo, hi=hi, tags=tags, keys=keys
            )
        return self._aggregate_points(
            name, agg=agg, width=width, lo=lo, hi=hi, tags=tags, keys=keys
        )

    def _aggregate_points(
        self,
        name: str,
        *,
        agg: str,
        width: int,
        lo: int | None,
        hi: int | None,
        tags: dict[str, str] | None,
        keys: tuple[str, ...],
    ) -> list[Bucket]:
        columns = (
            (tuple(stags.get(k, "") for k in keys), times, values)
            for sid, stags in self._matching_series(name, tags)
            for times, values in self._columns_of(sid, lo, hi)
        )
        return _query.aggregate_columns(columns, agg=agg, width=width, lo=lo, hi=hi, keys=keys)

    def _aggregate_rollups(
        self,
        name: str,
        *,
        agg: str,
        width: int,
        lo: int | None,
        hi: int | None,
        tags: dict[str, str] | None,
        keys: tuple[str, ...],
    ) -> list[Bucket]:
        matching = self._matching_series(name, tags)
        if not matching:
            return []
        groups: dict[tuple[str, ...], int] = {}
        cases: list[Any] = []
        for sid, stags in matching:
            group = tuple(stags.get(k, "") for k in keys)
            cases += [sid, groups.setdefault(group, len(groups))]
        ids = [sid for sid, _ in matching]
        # The IN list lets SQLite walk the (series_id, bucket_ns) key; the CASE
        # folds the series of one group together.
        grp = "CASE series_id " + "WHEN ? THEN ? " * len(matching) + "END"
        where = f"series_id IN ({','.join('?' * len(ids))}) AND bucket_ns >= ?"
        args: list[Any] = [*ids, 0 if lo is None else lo]
        if hi is not None:
            where += " AND bucket_ns < ?"
            args.append(hi)
        sql = (
            f"SELECT {grp} AS grp, (bucket_ns / ?) * ? AS b, sum(count), {_ROLLUP_VALUE[agg]} "
            f"FROM rollup_1m WHERE {where} GROUP BY grp, b"
        )
        extra = [width / 1_000_000_000] if agg == "rate" else []
        with self._lock:
            rows = self._conn.execute(sql, [*cases, width, width, *extra, *args]).fetchall()
        order = list(groups)
        rows.sort(key=lambda r: (order[r[0]], r[1]))
        labels = [dict(zip(keys, group, strict=True)) for group in order]
        return [Bucket(r[1], dict(labels[r[0]]), float(r[3]), r[2]) for r in rows]

    @_reads
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
        lo, hi = _query.window(since, until)
        kind = _query.event_type_value(event_type)
        limit = _query.check_limit(limit)
        where, args = _event_filters(source, kind, lo, hi)
        if search:
            # Exact semantics are "casefold(search) in casefold(message)" (as the
            # memory backend does). SQLite's LIKE folds ASCII only, so it serves as
            # a C-speed prefilter for all-ASCII messages (flagged at insert);
            # messages with any other character go straight to the exact check. FTS5 (trigram) was
            # measured: 7x slower event ingest and 5x the size; it did not pay.
            needle = search.casefold()
            escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append(
                "(message LIKE ? ESCAPE '\\' OR NOT ascii) AND instr(rimp_casefold(message), ?) > 0"
            )
            args += [f"%{escaped}%", needle]
        sql = "SELECT id, time_ns, seq, source, event_type, message, metadata FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY time_ns DESC, seq DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._snapshot() as conn:
            rows = conn.execute(sql, args).fetchall()
            candidates = self._block_candidates(source, kind, lo, hi)
        found: list[tuple[int, int, Any]] = [(t, q, row) for row in rows for t, q in [row[1:3]]]
        found += self._block_events(
            candidates, kind, lo, hi, needle=search.casefold() if search else None, limit=limit
        )
        found.sort(key=_newest_key, reverse=True)
        return list(_events_of(found[:limit]))

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock, in one read transaction: the event rows and the
        list of blocks read inside come from the same state, so an event moved from its
        row into a block meanwhile (by this or another process) is seen once."""
        with self._lock:
            conn = self._conn
            if conn.in_transaction:
                yield conn
                return
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    def _block_candidates(
        self, source: str | None, kind: str | None, lo: int | None, hi: int | None
    ) -> list[tuple[int, int]]:
        """(id, end_ns) of the blocks that may hold events of ``source`` and ``kind`` in
        ``[lo, hi)``, newest end first, from the indexes alone. Call inside
        :meth:`_snapshot`, with the query of the rows."""
        where = ["1"]
        args: list[Any] = []
        if source is not None:
            where.append("source = ?")
            args.append(source)
        if kind is not None:
            where.append("types & ?")
            args.append(_eventblocks.type_mask([kind]))
        if lo is not None:
            where.append("end_ns >= ?")
            args.append(lo)
        if hi is not None:
            where.append("start_ns < ?")
            args.append(hi)
        sql = (
            f"SELECT id, end_ns FROM event_blocks WHERE {' AND '.join(where)} "
            "ORDER BY end_ns DESC, id DESC"
        )
        return self._conn.execute(sql, args).fetchall()

    def _blocks(self, candidates: list[tuple[int, int]]) -> Iterator[_eventblocks.DecodedBlock]:
        """The candidate blocks, their columns read a page at a time (the lock is held per
        page, never across the caller's decoding). Blocks never change once written, so
        reading them later is consistent; one deleted meanwhile (retention) is skipped."""
        for first in range(0, len(candidates), 32):
            page = candidates[first : first + 32]
            marks = ",".join("?" * len(page))
            with self._lock:
                rows = self._conn.execute(
                    f"SELECT id, {_BLOCK_COLUMNS} FROM event_blocks WHERE id IN ({marks})",
                    [bid for bid, _ in page],
                ).fetchall()
            by_id = {row[0]: row[1:] for row in rows}
            for bid, end_ns in page:
                row = by_id.get(bid)
                if row is not None:
                    yield _eventblocks.decode_block(row, end_ns)

    def _may_hold(self, candidates: list[tuple[int, int]], word: bytes) -> list[tuple[int, int]]:
        """The candidate blocks a search for ``word`` (ASCII, lower-case) has to read: an
        all-ASCII block whose trigram set lacks one of the word's trigrams cannot hold it.
        Only the small ``types`` and ``grams`` columns are read here, so a block skipped
        costs no read of its column blobs."""
        kept = []
        for first in range(0, len(candidates), 256):
            page = candidates[first : first + 256]
            marks = ",".join("?" * len(page))
            with self._lock:
                sets = {
                    bid: (types, grams)
                    for bid, types, grams in self._conn.execute(
                        f"SELECT id, types, grams FROM event_blocks WHERE id IN ({marks})",
                        [bid for bid, _ in page],
                    )
                }
            for bid, end_ns in page:
                found = sets.get(bid)
                if found is None:  # deleted meanwhile (retention)
                    continue
                types, grams = found
                if types & _eventblocks.ASCII_BIT and not _eventblocks.may_hold(grams, word):
                    continue
                kept.append((bid, end_ns))
        return kept

    def _block_events(
        self,
        candidates: list[tuple[int, int]],
        kind: str | None,
        lo: int | None,
        hi: int | None,
        *,
        needle: str | None,
        limit: int | None,
    ) -> list[tuple[int, int, Any]]:
        """(time, seq, (block, position)) of the newest ``limit`` matching events in
        blocks. Blocks come newest end first, so once ``limit`` events are found, a block
        ending before the oldest of them cannot hold a better one: the scan stops."""
        codes = None if kind is None else frozenset({_eventblocks.KIND_CODES[kind]})
        if needle and needle.isascii() and len(needle) >= 3:
            candidates = self._may_hold(candidates, needle.encode())
        best: list[tuple[int, int, Any]] = []  # a min-heap of the newest found so far
        for block in self._blocks(candidates):
            if limit is not None and len(best) >= limit and block.end_ns < best[0][0]:
                break
            times, seqs = block.times, block.seqs
            for i in block.matching(codes=codes, lo=lo, hi=hi, needle=needle):
                item = (times[i], seqs[i], (block, i))
                if limit is None or len(best) < limit:
                    heapq.heappush(best, item)
                elif item[:2] > best[0][:2]:
                    heapq.heapreplace(best, item)
        return best

    @_reads
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
        """See :meth:`Storage.count_events`. Whole-minute buckets over minute-aligned
        windows read the per-minute counts."""
        width = _query.bucket_width_ns(bucket)
        lo, hi = _query.window(since, until)
        kind = _query.event_type_value(event_type)
        keys = _query.check_group_by(group_by, allowed=_query.EVENT_GROUP_KEYS)
        # The counts are kept per minute and type, and per minute and source: a day is
        # 1,440 rows per type (or source), however many sources (or types) there are.
        table = _query.counts_table(width, lo, hi, source=source, kind=kind, keys=keys)
        if table is not None:
            by_type = table == "event_type_counts"
            where, args = _event_filters(source, kind, lo, hi, time_col="bucket_ns")
            group_cols = ", ".join(keys) or "''"  # a constant when nothing is grouped
            start_args: list[int] = []
            if by_type and width == MINUTE_NS and keys == ("event_type",):
                # Already one row per minute and type: nothing to add up.
                sql = f"SELECT event_type, bucket_ns, count FROM {table}"
            else:
                sql = f"SELECT {group_cols}, (bucket_ns / ?) * ? AS b, sum(count) FROM {table}"
                start_args = [width, width]
            if where:
                sql += " WHERE " + " AND ".join(where)
            if start_args:
                sql += f" GROUP BY {group_cols}, b"
            with self._lock:
                found = self._conn.execute(sql, [*start_args, *args]).fetchall()
            rows = sorted((tuple(r[:-2]) if keys else (), r[-2], r[-1]) for r in found)
        else:
            cells = self._count_raw(keys, width, source=source, kind=kind, lo=lo, hi=hi)
            rows = sorted((group, b, n) for (group, b), n in cells.items())
        labels: dict[tuple[str, ...], dict[str, str]] = {}
        out = []
        for group, b, n in rows:
            tags = labels.get(group)
            if tags is None:
                tags = labels[group] = dict(zip(keys, group, strict=True))
            out.append(Bucket(b, dict(tags), float(n), int(n)))
        return out

    def _count_raw(
        self,
        keys: tuple[str, ...],
        width: int,
        *,
        source: str | None,
        kind: str | None,
        lo: int | None,
        hi: int | None,
    ) -> dict[tuple[tuple[str, ...], int], int]:
        """Events per (group, bucket start) counted from the rows and the blocks."""
        where, args = _event_filters(source, kind, lo, hi)
        cols = "".join(f", {k}" for k in keys)
        # Floor division also before 1970 (SQLite's % keeps the dividend's sign).
        sql = f"SELECT time_ns - (((time_ns % ?) + ?) % ?) AS b{cols}, count(*) FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" GROUP BY b{cols}"
        with self._snapshot() as conn:
            rows = conn.execute(sql, [width, width, width, *args]).fetchall()
            candidates = self._block_candidates(source, kind, lo, hi)
        cells = {(tuple(r[1:-1]), r[0]): int(r[-1]) for r in rows}
        codes = None if kind is None else frozenset({_eventblocks.KIND_CODES[kind]})
        names = _eventblocks.KIND_VALUES
        for block in self._blocks(candidates):
            times, kinds = block.times, block.kinds
            for i in block.matching(codes=codes, lo=lo, hi=hi, needle=None):
                t = times[i]
                group = tuple(block.source if k == "source" else names[kinds[i]] for k in keys)
                key = (group, t - t % width)
                cells[key] = cells.get(key, 0) + 1
        return cells

    @_reads
    def series(self, name: str | None = None) -> list[SeriesInfo]:
        """See :meth:`Storage.series`."""
        self._refresh()
        sql = (
            "SELECT r.series_id, r.last_ns, r.last_value FROM rollup_1m AS r "
            "JOIN (SELECT series_id, max(bucket_ns) AS b FROM rollup_1m GROUP BY series_id) AS m "
            "ON m.series_id = r.series_id AND m.b = r.bucket_ns"
        )
        with self._lock:
            latest = {sid: (t, v) for sid, t, v in self._conn.execute(sql)}
        out = []
        for sid, (sname, unit, tags) in self._series.info.items():
            if (name is None or sname == name) and sid in latest:
                t, v = latest[sid]
                out.append(SeriesInfo(sname, unit, dict(tags), v, t))
        out.sort(key=lambda s: (s.name, sorted(s.tags.items())))
        return out

    # --- retention -----------------------------------------------------------

    def delete_before(self, t: datetime | int) -> int:
        """Remove records older than ``t``; return how many (events and metric points)."""
        cutoff = to_ns(t, "t")
        return self._delete(cutoff, keep_rollups=False)

    def _delete(self, cutoff: int, *, keep_rollups: bool) -> int:
        with self._lock:
            self._claim_writer()
            with self._immediate("delete failed") as conn:
                removed = self._delete_points(cutoff)
                if not keep_rollups:
                    removed += conn.execute(
                        "DELETE FROM events WHERE time_ns < ?", (cutoff,)
                    ).rowcount
                    removed += self._delete_event_blocks(cutoff)
                    self._trim_rollups(cutoff)
            self._small = {}
            self._load_series()
            self._small_events = dict(
                conn.execute("SELECT source, count(*) FROM events GROUP BY source").fetchall()
            )
        return removed

    def _delete_event_blocks(self, cutoff: int) -> int:
        """Drop the blocks wholly before ``cutoff``; rewrite the ones it cuts."""
        conn = self._conn
        removed = int(
            conn.execute(
                "SELECT coalesce(sum(n), 0) FROM event_blocks WHERE end_ns < ?", (cutoff,)
            ).fetchone()[0]
        )
        conn.execute("DELETE FROM event_blocks WHERE end_ns < ?", (cutoff,))
        cut = conn.execute(
            f"SELECT id, {_BLOCK_COLUMNS} FROM event_blocks WHERE start_ns < ?", (cutoff,)
        ).fetchall()
        for row in cut:
            block = _eventblocks.decode_block(row[1:])
            kept = [i for i, t in enumerate(block.times) if t >= cutoff]
            removed += len(block.times) - len(kept)
            conn.execute("DELETE FROM event_blocks WHERE id = ?", (row[0],))
            if kept:
                conn.execute(_BLOCK_INSERT, block.subset(kept))
        return removed

    def _delete_points(self, cutoff: int) -> int:
        conn = self._conn
        removed = conn.execute(
            "SELECT coalesce(sum(n), 0) FROM chunks WHERE end_ns < ?", (cutoff,)
        ).fetchone()[0]
        conn.execute("DELETE FROM chunks WHERE end_ns < ?", (cutoff,))
        straddling = conn.execute(
            "SELECT id, series_id, times, vals, ids FROM chunks WHERE start_ns < ?", (cutoff,)
        ).fetchall()
        for cid, sid, t_blob, v_blob, i_blob in straddling:
            points = list(
                zip(
                    _chunks.decode_times(t_blob),
                    _chunks.decode_values(v_blob),
                    _chunks.decode_ids(i_blob),
                    strict=True,
                )
            )
            kept = [p for p in points if p[0] >= cutoff]
            removed += len(points) - len(kept)
            conn.execute("DELETE FROM chunks WHERE id = ?", (cid,))
            if kept:
                conn.execute(
                    "INSERT INTO chunks (series_id, start_ns, end_ns, n, times, vals, ids) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    _chunk_row(sid, kept),
                )
        return int(removed)

    def _trim_rollups(self, cutoff: int) -> None:
        conn = self._conn
        edge = cutoff - cutoff % MINUTE_NS
        conn.execute("DELETE FROM rollup_1m WHERE bucket_ns < ?", (edge,))
        conn.execute("DELETE FROM event_source_counts WHERE bucket_ns < ?", (edge,))
        conn.execute("DELETE FROM event_type_counts WHERE bucket_ns < ?", (edge,))
        if edge == cutoff:
            return
        # The minute holding the cutoff lost some of its records: recompute it.
        affected = [
            sid
            for (sid,) in conn.execute(
                "SELECT series_id FROM rollup_1m WHERE bucket_ns = ?", (edge,)
            )
        ]
        conn.execute("DELETE FROM rollup_1m WHERE bucket_ns = ?", (edge,))
        for sid in affected:
            points = sorted((t, v) for t, v, _ in self._points_of(sid, edge, edge + MINUTE_NS))
            if points:
                conn.executemany(
                    _ROLLUP_UPSERT,
                    _minute_rollups(sid, [p[0] for p in points], [p[1] for p in points]),
                )
        conn.execute("DELETE FROM event_source_counts WHERE bucket_ns = ?", (edge,))
        conn.execute("DELETE FROM event_type_counts WHERE bucket_ns = ?", (edge,))
        left = self._count_raw(
            ("source", "event_type"),
            MINUTE_NS,
            source=None,
            kind=None,
            lo=edge,
            hi=edge + MINUTE_NS,
        )
        _upsert_counts(conn, {(b, src, kind): n for ((src, kind), b), n in left.items()})

    def apply_retention(self, now_ns: int | None = None) -> int:
        """Apply ``retention`` and ``raw_retention`` now; return the records removed."""
        now = time.time_ns() if now_ns is None else now_ns
        removed = 0
        if self.retention_ns is not None:
            removed += self._delete(now - self.retention_ns, keep_rollups=False)
        if self.raw_retention_ns is not None:
            removed += self._delete(now - self.raw_retention_ns, keep_rollups=True)
        return removed

    def _maintain(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.apply_retention()
            except StorageError:
                continue  # counted in write_errors; tried again next pass

    # --- housekeeping --------------------------------------------------------

    @_reads
    def stats(self) -> dict[str, Any]:
        """``bytes`` (database + WAL), ``series``, ``chunks``, ``points``, ``events``,
        ``event_blocks``, errors."""
        with self._lock:
            chunks, points = self._conn.execute(
                "SELECT count(*), coalesce(sum(n), 0) FROM chunks"
            ).fetchone()
            events, blocks = self._conn.execute(
                "SELECT (SELECT count(*) FROM events) + "
                "(SELECT coalesce(sum(n), 0) FROM event_blocks), "
                "(SELECT count(*) FROM event_blocks)"
            ).fetchone()
            series = self._conn.execute("SELECT count(*) FROM series").fetchone()[0]
        size = sum(
            p.stat().st_size
            for p in (self.path, self.path.with_name(self.path.name + "-wal"))
            if p.exists()
        )
        return {
            "bytes": size,
            "series": series,
            "chunks": chunks,
            "points": points,
            "events": events,
            "event_blocks": blocks,
            "write_errors": self._write_errors,
            "merge_errors": self._merge_errors,
        }

    @_reads
    def time_range(self) -> tuple[int, int] | None:
        """Oldest and newest record times in ns, or None when empty."""
        with self._lock:
            lo1, hi1 = self._conn.execute(
                "SELECT min(start_ns), max(end_ns) FROM chunks"
            ).fetchone()
            lo2, hi2 = self._conn.execute(
                "SELECT min(time_ns), max(time_ns) FROM events"
            ).fetchone()
            lo3, hi3 = self._conn.execute(
                "SELECT min(start_ns), max(end_ns) FROM event_blocks"
            ).fetchone()
        lows = [x for x in (lo1, lo2, lo3) if x is not None]
        highs = [x for x in (hi1, hi2, hi3) if x is not None]
        return (min(lows), max(highs)) if lows else None

    def vacuum(self) -> None:
        """Merge all small chunks, checkpoint the WAL and rebuild the file compactly."""
        with self._lock:
            self._claim_writer()
            for sid in list(self._small):
                self._small[sid] = MERGE_AT
            self._merge_small_chunks()
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.execute("VACUUM")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # VACUUM went through the WAL

    def all_metrics(self) -> Iterator[Metric]:
        """Every stored point, series by series, oldest first within a series."""
        self._refresh()
        for sid, (name, unit, tags) in sorted(self._series.info.items()):
            for t, v, i in sorted(self._points_of(sid, None, None), key=_first):
                yield Metric(name, v, unit, tags, t, i)

    def all_events(self, window: int = 3600 * 1_000_000_000) -> Iterator[Event]:
        """Every stored event, oldest first (read an hour at a time: rows and blocks are
        merged in time and stored order within each window)."""
        span = self.time_range()
        if span is None:
            return
        start = span[0] - span[0] % window
        while start <= span[1]:
            hi = start + window
            found: list[tuple[int, int, Any]] = []
            with self._snapshot() as conn:
                rows = conn.execute(
                    "SELECT id, time_ns, seq, source, event_type, message, metadata FROM events "
                    "WHERE time_ns >= ? AND time_ns < ?",
                    (start, hi),
                ).fetchall()
                candidates = self._block_candidates(None, None, start, hi)
            found += [(row[1], row[2], row) for row in rows]
            found += self._block_events(candidates, None, start, hi, needle=None, limit=None)
            found.sort(key=_newest_key)
            yield from _events_of(found)
            start = hi

    def close(self) -> None:
        """Stop maintenance, checkpoint and close. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            with contextlib.suppress(sqlite3.Error):
                if not self.readonly and self._lock_fd is not None:
                    self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self._conn.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


def _time_of(m: Metric) -> int:
    return m.time_ns


def _first(p: tuple[int, float, str]) -> int:
    return p[0]


_KIND_VALUE: dict[EventType, str] = {kind: kind.value for kind in EventType}


def _upsert_counts(conn: sqlite3.Connection, counts: Mapping[tuple[int, str, str], int]) -> None:
    """Add (minute, source, type) -> n to the per-type and per-source minute counts."""
    by_type: Counter[tuple[int, str]] = Counter()
    by_source: Counter[tuple[int, str]] = Counter()
    for (bucket, source, kind), n in counts.items():
        by_type[bucket, kind] += n
        by_source[bucket, source] += n
    conn.executemany(_EVENT_TYPE_COUNT_UPSERT, [(*k, n) for k, n in by_type.items()])
    conn.executemany(_EVENT_SOURCE_COUNT_UPSERT, [(*k, n) for k, n in by_source.items()])


def _newest_key(item: tuple[int, int, Any]) -> tuple[int, int]:
    return item[0], item[1]


def _events_of(found: Iterable[tuple[int, int, Any]]) -> Iterator[Event]:
    """The events of (time, seq, row or (block, position)) items, in their order."""
    for _, _, item in found:
        if len(item) == 2:  # (block, position)
            block, i = item
            yield block.event(i)
        else:  # a row: id, time_ns, seq, source, event_type, message, metadata
            rid, t, _, src, kind, msg, meta = item
            yield Event(src, msg, EventType(kind), _decode_metadata(meta), t, rid)


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite rolls back by itself on some errors (a full disk): only roll back what is open.
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _casefold(text: str | None) -> str | None:
    return None if text is None else text.casefold()


def _chunk_row(sid: int, points: Sequence[tuple[int, float, str]]) -> tuple[Any, ...]:
    times = [p[0] for p in points]
    return (
        sid,
        times[0],
        times[-1],
        len(points),
        _chunks.encode_times(times, compress=True),
        _chunks.encode_values([p[1] for p in points], compress=True),
        _chunks.encode_ids([p[2] for p in points], compress=True),
    )


def _whole(column: Sequence[Any]) -> Sequence[Any]:
    return column


def _one(position: int) -> Callable[[Sequence[Any]], Sequence[Any]]:
    # itemgetter of one position gives the item itself, not a 1-tuple.
    return lambda column: (column[position],)


def _positions_by_source(sources: Sequence[str]) -> dict[str, list[int]]:
    """Each source's positions in the batch, in order."""
    if len(set(sources)) == 1:
        return {sources[0]: list(range(len(sources)))}
    groups: dict[str, list[int]] = {}
    for i, source in enumerate(sources):
        group = groups.get(source)
        if group is None:
            groups[source] = [i]
        else:
            group.append(i)
    return groups


def _event_counts(
    times: Sequence[int], sources: Sequence[str], kinds: Sequence[str]
) -> Counter[tuple[int, str, str]]:
    """Events per (minute, source, type value)."""
    minutes = [t - t % MINUTE_NS for t in times]
    return Counter(zip(minutes, sources, kinds, strict=True))


def _block_parts(
    source: str,
    *,
    times: Sequence[int],
    seqs: Sequence[int],
    kinds: bytes,
    ids: Sequence[str],
    messages: Sequence[str],
    metadata: Sequence[dict[str, Any]],
) -> list[_eventblocks.BlockParts]:
    """The blocks of one source's events, given as columns in stored order."""
    return [
        _eventblocks.BlockParts(
            source,
            times=times[i : i + MAX_BLOCK],
            seqs=seqs[i : i + MAX_BLOCK],
            kinds=kinds[i : i + MAX_BLOCK],
            ids=ids[i : i + MAX_BLOCK],
            messages=messages[i : i + MAX_BLOCK],
            metadata=_encode(metadata[i : i + MAX_BLOCK]),
        )
        for i in range(0, len(times), MAX_BLOCK)
    ]


def _blocks_of_rows(source: str, rows: list[Any]) -> list[_eventblocks.BlockRow]:
    """Blocks of one source's event rows (time_ns, seq, id, type, message, metadata)."""
    codes = _eventblocks.KIND_CODES
    return _eventblocks.encode_blocks(
        [
            _eventblocks.BlockParts(
                source,
                times=[r[0] for r in part],
                seqs=[r[1] for r in part],
                kinds=bytes([codes[r[3]] for r in part]),
                ids=[r[2] for r in part],
                messages=[r[4] for r in part],
                metadata=b"[" + b",".join(bytes(r[5]) for r in part) + b"]",
            )
            for part in (rows[i : i + MAX_BLOCK] for i in range(0, len(rows), MAX_BLOCK))
        ]
    )


def _minute_rollups(
    sid: int, times: Sequence[int], values: Sequence[float]
) -> Iterable[tuple[int, int, int, float, float, float, int, float]]:
    """Count/sum/min/max/last per minute of one series' time-sorted points."""
    out = []
    bucket = -1
    count = 0
    total = low = high = last = 0.0
    last_t = 0
    for t, v in zip(times, values, strict=True):
        b = t - t % MINUTE_NS
        if b != bucket:
            if count:
                out.append((sid, bucket, count, total, low, high, last_t, last))
            bucket, count, total, low, high = b, 0, 0.0, v, v
        count += 1
        total += v
        if v < low:
            low = v
        elif v > high:
            high = v
        last, last_t = v, t
    if count:
        out.append((sid, bucket, count, total, low, high, last_t, last))
    return out


def _event_filters(
    source: str | None,
    kind: str | None,
    lo: int | None,
    hi: int | None,
    *,
    time_col: str = "time_ns",
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if source is not None:
        where.append("source = ?")
        args.append(source)
    if kind is not None:
        where.append("event_type = ?")
        args.append(kind)
    if lo is not None:
        where.append(f"{time_col} >= ?")
        args.append(lo)
    if hi is not None:
        where.append(f"{time_col} < ?")
        args.append(hi)
    return where, args
