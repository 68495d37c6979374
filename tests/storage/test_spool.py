"""Tests of the exporter's on-disk spool: order, acknowledgement, repair, bound, ownership."""

from __future__ import annotations

from pathlib import Path

import pytest

from telemetry import StorageError
from telemetry.exporters.spool import Spool


class TestSpool:
    def test_records_come_out_in_order_and_leave_when_acknowledged(self, tmp_path: Path) -> None:
        """peek gives the oldest record; acknowledge moves on; pending counts what is left."""
        spool = Spool(tmp_path)
        for i in range(3):
            spool.append(b"record %d" % i)
        assert spool.pending() == 3
        seen = []
        while (item := spool.peek()) is not None:
            seen.append(item[0])
            spool.acknowledge(item[1])
        assert seen == [b"record 0", b"record 1", b"record 2"]
        assert spool.pending() == 0
        spool.close()

    def test_unacknowledged_records_survive_reopening(self, tmp_path: Path) -> None:
        """A reopened spool resumes after the last acknowledged record."""
        spool = Spool(tmp_path)
        for i in range(4):
            spool.append(b"r%d" % i)
        item = spool.peek()
        assert item is not None
        spool.acknowledge(item[1])
        spool.close()
        again = Spool(tmp_path)
        assert again.pending() == 3
        item = again.peek()
        assert item is not None
        assert item[0] == b"r1"
        again.close()

    def test_a_torn_or_corrupt_tail_is_cut_on_open(self, tmp_path: Path) -> None:
        """A half-written record and a record failing its checksum are removed; others stay."""
        spool = Spool(tmp_path)
        spool.append(b"good one")
        spool.append(b"good two")
        spool.close()
        segment = next(tmp_path.glob("spool-*.log"))
        data = segment.read_bytes()
        segment.write_bytes(data[:-3] + b"XYZ")  # corrupt the last record's payload
        with segment.open("ab") as f:
            f.write(b"RSP1\x10\x00")  # and a torn header after it
        again = Spool(tmp_path)
        assert again.repaired_bytes > 0
        assert again.pending() == 1
        item = again.peek()
        assert item is not None
        assert item[0] == b"good one"
        again.append(b"after repair")
        again.acknowledge(item[1])
        item = again.peek()
        assert item is not None
        assert item[0] == b"after repair"
        again.close()

    def test_the_bound_drops_the_oldest_records_and_says_how_many(self, tmp_path: Path) -> None:
        """Past max_bytes, whole old segments go and append reports the records lost."""
        spool = Spool(tmp_path, max_bytes=4_000, segment_bytes=1_000)
        lost = sum(spool.append(bytes(200)) for _ in range(40))
        assert lost > 0
        assert spool.size() <= 4_000
        assert spool.pending() == 40 - lost
        spool.close()

    def test_one_process_owns_a_spool_directory(self, tmp_path: Path) -> None:
        """A second owner of the same directory is refused with a clear error."""
        spool = Spool(tmp_path)
        with pytest.raises(StorageError, match="in use by another process"):
            Spool(tmp_path)
        spool.close()
