"""Tests of `rimp db info|export|vacuum`, run as subprocesses on real database files."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from telemetry import Event, EventType, Metric, TelemetryData
from telemetry.models import new_id
from telemetry.storage.database import SCHEMA_VERSION, DatabaseStorage
from tests.helpers import rimp

SECOND = 1_000_000_000
T0 = 1_796_083_200 * SECOND  # 2026-12-01T00:00:00Z
SIZE = r"[\d,]+(?:\.\d)? (?:B|KiB|MiB|GiB)"
EVENT_HEADER = ["kind", "id", "timestamp", "time_ns", "source", "event_type", "message", "metadata"]
METRIC_HEADER = ["kind", "id", "timestamp", "time_ns", "name", "value", "unit", "tags"]


def sample() -> TelemetryData:
    """Events of three types and four series covering every chunk codec: decimal values,
    float values with external ids (both compressed), and two raw small chunks."""
    events = [
        Event("api", "request received", EventType.INFO, {"path": "/users"}, T0, new_id()),
        Event(
            "api",
            'said "no", then\nstopped',
            EventType.ERROR,
            {"nested": {"a": [1, 2]}, "ok": False},
            T0 + 90 * SECOND,
            new_id(),
        ),
        Event("worker", "queue long", EventType.WARNING, {}, T0 + 3600 * SECOND, "ext-7"),
    ]
    metrics = [
        Metric("cpu", round(i * 0.1, 1), "%", {"host": "a"}, T0 + i * SECOND, new_id())
        for i in range(1500)
    ]
    metrics += [
        Metric("cpu", -2.5 + i, "%", {"host": "b"}, T0 + i * 7 * SECOND, new_id())
        for i in range(40)
    ]
    metrics += [
        Metric("ratio", i / 3, "", {}, T0 + i * SECOND + 5, f"client-{i}") for i in range(1100)
    ]
    metrics += [
        Metric("latency", v, "ms", {"route": "/a,b"}, T0 + i * SECOND + 1, f"req-{i}")
        for i, v in enumerate((1e-300, 12.75, 1 / 3))
    ]
    return TelemetryData(events, metrics)


def event_dict(e: Event) -> dict[str, object]:
    return {
        "id": e.id,
        "time_ns": e.time_ns,
        "source": e.source,
        "event_type": e.event_type.value,
        "message": e.message,
        "metadata": e.metadata,
    }


def metric_dict(m: Metric) -> dict[str, object]:
    return {
        "id": m.id,
        "time_ns": m.time_ns,
        "name": m.name,
        "value": m.value,
        "unit": m.unit,
        "tags": m.tags,
    }


def info_fields(stdout: str) -> dict[str, str]:
    """`rimp db info` prints `key  value` lines; return them as a dict."""
    fields: dict[str, str] = {}
    for line in stdout.splitlines():
        key, value = re.split(r"\s{2,}", line, maxsplit=1)
        fields[key] = value
    return fields


def by_id(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    return sorted(rows, key=lambda r: str(r["id"]))


def fragmented(path: Path) -> None:
    """Fill ``path`` with 2,500 events in 50 batches, then delete all but the newest 100.
    The messages are random (events are stored compressed: repeated text would take no
    room to free)."""
    with DatabaseStorage(path) as storage:
        for b in range(50):
            batch = [
                Event("api", os.urandom(100).hex(), EventType.INFO, {}, T0 + (b * 50 + i) * SECOND,
                      new_id())
                for i in range(50)
            ]  # fmt: skip
            storage.store(TelemetryData(batch, []))
        storage.delete_before(T0 + 2400 * SECOND)


def size_bytes(text: str) -> float:
    """Parse a size as `rimp db` prints it (`48.0 KiB`) into bytes."""
    number, unit = text.split()
    return float(number.replace(",", "")) * {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[unit]


@pytest.fixture
def data() -> TelemetryData:
    return sample()


@pytest.fixture
def db(tmp_path: Path, data: TelemetryData) -> Path:
    """A database file holding ``data``, closed (no process has it open)."""
    path = tmp_path / "telemetry.db"
    with DatabaseStorage(path) as storage:
        storage.store(data)
    return path


@pytest.fixture
def writer(tmp_path: Path, data: TelemetryData) -> Iterator[DatabaseStorage]:
    """A database holding ``data`` whose writer lock this test process holds."""
    storage = DatabaseStorage(tmp_path / "telemetry.db")
    storage.store(data)
    assert (tmp_path / "telemetry.db.lock").read_text() == str(os.getpid())
    yield storage
    storage.close()


class TestInfo:
    def test_reports_counts_sizes_and_time_range(self, db: Path) -> None:
        """`info` prints the file, schema version, size, series, points, events, oldest, newest."""
        result = rimp("db", "info", "--path", str(db))
        assert result.returncode == 0, result.stderr
        with DatabaseStorage(db, readonly=True) as storage:
            chunks = storage.stats()["chunks"]
        fields = info_fields(result.stdout)
        assert fields["file"] == str(db.resolve())
        assert fields["schema version"] == str(SCHEMA_VERSION)
        assert re.fullmatch(SIZE, fields["size on disk"])
        assert fields["series"] == "4 (3 metric names)"
        assert fields["metric points"] == f"2,643 in {chunks} chunks"
        assert fields["events"] == "3"
        assert fields["oldest"] == "2026-12-01T00:00:00+00:00"
        assert fields["newest"] == "2026-12-01T01:00:00+00:00"

    def test_works_while_another_process_writes(self, writer: DatabaseStorage) -> None:
        """With the writer lock held elsewhere, `info` reads, and sees each new commit."""
        result = rimp("db", "info", "--path", str(writer.path))
        assert result.returncode == 0, result.stderr
        assert info_fields(result.stdout)["events"] == "3"
        later = Event("api", "later", EventType.INFO, {}, T0 + 7200 * SECOND, new_id())
        writer.store(TelemetryData([later], []))
        fields = info_fields(rimp("db", "info", "--path", str(writer.path)).stdout)
        assert fields["events"] == "4"
        assert fields["newest"] == "2026-12-01T02:00:00+00:00"

    def test_default_path_is_rimp_data_telemetry_db(self, tmp_path: Path) -> None:
        """Without --path, `info` reads ./rimp-data/telemetry.db of the working directory."""
        with DatabaseStorage(tmp_path / "rimp-data" / "telemetry.db") as storage:
            storage.store(TelemetryData([], [Metric("x", 1.0, "", {}, T0, new_id())]))
        result = rimp("db", "info", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        fields = info_fields(result.stdout)
        assert fields["file"] == str((tmp_path / "rimp-data" / "telemetry.db").resolve())
        assert fields["metric points"].startswith("1 in ")
        assert "oldest" in fields
        assert "newest" in fields

    def test_an_empty_database_has_no_time_range(self, tmp_path: Path) -> None:
        """A database with nothing stored reports zero counts and no oldest/newest lines."""
        DatabaseStorage(tmp_path / "t.db").close()
        result = rimp("db", "info", "--path", str(tmp_path / "t.db"))
        assert result.returncode == 0, result.stderr
        fields = info_fields(result.stdout)
        assert fields["events"] == "0"
        assert "oldest" not in fields
        assert "newest" not in fields

    def test_a_missing_file_exits_1_naming_the_path(self, tmp_path: Path) -> None:
        """`info` on a missing file exits 1 with one line naming the path, and creates nothing."""
        missing = tmp_path / "nope.db"
        result = rimp("db", "info", "--path", str(missing))
        assert result.returncode == 1
        assert result.stdout == ""
        assert result.stderr == f"rimp db info: {str(missing)!r}: no such database file\n"
        assert list(tmp_path.iterdir()) == []

    def test_a_foreign_sqlite_file_exits_1_naming_the_path(self, tmp_path: Path) -> None:
        """A SQLite file of another application is refused with a message naming it."""
        foreign = tmp_path / "notes.db"
        conn = sqlite3.connect(foreign)
        conn.execute("CREATE TABLE notes (text TEXT)")
        conn.close()
        result = rimp("db", "info", "--path", str(foreign))
        assert result.returncode == 1
        assert str(foreign) in result.stderr
        assert "not RIMP's" in result.stderr
        assert "Traceback" not in result.stderr

    def test_a_path_with_a_hash_sign_is_read(self, tmp_path: Path, data: TelemetryData) -> None:
        """A database in a directory whose name holds '#' is read like any other."""
        path = tmp_path / "run#2" / "telemetry.db"
        with DatabaseStorage(path) as storage:
            storage.store(data)
        result = rimp("db", "info", "--path", str(path))
        assert result.returncode == 0, result.stderr
        assert info_fields(result.stdout)["events"] == "3"


class TestExport:
    def test_jsonl_events_parse_back_to_the_stored_events(
        self, db: Path, data: TelemetryData
    ) -> None:
        """`export --kind events` prints one JSON object per event, oldest first, exactly."""
        result = rimp("db", "export", "--path", str(db), "--kind", "events", "--format", "jsonl")
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert {line.pop("kind") for line in lines} == {"event"}
        stamps = [line.pop("timestamp") for line in lines]
        assert stamps == [e.timestamp.isoformat() for e in data.events]
        assert lines == [event_dict(e) for e in data.events]

    def test_jsonl_metrics_parse_back_to_the_stored_points(
        self, db: Path, data: TelemetryData
    ) -> None:
        """`export --kind metrics` gives every point exactly, each series oldest first."""
        result = rimp("db", "export", "--path", str(db), "--kind", "metrics")
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert {line.pop("kind") for line in lines} == {"metric"}
        for line in lines:
            assert line.pop("timestamp").startswith("2026-12-01T")
        assert by_id(lines) == by_id([metric_dict(m) for m in data.metrics])
        per_series: dict[str, list[int]] = {}
        for line in lines:
            per_series.setdefault(json.dumps([line["name"], line["tags"]]), []).append(
                line["time_ns"]
            )
        assert len(per_series) == 4
        assert all(times == sorted(times) for times in per_series.values())

    def test_jsonl_all_is_events_then_metrics(self, db: Path, data: TelemetryData) -> None:
        """The default export (`--kind all`, jsonl) holds every event, then every point."""
        result = rimp("db", "export", "--path", str(db))
        assert result.returncode == 0, result.stderr
        kinds = [json.loads(line)["kind"] for line in result.stdout.splitlines()]
        assert kinds == ["event"] * len(data.events) + ["metric"] * len(data.metrics)

    def test_csv_events_have_a_header_and_one_row_per_event(
        self, db: Path, data: TelemetryData
    ) -> None:
        """CSV events: the header, then rows that parse back to the stored events exactly."""
        result = rimp("db", "export", "--path", str(db), "--kind", "events", "--format", "csv")
        assert result.returncode == 0, result.stderr
        header, *rows = list(csv.reader(io.StringIO(result.stdout, newline="")))
        assert header == EVENT_HEADER
        parsed = [dict(zip(header, row, strict=True)) for row in rows]
        assert [r["kind"] for r in parsed] == ["event"] * 3
        assert [r["timestamp"] for r in parsed] == [e.timestamp.isoformat() for e in data.events]
        assert [
            {
                "id": r["id"],
                "time_ns": int(r["time_ns"]),
                "source": r["source"],
                "event_type": r["event_type"],
                "message": r["message"],
                "metadata": json.loads(r["metadata"]),
            }
            for r in parsed
        ] == [event_dict(e) for e in data.events]

    def test_csv_metrics_have_a_header_and_exact_values(
        self, db: Path, data: TelemetryData
    ) -> None:
        """CSV metrics: the header, then one row per point whose value parses back exactly."""
        result = rimp("db", "export", "--path", str(db), "--kind", "metrics", "--format", "csv")
        assert result.returncode == 0, result.stderr
        header, *rows = list(csv.reader(io.StringIO(result.stdout, newline="")))
        assert header == METRIC_HEADER
        assert {row[0] for row in rows} == {"metric"}
        got = [
            {
                "id": r["id"],
                "time_ns": int(r["time_ns"]),
                "name": r["name"],
                "value": float(r["value"]),
                "unit": r["unit"],
                "tags": json.loads(r["tags"]),
            }
            for r in (dict(zip(header, row, strict=True)) for row in rows)
        ]
        assert by_id(got) == by_id([metric_dict(m) for m in data.metrics])

    def test_csv_all_is_two_tables_each_with_its_header(
        self, db: Path, data: TelemetryData
    ) -> None:
        """`--kind all --format csv` writes the events table, then the metrics table."""
        result = rimp("db", "export", "--path", str(db), "--format", "csv")
        assert result.returncode == 0, result.stderr
        rows = list(csv.reader(io.StringIO(result.stdout, newline="")))
        n_events = len(data.events)
        assert rows[0] == EVENT_HEADER
        assert rows[n_events + 1] == METRIC_HEADER
        assert len(rows) == n_events + len(data.metrics) + 2

    def test_output_file_gets_what_stdout_would(self, db: Path, tmp_path: Path) -> None:
        """`-o FILE` writes the same bytes the export prints to stdout, and prints nothing."""
        target = tmp_path / "out.csv"
        result = rimp("db", "export", "--path", str(db), "--format", "csv", "-o", str(target))
        assert result.returncode == 0, result.stderr
        assert result.stdout == ""
        printed = rimp("db", "export", "--path", str(db), "--format", "csv").stdout
        assert target.read_text(encoding="utf-8") == printed

    def test_works_while_another_process_writes(
        self, writer: DatabaseStorage, data: TelemetryData
    ) -> None:
        """With the writer lock held elsewhere, `export` reads every committed record."""
        result = rimp("db", "export", "--path", str(writer.path))
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert sorted(line["id"] for line in lines) == sorted(
            [e.id for e in data.events] + [m.id for m in data.metrics]
        )

    def test_a_missing_file_exits_1_naming_the_path(self, tmp_path: Path) -> None:
        """`export` of a missing file exits 1 with a message naming the path, writing nothing."""
        missing = tmp_path / "nope.db"
        target = tmp_path / "out.jsonl"
        result = rimp("db", "export", "--path", str(missing), "-o", str(target))
        assert result.returncode == 1
        assert result.stderr == f"rimp db export: {str(missing)!r}: no such database file\n"
        assert not target.exists()
        assert not missing.exists()

    def test_an_unwritable_output_exits_1_naming_it(self, db: Path, tmp_path: Path) -> None:
        """`-o` into a missing directory exits 1 with a one-line message naming the file."""
        target = tmp_path / "no-such-dir" / "out.jsonl"
        result = rimp("db", "export", "--path", str(db), "-o", str(target))
        assert result.returncode == 1
        assert str(target) in result.stderr
        assert "Traceback" not in result.stderr


class TestVacuum:
    def test_reports_the_size_before_and_after(self, db: Path) -> None:
        """`vacuum` prints `PATH: SIZE -> SIZE` and exits 0."""
        result = rimp("db", "vacuum", "--path", str(db))
        assert result.returncode == 0, result.stderr
        assert re.fullmatch(rf"{re.escape(str(db))}: {SIZE} -> {SIZE}\n", result.stdout)

    def test_merges_small_chunks_and_keeps_every_record(self, tmp_path: Path) -> None:
        """Small chunks (one per small batch) are merged into one per series; nothing is lost."""
        path = tmp_path / "t.db"
        stored: list[Metric] = []
        with DatabaseStorage(path) as storage:
            for b in range(30):
                batch = [
                    Metric("cpu", float(i), "%", {}, T0 + (b * 20 + i) * SECOND, new_id())
                    for i in range(20)
                ]
                storage.store(TelemetryData([], batch))
                stored += batch
            assert storage.stats()["chunks"] == 30
        result = rimp("db", "vacuum", "--path", str(path))
        assert result.returncode == 0, result.stderr
        with DatabaseStorage(path, readonly=True) as storage:
            assert storage.stats()["chunks"] == 1
            assert storage.query_metrics("cpu") == stored

    def test_shrinks_a_file_after_deletions(self, tmp_path: Path) -> None:
        """After most records were deleted, the file on disk is smaller once vacuumed."""
        path = tmp_path / "t.db"
        fragmented(path)
        before = path.stat().st_size
        result = rimp("db", "vacuum", "--path", str(path))
        assert result.returncode == 0, result.stderr
        assert path.stat().st_size < before / 2
        with DatabaseStorage(path, readonly=True) as storage:
            assert storage.stats()["events"] == 100

    def test_the_reported_size_after_is_the_file_left(self, tmp_path: Path) -> None:
        """The size printed after `->` is the size of the file vacuum leaves (smaller here)."""
        path = tmp_path / "t.db"
        fragmented(path)
        result = rimp("db", "vacuum", "--path", str(path))
        assert result.returncode == 0, result.stderr
        before, after = map(size_bytes, result.stdout.split(": ", 1)[1].split(" -> "))
        assert after < before
        assert after == pytest.approx(path.stat().st_size, rel=0.01)

    def test_refused_while_another_process_writes(self, writer: DatabaseStorage) -> None:
        """While another process writes, `vacuum` exits 1 naming its pid; the writer goes on."""
        result = rimp("db", "vacuum", "--path", str(writer.path))
        assert result.returncode == 1
        assert str(writer.path) in result.stderr
        assert f"another process (pid {os.getpid()}) is writing" in result.stderr
        writer.store(TelemetryData([Event("api", "still", EventType.INFO, {}, T0, new_id())], []))
        assert writer.stats()["events"] == 4

    def test_a_missing_file_exits_1_naming_the_path(self, tmp_path: Path) -> None:
        """`vacuum` of a missing file exits 1 naming the path, and does not create it."""
        missing = tmp_path / "nope.db"
        result = rimp("db", "vacuum", "--path", str(missing))
        assert result.returncode == 1
        assert result.stderr == f"rimp db vacuum: {str(missing)!r}: no such database file\n"
        assert list(tmp_path.iterdir()) == []
