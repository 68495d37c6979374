"""A custom storage backend: CSV files, with every query, checked by the conformance suite.

A backend needs only ``store(data)``. This one also lists its records
(``scan_events``, ``scan_points``) and deletes old ones (``delete_before``), so
:class:`~telemetry.storage.ScanningStorage` answers every query for it: filters,
windows, aggregates with percentiles, event counts and series. ``store`` is
called by the collector's one dispatch thread, one batch at a time, and a batch
it fails to write (by raising) is retried later, so it should raise rather than
half-write.

Run it with ``.venv/bin/python examples/custom_storage.py``; it writes into a
temporary directory that is removed at the end and prints the same lines on
every run. Run the storage conformance suite against ``CsvStorage`` (the same
tests every built-in backend passes) with ``.venv/bin/python -m pytest
examples/custom_storage.py``: see ``TestCsvStorage`` at the bottom.
"""

from __future__ import annotations

import csv
import json
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from telemetry import (
    Event,
    EventType,
    Metric,
    TelemetryCollector,
    TelemetryConfig,
    TelemetryData,
)
from telemetry.models import to_ns
from telemetry.storage import ScanningStorage
from telemetry.streaming import TelemetryStream

EVENT_COLUMNS = ("id", "time_ns", "event_type", "source", "message", "metadata")
METRIC_COLUMNS = ("id", "time_ns", "name", "value", "unit", "tags")


class CsvStorage(ScanningStorage):
    """Appends events to ``events.csv`` and metric points to ``metrics.csv`` in a directory."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.batches = 0
        self.rows = 0
        self._paths = {"events": directory / "events.csv", "metrics": directory / "metrics.csv"}
        self._columns = {"events": EVENT_COLUMNS, "metrics": METRIC_COLUMNS}
        self._files: dict[str, Any] = {}
        self._open()

    def _open(self) -> None:
        for kind, path in self._paths.items():
            new = not path.exists() or path.stat().st_size == 0
            self._files[kind] = path.open("a", newline="", encoding="utf-8")
            if new:
                csv.writer(self._files[kind]).writerow(self._columns[kind])

    def store(self, data: TelemetryData) -> None:
        """Write one batch: one row per record, then flush both files."""
        csv.writer(self._files["events"]).writerows(
            (e.id, e.time_ns, e.event_type.value, e.source, e.message, json.dumps(e.metadata))
            for e in data.events
        )
        csv.writer(self._files["metrics"]).writerows(
            (m.id, m.time_ns, m.name, repr(m.value), m.unit, json.dumps(m.tags, sort_keys=True))
            for m in data.metrics
        )
        for f in self._files.values():
            f.flush()
        self.batches += 1
        self.rows += len(data)

    def scan_events(self) -> Iterator[Event]:
        """Every stored event, in the order stored (what ScanningStorage queries)."""
        for row in read_rows(self._paths["events"]):
            yield Event(
                row["source"],
                row["message"],
                EventType(row["event_type"]),
                json.loads(row["metadata"]),
                int(row["time_ns"]),
                row["id"],
            )

    def scan_points(self, name: str | None) -> Iterator[Metric]:
        """The stored points of ``name`` (every metric when None), in the order stored."""
        for row in read_rows(self._paths["metrics"]):
            if name is None or row["name"] == name:
                yield Metric(
                    row["name"],
                    float(row["value"]),
                    row["unit"],
                    json.loads(row["tags"]),
                    int(row["time_ns"]),
                    row["id"],
                )

    def delete_before(self, t: datetime | int) -> int:
        """Rewrite both files without the records older than ``t``; return how many went."""
        cutoff = to_ns(t, "t")
        removed = 0
        for f in self._files.values():
            f.close()
        for kind, path in self._paths.items():
            rows = read_rows(path)
            kept = [r for r in rows if int(r["time_ns"]) >= cutoff]
            removed += len(rows) - len(kept)
            with path.open("w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, self._columns[kind])
                writer.writeheader()
                writer.writerows(kept)
        self._open()
        return removed

    def stats(self) -> dict[str, Any]:
        """Batches and rows written so far."""
        return {"batches": self.batches, "rows": self.rows}

    def close(self) -> None:
        """Close both files. Idempotent."""
        for f in self._files.values():
            f.close()


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "telemetry-csv"

        # 1. A Storage instance in the configuration: the collector flushes into it.
        #    The collector does not close a storage it was given: we do.
        storage = CsvStorage(directory)
        with TelemetryCollector(TelemetryConfig(storage_backend=storage)) as collector:
            for i in range(5):
                collector.collect_event(
                    "importer",
                    f"file {i} imported",
                    EventType.WARNING if i == 3 else EventType.INFO,
                    {"file": f"data-{i}.json", "rows": 100 * i},
                )
                collector.collect_metric("import.rows", 100.0 * i, "rows", {"format": "json"})
        # Leaving the block closed the collector, which flushed into the storage.

        # 2. The same kind of backend behind a stream, next to a consumer.
        seen: list[int] = []
        with (
            TelemetryCollector(TelemetryConfig(realtime_mode=True)) as collector,
            TelemetryStream(collector, storage) as stream,
        ):
            stream.add_consumer(lambda data: seen.append(len(data)))
            for i in range(3):
                collector.collect_metric("export.rows", 10.0 * i, "rows", {"format": "csv"})
        # Leaving the block stopped the stream (everything stored and consumed), then
        # closed the collector.
        storage.close()

        print(f"CsvStorage wrote {storage.rows} rows")
        print(f"the stream's consumer saw {sum(seen)} records")
        events = read_rows(directory / "events.csv")
        metrics = read_rows(directory / "metrics.csv")
        print(f"events.csv: {len(events)} rows, columns {', '.join(EVENT_COLUMNS)}")
        for row in events:
            if row["event_type"] != "info":
                print(f"  {row['event_type']}: {row['source']} {row['message']} {row['metadata']}")
        print(f"metrics.csv: {len(metrics)} rows, columns {', '.join(METRIC_COLUMNS)}")
        for name in ("import.rows", "export.rows"):
            values = [float(r["value"]) for r in metrics if r["name"] == name]
            print(f"  {name}: {len(values)} points, total {sum(values):g}")

        # Every query works, answered by ScanningStorage from the CSV rows.
        warnings = storage.query_events(event_type="warning")
        print(f"query_events(event_type='warning'): {[e.message for e in warnings]}")
        p50 = storage.aggregate("import.rows", agg="p50", bucket=2**31)
        print(f"aggregate p50 of import.rows: {p50[0].value:g}")


if __name__ == "__main__":
    main()


try:  # the conformance suite needs pytest; the example itself does not
    from telemetry.testing.conformance import StorageConformance
except ImportError:  # pragma: no cover
    pass
else:

    class TestCsvStorage(StorageConformance):
        """``pytest examples/custom_storage.py``: every conformance test against CsvStorage."""

        def make_storage(self, path: Path) -> CsvStorage:
            return CsvStorage(path)
