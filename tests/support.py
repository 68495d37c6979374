"""Storage backends used by the tests: real ``Storage`` subclasses with a gate or a fault."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from telemetry import TelemetryData
from telemetry.storage import MemoryStorage


class GatedStorage(MemoryStorage):
    """A memory storage whose ``store`` waits until ``gate`` is set (a stalled sink)."""

    def __init__(self) -> None:
        super().__init__(max_records=None)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def store(self, data: TelemetryData) -> None:
        self.entered.set()
        self.gate.wait()
        super().store(data)


class FlakyStorage(MemoryStorage):
    """A memory storage whose first ``failures`` writes raise ``OSError``."""

    def __init__(self, failures: int) -> None:
        super().__init__(max_records=None)
        self.failures = failures
        self.attempts = 0

    def store(self, data: TelemetryData) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise OSError(28, "No space left on device")
        super().store(data)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.002)
    return predicate()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A `rimp serve` subprocess that can be stopped and started again on the same port."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "telemetry.cli",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--log-level",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert wait_until(self._healthy, 20), "server did not start"

    def _healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(30) == 0
        self.proc = None

    def event_ids(self) -> list[str]:
        response = httpx.get(self.url + "/api/v1/events", params={"limit": 10_000}, timeout=10)
        return [e["id"] for e in response.json()["events"]]


def run_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (dedented) in a fresh interpreter; capture its output as text."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
