"""A pause that ends early when a stop event is set, shared by the writer and the feed."""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["pause"]


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if ``stop`` is set meanwhile (a back-off that never delays
    a shutdown)."""
    if stop.is_set():
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
