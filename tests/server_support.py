"""A real ``rimp serve`` subprocess for end-to-end tests, and clients for its live feeds."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import httpx
from websockets.sync.client import ClientConnection, connect

START_TIMEOUT = 30.0
STOP_TIMEOUT = 45.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_env() -> dict[str, str]:
    """The environment for ``rimp serve``: ours, without tokens from the outside."""
    env = dict(os.environ)
    env.pop("RIMP_TOKENS", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def unique(prefix: str) -> str:
    """A name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def poll(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Call ``predicate`` until it is true or ``timeout`` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class RimpServer:
    """``python -m telemetry.cli serve`` on a free port of 127.0.0.1, with a data dir of its own."""

    def __init__(self, data_dir: Path, *args: str, tokens: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.args = list(args)
        self.tokens = tokens or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log = data_dir.parent / f"{data_dir.name}.log"

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:41234``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_path(self) -> Path:
        """Where the server keeps its database."""
        return self.data_dir / "telemetry.db"

    def command(self) -> list[str]:
        """The command line that starts the server."""
        cmd = [sys.executable, "-m", "telemetry.cli", "serve", "--port", str(self.port)]
        cmd += ["--data-dir", str(self.data_dir), "--log-level", "warning", *self.args]
        if self.tokens:
            token_file = self.data_dir.parent / f"{self.data_dir.name}.tokens"
            token_file.write_text(
                "# token scopes\n" + "".join(f"{t} {s}\n" for t, s in self.tokens.items())
            )
            cmd += ["--token-file", str(token_file)]
        return cmd

    def start(self, timeout: float = START_TIMEOUT) -> RimpServer:
        """Start the server and wait until ``/healthz`` answers 200 (retrying a taken port)."""
        for _attempt in range(3):
            self.port = free_port()
            with self.log.open("ab") as log:
                self.proc = subprocess.Popen(
                    self.command(), stdout=log, stderr=subprocess.STDOUT, env=serve_env()
                )
            if poll(self._ready_or_dead, timeout) and self.proc.poll() is None:
                return self
            if self.proc.poll() is None:
                self.kill()
                raise RuntimeError(f"rimp serve not ready in {timeout} s:\n{self.output()}")
            if "address already in use" not in self.output().lower():
                break
        raise RuntimeError(f"rimp serve exited with {self.proc.returncode}:\n{self.output()}")

    def _ready_or_dead(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            return True
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1.0, trust_env=False).status_code == 200
        except httpx.TransportError:
            return False

    def output(self) -> str:
        """What the server printed so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then wait for the exit; return the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL (only for a server that does not stop)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def client(self, token: str | None = None, timeout: float = 30.0) -> httpx.Client:
        """An HTTP client for this server, with a bearer token when given."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout, trust_env=False)

    def __enter__(self) -> RimpServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()


@contextlib.contextmanager
def running(
    data_dir: Path, *args: str, tokens: dict[str, str] | None = None
) -> Iterator[RimpServer]:
    """A started server, stopped with SIGTERM at the end (its exit code must be 0)."""
    server = RimpServer(data_dir, *args, tokens=tokens).start()
    try:
        yield server
    finally:
        code = server.stop()
        assert code == 0, f"rimp serve exited with {code}:\n{server.output()}"


# --- Server-Sent Events ------------------------------------------------------------------


@dataclass
class SSEMessage:
    """One Server-Sent Event."""

    event: str
    id: str | None
    data: str

    def json(self) -> Any:
        """``data`` decoded as JSON."""
        return json.loads(self.data)


class SSEClient:
    """A ``GET /api/v1/stream`` reader; ``open()`` returns once the server has subscribed it."""

    def __init__(
        self,
        server: RimpServer,
        params: Sequence[tuple[str, str]] | dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        read_timeout: float = 20.0,
    ) -> None:
        self._client = httpx.Client(
            base_url=server.url, timeout=httpx.Timeout(10.0, read=read_timeout), trust_env=False
        )
        self._cm = self._client.stream(
            "GET", "/api/v1/stream", params=params or {}, headers=headers or {}
        )
        self.response: httpx.Response | None = None
        self._lines: Iterator[str] | None = None
        self._closed = False

    def open(self) -> SSEClient:
        """Connect and wait for the server's ``: connected`` comment."""
        self.response = self._cm.__enter__()
        if self.response.status_code != 200:
            return self
        self._lines = self.response.iter_lines()
        for line in self._lines:
            if line.startswith(": connected"):
                return self
        raise AssertionError("the stream ended before ': connected'")

    def next(self) -> SSEMessage | None:
        """The next event (comments skipped), or None when the stream ends."""
        assert self._lines is not None
        event, ident, data = "message", None, []
        seen = False
        for line in self._lines:
            if line == "":
                if seen:
                    return SSEMessage(event, ident, "\n".join(data))
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                event, seen = value, True
            elif field == "id":
                ident, seen = value, True
            elif field == "data":
                data.append(value)
                seen = True
        return None

    def until(self, predicate: Callable[[SSEMessage], bool]) -> list[SSEMessage]:
        """Events up to and including the first one for which ``predicate`` is true."""
        got: list[SSEMessage] = []
        while True:
            message = self.next()
            if message is None:
                raise AssertionError(f"the stream ended after {len(got)} events")
            got.append(message)
            if predicate(message):
                return got

    def close(self) -> None:
        """Disconnect (idempotent)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(httpx.HTTPError):
            self._cm.__exit__(None, None, None)
        self._client.close()

    def __enter__(self) -> SSEClient:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def raw_stream_socket(server: RimpServer, path: str, rcvbuf: int = 4096) -> socket.socket:
    """A socket with a tiny receive buffer that has sent ``GET path`` and read nothing since."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(30.0)
    sock.connect(("127.0.0.1", server.port))
    head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
    sock.sendall(head.encode() + b"Connection: close\r\n\r\n")
    return sock


def read_to_end(sock: socket.socket) -> bytes:
    """Everything the peer sends until it closes the connection."""
    chunks = []
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


# --- WebSocket -----------------------------------------------------------------------------


def ws_connect(
    server: RimpServer, params: Sequence[tuple[str, str]] | dict[str, str] | None = None
) -> ClientConnection:
    """A WebSocket to ``/api/v1/stream/ws`` with ``params`` as its query string."""
    query = urlencode(params or {})
    return connect(
        f"ws://127.0.0.1:{server.port}/api/v1/stream/ws?{query}",
        open_timeout=10,
        close_timeout=5,
        proxy=None,
    )


def ws_until(
    ws: ClientConnection, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Messages (keep-alives skipped) up to and including the first matching ``predicate``.

    Raises:
        TimeoutError: nothing matched within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    got: list[dict[str, Any]] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no matching message in {timeout} s; got {got}")
        message = json.loads(ws.recv(timeout=remaining))
        if message.get("kind") == "keep-alive":
            continue
        got.append(message)
        if predicate(message):
            return got


def ws_subscribed(
    ws: ClientConnection, post_probe: Callable[[], str], timeout: float = 10.0
) -> None:
    """Post probes (``post_probe`` returns the probe's id) until ``ws`` receives one.

    The server registers a WebSocket client just after the handshake; this
    proves the registration before a test posts what it means to observe.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = post_probe()
        with contextlib.suppress(TimeoutError):
            ws_until(ws, lambda m, probe=probe: m["record"]["id"] == probe, timeout=0.5)
            return
    raise AssertionError(f"the WebSocket received no probe in {timeout} s")


class LineCounter:
    """Reads an SSE stream on a thread, keeping every ``id:``, until the id named by ``finish``."""

    def __init__(self, server: RimpServer, params: dict[str, str] | None = None) -> None:
        self.sse = SSEClient(server, params).open()
        self.ids: list[str] = []
        self.errors: list[str] = []
        self.ended = False
        self.stop_id: str | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self.sse._lines is not None
        try:
            for line in self.sse._lines:
                if line.startswith("id: "):
                    with self._cond:
                        self.ids.append(line[4:])
                        self._cond.notify_all()
                    if line[4:] == self.stop_id:
                        break
                elif line.startswith("event: error"):
                    self.errors.append(line)
        except httpx.HTTPError as exc:
            self.errors.append(repr(exc))
        finally:
            self.sse.close()  # on this thread: a blocked read cannot be interrupted from another
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def finish(self, last_id: str) -> None:
        """Stop reading (and disconnect) once ``last_id`` has arrived."""
        self.stop_id = last_id

    def wait_for(self, n: int, timeout: float = 20.0) -> bool:
        """Wait until at least ``n`` ids have arrived; False on timeout or end of stream."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.ids) >= n or self.ended, timeout) and (
                len(self.ids) >= n
            )

    def close(self, timeout: float = 25.0) -> None:
        """Wait for the reading thread to end (it does after ``finish``'s id or a read timeout)."""
        self._thread.join(timeout)
