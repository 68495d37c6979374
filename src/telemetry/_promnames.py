"""Prometheus names for RIMP's series: one rule for ``/metrics`` and the PromQL API.

A RIMP metric name may hold any character (``http.latency``); Prometheus allows
``[a-zA-Z_:][a-zA-Z0-9_:]*`` for names and ``[a-zA-Z_][a-zA-Z0-9_]*`` for labels, with
``__`` reserved. Every other character becomes ``_``.
"""

from __future__ import annotations

import re

__all__ = ["sanitize_label", "sanitize_name"]

_NAME_BAD = re.compile(r"[^a-zA-Z0-9_:]")
_LABEL_BAD = re.compile(r"[^a-zA-Z0-9_]")


def sanitize_name(name: str) -> str:
    """A metric name valid for Prometheus (``[a-zA-Z_:][a-zA-Z0-9_:]*``)."""
    clean = _NAME_BAD.sub("_", name)
    return clean if clean and not clean[0].isdigit() else "_" + clean


def sanitize_label(name: str) -> str:
    """A label name valid for Prometheus, never starting with ``__`` (reserved)."""
    clean = _LABEL_BAD.sub("_", name)
    if not clean or clean[0].isdigit():
        clean = "_" + clean
    return "x" + clean if clean.startswith("__") else clean
