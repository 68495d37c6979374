"""The RIMP server: ``rimp serve`` (needs the ``server`` extra: ``pip install 'rimp[server]'``)."""

from __future__ import annotations

try:
    import starlette  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the RIMP server needs the 'server' extra: pip install 'rimp[server]'"
    ) from exc

from telemetry.server.app import ServerSettings, create_app

__all__ = ["ServerSettings", "create_app"]
