"""Storage backends: one protocol (:class:`Storage`), several implementations.

``MemoryStorage`` (bounded, in-process), ``FileStorage`` (JSON Lines segments)
and ``DatabaseStorage`` (the embedded time-series database on one SQLite file);
``ScanningStorage`` is the base for a backend of your own that wants every query.
"""

from __future__ import annotations

from telemetry.storage.base import AGGREGATES, Storage, TimeArg
from telemetry.storage.database import DatabaseStorage
from telemetry.storage.file import FileStorage
from telemetry.storage.memory import MemoryStorage
from telemetry.storage.scanning import ScanningStorage

__all__ = [
    "AGGREGATES",
    "DatabaseStorage",
    "FileStorage",
    "MemoryStorage",
    "ScanningStorage",
    "Storage",
    "TimeArg",
]
