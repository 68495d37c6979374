"""Storage backends used by the tests: real ``Storage`` subclasses with a gate or a fault."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

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
