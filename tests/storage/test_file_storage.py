"""Tests of FileStorage specifics: JSON Lines segments, rotation, repair, failures, readers.

The protocol itself is covered by ``tests/test_storage_conformance.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from telemetry import Event, EventType, Metric, StorageError, TelemetryData, ValidationError
from telemetry.models import new_id
from telemetry.storage import FileStorage
from tests.helpers import run_python

SECOND = 1_000_000_000
T0 = 1_800_000_000 * SECOND


def event(seq: int, message: str = "", **metadata: Any) -> Event:
    return Event(
        source="svc",
        message=message or f"event {seq}",
        event_type=EventType.INFO,
        metadata={"seq": seq, **metadata},
        time_ns=T0 + seq * SECOND,
        id=new_id(),
    )


def point(seq: int, value: float = 1.0) -> Metric:
    return Metric(
        name="rt", value=value, unit="ms", tags={"seq": str(seq)}, time_ns=T0 + seq, id=new_id()
    )


def segments(directory: Path, kind: str = "events") -> list[Path]:
    return sorted(directory.glob(f"{kind}-*.jsonl"))


def seqs(storage: FileStorage) -> list[int]:
    """The ``seq`` of every stored event, oldest first."""
    return [e.metadata["seq"] for e in reversed(storage.query_events(limit=None))]


class TestJsonLines:
    def test_segments_are_json_lines(self, tmp_path: Path) -> None:
        """Each record is one JSON object on its own line, in a file per kind."""
        with FileStorage(tmp_path) as storage:
            storage.store(TelemetryData(events=[event(1), event(2)], metrics=[point(1, 2.5)]))
        [events_file] = segments(tmp_path, "events")
        [metrics_file] = segments(tmp_path, "metrics")
        assert events_file.name == "events-00000001.jsonl"
        lines = events_file.read_bytes().split(b"\n")
        assert lines[-1] == b""  # every line, the last included, ends with a newline
        rows = [json.loads(line) for line in lines[:-1]]
        assert [r["message"] for r in rows] == ["event 1", "event 2"]
        assert rows[0]["event_type"] == "info"
        assert rows[0]["time_ns"] == T0 + SECOND
        assert set(rows[0]) == {"source", "message", "event_type", "metadata", "time_ns", "id"}
        [metric] = [json.loads(line) for line in metrics_file.read_text().splitlines()]
        assert (metric["name"], metric["value"], metric["tags"]) == ("rt", 2.5, {"seq": "1"})

    def test_writes_only_append(self, tmp_path: Path) -> None:
        """A later batch, even from a reopened storage, leaves the earlier bytes as they were."""
        with FileStorage(tmp_path) as storage:
            storage.store(TelemetryData(events=[event(1)]))
        [path] = segments(tmp_path)
        before = path.read_bytes()
        with FileStorage(tmp_path) as storage:
            storage.store(TelemetryData(events=[event(2)]))
            after = path.read_bytes()
            assert after.startswith(before)
            assert after.count(b"\n") == 2
            assert seqs(storage) == [1, 2]

    def test_non_json_metadata_is_stored_as_str(self, tmp_path: Path) -> None:
        """Metadata values JSON cannot carry are stored as their ``str()``, nested ones too."""

        class Opaque:
            def __str__(self) -> str:
                return "<opaque>"

        with FileStorage(tmp_path) as storage:
            storage.store(
                TelemetryData(events=[event(1, obj=Opaque(), nested={"deep": [Opaque(), 2]})])
            )
            [got] = storage.query_events()
        assert got.metadata == {"seq": 1, "obj": "<opaque>", "nested": {"deep": ["<opaque>", 2]}}

    def test_stats_report_bytes_and_segments(self, tmp_path: Path) -> None:
        """``stats()`` gives the bytes of all segment files and how many there are."""
        with FileStorage(tmp_path, max_segment_bytes=1024) as storage:
            for i in range(30):
                storage.store(TelemetryData(events=[event(i, "x" * 100)], metrics=[point(i)]))
            stats = storage.stats()
            files = segments(tmp_path, "events") + segments(tmp_path, "metrics")
            assert stats["segments"] == len(files) > 2
            assert stats["bytes"] == sum(p.stat().st_size for p in files)
            assert (stats["repaired_bytes"], stats["corrupt_lines"], stats["write_errors"]) == (
                0,
                0,
                0,
            )


class TestRotation:
    def test_segments_rotate_and_reads_span_them(self, tmp_path: Path) -> None:
        """Past ``max_segment_bytes`` a new segment begins; queries read every segment."""
        with FileStorage(tmp_path, max_segment_bytes=1024) as storage:
            for i in range(0, 200, 4):
                storage.store(TelemetryData(events=[event(j, "m" * 60) for j in range(i, i + 4)]))
            paths = segments(tmp_path)
            assert len(paths) >= 10
            assert [p.name for p in paths] == [
                f"events-{n:08d}.jsonl" for n in range(1, 1 + len(paths))
            ]
            # Every sealed segment reached the size limit; all hold whole lines.
            assert all(p.stat().st_size >= 1024 for p in paths[:-1])
            assert all(p.read_bytes().endswith(b"\n") for p in paths if p.stat().st_size)
            assert seqs(storage) == list(range(200))
            assert [e.metadata["seq"] for e in storage.query_events(limit=3)] == [199, 198, 197]

    def test_a_reopened_storage_appends_to_the_newest_segment(self, tmp_path: Path) -> None:
        """Reopening continues after the newest segment and never overwrites an older one."""
        with FileStorage(tmp_path, max_segment_bytes=1024) as storage:
            for i in range(40):
                storage.store(TelemetryData(events=[event(i, "m" * 60)]))
        count = len(segments(tmp_path))
        with FileStorage(tmp_path, max_segment_bytes=1024) as storage:
            storage.store(TelemetryData(events=[event(40)]))
            assert seqs(storage) == list(range(41))
        assert len(segments(tmp_path)) in (count, count + 1)

    def test_aggregates_span_segments(self, tmp_path: Path) -> None:
        """Metric points spread over many segments aggregate as one series."""
        with FileStorage(tmp_path, max_segment_bytes=1024) as storage:
            for i in range(100):
                storage.store(TelemetryData(metrics=[point(i, float(i))]))
            assert len(segments(tmp_path, "metrics")) > 3
            [bucket] = storage.aggregate("rt", agg="sum", bucket=60)
            assert (bucket.count, bucket.value) == (100, sum(range(100)))

    def test_delete_before_unlinks_old_segments(self, tmp_path: Path) -> None:
        """Retention removes whole old segments and rewrites the one it cuts through."""
        with FileStorage(tmp_path, max_segment_bytes=1024) as storage:
            for i in range(60):
                storage.store(TelemetryData(events=[event(i, "m" * 60)]))
            before = len(segments(tmp_path))
            assert storage.delete_before(T0 + 50 * SECOND) == 50
            assert len(segments(tmp_path)) < before
            assert seqs(storage) == list(range(50, 60))
            storage.store(TelemetryData(events=[event(60)]))
        with FileStorage(tmp_path) as storage:
            assert seqs(storage) == list(range(50, 61))


class TestRepair:
    def test_a_torn_last_line_is_cut_on_open(self, tmp_path: Path) -> None:
        """Garbage without a newline at the end of the newest segment is removed and counted."""
        with FileStorage(tmp_path) as storage:
            storage.store(TelemetryData(events=[event(1), event(2), event(3)]))
        [path] = segments(tmp_path)
        whole = path.read_bytes()
        torn = b'{"source":"svc","message":"half a rec'
        with path.open("ab") as f:
            f.write(torn)
        with FileStorage(tmp_path) as storage:
            assert storage.stats()["repaired_bytes"] == len(torn)
            assert path.read_bytes() == whole
            assert seqs(storage) == [1, 2, 3]
            storage.store(TelemetryData(events=[event(4)]))
            assert seqs(storage) == [1, 2, 3, 4]
            assert storage.stats()["corrupt_lines"] == 0

    def test_only_the_newest_segment_of_each_kind_is_repaired(self, tmp_path: Path) -> None:
        """With several segments, the torn tail of the newest one is cut; older ones are intact."""
        with FileStorage(tmp_path, max_segment_bytes=1024) as storage:
            for i in range(30):
                storage.store(TelemetryData(events=[event(i, "m" * 60)], metrics=[point(i)]))
        newest_metrics = segments(tmp_path, "metrics")[-1]
        with newest_metrics.open("ab") as f:
            f.write(b'{"name":"rt","val')
        with FileStorage(tmp_path) as storage:
            assert storage.stats()["repaired_bytes"] == len(b'{"name":"rt","val')
            assert seqs(storage) == list(range(30))
            assert len(storage.query_metrics("rt")) == 30

    def test_a_segment_of_only_garbage_is_emptied(self, tmp_path: Path) -> None:
        """A newest segment holding a single torn line is cut to nothing."""
        tmp_path.joinpath("events-00000001.jsonl").write_bytes(b'{"source":"s')
        with FileStorage(tmp_path) as storage:
            assert storage.stats()["repaired_bytes"] == 12
            assert storage.query_events() == []
            storage.store(TelemetryData(events=[event(1)]))
            assert seqs(storage) == [1]

    def test_a_corrupt_middle_line_is_skipped_and_counted_once(self, tmp_path: Path) -> None:
        """Lines that do not decode are skipped, the others returned, each bad line counted once."""
        with FileStorage(tmp_path) as storage:
            storage.store(TelemetryData(events=[event(1), event(2), event(3)]))
        [path] = segments(tmp_path)
        first, *rest = path.read_bytes().splitlines(keepends=True)
        path.write_bytes(b"".join([first, b"{not json at all\n", b'{"valid":"json"}\n', *rest]))
        with FileStorage(tmp_path) as storage:
            assert storage.stats()["repaired_bytes"] == 0
            assert seqs(storage) == [1, 2, 3]
            assert storage.stats()["corrupt_lines"] == 2
            assert len(storage.query_events(source="svc")) == 3
            assert storage.count_events(group_by=())[0].count == 3
            assert storage.stats()["corrupt_lines"] == 2
            # Retention rewrites the segment with the good records only.
            assert storage.delete_before(T0 + 2 * SECOND) == 1
            assert seqs(storage) == [2, 3]
            assert storage.stats()["corrupt_lines"] == 0


class TestOptions:
    @pytest.mark.parametrize("policy", ["always", "interval", "never"])
    def test_every_fsync_policy_stores_and_reads(self, tmp_path: Path, policy: Any) -> None:
        """Each fsync policy stores records that a reopened storage reads back."""
        with FileStorage(tmp_path, fsync=policy, fsync_interval=0.5) as storage:
            for i in range(5):
                storage.store(TelemetryData(events=[event(i)]))
            assert storage.fsync == policy
        with FileStorage(tmp_path) as storage:
            assert seqs(storage) == [0, 1, 2, 3, 4]

    @pytest.mark.parametrize(
        ("options", "argument"),
        [
            ({"fsync": "sometimes"}, "fsync"),
            ({"fsync": True}, "fsync"),
            ({"fsync_interval": -1.0}, "fsync_interval"),
            ({"fsync_interval": float("nan")}, "fsync_interval"),
            ({"fsync_interval": "1"}, "fsync_interval"),
            ({"max_segment_bytes": 100}, "max_segment_bytes"),
            ({"max_segment_bytes": 4096.0}, "max_segment_bytes"),
        ],
    )
    def test_bad_options_raise_naming_them(
        self, tmp_path: Path, options: dict[str, Any], argument: str
    ) -> None:
        """An invalid option raises ValidationError naming the option, and creates nothing."""
        with pytest.raises(ValidationError, match=rf"^{argument}="):
            FileStorage(tmp_path / "store", **options)
        assert not (tmp_path / "store").exists()

    def test_a_path_that_is_a_file_raises_storage_error(self, tmp_path: Path) -> None:
        """A path that exists as a regular file cannot be a storage directory."""
        occupied = tmp_path / "occupied"
        occupied.write_text("x")
        with pytest.raises(StorageError, match="occupied"):
            FileStorage(occupied)


class TestClosed:
    def test_store_after_close_raises(self, tmp_path: Path) -> None:
        """Storing into a closed storage raises StorageError and writes nothing."""
        storage = FileStorage(tmp_path)
        storage.store(TelemetryData(events=[event(1)]))
        storage.close()
        with pytest.raises(StorageError, match="closed"):
            storage.store(TelemetryData(events=[event(2)]))
        with pytest.raises(StorageError, match="closed"):
            storage.delete_before(T0 + 10 * SECOND)
        assert seqs(storage) == [1]
        storage.close()


WRITER_UNDER_SIZE_LIMIT = """
    import os, resource, signal, sys
    from telemetry import Event, EventType, Metric, StorageError, TelemetryData
    from telemetry.storage import FileStorage

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
    directory = sys.argv[1]
    def ev(seq, size=10):
        return Event(source="svc", message="m" * size, event_type=EventType.INFO,
                     metadata={"seq": seq}, time_ns=seq, id=f"{seq:016x}")
    def pt(seq, size=10):
        return Metric(name="rt", value=1.0, unit="x" * size, tags={}, time_ns=seq,
                      id=f"{seq:016x}")
    storage = FileStorage(directory)
    storage.store(TelemetryData(events=[ev(0), ev(1)], metrics=[pt(0)]))
    events = os.path.join(directory, "events-00000001.jsonl")
    metrics = os.path.join(directory, "metrics-00000001.jsonl")
    size = max(os.path.getsize(events), os.path.getsize(metrics))
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 2000, hard))
    # The events fit; the metrics cross the limit part-way through the write.
    try:
        storage.store(TelemetryData(events=[ev(2)], metrics=[pt(s, 500) for s in range(1, 20)]))
        print("stored")
    except StorageError as exc:
        print("StorageError", exc)
    print(storage.stats()["write_errors"])
    storage.store(TelemetryData(events=[ev(3)]))  # a batch that fits still works
    storage.close()
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
class TestFailedWrite:
    def test_a_failed_write_raises_and_leaves_whole_lines(self, tmp_path: Path) -> None:
        """A write cut short by the file-size limit raises StorageError and keeps none of it."""
        result = run_python(WRITER_UNDER_SIZE_LIMIT, str(tmp_path))
        assert result.returncode == 0, result.stderr
        first, second = result.stdout.splitlines()
        assert first.startswith("StorageError")
        assert "metrics-00000001.jsonl" in first
        assert second == "1"
        for path in segments(tmp_path, "events") + segments(tmp_path, "metrics"):
            assert path.read_bytes().endswith(b"\n")
        with FileStorage(tmp_path) as storage:
            assert storage.stats()["repaired_bytes"] == 0
            assert storage.stats()["corrupt_lines"] == 0
            # The failed batch left nothing, its events included; the next batch is there.
            assert seqs(storage) == [0, 1, 3]
            assert [p.time_ns for p in storage.query_metrics("rt")] == [0]


