"""A custom storage backend: a ``Storage`` subclass that writes CSV files.

A backend needs only ``store(data)``; the query methods it does not implement
raise ``NotImplementedError`` naming the backend. ``store`` is called by the
collector's one dispatch thread, one batch at a time, and a batch it fails to
write (by raising) is retried later, so it should raise rather than half-write.

Run it with ``.venv/bin/python examples/custom_storage.py``; it writes into a
temporary directory that is removed at the end and prints the same lines on
every run.
"""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path
from typing import Any

from telemetry import EventType, TelemetryCollector, TelemetryConfig, TelemetryData
from telemetry.storage import Storage
from telemetry.streaming import TelemetryStream

EVENT_COLUMNS = ("time_ns", "event_type", "source", "message", "metadata")
METRIC_COLUMNS = ("time_ns", "name", "value", "unit", "tags")


class CsvStorage(Storage):
    """Appends events to ``events.csv`` and metric points to ``metrics.csv`` in a directory."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.batches = 0
        self.rows = 0
        self._files = {
            kind: (directory / f"{kind}.csv").open("a", newline="", encoding="utf-8")
            for kind in ("events", "metrics")
        }
        self._events = csv.writer(self._files["events"])
        self._metrics = csv.writer(self._files["metrics"])
        self._events.writerow(EVENT_COLUMNS)
        self._metrics.writerow(METRIC_COLUMNS)

    def store(self, data: TelemetryData) -> None:
        """Write one batch: one row per record, then flush both files."""
        self._events.writerows(
            (e.time_ns, e.event_type.value, e.source, e.message, json.dumps(e.metadata))
            for e in data.events
        )
        self._metrics.writerows(
            (m.time_ns, m.name, m.value, m.unit, json.dumps(m.tags, sort_keys=True))
            for m in data.metrics
        )
        for f in self._files.values():
            f.flush()
        self.batches += 1
        self.rows += len(data)

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

        # Queries are optional for a custom backend.
        try:
            storage.query_events()
        except NotImplementedError as exc:
            print(f"query_events: {exc}")


if __name__ == "__main__":
    main()
