"""Which recording path runs: the compiled module ``telemetry._hotpath`` when it was built
(by the install, on a machine with a C compiler) and ``RIMP_PURE_PYTHON`` is not ``1``;
else ``None``, and the pure-Python methods run (the reference; complete)."""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["HOTPATH"]


def _load() -> ModuleType | None:
    if os.environ.get("RIMP_PURE_PYTHON") == "1":
        return None
    try:
        from telemetry import _hotpath  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _hotpath  # type: ignore[no-any-return]


HOTPATH = _load()
