"""Tests of DatabaseStorage beyond the shared protocol: files, processes, faults, retention."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from telemetry import Event, EventType, Metric, StorageError, TelemetryData, ValidationError
from telemetry.models import new_id
from telemetry.storage import _eventblocks
from telemetry.storage.database import MERGE_AT, MINUTE_NS, SCHEMA_VERSION, DatabaseStorage
from tests.helpers import run_python

T0 = 1_796_083_200 * 1_000_000_000  # minute aligned
SECOND = 1_000_000_000


def points(
    n: int, *, name: str = "cpu", start: int = T0, step: int = SECOND, **tags: str
) -> list[Metric]:
    return [Metric(name, float(i), "%", dict(tags), start + i * step, new_id()) for i in range(n)]


def events(n: int, *, start: int = T0, step: int = SECOND) -> list[Event]:
    kinds = list(EventType)
    return [
        Event("svc", f"event {i}", kinds[i % len(kinds)], {"i": i}, start + i * step, new_id())
        for i in range(n)
    ]


class TestFiles:
    def test_creates_directory_schema_and_version(self, tmp_path: Path) -> None:
        """Opening a new path creates the file with the current schema version, in WAL mode."""
        path = tmp_path / "deep" / "telemetry.db"
        DatabaseStorage(path).close()
        conn = sqlite3.connect(path)
        version = conn.execute("SELECT value FROM rimp_meta WHERE key = 'schema_version'")
        assert version.fetchone()[0] == str(SCHEMA_VERSION)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    def test_a_foreign_sqlite_file_is_refused_by_name(self, tmp_path: Path) -> None:
        """A SQLite file of another application gives a clear error naming the path."""
        path = tmp_path / "other.db"
        sqlite3.connect(path).execute("CREATE TABLE customers (id)").connection.commit()
        with pytest.raises(StorageError, match=r"other\.db.*not RIMP's \(tables: customers\)"):
            DatabaseStorage(path)
        assert sqlite3.connect(path).execute("SELECT count(*) FROM customers").fetchone() == (0,)

    def test_a_non_database_file_is_refused_by_name(self, tmp_path: Path) -> None:
        """A file that is not SQLite at all gives a clear error naming the path."""
        path = tmp_path / "notes.db"
        path.write_bytes(b"these are my notes, not a database" * 200)
        with pytest.raises(StorageError, match=r"notes\.db.*not a readable SQLite database"):
            DatabaseStorage(path)

    def test_a_newer_schema_is_refused(self, tmp_path: Path) -> None:
        """A database written by a newer RIMP is not touched."""
        path = tmp_path / "t.db"
        DatabaseStorage(path).close()
        conn = sqlite3.connect(path)
        conn.execute("UPDATE rimp_meta SET value = '99' WHERE key = 'schema_version'")
        conn.commit()
        with pytest.raises(StorageError, match="schema version 99 is newer"):
            DatabaseStorage(path)

    def test_data_survives_reopen(self, tmp_path: Path) -> None:
        """Everything stored is there after close and reopen, ids included."""
        path = tmp_path / "t.db"
        stored = points(10, host="a")
        with DatabaseStorage(path) as storage:
            storage.store(TelemetryData(events(3), stored))
        with DatabaseStorage(path) as storage:
            assert storage.query_metrics("cpu") == stored
            assert len(storage.query_events()) == 3


class TestChunks:
    def test_small_chunks_merge_without_losing_or_reordering(self, tmp_path: Path) -> None:
        """Many small batches are merged into compressed chunks; every point and id survives."""
        stored: list[Metric] = []
        with DatabaseStorage(tmp_path / "t.db") as storage:
            for b in range(MERGE_AT // 100 + 5):
                batch = points(100, start=T0 + b * 100 * SECOND, host="a")
                stored += batch
                storage.store(TelemetryData([], batch))
            assert storage.stats()["chunks"] < MERGE_AT // 100
            assert storage.query_metrics("cpu") == stored

    def test_external_ids_are_kept_as_given(self, tmp_path: Path) -> None:
        """Ids that are not RIMP's 16 hex digits survive merging unchanged."""
        given = [
            Metric("x", float(i), "", {}, T0 + i, f'client-{i}\n"quoted"')
            for i in range(MERGE_AT + 10)
        ]
        with DatabaseStorage(tmp_path / "t.db") as storage:
            for i in range(0, len(given), 500):
                storage.store(TelemetryData([], given[i : i + 500]))
            assert [m.id for m in storage.query_metrics("x")] == [m.id for m in given]

    def test_bytes_per_point_are_small_once_merged(self, tmp_path: Path) -> None:
        """A merged, regular series costs a few bytes per point (values vary)."""
        n = 50_000
        with DatabaseStorage(tmp_path / "t.db") as storage:
            for i in range(0, n, 5_000):
                storage.store(TelemetryData([], points(5_000, start=T0 + i * SECOND, host="a")))
            storage.vacuum()
            size = storage.stats()["bytes"]
        assert size / n < 8


