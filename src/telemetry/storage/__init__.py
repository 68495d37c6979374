"""Storage backends: one protocol (:class:`Storage`), several implementations.

``MemoryStorage`` (bounded, in-process), ``FileStorage`` (JSON Lines segments)
and ``DatabaseStorage`` (the embedded database; arrives in a later release).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from telemetry.errors import StorageError
from telemetry.storage.base import AGGREGATES, Storage, TimeArg
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


class DatabaseStorage(Storage):
    """The embedded database backend (SQLite). Not built yet: constructing it raises.

    Raises:
        StorageError: always, naming the backends that exist today.
    """

    def __init__(self, path_or_url: str | os.PathLike[str], **_options: Any) -> None:
        raise StorageError(
            f"DatabaseStorage({str(path_or_url)!r}): the embedded database backend is not "
            "available in this release; use storage_backend='memory' or 'file'"
        )


def storage_from_config(config: TelemetryConfig) -> Storage:
    """Build the ``Storage`` that ``config.storage_backend`` names (or return the instance)."""
    backend = config.storage_backend
    if isinstance(backend, Storage):
        return backend
    if backend == "memory":
        return MemoryStorage()
    if backend == "file":
        return FileStorage(config.resolved_storage_path())
    return DatabaseStorage(config.resolved_storage_path())