class TestSecondOpener:
    def test_a_second_opener_reads_without_repairing(self, tmp_path: Path) -> None:
        """While a writer has the directory open, another opener reads and never cuts its tail."""
        writer = FileStorage(tmp_path)
        try:
            writer.store(TelemetryData(events=[event(1), event(2)]))
            [path] = segments(tmp_path)
            # Half a line, as a reader sees a write in progress.
            in_flight = b'{"source":"svc","message":"event 3"'
            with path.open("ab") as f:
                f.write(in_flight)
            size = path.stat().st_size
            with FileStorage(tmp_path) as reader:
                assert reader.stats()["repaired_bytes"] == 0
                assert path.stat().st_size == size
                assert seqs(reader) == [1, 2]
                assert reader.stats()["corrupt_lines"] == 0
                with pytest.raises(StorageError, match="another"):
                    reader.store(TelemetryData(events=[event(9)]))
                with pytest.raises(StorageError, match="another"):
                    reader.delete_before(T0 + 10 * SECOND)
        finally:
            writer.close()

    def test_a_reader_may_write_once_the_writer_closes(self, tmp_path: Path) -> None:
        """Once the writer closes, the other opener takes writing over, repairing the tail first."""
        writer = FileStorage(tmp_path)
        writer.store(TelemetryData(events=[event(1)]))
        with FileStorage(tmp_path) as second:
            [path] = segments(tmp_path)
            with path.open("ab") as f:
                f.write(b'{"torn')
            writer.close()
            second.store(TelemetryData(events=[event(2)]))
            assert second.stats()["repaired_bytes"] == 6
            assert seqs(second) == [1, 2]
            assert second.stats()["corrupt_lines"] == 0

    def test_an_opener_that_only_reads_does_not_hold_the_lock(self, tmp_path: Path) -> None:
        """A storage that never writes leaves the directory free for a writer opened later."""
        with FileStorage(tmp_path) as reader, FileStorage(tmp_path) as writer:
            assert reader.query_events() == []
            writer.store(TelemetryData(events=[event(1)]))
            assert seqs(reader) == [1]
            assert writer.stats()["writer"] is True
            assert reader.stats()["writer"] is False


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is not available on this platform")
class TestFork:
    def test_parent_and_forked_child_append_to_one_storage(self, tmp_path: Path) -> None:
        """A forked child writes through the inherited storage; the parent keeps writing too."""
        storage = FileStorage(tmp_path)
        storage.store(TelemetryData(events=[event(1)]))
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                storage.store(TelemetryData(events=[event(2, "x" * 200)]))
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        storage.store(TelemetryData(events=[event(3)]))
        assert seqs(storage) == [1, 2, 3]
        storage.close()
        with FileStorage(tmp_path) as reopened:
            assert seqs(reopened) == [1, 2, 3]
            assert reopened.stats()["repaired_bytes"] == 0


