"""``ServerSettings``: everything ``rimp serve`` configures, validated when built."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from telemetry.config import TelemetryConfig, check_int, check_seconds
from telemetry.errors import ConfigError
from telemetry.protocols.native import Limits
from telemetry.server.auth import Tokens
from telemetry.storage import Storage

if TYPE_CHECKING:  # the bus needs the 'nats' extra: imported only by a node that has one
    from telemetry.bus import BusSettings

__all__ = ["ServerSettings"]


@dataclass(frozen=True)
class ServerSettings:
    """How the server stores, bounds and serves what it takes in.

    Attributes:
        storage: where records go; ``None`` opens the embedded database in ``data_dir``.
        data_dir: the directory of the default database (``telemetry.db``).
        tokens: bearer tokens and their scopes; ``None`` or empty leaves the server open.
        limits: per-request and per-record ingest limits.
        max_pending: records accepted but not yet stored before ingest answers 429.
        max_queue_delay: seconds of storing the accepted records may take, at the storage's
            recent pace, before ingest answers 429 (``None``: only ``max_pending``). Bounds
            how long a new record waits behind the others: what the live feed's latency
            under load is made of.
        ack_timeout: seconds an ingest request waits for its batch to be stored
            before answering 503 (the batch stays queued).
        idempotency_keys: most ``Idempotency-Key`` answers remembered.
        idempotency_bytes: most bytes those answers (and their keys) may take.
        idempotency_ttl: seconds an answer is remembered.
        live_window: recent records kept for ``Last-Event-ID`` resumption.
        live_window_bytes: the most bytes that window holds.
        live_queue: records queued per live client before it is cut off (or sampled).
        live_queue_bytes: bytes queued per live client before it is cut off (or sampled).
        live_stall_timeout: seconds a live reader may take no data before it is dropped
            and its connection closed.
        batch_size: records waiting that make the pipeline write at once.
        flush_interval: seconds between writes when fewer records wait.
        drain_timeout: seconds a shutdown may spend storing what was accepted.
        allowed_hosts: the host names a request's ``Host`` and ``Origin`` may carry
            (see :mod:`telemetry.server.hosts`); ``None`` accepts any.
        statsd_port: a UDP port for StatsD and DogStatsD lines; ``None`` listens on none
            (``0`` takes a free port, for tests).
        statsd_host: the address the StatsD port binds.
        statsd_flush_interval: seconds per StatsD aggregation interval.
        demo: also record synthetic traffic from fake services.
        bus: NATS JetStream settings; set, accepted batches go through the bus and
            ``storage`` is what the node's writers fill and its queries read
            (``docs/scaling.md``).
        role: with a bus, ``all`` (accept and store), ``ingest`` (accept only) or
            ``writer`` (store only; ingest answers 503).
        bus_writers: writer tasks on this node (roles ``all`` and ``writer``).
        rules: alerting rule files (``docs/alerting.md``), read at start and on reload.
        alert_webhooks: webhook URLs that get every alert (Alertmanager's JSON).
        alertmanagers: Alertmanager base URLs that get every alert (``/api/v2/alerts``).
        alert_state: the file alert states, notifications and silences survive restarts
            in; ``None``: ``alerts.db`` in ``data_dir`` when there are rules.
        external_url: the URL users reach this server at, for links in notifications.

    Raises:
        telemetry.ConfigError: a value breaks its rule, naming the field.
    """

    storage: Storage | None = None
    data_dir: str = "rimp-data"
    tokens: Tokens | None = None
    limits: Limits = field(default_factory=Limits)
    max_pending: int = 100_000
    max_queue_delay: float | None = None
    ack_timeout: float = 30.0
    idempotency_keys: int = 100_000
    idempotency_bytes: int = 32 * 2**20
    idempotency_ttl: float = 24 * 3600.0
    live_window: int = 10_000
    live_window_bytes: int = 64 * 2**20
    live_queue: int = 10_000
    live_queue_bytes: int = 16 * 2**20
    live_stall_timeout: float = 30.0
    batch_size: int = 10_000
    flush_interval: float = 1.0
    drain_timeout: float = 30.0
    allowed_hosts: frozenset[str] | None = None
    statsd_port: int | None = None
    statsd_host: str = "127.0.0.1"
    statsd_flush_interval: float = 10.0
    demo: bool = False
    bus: BusSettings | None = None
    role: str = "all"
    bus_writers: int = 1
    rules: tuple[str, ...] = ()
    alert_webhooks: tuple[str, ...] = ()
    alertmanagers: tuple[str, ...] = ()
    alert_state: str | None = None
    external_url: str = ""

    def __post_init__(self) -> None:
        for name in (
            "max_pending",
            "idempotency_keys",
            "idempotency_bytes",
            "live_window",
            "live_window_bytes",
            "live_queue",
            "live_queue_bytes",
            "batch_size",
        ):
            check_int(name, getattr(self, name), minimum=1)
        for name in (
            "ack_timeout",
            "flush_interval",
            "drain_timeout",
            "idempotency_ttl",
            "live_stall_timeout",
            "statsd_flush_interval",
        ):
            check_seconds(name, getattr(self, name), positive=True)

        if self.statsd_port is not None:
            check_int("statsd_port", self.statsd_port, minimum=0)
        if self.max_queue_delay is not None:
            check_seconds("max_queue_delay", self.max_queue_delay, positive=True)
        check_int("bus_writers", self.bus_writers, minimum=1)
        for name in ("alert_webhooks", "alertmanagers"):
            for url in getattr(self, name):
                if not url.startswith(("http://", "https://")):
                    raise ConfigError(f"{name}: {url!r} is not an http(s) URL", field=name)
        if self.role not in ("all", "ingest", "writer"):
            raise ConfigError(
                f"role={self.role!r}: must be one of all, ingest, writer", field="role"
            )
        if self.role != "all" and self.bus is None:
            raise ConfigError(f"role={self.role!r}: needs a bus", field="role")

    def collector_config(self) -> TelemetryConfig:
        """The configuration of the collector the server runs.

        Realtime, so records reach live clients as soon as they are stored; its
        buffer holds at least ``max_pending`` records, since the ingest doors
        bound what is pending before anything reaches the buffer.
        """
        capacity = max(self.max_pending, self.batch_size)
        return TelemetryConfig(
            realtime_mode=True,
            flush_interval=self.flush_interval,
            buffer_size=self.batch_size,
            buffer_capacity=capacity,
            shutdown_timeout=self.drain_timeout,
        )
