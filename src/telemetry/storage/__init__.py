"""Storage backends: one protocol (:class:`Storage`), several implementations.

``MemoryStorage`` (bounded, in-process), ``FileStorage`` (JSON Lines segments),
``DatabaseStorage`` (the embedded time-series database on one SQLite file) and
``PostgresStorage`` (a PostgreSQL server, for many writers; needs ``rimp[postgres]``
and is imported only when first used); ``ScanningStorage`` is the base for a backend
of your own that wants every query.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from telemetry.storage.base import AGGREGATES, Storage, TimeArg
from telemetry.storage.database import DatabaseStorage
from telemetry.storage.file import FileStorage
from telemetry.storage.memory import MemoryStorage
from telemetry.storage.scanning import ScanningStorage

if TYPE_CHECKING:
    from telemetry.storage.postgres import PostgresStorage

__all__ = [
    "AGGREGATES",
    "DatabaseStorage",
    "FileStorage",
    "MemoryStorage",
    "PostgresStorage",
    "ScanningStorage",
    "Storage",
    "TimeArg",
]


def __getattr__(name: str) -> Any:
    # psycopg is an optional extra: loaded when PostgresStorage is asked for, not before.
    if name == "PostgresStorage":
        from telemetry.storage.postgres import PostgresStorage

        return PostgresStorage
    raise AttributeError(f"module 'telemetry.storage' has no attribute {name!r}")
