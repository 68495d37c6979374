"""``rimp db``: inspect, compact and export an embedded database file."""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import msgspec

from telemetry._jsonform import encode as _encode
from telemetry.errors import StorageError, TelemetryError
from telemetry.models import from_ns
from telemetry.storage.database import SCHEMA_VERSION, DatabaseStorage

__all__ = ["DEFAULT_PATH", "db_export", "db_info", "db_vacuum", "run_db"]

DEFAULT_PATH = Path("rimp-data") / "telemetry.db"


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:,.1f} GiB"


def _open(path: Path, *, write: bool = False) -> DatabaseStorage:
    if not path.exists():
        raise StorageError(f"{str(path)!r}: no such database file")
    return DatabaseStorage(path, readonly=not write)


def run_db(args: argparse.Namespace) -> int:
    """Run ``rimp db ACTION`` with the parsed options; return the exit code."""
    path = Path(args.path) if args.path else DEFAULT_PATH
    try:
        if args.db_command == "info":
            return db_info(path, sys.stdout)
        if args.db_command == "vacuum":
            return db_vacuum(path, sys.stdout)
        return db_export(path, kind=args.kind, fmt=args.format, target=args.output)
    except (TelemetryError, OSError) as exc:
        print(f"rimp db {args.db_command}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. piped into head
        return 0


def db_info(path: Path, out: IO[str]) -> int:
    """Print sizes, counts and the time range of the database at ``path``."""
    with _open(path) as storage:
        stats = storage.stats()
        span = storage.time_range()
        per_name: dict[str, int] = {}
        for info in storage.series():
            per_name[info.name] = per_name.get(info.name, 0) + 1
    rows = [
        ("file", str(path.resolve())),
        ("schema version", str(SCHEMA_VERSION)),
        ("size on disk", _human(stats["bytes"])),
        ("series", f"{stats['series']:,} ({len(per_name):,} metric names)"),
        ("metric points", f"{stats['points']:,} in {stats['chunks']:,} chunks"),
        ("events", f"{stats['events']:,}"),
    ]
    if stats["points"]:
        rows.append(("bytes per point", f"{stats['bytes'] / stats['points']:.2f} (whole file)"))
    if span:
        rows.append(("oldest", from_ns(span[0]).isoformat()))
        rows.append(("newest", from_ns(span[1]).isoformat()))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        out.write(f"{key:<{width}}  {value}\n")
    return 0


def db_vacuum(path: Path, out: IO[str]) -> int:
    """Merge small chunks and rebuild the file; print the size before and after."""
    with _open(path, write=True) as storage:
        before = storage.stats()["bytes"]
        storage.vacuum()
        after = storage.stats()["bytes"]
    out.write(f"{path}: {_human(before)} -> {_human(after)}\n")
    return 0


@contextmanager
def _output(target: str) -> Iterator[IO[str]]:
    if target == "-":
        yield sys.stdout
    else:
        with open(target, "w", encoding="utf-8", newline="") as f:
            yield f


def db_export(path: Path, *, kind: str, fmt: str, target: str) -> int:
    """Write every event and/or metric point as JSON Lines or CSV to ``target`` (``-``: stdout)."""
    with _open(path) as storage, _output(target) as out:
        if fmt == "jsonl":
            if kind in ("events", "all"):
                for e in storage.all_events():
                    out.write(_line("event", e, e.timestamp.isoformat()))
            if kind in ("metrics", "all"):
                for m in storage.all_metrics():
                    out.write(_line("metric", m, m.timestamp.isoformat()))
            return 0
        writer = csv.writer(out)
        if kind in ("events", "all"):
            writer.writerow(["kind", "id", "timestamp", "time_ns", "source", "event_type",
                             "message", "metadata"])  # fmt: skip
            for e in storage.all_events():
                meta = _encode(e.metadata).decode()
                writer.writerow(["event", e.id, e.timestamp.isoformat(), e.time_ns, e.source,
                                 e.event_type.value, e.message, meta])  # fmt: skip
        if kind in ("metrics", "all"):
            writer.writerow(["kind", "id", "timestamp", "time_ns", "name", "value", "unit",
                             "tags"])  # fmt: skip
            for m in storage.all_metrics():
                writer.writerow(["metric", m.id, m.timestamp.isoformat(), m.time_ns, m.name,
                                 repr(m.value), m.unit, _encode(m.tags).decode()])  # fmt: skip
    return 0


def _line(kind: str, record: Any, timestamp: str) -> str:
    body = msgspec.to_builtins(record, enc_hook=str)
    body = {"kind": kind, **body, "timestamp": timestamp}
    return _encode(body).decode() + "\n"
