"""The sink a collector writes to, built from its configuration.

It sits above both the storage backends and the exporters, so that neither
package imports the other: ``endpoint`` set means an
:class:`~telemetry.exporters.HTTPExporter`, otherwise ``storage_backend`` names
a backend (or is one); a ``postgresql://`` ``storage_path`` means PostgreSQL.
"""

from __future__ import annotations

from telemetry.config import POSTGRES_SCHEMES, TelemetryConfig
from telemetry.errors import StorageError
from telemetry.storage import DatabaseStorage, FileStorage, MemoryStorage, Storage

__all__ = ["sink_from_config"]


def sink_from_config(config: TelemetryConfig) -> Storage:
    """Build the ``Storage`` that ``config.storage_backend`` names (or return the instance).

    Raises:
        StorageError: the backend cannot be opened (a PostgreSQL server that does not
            answer, a schema newer than this RIMP).
    """
    if config.endpoint is not None and config.endpoint.startswith("nats://"):
        try:
            from telemetry.exporters.bus import BusExporter
        except ImportError as exc:  # the 'nats' extra is missing
            raise StorageError(f"endpoint={config.endpoint!r}: {exc}") from None
        return BusExporter(
            config.endpoint, spool_dir=config.spool_dir, close_timeout=config.shutdown_timeout
        )
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
    url = str(config.storage_path or "")
    if url.startswith(POSTGRES_SCHEMES):  # checked by the config: backend "database"
        from telemetry.storage.postgres import PostgresStorage

        return PostgresStorage(url, retention=config.retention)
    return DatabaseStorage(
        config.resolved_storage_path(),
        retention=config.retention,
        raw_retention=config.raw_retention,
    )
