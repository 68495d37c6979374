"""Process and runtime metrics, uncaught exceptions, and event loops to watch.

Example::

    collector = TelemetryCollector(TelemetryConfig(runtime_metrics=True, capture_exceptions=True))
    # or, on a collector already made:
    from telemetry.integrations.runtime import RuntimeMetrics, capture_exceptions
    RuntimeMetrics(collector)
    capture_exceptions(collector)
    # an asyncio program without the ASGI middleware (which does this itself):
    watch_event_loop(collector)          # inside the running loop

The metrics and their names: :mod:`telemetry._runtime`; the exception events:
:mod:`telemetry._excepthook`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from telemetry._excepthook import capture_exceptions as _capture
from telemetry._excepthook import capture_loop_exceptions
from telemetry._runtime import RuntimeMetrics
from telemetry.collector import TelemetryCollector

__all__ = ["RuntimeMetrics", "capture_exceptions", "watch_event_loop"]


def capture_exceptions(collector: TelemetryCollector) -> Callable[[], None]:
    """Record uncaught exceptions (main thread, other threads) as ``critical`` events with
    their traceback, then let the previous hooks run; return what uninstalls them."""
    return _capture(collector)


def watch_event_loop(
    collector: TelemetryCollector, loop: asyncio.AbstractEventLoop | None = None
) -> None:
    """Watch ``loop`` (default: the running one): its lag, when the collector records
    runtime metrics, and the exceptions that reach its handler, when it captures them."""
    loop = loop or asyncio.get_running_loop()
    if collector.runtime is not None:
        collector.runtime.watch_loop(loop)
    if collector.config.capture_exceptions:
        capture_loop_exceptions(collector, loop)
