"""Terminal colours shared by the commands that print events."""

from __future__ import annotations

__all__ = ["COLOURS", "RESET"]

COLOURS: dict[str, str] = {
    "debug": "\033[2m",
    "info": "\033[36m",
    "warning": "\033[33m",
    "error": "\033[31m",
    "critical": "\033[1;31m",
}
"""ANSI colour per event type (``EventType`` values are these strings)."""
RESET = "\033[0m"
