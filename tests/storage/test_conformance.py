"""Every built-in backend passes the storage conformance suite shipped in the package.

The suite itself is :mod:`telemetry.testing.conformance` (users run it against their
own backends); here each built-in backend gets a subclass. ``TestFileReopened``
closes and reopens the directory after every write, so it proves that what the
file backend answers was read back from disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from telemetry import Bucket, Event, Metric, SeriesInfo, TelemetryData
from telemetry.storage import DatabaseStorage, FileStorage, MemoryStorage, Storage
from telemetry.testing.conformance import StorageConformance


class ReopeningFileStorage(Storage):
    """A ``FileStorage`` closed and reopened after every change: reads come from disk only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.inner = FileStorage(path)

    def _reopen(self) -> None:
        self.inner.close()
        self.inner = FileStorage(self.path)

    def store(self, data: TelemetryData) -> None:
        self.inner.store(data)
        self._reopen()

    def query_events(self, **options: Any) -> list[Event]:
        return self.inner.query_events(**options)

    def query_metrics(self, name: str, **options: Any) -> list[Metric]:
        return self.inner.query_metrics(name, **options)

    def aggregate(self, name: str, **options: Any) -> list[Bucket]:
        return self.inner.aggregate(name, **options)

    def count_events(self, **options: Any) -> list[Bucket]:
        return self.inner.count_events(**options)

    def series(self, name: str | None = None) -> list[SeriesInfo]:
        return self.inner.series(name)

    def delete_before(self, t: Any) -> int:
        removed = self.inner.delete_before(t)
        self._reopen()
        return removed

    def close(self) -> None:
        self.inner.close()


class TestMemory(StorageConformance):
    def make_storage(self, path: Path) -> Storage:
        return MemoryStorage(max_records=None)


class TestFile(StorageConformance):
    def make_storage(self, path: Path) -> Storage:
        return FileStorage(path)


class TestFileReopened(StorageConformance):
    def make_storage(self, path: Path) -> Storage:
        return ReopeningFileStorage(path)


class TestDatabase(StorageConformance):
    def make_storage(self, path: Path) -> Storage:
        return DatabaseStorage(path / "telemetry.db")


class TestDatabaseEventBlocks(StorageConformance):
    """Every event in a compressed block: the suite's small batches exercise the blocks."""

    def make_storage(self, path: Path) -> Storage:
        return DatabaseStorage(path / "telemetry.db", event_block_min=1)


class TestDatabaseEventRowsAndBlocks(StorageConformance):
    """Sources with two events or more in a batch get a block, the others rows: every
    query reads both at once."""

    def make_storage(self, path: Path) -> Storage:
        return DatabaseStorage(path / "telemetry.db", event_block_min=2)