WRITER_PROCESS = """
    import sys
    from telemetry import Event, EventType, TelemetryData
    from telemetry.storage import FileStorage

    directory, batches, per_batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    storage = FileStorage(directory, fsync="never", max_segment_bytes=64 * 1024)
    print("open", flush=True)
    sys.stdin.readline()  # the reader is ready
    seq = 0
    for _ in range(batches):
        batch = []
        for _ in range(per_batch):
            batch.append(Event(source="w", message=f"{seq:06d}" + "x" * 500,
                               event_type=EventType.INFO, metadata={"seq": seq},
                               time_ns=seq, id=f"{seq:016x}"))
            seq += 1
        storage.store(TelemetryData(events=batch))
    storage.close()
"""


class TestConcurrentReader:
    def test_a_reader_process_sees_only_whole_records(self, tmp_path: Path) -> None:
        """A reader polling while another process writes sees a gap-free run of whole records."""
        batches, per_batch = 400, 20
        writer = subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(WRITER_PROCESS),
                *(str(tmp_path), str(batches), str(per_batch)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdin is not None
        assert writer.stdout is not None
        try:
            assert writer.stdout.readline() == "open\n"
            reader = FileStorage(tmp_path)
            writer.stdin.write("go\n")
            writer.stdin.flush()
            reads = 0
            while True:
                done = writer.poll() is not None
                found = reader.query_events(limit=None)
                got = [e.metadata["seq"] for e in reversed(found)]
                assert got == list(range(len(got)))
                assert all(e.message == f"{e.metadata['seq']:06d}" + "x" * 500 for e in found)
                reads += 1
                if done:
                    break
            assert writer.wait(timeout=30) == 0
            assert len(got) == batches * per_batch
            assert reader.stats()["corrupt_lines"] == 0
            assert reads >= 1
            reader.close()
        finally:
            if writer.poll() is None:
                writer.kill()
            writer.wait()
            writer.stdin.close()
            writer.stdout.close()
        assert os.listdir(tmp_path)
