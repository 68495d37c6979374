"""Uncaught exceptions as ``critical`` events (``TelemetryConfig(capture_exceptions=True)``).

``sys.excepthook`` (the main thread), ``threading.excepthook`` (other threads) and, for
event loops handed to :func:`capture_loop_exceptions`, the loop's exception handler
(a task's exception nobody retrieved, a failing callback) record an event with the
exception's type, message and traceback, then hand over to the hook that was there
before: Python still prints the traceback and the process still dies. A dying main
thread flushes the collector first, so the event is stored before the exit.
Stdlib only, so the core may install it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from telemetry.models import EventType

if TYPE_CHECKING:
    from telemetry.collector import TelemetryCollector

__all__ = ["capture_exceptions", "capture_loop_exceptions", "exception_metadata"]

_MESSAGE_LIMIT = 500


def exception_metadata(exc: BaseException) -> dict[str, str]:
    """OpenTelemetry's exception attributes: ``exception.type``, ``exception.message``,
    ``exception.stacktrace`` (the formatted traceback, chained causes included)."""
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    return {
        "exception.type": name,
        "exception.message": str(exc),
        "exception.stacktrace": "".join(traceback.format_exception(exc)),
    }


def _record(collector: TelemetryCollector, exc: BaseException, where: str) -> None:
    meta: dict[str, Any] = exception_metadata(exc)
    meta["where"] = where
    text = str(exc)
    if len(text) > _MESSAGE_LIMIT:
        text = text[:_MESSAGE_LIMIT] + "..."
    message = f"uncaught {meta['exception.type']} in {where}" + (f": {text}" if text else "")
    with contextlib.suppress(Exception):  # a hook must never raise on its own account
        collector.collect_event(
            collector.config.resolved_service_name(), message, EventType.CRITICAL, meta
        )


def capture_exceptions(collector: TelemetryCollector) -> Callable[[], None]:
    """Install the hooks; return a function that puts the previous ones back (if ours
    are still in place)."""
    previous_sys = sys.excepthook
    previous_thread = threading.excepthook

    def sys_hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if not issubclass(kind, KeyboardInterrupt):
            _record(collector, exc.with_traceback(tb), "the main thread")
            collector.flush(collector.config.shutdown_timeout)
        previous_sys(kind, exc, tb)

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None and not issubclass(args.exc_type, SystemExit):
            name = args.thread.name if args.thread is not None else "a thread"
            _record(
                collector, args.exc_value.with_traceback(args.exc_traceback), f"thread {name!r}"
            )
        previous_thread(args)

    sys.excepthook = sys_hook
    threading.excepthook = thread_hook

    def restore() -> None:
        if sys.excepthook is sys_hook:
            sys.excepthook = previous_sys
        if threading.excepthook is thread_hook:
            threading.excepthook = previous_thread

    return restore


def capture_loop_exceptions(collector: TelemetryCollector, loop: asyncio.AbstractEventLoop) -> None:
    """Record what reaches ``loop``'s exception handler, then call the handler that was set
    (or the loop's default, which logs it)."""
    previous = loop.get_exception_handler()
    if getattr(previous, "_rimp_collector", None) is collector:
        return  # already watching this loop

    def handler(the_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, BaseException):
            _record(collector, exc, "the event loop")
        if previous is not None:
            previous(the_loop, context)
        else:
            the_loop.default_exception_handler(context)

    handler._rimp_collector = collector  # type: ignore[attr-defined]
    loop.set_exception_handler(handler)
