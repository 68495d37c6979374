"""Helpers for testing code that uses RIMP: capture what it records, fake sinks, and the
storage conformance suite.

Capture what your code records, without a server or files::

    from telemetry.testing import capture

    def test_checkout_records_an_order():
        with capture() as captured:
            checkout(collector=captured.collector)
        assert [e.message for e in captured.events] == ["order placed"]
        assert captured.metrics[0].name == "checkout.latency"

For a storage backend of your own, :mod:`telemetry.testing.conformance` holds
the suite every built-in backend passes (it needs pytest).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from telemetry.collector import TelemetryCollector
from telemetry.config import TelemetryConfig
from telemetry.models import Event, Metric, TelemetryData
from telemetry.storage import MemoryStorage

__all__ = ["Captured", "CapturingStorage", "FlakyStorage", "GatedStorage", "capture"]


class CapturingStorage(MemoryStorage):
    """An unbounded memory storage that also keeps every record in the order stored.

    Queries work as on :class:`~telemetry.storage.MemoryStorage`; ``events`` and
    ``metrics`` are the records as they arrived, oldest first.
    """

    def __init__(self) -> None:
        super().__init__(max_records=None)
        self.events: list[Event] = []
        self.metrics: list[Metric] = []

    def store(self, data: TelemetryData) -> None:
        """Store the batch and keep its records."""
        super().store(data)
        self.events.extend(data.events)
        self.metrics.extend(data.metrics)


class Captured:
    """What :func:`capture` yields: the collector to record with, and what it recorded.

    Reading ``events`` or ``metrics`` flushes the collector first, so they hold
    everything recorded so far (instrument points included), oldest first.
    """

    def __init__(self, collector: TelemetryCollector, storage: CapturingStorage) -> None:
        self.collector = collector
        self.storage = storage

    @property
    def events(self) -> list[Event]:
        """Every event recorded so far, oldest first."""
        self.collector.flush()
        return list(self.storage.events)

    @property
    def metrics(self) -> list[Metric]:
        """Every metric point recorded so far (instrument points included), oldest first."""
        self.collector.flush()
        return list(self.storage.metrics)

    def clear(self) -> None:
        """Forget what was captured so far (after flushing it)."""
        self.collector.flush()
        self.storage.events.clear()
        self.storage.metrics.clear()


@contextlib.contextmanager
def capture(config: TelemetryConfig | None = None) -> Iterator[Captured]:
    """A collector on a fresh, unbounded memory storage, closed on exit.

    Args:
        config: the collector's configuration (its storage settings are ignored);
            by default ``TelemetryConfig()``.

    Yields:
        A :class:`Captured` with the ``collector`` and the records it captured.
    """
    storage = CapturingStorage()
    collector = TelemetryCollector(config, storage=storage)
    try:
        yield Captured(collector, storage)
    finally:
        collector.close()
        storage.close()


class GatedStorage(MemoryStorage):
    """A memory storage whose ``store`` waits until ``gate`` is set: a stalled sink.

    ``entered`` is set as soon as a write starts waiting, so a test can wait for
    the stall instead of sleeping.
    """

    def __init__(self) -> None:
        super().__init__(max_records=None)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def store(self, data: TelemetryData) -> None:
        """Wait for ``gate``, then store."""
        self.entered.set()
        self.gate.wait()
        super().store(data)


class FlakyStorage(MemoryStorage):
    """A memory storage whose first ``failures`` writes raise ``OSError`` (a full disk)."""

    def __init__(self, failures: int) -> None:
        super().__init__(max_records=None)
        self.failures = failures
        self.attempts = 0

    def store(self, data: TelemetryData) -> None:
        """Fail while failures remain, then store."""
        self.attempts += 1
        if self.attempts <= self.failures:
            raise OSError(28, "No space left on device")
        super().store(data)
