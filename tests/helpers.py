"""The one helpers module of the tests: ports, polling, servers (in process and subprocess),
live-feed clients, and storages with a gate or a fault."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlencode

import httpx
import pytest

from telemetry.protocols.native import Limits
from telemetry.server import ServerSettings, create_app

# The two server internals the tests need: repoint them here when they move.
from telemetry.server.auth import Tokens
from telemetry.storage import DatabaseStorage, Storage

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.testclient import TestClient, WebSocketTestSession

START_TIMEOUT = 30.0
STOP_TIMEOUT = 45.0
FEED_TIMEOUT = 20.0  # the longest a test waits on a live feed before it is ended

Params = list[tuple[str, Any]] | dict[str, str]
NO_LABELS: frozenset[tuple[str, str]] = frozenset()  # the labels of an unlabelled sample


# --- basics ----------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.005) -> bool:
    """Call ``predicate`` until it is true or ``timeout`` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def unique(prefix: str) -> str:
    """A name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (dedented) with ``args`` in a fresh interpreter; capture its output as text."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def rimp(
    *args: str, timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the ``rimp`` command line (``python -m telemetry.cli``); capture its output as text."""
    return subprocess.run(
        [sys.executable, "-m", "telemetry.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


# --- the HTTP API ------------------------------------------------------------------------------

T0 = 1_704_067_200  # 2024-01-01T00:00:00Z
NS = 1_000_000_000
JSON = {"Content-Type": "application/json"}
NDJSON = {"Content-Type": "application/x-ndjson"}


def event(source: str, message: str = "m", **fields: Any) -> dict[str, Any]:
    """An event as a client sends it."""
    return {"source": source, "message": message, **fields}


def metric(name: str, value: float = 1.0, **fields: Any) -> dict[str, Any]:
    """A metric point as a client sends it."""
    return {"name": name, "value": value, **fields}


def ndjson(records: list[dict[str, Any]]) -> bytes:
    """Records as NDJSON lines."""
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def post(client: httpx.Client, path: str, body: Any) -> None:
    """POST ``body`` as JSON; it must be accepted (202)."""
    r = client.post(path, json=body)
    assert r.status_code == 202, r.text


def events_of(client: httpx.Client, source: str, **params: Any) -> list[dict[str, Any]]:
    """Every stored event of ``source``, newest first."""
    r = client.get("/api/v1/events", params={"source": source, "limit": 10_000, **params})
    assert r.status_code == 200, r.text
    return list(r.json()["events"])


def points_of(client: httpx.Client, name: str, **params: Any) -> list[dict[str, Any]]:
    """Every stored point of metric ``name``, oldest first."""
    r = client.get(f"/api/v1/metrics/{name}", params=params)
    assert r.status_code == 200, r.text
    return list(r.json()["points"])


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The ``error`` object of a JSON error response with ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error["code"], str)
    assert error["code"]
    assert isinstance(error["message"], str)
    assert error["message"]
    return dict(error)


# --- the server in this process ----------------------------------------------------------------


_LIMITS = set(Limits.__dataclass_fields__)


def server_settings(
    data_dir: Path,
    *,
    storage: Storage | None = None,
    tokens: dict[str, str] | None = None,
    **options: Any,
) -> ServerSettings:
    """Settings as ``rimp serve`` builds them: a DatabaseStorage in ``data_dir`` unless
    ``storage`` is given, ``tokens`` as {token: "scope[,scope]"}; ``options`` are Limits
    fields or other ServerSettings fields (``max_pending``, ``live_queue_bytes``...)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    limits = {k: v for k, v in options.items() if k in _LIMITS}
    extra = {k: v for k, v in options.items() if k not in _LIMITS}
    return ServerSettings(
        storage=storage if storage is not None else DatabaseStorage(data_dir / "telemetry.db"),
        data_dir=str(data_dir),
        tokens=Tokens({t: frozenset(s.split(",")) for t, s in (tokens or {}).items()}),
        limits=Limits(**limits),
        **extra,
    )


class AppServer:
    """``create_app(settings)`` run in this process; ``client`` is a Starlette TestClient whose
    context runs the app's lifespan (the pipeline starts and drains with it)."""

    def __init__(self, settings: ServerSettings) -> None:
        from starlette.testclient import TestClient

        self.app: Starlette = create_app(settings)
        self.client: TestClient = TestClient(self.app)

    def __enter__(self) -> AppServer:
        self.client.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end_live_feeds("the server is shutting down")
        self.client.__exit__(exc_type, exc, tb)

    def end_live_feeds(self, reason: str) -> None:
        """End every live feed, as ``rimp serve`` does first when it shuts down."""
        portal = self.client.portal
        if portal is not None:
            portal.call(self.app.state.rimp.hub.close_all, reason)

    def call(self, func: Callable[[], Any]) -> Any:
        """Run ``func`` (a function or coroutine function) on the app's event loop."""
        assert self.client.portal is not None, "the app is not running"
        return self.client.portal.call(func)

    def watchdog(self, timeout: float = FEED_TIMEOUT) -> threading.Timer:
        """A started timer that ends every live feed after ``timeout`` s, so that a test
        blocked on a feed that never delivers fails instead of hanging."""
        timer = threading.Timer(timeout, self.end_live_feeds, args=("test deadline",))
        timer.daemon = True
        timer.start()
        return timer

    def live_clients(self) -> int:
        """How many live clients the server's hub holds (``rimp_live_clients``)."""
        return int(self.call(self.app.state.rimp.hub.stats)["clients"])

    def sse(self, params: Params | None = None, headers: dict[str, str] | None = None) -> SSEClient:
        """An SSE reader of ``/api/v1/stream`` on this app, ended after ``FEED_TIMEOUT`` s."""
        return SSEClient(self.client, params, headers, on_open=self.watchdog)

    @contextlib.contextmanager
    def websocket(self, params: Params | None = None) -> Iterator[WebSocketTestSession]:
        """A WebSocket to ``/api/v1/stream/ws`` already registered with the live hub; every
        feed is ended after ``FEED_TIMEOUT`` s so that no read can hang."""
        before = self.live_clients()
        timer = self.watchdog()
        try:
            with self.client.websocket_connect(ws_path(params)) as ws:
                assert poll(lambda: self.live_clients() > before, 10), "not subscribed"
                yield ws
        finally:
            timer.cancel()


def prometheus(client: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``/metrics`` parsed: (sample name, labels) to value."""
    from prometheus_client.parser import text_string_to_metric_families

    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def ws_path(params: Params | None = None) -> str:
    """The path of the live WebSocket with ``params`` as its query string."""
    return f"/api/v1/stream/ws?{urlencode(params or {})}"


def ws_until(
    ws: WebSocketTestSession, predicate: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """Messages (keep-alives skipped) up to and including the first matching ``predicate``."""
    from starlette.websockets import WebSocketDisconnect

    got: list[dict[str, Any]] = []
    while True:
        try:
            message = ws.receive_json()
        except WebSocketDisconnect as exc:
            raise AssertionError(f"the feed ended ({exc.code}) after {got}") from None
        if message.get("kind") == "keep-alive":
            continue
        got.append(message)
        if predicate(message):
            return got


# --- a real `rimp serve` process -------------------------------------------------------------


def serve_env() -> dict[str, str]:
    """The environment for ``rimp serve``: ours, without tokens, storage or bus settings
    from the outside."""
    env = dict(os.environ)
    for name in ("RIMP_TOKENS", "RIMP_STORAGE", "RIMP_BUS", "RIMP_BUS_STREAM", "RIMP_ROLE"):
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class RimpServer:
    """``python -m telemetry.cli serve`` on a free port of 127.0.0.1, with a data dir of its own.

    It can be stopped and started again: a restart keeps the port.
    """

    def __init__(
        self,
        data_dir: Path,
        *args: str,
        tokens: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.args = list(args)
        self.tokens = tokens or {}
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log = data_dir.parent / f"{data_dir.name}.log"

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:41234`` (the port is chosen on creation)."""
        if not self.port:
            self.port = free_port()
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
        """Start the server and wait until ``/healthz`` answers 200 (retrying a port taken
        before the first start; a restart keeps its port)."""
        fixed = bool(self.port)
        for _attempt in range(3):
            if not fixed:
                self.port = free_port()
            with self.log.open("ab") as log:
                self.proc = subprocess.Popen(
                    self.command(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**serve_env(), **self.env},
                )
            if poll(self._ready_or_dead, timeout, 0.02) and self.proc.poll() is None:
                return self
            if self.proc.poll() is None:
                self.kill()
                raise RuntimeError(f"rimp serve not ready in {timeout} s:\n{self.output()}")
            if fixed or "address already in use" not in self.output().lower():
                break
        assert self.proc is not None
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
        """SIGTERM, then wait for the exit; return the exit code (0 when never started)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL (only for a server that does not stop)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def client(self, token: str | None = None, timeout: float = 30.0) -> httpx.Client:
        """An HTTP client for this server, with a bearer token when given."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout, trust_env=False)

    def event_ids(self) -> list[str]:
        """The ids of every stored event."""
        with self.client() as c:
            response = c.get("/api/v1/events", params={"limit": 10_000})
        assert response.status_code == 200, response.text
        return [e["id"] for e in response.json()["events"]]

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


# --- Server-Sent Events ----------------------------------------------------------------------


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
    """A ``GET /api/v1/stream`` reader over ``client`` (a TestClient or a client of a real
    server); ``open()`` returns once the server has subscribed it.

    ``on_open``, when given, starts a timer that ends the feed if the test never does;
    a real server's client bounds each read with its own read timeout instead.
    """

    def __init__(
        self,
        client: httpx.Client,
        params: Params | None = None,
        headers: dict[str, str] | None = None,
        on_open: Callable[[], threading.Timer] | None = None,
    ) -> None:
        self._cm = client.stream("GET", "/api/v1/stream", params=params, headers=headers)
        self._on_open = on_open
        self._timer: threading.Timer | None = None
        self.response: httpx.Response | None = None
        self.lines: Iterator[str] | None = None
        self._closed = False

    def open(self) -> SSEClient:
        """Connect and wait for the server's ``: connected`` comment."""
        if self._on_open is not None:
            self._timer = self._on_open()
        self.response = self._cm.__enter__()
        if self.response.status_code != 200:
            return self
        self.lines = self.response.iter_lines()
        for line in self.lines:
            if line.startswith(": connected"):
                return self
        raise AssertionError("the stream ended before ': connected'")

    def next(self) -> SSEMessage | None:
        """The next event (comments skipped), or None when the stream ends."""
        assert self.lines is not None
        event, ident, data = "message", None, list[str]()
        seen = False
        for line in self.lines:
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
            if message.event == "error" and not predicate(message):
                raise AssertionError(f"the stream ended with an error: {message.data}")
            got.append(message)
            if predicate(message):
                return got

    def read_to_end(self) -> bytes:
        """Everything the server sends from here until it ends the stream."""
        assert self.lines is not None
        return "\n".join(self.lines).encode()

    def close(self) -> None:
        """Disconnect (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        with contextlib.suppress(httpx.HTTPError):
            self._cm.__exit__(None, None, None)

    def __enter__(self) -> SSEClient:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class LineCounter:
    """Reads an open SSE stream on a thread, keeping every ``id:``, until the id named by
    ``finish`` (or the end of the stream)."""

    def __init__(self, sse: SSEClient) -> None:
        self.sse = sse
        self.ids: list[str] = []
        self.errors: list[str] = []
        self.ended = False
        self.stop_id: str | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self.sse.lines is not None
        try:
            for line in self.sse.lines:
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
        """Wait for the reading thread to end (after ``finish``'s id or the stream's end)."""
        self._thread.join(timeout)


def missing_service(reason: str) -> NoReturn:
    """A service the test needs is absent: skip on a user's machine, fail under ``CI=true``
    (where ``.ci/run`` starts every service)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: .ci/run starts it)")
    pytest.skip(reason)


POSTGRES_ADMIN_URL = os.environ.get(
    "RIMP_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
"""Where the tests create (and drop) their own database: the machine's PostgreSQL."""
