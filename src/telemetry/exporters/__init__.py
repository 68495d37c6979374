"""Exporters: sinks that ship batches elsewhere, spool first.

:class:`HTTPExporter` posts to a RIMP server; :class:`~telemetry.exporters.bus.BusExporter`
publishes straight to the RIMP bus (NATS JetStream; needs the ``nats`` extra, and is
imported only when first used).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from telemetry.exporters.http import HTTPExporter

if TYPE_CHECKING:
    from telemetry.exporters.bus import BusExporter

__all__ = ["BusExporter", "HTTPExporter"]


def __getattr__(name: str) -> Any:
    # nats-py is an optional extra: loaded when BusExporter is asked for, not before.
    if name == "BusExporter":
        from telemetry.exporters.bus import BusExporter

        return BusExporter
    raise AttributeError(f"module 'telemetry.exporters' has no attribute {name!r}")
