"""Process-wide hooks: what runs at interpreter exit and in a forked child.

Collectors, streams, storages and the id pool each need a hook at exit (drain,
close) or after ``fork()`` (fresh locks, threads and ids in the child). They
register here, once per object, instead of each module keeping its own weak
set and its own ``atexit``/``register_at_fork`` calls. Objects are held
weakly: tracking never keeps one alive.

The :class:`Phase` orders the hooks. After a fork they run in ascending phase
(ids, then storages, then collectors, then streams: each layer finds the one
below it usable); at exit in descending phase (streams drain into their
storages and consumers before the collectors close).
"""

from __future__ import annotations

import atexit
import enum
import logging
import os
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["Phase", "track", "untrack"]

_log = logging.getLogger("telemetry")

Hook = Callable[[Any], object]


class Phase(enum.IntEnum):
    """Where an object's hooks run relative to the others'."""

    IDS = 0
    STORAGE = 1
    COLLECTOR = 2
    STREAM = 3


class _Entry:
    __slots__ = ("after_fork", "at_exit", "phase")

    def __init__(self, phase: Phase, at_exit: Hook | None, after_fork: Hook | None) -> None:
        self.phase = phase
        self.at_exit = at_exit
        self.after_fork = after_fork


_TRACKED: weakref.WeakKeyDictionary[Any, _Entry] = weakref.WeakKeyDictionary()


def track(
    obj: object, phase: Phase, *, at_exit: Hook | None = None, after_fork: Hook | None = None
) -> None:
    """Call ``at_exit(obj)`` at interpreter exit and ``after_fork(obj)`` in a forked child.

    Either hook may be omitted. Tracking the same object again replaces its hooks.
    """
    _TRACKED[obj] = _Entry(phase, at_exit, after_fork)


def untrack(obj: object) -> None:
    """Forget ``obj`` (closed: its exit hook has nothing left to do)."""
    _TRACKED.pop(obj, None)


def _in_order(descending: bool) -> list[tuple[Any, _Entry]]:
    items = list(_TRACKED.items())
    items.sort(key=lambda item: item[1].phase, reverse=descending)
    return items


def _run_exit_hooks() -> None:
    for obj, entry in _in_order(descending=True):
        if entry.at_exit is not None:
            try:
                entry.at_exit(obj)
            except Exception:  # one failing hook must not stop the others' flush
                _log.exception("telemetry: exit hook of %r failed", obj)


def _run_fork_hooks() -> None:
    for obj, entry in _in_order(descending=False):
        if entry.after_fork is not None:
            entry.after_fork(obj)


atexit.register(_run_exit_hooks)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_run_fork_hooks)
