"""A ``logging.Handler`` that turns log records into RIMP events.

Level → event type (DEBUG/INFO/WARNING/ERROR/CRITICAL), logger name → source,
``extra={...}`` → metadata, an exception → its formatted traceback in
``metadata["exception"]``. Records emitted by RIMP's own loggers
(``telemetry.*``) while the handler is running are skipped, so RIMP logging
about itself can never loop back into RIMP.

Example::

    handler = TelemetryHandler(collector)
    logging.getLogger().addHandler(handler)
    logging.getLogger("billing").warning("card declined", extra={"order": 42})
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any

from telemetry.collector import TelemetryCollector
from telemetry.models import EventType

__all__ = ["TelemetryHandler"]

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)
_OWN = "telemetry"
_OWN_PREFIX = "telemetry."


def _event_type(levelno: int) -> EventType:
    if levelno >= logging.CRITICAL:
        return EventType.CRITICAL
    if levelno >= logging.ERROR:
        return EventType.ERROR
    if levelno >= logging.WARNING:
        return EventType.WARNING
    if levelno >= logging.INFO:
        return EventType.INFO
    return EventType.DEBUG


class TelemetryHandler(logging.Handler):
    """Send log records to a collector as events.

    Args:
        collector: where events go.
        level: the handler's minimum level.
        include_location: add ``module``, ``function`` and ``line`` to metadata.
    """

    def __init__(
        self,
        collector: TelemetryCollector,
        level: int = logging.NOTSET,
        *,
        include_location: bool = False,
    ) -> None:
        super().__init__(level)
        self.collector = collector
        self.include_location = include_location
        self._local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        """Record one log record as an event (never raises into the logging call)."""
        name = record.name
        if getattr(self._local, "busy", False) or name == _OWN or name.startswith(_OWN_PREFIX):
            return  # RIMP logging about itself while handling a record: do not recurse
        self._local.busy = True
        try:
            metadata: dict[str, Any] = {
                k: v for k, v in record.__dict__.items() if k not in _STANDARD
            }
            if self.include_location:
                metadata.update(module=record.module, function=record.funcName, line=record.lineno)
            if record.exc_info and record.exc_info[0] is not None:
                metadata["exception"] = "".join(traceback.format_exception(*record.exc_info))
            elif record.exc_text:
                metadata["exception"] = record.exc_text
            if record.stack_info:
                metadata["stack"] = record.stack_info
            self.collector.collect_event(
                source=record.name,
                message=record.getMessage(),
                event_type=_event_type(record.levelno),
                metadata=metadata,
                timestamp=int(record.created * 1e9),
            )
        except Exception:
            self.handleError(record)
        finally:
            self._local.busy = False
