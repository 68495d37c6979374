"""Configuration of a collector: the seed's fields plus what a real system needs.

``TelemetryConfig(...)`` validates every field when it is built and raises
:class:`~telemetry.errors.ConfigError` naming the field, the value and the rule.
``TelemetryConfig.from_env()`` reads the same fields from ``RIMP_*`` variables.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from telemetry.errors import ConfigError

if TYPE_CHECKING:
    from telemetry.storage.base import Storage

__all__ = ["OVERFLOW_POLICIES", "STORAGE_BACKENDS", "TelemetryConfig"]

OverflowPolicy = Literal["block", "drop_newest", "drop_oldest"]
OVERFLOW_POLICIES: tuple[str, ...] = ("block", "drop_newest", "drop_oldest")
STORAGE_BACKENDS: tuple[str, ...] = ("memory", "file", "database")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
"""``storage_path`` URLs that select ``PostgresStorage`` (with ``storage_backend="database"``)."""
DEFAULT_CAPACITY = 100_000


@dataclass(frozen=True)
class TelemetryConfig:
    """How a :class:`~telemetry.collector.TelemetryCollector` buffers and delivers records.

    Validated when built and immutable after (``dataclasses.replace`` makes a
    changed copy, validated again).

    Example::

        config = TelemetryConfig(enabled=True, buffer_size=100, flush_interval=5.0,
                                 realtime_mode=True, storage_backend="memory")

    Attributes:
        enabled: when False every ``collect_*`` call returns ``None`` at once.
        buffer_size: records waiting that trigger an early flush.
        flush_interval: seconds between flushes.
        realtime_mode: a stream delivers as soon as records arrive, not per interval.
        storage_backend: ``"memory"``, ``"file"``, ``"database"`` or a ``Storage`` instance.
        storage_path: directory for ``"file"``; for ``"database"`` a SQLite file path, or a
            ``postgresql://`` URL for :class:`~telemetry.storage.PostgresStorage`.
        buffer_capacity: most records held before ``overflow_policy`` applies;
            left at its default (100,000) it grows to a larger ``buffer_size``.
        overflow_policy: ``"block"`` (wait up to ``block_timeout``, then drop the
            new record), ``"drop_newest"`` or ``"drop_oldest"``.
        block_timeout: seconds a ``"block"`` caller waits for room.
        max_tag_sets: distinct tag sets kept per metric name; points beyond go to
            one overflow series tagged ``{"rimp_overflow": "true"}`` and are counted.
        max_metric_names: distinct metric names kept; points of further names
            go to the metric ``rimp_overflow`` (tagged ``{"rimp_overflow": "true"}``)
            and are counted.
        max_metadata_keys: most keys in one event's metadata.
        max_message_length: most characters in one event's message.
        shutdown_timeout: seconds ``close()`` and the exit flush may take.
        retention: with ``storage_backend="database"``, drop records older than
            this (``"30d"``, ``"12h"``, seconds); None keeps everything.
        raw_retention: with ``"database"``, drop raw points older than this but
            keep per-minute rollups until ``retention``.
        endpoint: a RIMP server URL (``http://host:8787``); when set, batches are
            shipped there by an :class:`~telemetry.exporters.HTTPExporter`
            instead of going to ``storage_backend``. A ``nats://host:4222`` URL
            publishes them straight to the RIMP bus (stream ``RIMP``) with a
            :class:`~telemetry.exporters.bus.BusExporter` (the ``nats`` extra).
        token: bearer token (``ingest`` scope) for ``endpoint``.
        spool_dir: where the exporter keeps batches the server has not yet
            acknowledged (default: a per-user cache directory).
        service_name: what this program is called in its telemetry: the ``service.name``
            tag of runtime and HTTP metrics, the source of captured exceptions; ``None``:
            ``OTEL_SERVICE_NAME``, else the program's file name.
        runtime_metrics: also record process and runtime metrics (CPU, memory, file
            descriptors, threads, garbage collection, event-loop lag) every flush interval.
        capture_exceptions: record uncaught exceptions (main thread, other threads, the
            event loops the integrations see) as ``critical`` events with their traceback,
            and flush before the process dies of one.
    """

    enabled: bool = True
    buffer_size: int = 100
    flush_interval: float = 5.0
    realtime_mode: bool = False
    storage_backend: str | Storage = "memory"
    storage_path: str | os.PathLike[str] | None = None
    buffer_capacity: int = DEFAULT_CAPACITY
    overflow_policy: OverflowPolicy = "drop_oldest"
    block_timeout: float = 1.0
    max_tag_sets: int = 2000
    max_metric_names: int = 10_000
    max_metadata_keys: int = 64
    max_message_length: int = 65_536
    shutdown_timeout: float = 5.0
    retention: str | float | None = None
    raw_retention: str | float | None = None
    endpoint: str | None = None
    token: str | None = None
    spool_dir: str | os.PathLike[str] | None = None
    service_name: str | None = None
    runtime_metrics: bool = False
    capture_exceptions: bool = False

    def __post_init__(self) -> None:
        size = self.buffer_size
        if self.buffer_capacity == DEFAULT_CAPACITY and isinstance(size, int) and size > 0:
            # Not given (or given as the default): make room for the buffer_size asked for.
            object.__setattr__(self, "buffer_capacity", max(DEFAULT_CAPACITY, size))
        self.validate()

    def validate(self) -> None:
        """Check every field; raise :class:`ConfigError` naming the first bad one."""
        check_bool("enabled", self.enabled)
        check_bool("realtime_mode", self.realtime_mode)
        check_bool("runtime_metrics", self.runtime_metrics)
        check_bool("capture_exceptions", self.capture_exceptions)
        if self.service_name is not None and (
            not isinstance(self.service_name, str) or not self.service_name.strip()
        ):
            raise ConfigError(
                f"service_name={self.service_name!r}: must be a non-empty string or None",
                field="service_name",
            )
        check_int("buffer_size", self.buffer_size, minimum=1)
        check_int("buffer_capacity", self.buffer_capacity, minimum=1)
        if self.buffer_size > self.buffer_capacity:
            raise ConfigError(
                f"buffer_size={self.buffer_size}: must not exceed "
                f"buffer_capacity={self.buffer_capacity}",
                field="buffer_size",
            )
        check_seconds("flush_interval", self.flush_interval, positive=True)
        check_seconds("block_timeout", self.block_timeout, positive=False)
        check_seconds("shutdown_timeout", self.shutdown_timeout, positive=False)
        check_int("max_tag_sets", self.max_tag_sets, minimum=1)
        check_int("max_metric_names", self.max_metric_names, minimum=1)
        check_int("max_metadata_keys", self.max_metadata_keys, minimum=0)
        check_int("max_message_length", self.max_message_length, minimum=1)
        if self.overflow_policy not in OVERFLOW_POLICIES:
            raise ConfigError(
                f"overflow_policy={self.overflow_policy!r}: must be one of "
                + ", ".join(repr(p) for p in OVERFLOW_POLICIES),
                field="overflow_policy",
            )
        backend = self.storage_backend
        if isinstance(backend, str):
            if backend not in STORAGE_BACKENDS:
                raise ConfigError(
                    f"storage_backend={backend!r}: must be one of "
                    + ", ".join(repr(b) for b in STORAGE_BACKENDS)
                    + " or a Storage instance",
                    field="storage_backend",
                )
        else:
            from telemetry.storage.base import Storage

            if not isinstance(backend, Storage):
                raise ConfigError(
                    f"storage_backend={backend!r}: must be a backend name or a Storage instance",
                    field="storage_backend",
                )
        from telemetry.errors import ValidationError
        from telemetry.models import duration_ns

        durations = {}
        for name in ("retention", "raw_retention"):
            value = getattr(self, name)
            if value is not None:
                try:
                    durations[name] = duration_ns(value, name)
                except ValidationError as exc:
                    raise ConfigError(str(exc), field=name) from None
        if len(durations) == 2 and durations["raw_retention"] > durations["retention"]:
            raise ConfigError(
                f"raw_retention={self.raw_retention!r}: must not exceed "
                f"retention={self.retention!r}",
                field="raw_retention",
            )
        if self.endpoint is not None:
            from urllib.parse import urlsplit

            url = urlsplit(self.endpoint) if isinstance(self.endpoint, str) else None
            if url is None or url.scheme not in ("http", "https", "nats") or not url.hostname:
                raise ConfigError(
                    f"endpoint={self.endpoint!r}: must be an http://, https:// or nats:// URL",
                    field="endpoint",
                )
            if url.scheme == "nats" and self.token is not None:
                raise ConfigError(
                    "token: a nats:// endpoint takes no token (put credentials in the URL)",
                    field="token",
                )
        if self.token is not None and (not isinstance(self.token, str) or not self.token):
            raise ConfigError(
                f"token={self.token!r}: must be a non-empty string or None", field="token"
            )
        if self.spool_dir is not None and not isinstance(self.spool_dir, str | os.PathLike):
            raise ConfigError(
                f"spool_dir={self.spool_dir!r}: must be a path or None", field="spool_dir"
            )
        path = self.storage_path
        if path is not None and not isinstance(path, str | os.PathLike):
            raise ConfigError(
                f"storage_path={path!r}: must be a path (str or os.PathLike) or None",
                field="storage_path",
            )
        if path is not None and str(path) == "":
            raise ConfigError(
                "storage_path='': must not be empty (use None for the default)",
                field="storage_path",
            )
        if path is not None and "://" in str(path):
            if not str(path).startswith(POSTGRES_SCHEMES):
                raise ConfigError(
                    f"storage_path={str(path)!r}: the only database URLs are postgresql://...",
                    field="storage_path",
                )
            if self.storage_backend != "database":
                raise ConfigError(
                    f"storage_path={str(path)!r}: a PostgreSQL URL needs "
                    f"storage_backend='database', not {self.storage_backend!r}",
                    field="storage_path",
                )
            if self.raw_retention is not None:
                raise ConfigError(
                    "raw_retention: PostgreSQL keeps no separate raw points; use retention",
                    field="raw_retention",
                )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> TelemetryConfig:
        """Build a config from ``RIMP_<FIELD>`` variables (e.g. ``RIMP_BUFFER_SIZE=500``).

        Keyword ``overrides`` win over the environment. Booleans accept
        ``1/0, true/false, yes/no, on/off``.

        Raises:
            ConfigError: a variable does not parse, naming the variable.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            if not f.init:
                continue
            var = "RIMP_" + f.name.upper()
            if var in env:
                values[f.name] = _parse_env(var, f.name, env[var])
        from_env = {name for name in values if name not in overrides}
        values.update(overrides)
        try:
            return cls(**values)
        except ConfigError as exc:
            if exc.field in from_env:  # name the variable the user actually set
                var = f"RIMP_{exc.field.upper()}"
                raise ConfigError(f"{var}: {exc}", field=var) from None
            raise

    def resolved_service_name(self) -> str:
        """``service_name``, else ``OTEL_SERVICE_NAME``, else the program's file name
        without its extension (``python`` when there is none)."""
        if self.service_name:
            return self.service_name
        env = os.environ.get("OTEL_SERVICE_NAME", "").strip()
        if env:
            return env
        import sys

        program = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else ""
        return program if program and program not in ("-c", "-m", "__main__") else "python"

    def resolved_storage_path(self) -> Path:
        """The storage path, or the default for the chosen backend (``./rimp-data``)."""
        if self.storage_path is not None:
            return Path(self.storage_path)
        if self.storage_backend == "database":
            return Path("rimp-data") / "telemetry.db"
        return Path("rimp-data")


_INT_FIELDS = {
    "buffer_size",
    "buffer_capacity",
    "max_tag_sets",
    "max_metric_names",
    "max_metadata_keys",
    "max_message_length",
}
_FLOAT_FIELDS = {"flush_interval", "block_timeout", "shutdown_timeout"}
_BOOL_FIELDS = {"enabled", "realtime_mode", "runtime_metrics", "capture_exceptions"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse_env(var: str, name: str, raw: str) -> Any:
    text = raw.strip()
    if name in _BOOL_FIELDS:
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ConfigError(
            f"{var}={raw!r}: must be one of 1/0, true/false, yes/no, on/off", field=var
        )
    if name in _INT_FIELDS:
        try:
            return int(text.replace("_", ""))
        except ValueError:
            raise ConfigError(f"{var}={raw!r}: must be an integer", field=var) from None
    if name in _FLOAT_FIELDS:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{var}={raw!r}: must be a number of seconds", field=var) from None
    if name in ("storage_path", "retention", "raw_retention", "endpoint", "token", "spool_dir",
                "service_name"):  # fmt: skip
        return text or None
    return text


# The checks below are shared by every configuration object (TelemetryConfig,
# ServerSettings, Limits) so that one rule reads the same wherever it applies.


def check_bool(name: str, value: object) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a bool."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name}={value!r}: must be True or False", field=name)


def check_int(name: str, value: object, *, minimum: int) -> None:
    """Raise :class:`ConfigError` unless ``value`` is an int (not a bool), at least ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{name}={value!r}: must be an integer", field=name)
    if value < minimum:
        raise ConfigError(f"{name}={value!r}: must be at least {minimum}", field=name)


def check_seconds(name: str, value: object, *, positive: bool) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a finite, non-negative number of seconds
    (above 0 when ``positive``)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ConfigError(f"{name}={value!r}: must be a number of seconds", field=name)
    if not math.isfinite(value):
        raise ConfigError(f"{name}={value!r}: must be finite", field=name)
    if positive and value <= 0:
        raise ConfigError(f"{name}={value!r}: must be greater than 0", field=name)
    if value < 0:
        raise ConfigError(f"{name}={value!r}: must not be negative", field=name)
