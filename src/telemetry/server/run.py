"""``rimp serve``: run the server under uvicorn, refusing unsafe setups."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn

from telemetry.errors import StorageError, TokenError
from telemetry.protocols.native import Limits
from telemetry.server.app import create_app
from telemetry.server.auth import Tokens, is_loopback
from telemetry.server.settings import ServerSettings
from telemetry.storage import Storage

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
    log_level: str = "info",
) -> int:
    """Run until SIGTERM/SIGINT, then drain the pipeline into storage; return the exit code."""
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
        backend = _storage(storage, data_dir)
    except StorageError as exc:
        print(f"rimp serve: {exc}", file=sys.stderr)
        return 2
    settings = ServerSettings(
        storage=backend,
        data_dir=data_dir,
        tokens=tokens,
        limits=limits or Limits(),
        max_pending=max_pending,
        demo=demo,
    )
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).addFilter(_redact_tokens)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
    )
    server = _Server(config, lambda: app.state.rimp.hub.close_all("the server is shutting down"))
    auth = "tokens required" if tokens.enabled else "open (loopback, no tokens)"
    print(f"RIMP serving http://{host}:{port} - storage {backend}, {auth}", flush=True)
    server.run()
    return 0


_TOKEN_IN_URL = re.compile(r"([?&]token=)[^&\s\"']+")


def _redact_tokens(record: logging.LogRecord) -> bool:
    """Keep ``?token=`` values out of uvicorn's log lines."""
    if isinstance(record.args, tuple):
        record.args = tuple(
            _TOKEN_IN_URL.sub(r"\1[redacted]", a) if isinstance(a, str) else a for a in record.args
        )
    record.msg = _TOKEN_IN_URL.sub(r"\1[redacted]", str(record.msg))
    return True


def _storage(url: str | None, data_dir: str) -> Storage:
    from telemetry.storage import DatabaseStorage

    if url is None:
        return DatabaseStorage(Path(data_dir) / "telemetry.db")
    if url.startswith("sqlite:///"):
        return DatabaseStorage(url.removeprefix("sqlite:///"))
    if "://" in url:
        raise StorageError(f"--storage {url!r}: only sqlite:///PATH is supported by this release")
    return DatabaseStorage(url)
