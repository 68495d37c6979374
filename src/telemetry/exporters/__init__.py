"""Exporters: sinks that ship batches elsewhere (a RIMP server over HTTP)."""

from __future__ import annotations

from telemetry.exporters.http import HTTPExporter

__all__ = ["HTTPExporter"]
