"""Prometheus durations (``15s``, ``1h30m``, ``2d``, ``100ms``): parsed to and written from ns.

One rule for the query API's ``step`` and the rule files' ``interval``, ``for`` and
``keep_firing_for``, so both accept exactly what Prometheus accepts.
"""

from __future__ import annotations

import re

__all__ = ["format_duration", "parse_duration"]

_DURATION = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_UNITS_MS = (365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1_000, 1)
_NAMES = ("y", "w", "d", "h", "m", "s", "ms")


def parse_duration(text: str) -> int | None:
    """``text`` in ns, or ``None`` when it is not a Prometheus duration (``0`` is one)."""
    if text == "0":
        return 0
    found = _DURATION.match(text) if text else None
    if found is None or not any(found.groups()):
        return None
    ms = sum(int(g) * unit for g, unit in zip(found.groups(), _UNITS_MS, strict=True) if g)
    return ms * 1_000_000


def format_duration(ns: int) -> str:
    """``ns`` as Prometheus writes a duration (``1h30m``, ``0s``), to the millisecond."""
    ms = ns // 1_000_000
    if ms == 0:
        return "0s"
    parts = []
    for unit, name in zip(_UNITS_MS, _NAMES, strict=True):
        if unit >= 604_800_000 and ms % unit:  # years and weeks only when whole
            continue
        if ms >= unit:
            parts.append(f"{ms // unit}{name}")
            ms %= unit
    return "".join(parts)
