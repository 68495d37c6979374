"""Storage backends: one protocol (:class:`Storage`), several implementations.

``MemoryStorage`` (bounded, in-process), ``FileStorage`` (JSON Lines segments)
and ``DatabaseStorage`` (the embedded time-series database on one SQLite file).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from telemetry.errors import StorageError
from telemetry.storage.base import AGGREGATES, Storage, TimeArg
from telemetry.storage.database import DatabaseStorage
from telemetry.storage.file import FileStorage
from telemetry.storage.memory import MemoryStorage

if TYPE_CHECKING:
    from telemetry.config import TelemetryConfig

__all__ = [
    "AGGREGATES",
    "DatabaseStorage",
    "FileStorage",
    "MemoryStorage",
    "Storage",
    "TimeArg",
    "storage_from_config",
]


def storage_from_config(config: TelemetryConfig) -> Storage:
    """Build the ``Storage`` that ``config.storage_backend`` names (or return the instance).

    Raises:
        StorageError: the backend cannot be opened, or ``storage_path`` is a
            database URL this release has no backend for.
    """
    if config.endpoint is not None:
        # Imported only when asked for: the core never loads a network client otherwise.
        from telemetry.exporters.http import HTTPExporter

        return HTTPExporter(
            config.endpoint,
            token=config.token,
            spool_dir=config.spool_dir,
            close_timeout=config.shutdown_timeout,
        )
    backend = config.storage_backend
    if isinstance(backend, Storage):
        return backend
    if backend == "memory":
        return MemoryStorage()
    if backend == "file":
        return FileStorage(config.resolved_storage_path())
    path = config.resolved_storage_path()
    if "://" in str(config.storage_path or ""):
        raise StorageError(
            f"storage_path={str(config.storage_path)!r}: database URLs (PostgreSQL) are not "
            "supported by this release; give a SQLite file path"
        )
    return DatabaseStorage(path, retention=config.retention, raw_retention=config.raw_retention)