class TestRollups:
    def test_rollup_and_raw_paths_agree(self, tmp_path: Path) -> None:
        """Minute-aligned queries (rollups) equal unaligned ones over the same points (raw)."""
        with DatabaseStorage(tmp_path / "t.db") as storage:
            storage.store(TelemetryData([], points(600, step=SECOND // 2, host="a")))
            storage.store(TelemetryData([], points(600, step=SECOND // 2, host="b")))
            for agg in ("count", "sum", "avg", "min", "max", "rate", "last"):
                aligned = storage.aggregate(
                    "cpu", agg=agg, bucket=120, since=T0, until=T0 + 10 * MINUTE_NS,
                    group_by=["host"],
                )  # fmt: skip
                raw = storage.aggregate(
                    "cpu", agg=agg, bucket=120, since=T0, until=T0 + 10 * MINUTE_NS + 1,
                    group_by=["host"],
                )  # fmt: skip
                assert aligned == pytest.approx(raw) or [
                    (b.start_ns, b.tags, b.count, pytest.approx(b.value)) for b in aligned
                ] == [(b.start_ns, b.tags, b.count, b.value) for b in raw], agg  # type: ignore[comparison-overlap]

    def test_event_counts_rollup_and_raw_agree(self, tmp_path: Path) -> None:
        """Per-minute event counts equal a count over the events themselves."""
        with DatabaseStorage(tmp_path / "t.db") as storage:
            storage.store(TelemetryData(events(1000, step=SECOND // 3), []))
            aligned = storage.count_events(bucket=60, since=T0, until=T0 + 10 * MINUTE_NS)
            raw = storage.count_events(bucket=60, since=T0, until=T0 + 10 * MINUTE_NS - 1)
            assert aligned == raw
            assert sum(b.count for b in aligned) == 1000

    @pytest.mark.parametrize("spread", [0, 40 * SECOND], ids=["one-minute", "two-minutes"])
    def test_mixed_batch_is_counted_and_read_back_whole(self, tmp_path: Path, spread: int) -> None:
        """One batch mixing sources with enough events for a block, sources left in rows,
        types and (with ``spread``) two minutes: every event reads back as stored, and the
        counts by type and by source are the events' own."""
        kinds = list(EventType)
        batch = []
        for i in range(300):
            # svc0 and svc1 get blocks (>= 16 events each); rare0..rare4 a few rows each.
            source = f"svc{i % 2}" if i % 10 else f"rare{i % 50 // 10}"
            start = T0 + 30 * SECOND  # half a minute in: a spread crosses into the next
            when = start + (spread * i) // 300
            kind = kinds[(i * 7) % len(kinds)]
            batch.append(Event(source, f"m{i}", kind, {"i": i}, when, new_id()))
        with DatabaseStorage(tmp_path / "t.db") as storage:
            storage.store(TelemetryData(batch, []))
            got = sorted(storage.query_events(limit=1000), key=lambda e: e.metadata["i"])
            assert got == batch
            until = T0 + 10 * MINUTE_NS
            for key, of in (("event_type", lambda e: e.event_type.value), ("source", None)):
                counted = storage.count_events(bucket=60, since=T0, until=until, group_by=[key])
                expected: dict[tuple[int, str], int] = {}
                for e in batch:
                    value = of(e) if of else e.source
                    slot = (e.time_ns - e.time_ns % MINUTE_NS, value)
                    expected[slot] = expected.get(slot, 0) + 1
                assert {(b.start_ns, b.tags[key]): b.count for b in counted} == expected


class TestRetention:
    def test_retention_removes_old_records(self, tmp_path: Path) -> None:
        """apply_retention deletes records older than retention, counting them."""
        now = T0 + 3600 * SECOND
        with DatabaseStorage(tmp_path / "t.db", retention="30m") as storage:
            storage.store(TelemetryData(events(60, step=MINUTE_NS), points(60, step=MINUTE_NS)))
            removed = storage.apply_retention(now_ns=now)
            assert removed == 60  # 30 events and 30 points older than 30 minutes
            assert len(storage.query_metrics("cpu")) == 30
            assert sum(b.count for b in storage.count_events(bucket=3600)) == 30

    def test_raw_retention_keeps_minute_rollups(self, tmp_path: Path) -> None:
        """Past raw_retention, points are gone but whole-minute aggregates remain."""
        now = T0 + 3600 * SECOND
        with DatabaseStorage(tmp_path / "t.db", raw_retention="10m") as storage:
            storage.store(TelemetryData([], points(3600, step=SECOND)))
            before = storage.aggregate("cpu", agg="avg", bucket=600, since=T0, until=now)
            storage.apply_retention(now_ns=now)
            assert storage.query_metrics("cpu")[0].time_ns >= now - 600 * SECOND
            assert storage.aggregate("cpu", agg="avg", bucket=600, since=T0, until=now) == before

    @pytest.mark.parametrize("bad", ["soon", "-5m", 0, "7 parsecs"])
    def test_bad_retention_is_named(self, tmp_path: Path, bad: object) -> None:
        """An unparsable retention raises ValidationError naming the field."""
        with pytest.raises(ValidationError, match="retention="):
            DatabaseStorage(tmp_path / "t.db", retention=bad)  # type: ignore[arg-type]


class TestProcesses:
    def test_a_second_writer_gets_a_clear_error(self, tmp_path: Path) -> None:
        """While one process writes, another's first write fails with a clear message."""
        path = tmp_path / "t.db"
        with DatabaseStorage(path) as storage:
            storage.store(TelemetryData(events(1), []))
            result = run_python(
                f"""
                from telemetry import TelemetryData, StorageError
                from telemetry.storage.database import DatabaseStorage
                s = DatabaseStorage({str(path)!r})
                print(len(s.query_events()))
                try:
                    s.store(TelemetryData())
                    s.store(TelemetryData(s.query_events(), []))
                except StorageError as e:
                    print(e)
                """
            )
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[0] == "1"
        assert f"another process (pid {os.getpid()}) is writing" in result.stdout

    def test_readers_in_other_processes_see_whole_batches_only(self, tmp_path: Path) -> None:
        """A reader polling while the writer stores 1,000-point batches never sees a partial one."""
        path = tmp_path / "t.db"
        storage = DatabaseStorage(path)
        storage.store(TelemetryData([], points(1, host="a")))
        reader = subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(
                    f"""
                    import sys
                    from telemetry.storage.database import DatabaseStorage
                    s = DatabaseStorage({str(path)!r}, readonly=True)
                    seen = set()
                    while True:
                        n = len(s.query_metrics("cpu"))
                        seen.add(n)
                        if n >= 20_001:
                            break
                    print(sorted(seen))
                    """
                ),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for b in range(20):
            storage.store(
                TelemetryData([], points(1000, start=T0 + (b + 1) * 1000 * SECOND, host="a"))
            )
        out, _ = reader.communicate(timeout=120)
        storage.close()
        counts = eval(out)  # our own child's repr of a list of ints
        assert all((n - 1) % 1000 == 0 for n in counts), counts

    @pytest.mark.slow
    def test_kill_9_at_any_moment_loses_nothing_acknowledged(self, tmp_path: Path) -> None:
        """A writer killed with SIGKILL mid-stream: the database opens consistent and holds
        every batch whose store() returned."""
        path = tmp_path / "t.db"
        log = tmp_path / "acked"
        writer = textwrap.dedent(
            f"""
            import os, sys
            from telemetry import TelemetryData, Metric, Event, EventType
            from telemetry.storage.database import DatabaseStorage
            s = DatabaseStorage({str(path)!r})
            fd = os.open({str(log)!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            b = int(sys.argv[1])
            while True:
                b += 1
                tags = {{"b": str(b % 7)}}
                ms = [Metric("m", float(i), "", tags, b * 10**9 + i, "%016x" % (b * 1000 + i))
                      for i in range(300)]
                es = [Event("w", str(b), EventType.INFO, {{}}, b * 10**9, "e%d" % b)]
                s.store(TelemetryData(es, ms))
                os.write(fd, b"%d\\n" % b)
            """
        )
        rounds = 8
        start = 0
        for round_ in range(rounds):
            proc = subprocess.Popen([sys.executable, "-c", writer, str(start)])
            deadline = time.monotonic() + 20
            target = start + 5 + round_ * 3
            while time.monotonic() < deadline:
                acked = log.read_text().split() if log.exists() else []
                if acked and int(acked[-1]) >= target:
                    break
                time.sleep(0.005)
            time.sleep(0.003 * round_)  # land the kill at varied moments of a store()
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            acked_batches = {int(x) for x in log.read_text().split()}
            with DatabaseStorage(path) as storage:
                assert storage._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                stored_events = {int(e.message) for e in storage.query_events(limit=None)}
                assert acked_batches <= stored_events
                points_ = storage.query_metrics("m")
                per_batch: dict[int, int] = {}
                for p in points_:
                    per_batch[p.time_ns // 10**9] = per_batch.get(p.time_ns // 10**9, 0) + 1
                assert set(per_batch) == stored_events  # batches are whole or absent
                assert set(per_batch.values()) == {300}
                start = max(stored_events)


class TestFaults:
    def test_a_full_disk_fails_loudly_and_keeps_what_was_stored(self, tmp_path: Path) -> None:
        """With the file size limit reached, store() raises StorageError; earlier data is intact,
        and a collector keeps the failed batch for retry (counted)."""
        path = tmp_path / "t.db"
        result = run_python(
            f"""
            import os, resource, signal
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            from telemetry import TelemetryCollector, TelemetryConfig, TelemetryData, StorageError
            from telemetry import Event, EventType
            from telemetry.storage.database import DatabaseStorage
            s = DatabaseStorage({str(path)!r})
            c = TelemetryCollector(TelemetryConfig(flush_interval=3600), storage=s)
            for i in range(100):
                c.collect_event("ok", f"before {{i}}")
            assert c.flush(10)
            resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
            for i in range(20_000):  # random text: compressed blocks stay big too
                c.collect_event("big", os.urandom(100).hex())
            c.flush(10)
            stats = c.stats()
            stored = len(s.query_events(source="big", limit=None))  # what fit before the limit
            print(stats["storage_errors"] > 0, stats["awaiting_retry"] + stored,
                  stats["records_dropped"])
            try:
                s.store(TelemetryData([Event("big", os.urandom(100).hex(), EventType.INFO, {{}},
                                             i, str(i)) for i in range(5000)], []))
            except StorageError as e:
                print("raised:", "write failed" in str(e))
            """
        )
        assert result.returncode == 0, result.stderr
        first, second = result.stdout.splitlines()[:2]
        assert first == "True 20000 0"
        assert second == "raised: True"
        with DatabaseStorage(path) as storage:
            assert len(storage.query_events(source="ok", limit=None)) == 100
            assert storage._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


class TestWriterRules:
    def test_a_url_is_refused_not_taken_for_a_path(self, tmp_path: Path) -> None:
        """A database URL raises StorageError instead of creating a file named like it."""
        with pytest.raises(StorageError, match="use PostgresStorage"):
            DatabaseStorage("postgresql://rimp@localhost/telemetry")
        assert not Path("postgresql:").exists()

    def test_a_second_writer_in_the_same_process_is_told_so(self, tmp_path: Path) -> None:
        """Two writers in one process: the second is refused with a message saying so."""
        path = tmp_path / "t.db"
        with DatabaseStorage(path) as first, DatabaseStorage(path) as second:
            first.store(TelemetryData(events(1), []))
            with pytest.raises(StorageError, match="another DatabaseStorage in this process"):
                second.store(TelemetryData(events(1), []))

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    def test_a_forked_child_cannot_write_while_the_parent_does(self, tmp_path: Path) -> None:
        """After fork the child reads through its own connection and is refused as a writer."""
        path = tmp_path / "t.db"
        storage = DatabaseStorage(path)
        storage.store(TelemetryData(events(2), []))
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                seen = len(storage.query_events())
                try:
                    storage.store(TelemetryData(events(1), []))
                    refused = False
                except StorageError:
                    refused = True
                os.write(write_fd, f"{seen} {refused}".encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        _, status = os.waitpid(pid, 0)
        report = os.read(read_fd, 100).decode()
        os.close(read_fd)
        assert os.waitstatus_to_exitcode(status) == 0
        assert report == "2 True"
        storage.store(TelemetryData(events(1), []))
        assert len(storage.query_events()) == 3
        storage.close()


class TestEventBlocks:
    def test_a_big_batch_goes_into_blocks_and_reads_back_whole(self, tmp_path: Path) -> None:
        """10,000 events of one source are one block row, not 10,000 rows; every field
        comes back, newest first, and the file is a fraction of the rows' size."""
        stored = events(10_000)
        with DatabaseStorage(tmp_path / "t.db") as storage:
            storage.store(TelemetryData(stored, []))
            stats = storage.stats()
            assert (stats["events"], stats["event_blocks"]) == (10_000, 2)  # 8,192 + 1,808
            assert storage._conn.execute("SELECT count(*) FROM events").fetchone() == (0,)
            assert storage.query_events(limit=None) == stored[::-1]
            errors = storage.query_events(event_type="error", limit=5)
            assert errors == [e for e in stored[::-1] if e.event_type is EventType.ERROR][:5]
            assert [e.message for e in storage.query_events(search="EVENT 9999")] == ["event 9999"]

    def test_small_batches_become_rows_then_blocks(self, tmp_path: Path) -> None:
        """Batches of a few events are rows until 1,024 of a source accumulate, then they
        are moved into a block in one transaction; queries see them all along."""
        stored = events(1_100)
        with DatabaseStorage(tmp_path / "t.db") as storage:
            for i in range(0, 1_000, 10):
                storage.store(TelemetryData(stored[i : i + 10], []))
            assert storage.stats()["event_blocks"] == 0
            for i in range(1_000, 1_100, 10):
                storage.store(TelemetryData(stored[i : i + 10], []))
            stats = storage.stats()
            assert stats["event_blocks"] >= 1
            assert storage._conn.execute("SELECT count(*) FROM events").fetchone()[0] < 1_024
            assert storage.query_events(limit=None) == stored[::-1]
            assert sum(b.count for b in storage.count_events(group_by=())) == 1_100
            assert sum(b.count for b in storage.count_events(bucket=7, group_by=())) == 1_100

    def test_equal_times_keep_their_stored_order_across_rows_and_blocks(
        self, tmp_path: Path
    ) -> None:
        """Events at the same instant: the later stored comes first, whether in a row or
        a block."""
        same = [Event("svc", f"m{i}", EventType.INFO, {}, T0, new_id()) for i in range(600)]
        with DatabaseStorage(tmp_path / "t.db") as storage:
            storage.store(TelemetryData(same[:300], []))  # a block
            storage.store(TelemetryData(same[300:301], []))  # a row
            storage.store(TelemetryData(same[301:], []))  # a block
            assert [e.message for e in storage.query_events(limit=None)] == [
                f"m{i}" for i in range(599, -1, -1)
            ]

    def test_retention_cuts_a_block_exactly(self, tmp_path: Path) -> None:
        """A cut inside a block keeps its later events, recounts the minute it falls in
        and returns how many were removed."""
        stored = events(600, step=SECOND // 2)  # 5 minutes
        with DatabaseStorage(tmp_path / "t.db") as storage:
            storage.store(TelemetryData(stored, []))
            cut = T0 + 90 * SECOND + SECOND // 4
            assert storage.delete_before(cut) == 181
            left = storage.query_events(limit=None)
            assert left == [e for e in stored[::-1] if e.time_ns >= cut]
            counts = storage.count_events(group_by=())
            assert sum(b.count for b in counts) == 419
            assert [b.count for b in counts if b.start_ns == T0 + 60 * SECOND] == [59]

    @staticmethod
    def log_lines(n: int, start: int, *, rare: dict[int, str] | None = None) -> list[Event]:
        """``n`` events of one source with log-like messages, some carrying a rare word."""
        rare = rare or {}
        return [
            Event("api", f"request {i} handled in {i * 7 % 900} ms" + rare.get(i, ""),
                  EventType.INFO, {}, start + i, new_id())
            for i in range(n)
        ]  # fmt: skip

    def test_a_search_reads_only_blocks_whose_trigrams_hold_the_word(self, tmp_path: Path) -> None:
        """40 blocks, the word in two of them (once in another case): the search finds
        exactly the events a scan of every message finds, and the trigram sets let at
        most a few blocks without the word through."""
        rare = {5: {17: " by Kraken"}, 31: {99: " kraken!"}}
        batches = [self.log_lines(300, T0 + b * SECOND, rare=rare.get(b)) for b in range(40)]
        with DatabaseStorage(tmp_path / "t.db") as storage:
            for batch in batches:
                storage.store(TelemetryData(batch, []))
            found = storage.query_events(search="KRAKEN", limit=None)
            expected = [e for b in batches for e in b if "kraken" in e.message.casefold()]
            assert sorted(found, key=lambda e: e.time_ns) == expected
            assert len(found) == 2
            sets = [row[0] for row in storage._conn.execute("SELECT grams FROM event_blocks")]
            assert len(sets) == 40
            assert all(sets)
            assert sum(_eventblocks.may_hold(g, b"kraken") for g in sets) <= 4

    def test_blocks_without_a_trigram_set_are_searched_as_before(self, tmp_path: Path) -> None:
        """Blocks written before the sets existed (grams NULL) and non-ASCII blocks (no
        set) are read and searched: the same answers."""
        batch = self.log_lines(300, T0, rare={150: " kraken"})
        accented = [Event("web", "café kraken ready", EventType.INFO, {}, T0 + 1, new_id())] * 20
        with DatabaseStorage(tmp_path / "t.db") as storage:
            storage.store(TelemetryData(batch + accented, []))
            with_sets = storage.query_events(search="kraken", limit=None)
            assert len(with_sets) == 21
            storage._conn.execute("UPDATE event_blocks SET grams = NULL")
            assert storage.query_events(search="kraken", limit=None) == with_sets

    def test_a_version_3_database_gains_trigram_sets(self, tmp_path: Path) -> None:
        """A database from before the sets: its blocks stay readable and searchable
        without one, and blocks written after the upgrade get one."""
        path = tmp_path / "t.db"
        old = self.log_lines(300, T0, rare={10: " kraken"})
        with DatabaseStorage(path) as storage:
            storage.store(TelemetryData(old, []))
            storage._conn.executescript(
                """
                ALTER TABLE event_blocks DROP COLUMN grams;
                UPDATE rimp_meta SET value = '3' WHERE key = 'schema_version';
                """
            )
        with DatabaseStorage(path) as storage:
            new = self.log_lines(300, T0 + 10 * SECOND, rare={20: " kraken"})
            storage.store(TelemetryData(new, []))
            sets = [row[0] for row in storage._conn.execute(
                "SELECT grams FROM event_blocks ORDER BY id")]  # fmt: skip
            assert sets[0] is None
            assert sets[1] is not None
            found = storage.query_events(search="kraken", limit=None)
            assert [e.message for e in found] == [new[20].message, old[10].message]

    def test_a_version_2_database_is_migrated_with_its_events(self, tmp_path: Path) -> None:
        """A database written before event blocks keeps its event rows, gains the new
        tables and per-type counts, and merges the old rows into blocks as it writes."""
        path = tmp_path / "t.db"
        old = events(1_000)  # under the 1,024 that start a merge: they stay rows
        with DatabaseStorage(path, event_block_min=10**9) as storage:  # rows only
            storage.store(TelemetryData(old, []))
            storage._conn.executescript(  # back to version 2's tables
                """
                CREATE TABLE event_counts (bucket_ns INTEGER NOT NULL, source TEXT NOT NULL,
                    event_type TEXT NOT NULL, count INTEGER NOT NULL,
                    PRIMARY KEY (bucket_ns, source, event_type)) WITHOUT ROWID;
                INSERT INTO event_counts SELECT time_ns - time_ns % 60000000000, source,
                    event_type, count(*) FROM events GROUP BY 1, 2, 3;
                DROP TABLE event_blocks; DROP TABLE event_type_counts;
                DROP TABLE event_source_counts;
                UPDATE rimp_meta SET value = '2' WHERE key = 'schema_version';
                """
            )
        with DatabaseStorage(path) as storage:
            assert storage.query_events(limit=None) == old[::-1]
            assert sum(b.count for b in storage.count_events(group_by=())) == 1_000
            new = events(100, start=T0 + 10**12)
            storage.store(TelemetryData(new, []))  # 1,100 rows of one source: merged
            assert storage.stats()["event_blocks"] >= 1
            assert storage.query_events(limit=None) == (old + new)[::-1]
