"""``rimp serve``: run the server under uvicorn, refusing unsafe setups."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import sys
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from telemetry.errors import ConfigError, StorageError, TokenError
from telemetry.protocols.native import Limits
from telemetry.server.app import create_app
from telemetry.server.auth import Tokens, is_loopback
from telemetry.server.connections import HEADER_TIMEOUT, MAX_HEADER_BYTES, GuardedHttpProtocol
from telemetry.server.hosts import LOOPBACK_NAMES, host_name
from telemetry.server.settings import ServerSettings
from telemetry.storage import Storage

if TYPE_CHECKING:
    from telemetry.bus import BusSettings

__all__ = ["serve"]


class _Server(uvicorn.Server):
    """uvicorn, with two changes for a clean stop.

    Live feeds never end by themselves, so uvicorn's graceful shutdown would
    wait its whole timeout for them: they are ended first. And uvicorn re-raises
    SIGTERM/SIGINT after shutting down, so the process would end "killed by
    signal"; RIMP has drained everything by then, so it exits 0 instead.
    """

    def __init__(self, config: uvicorn.Config, on_shutdown: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_shutdown = on_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._on_shutdown()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            try:
                yield
            finally:
                captured = getattr(self, "_captured_signals", None)
                if captured is not None:
                    captured.clear()


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8787,
    data_dir: str = "rimp-data",
    storage: str | None = None,
    token_file: str | None = None,
    demo: bool = False,
    limits: Limits | None = None,
    max_pending: int = 100_000,
    max_queue_delay: float | None = None,
    log_level: str = "info",
    allowed_hosts: Sequence[str] = (),
    header_timeout: float = HEADER_TIMEOUT,
    ack_timeout: float = 30.0,
    statsd_port: int | None = None,
    statsd_flush_interval: float = 10.0,
    bus: str | None = None,
    bus_options: Mapping[str, Any] | None = None,
    role: str = "all",
    bus_writers: int = 1,
    rules: Sequence[str] = (),
    alert_webhooks: Sequence[str] = (),
    alertmanagers: Sequence[str] = (),
    alert_state: str | None = None,
    external_url: str = "",
) -> int:
    """Run until SIGTERM/SIGINT, then drain the pipeline into storage; return the exit code.

    Bound to loopback, requests must name ``localhost``, a loopback address, ``host``
    or one of ``allowed_hosts`` in ``Host`` (and in ``Origin``, when a browser sends
    one); bound elsewhere, the same holds once ``allowed_hosts`` is given.

    With ``bus`` (``nats://host:port``), accepted batches go through NATS JetStream
    (``bus_options`` are :class:`~telemetry.bus.BusSettings` fields) and ``storage`` is
    normally a ``postgresql://`` URL shared by every node; the bus and the storage must
    both answer at start, or the exit code is 2 with a message naming which.

    ``rules`` are alerting rule files (``docs/alerting.md``): a file that does not load
    is exit code 2 with promtool's kind of message. ``demo`` without ``rules`` runs the
    demo's own rules.
    """
    try:
        tokens = Tokens.load(token_file, os.environ.get("RIMP_TOKENS"))
    except (TokenError, OSError) as exc:
        print(f"rimp serve: {exc}", file=sys.stderr)
        return 2
    if not tokens.enabled and not is_loopback(host):
        print(
            f"rimp serve: refusing to listen on {host} without tokens: anyone could read and "
            "write your telemetry. Give --token-file or RIMP_TOKENS, or bind to 127.0.0.1.",
            file=sys.stderr,
        )
        return 2
    try:
        bus_settings = _bus(bus, bus_options or {}, role)
    except (ConfigError, BusStartError) as exc:
        print(f"rimp serve: {exc}", file=sys.stderr)
        return 2
    if demo and not rules:
        from telemetry._traffic import DEMO_RULES

        rules = [str(DEMO_RULES)]  # alerts that fire and resolve with the demo's incidents
    if rules or alert_webhooks:
        from telemetry.alerting import RulesError, load_rules

        try:
            ruleset = load_rules(rules, webhooks=alert_webhooks)
        except RulesError as exc:
            print(f"rimp serve: --rules: {exc}", file=sys.stderr)
            return 2
        count = sum(1 for _ in ruleset.rules())
        print(f"RIMP alerting: {count} rules in {len(ruleset.groups)} groups", flush=True)
    try:
        backend = _storage(storage, data_dir)
    except StorageError as exc:
        print(f"rimp serve: {exc}", file=sys.stderr)
        return 2
    try:
        settings = ServerSettings(
            storage=backend,
            data_dir=data_dir,
            tokens=tokens,
            limits=limits or Limits(),
            max_pending=max_pending,
            max_queue_delay=max_queue_delay,
            demo=demo,
            allowed_hosts=_allowed_hosts(host, allowed_hosts),
            ack_timeout=ack_timeout,
            statsd_port=statsd_port,
            statsd_host=host,
            statsd_flush_interval=statsd_flush_interval,
            bus=bus_settings,
            role=role,
            bus_writers=bus_writers,
            rules=tuple(rules),
            alert_webhooks=tuple(alert_webhooks),
            alertmanagers=tuple(alertmanagers),
            alert_state=alert_state,
            external_url=external_url or f"http://{host}:{port}/",
        )
    except ConfigError as exc:
        backend.close()
        print(f"rimp serve: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
        http=GuardedHttpProtocol.with_timeout(header_timeout),
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
    )
    _redact_all_logs()  # after uvicorn.Config: it installs its own handlers
    server = _Server(config, lambda: app.state.rimp.hub.close_all("the server is shutting down"))
    auth = "tokens required" if tokens.enabled else "open (loopback, no tokens)"
    statsd = f", StatsD on udp://{host}:{statsd_port}" if statsd_port is not None else ""
    via = ""
    if bus_settings is not None:
        from telemetry.bus.jetstream import redact_url

        via = f", bus {redact_url(bus_settings.url)} stream {bus_settings.stream} role {role}"
    print(f"RIMP serving http://{host}:{port} - storage {backend}{via}, {auth}{statsd}", flush=True)
    server.run()
    return 0


# A query parameter (its name percent-decoded before comparing) and an Authorization
# header, in whatever form a log line shows them.
_QUERY_PARAM = re.compile(r"([?&])([^=&\s\"']+)=([^&\s\"']*)")
_AUTH_HEADER = re.compile(
    r"(authorization['\"]?\s*[:,]\s*(?-i:b)?['\"]?)[^'\"\s,)]+(\s+[^'\"\s,)]+)?", re.I
)


def redact(text: str) -> str:
    """``text`` without token values: ``?token=`` (however encoded) and Authorization headers."""

    def param(match: re.Match[str]) -> str:
        name = urllib.parse.unquote_plus(match.group(2))
        return f"{match.group(1)}{match.group(2)}=[redacted]" if name == "token" else match.group(0)

    return _AUTH_HEADER.sub(r"\1[redacted]", _QUERY_PARAM.sub(param, text))


class _Redactor(logging.Filter):
    """Formats each record, then takes token values out of it (on every handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = redact(text)
        if clean != text:
            record.msg, record.args = clean, None
        return True


def _redact_all_logs() -> None:
    # On the handlers, not the loggers: a handler's filter sees the records that
    # propagate from every child logger too (uvicorn.protocols..., h11, asyncio).
    redactor = _Redactor()
    for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access"):
        for handler in logging.getLogger(name).handlers:
            handler.addFilter(redactor)


def _allowed_hosts(host: str, extra: Sequence[str]) -> frozenset[str] | None:
    if not extra and not is_loopback(host):
        return None  # reachable under names we cannot know; tokens guard it
    return LOOPBACK_NAMES | {host_name(host), *(host_name(h) for h in extra)}


class BusStartError(Exception):
    """The bus named by ``--bus`` cannot be used: the extra is missing or NATS does not answer."""


def _bus(url: str | None, options: Mapping[str, Any], role: str) -> BusSettings | None:
    """The bus settings, checked against the live server: a node must not start (and
    report healthy) on a bus it cannot reach."""
    if url is None:
        if role != "all":
            raise ConfigError(f"--role {role}: needs --bus", field="role")
        return None
    try:
        from telemetry.bus import BusError, BusSettings
        from telemetry.server.busnode import check_bus
    except ImportError as exc:
        raise BusStartError(f"--bus: {exc}") from None
    settings = BusSettings(url=url, **options)
    try:
        asyncio.run(check_bus(settings))
    except BusError as exc:
        raise BusStartError(f"--bus: {exc}") from None
    return settings


def _storage(url: str | None, data_dir: str) -> Storage:
    from telemetry.config import POSTGRES_SCHEMES
    from telemetry.storage import DatabaseStorage

    if url is not None and url.startswith(POSTGRES_SCHEMES):
        try:
            from telemetry.storage.postgres import PostgresStorage
        except ImportError as exc:
            raise StorageError(f"--storage {url.split('@')[-1]!r}: {exc}") from None
        # Many nodes write one PostgreSQL database: no writer role to claim.
        return PostgresStorage(url)
    if url is None:
        path = str(Path(data_dir) / "telemetry.db")
    elif url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
    elif "://" in url:
        raise StorageError(
            f"--storage {url!r}: give sqlite:///PATH, a file path or postgresql://..."
        )
    else:
        path = url
    storage = DatabaseStorage(path)
    try:
        # Now, not at the first write: a second server on this file must not start,
        # report healthy, and then fail every write.
        storage.claim_writer()
    except StorageError:
        storage.close()
        raise
    return storage
