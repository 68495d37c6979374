"""The RIMP server: ``rimp serve`` (needs the ``server`` extra: ``pip install 'rimp[server]'``).

``create_app(ServerSettings(...))`` builds the ASGI application; ``rimp serve``
runs it under uvicorn (:mod:`telemetry.server.run`).
"""

from __future__ import annotations

try:
    import starlette  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the RIMP server needs the 'server' extra: pip install 'rimp[server]'"
    ) from exc

from telemetry.server.app import create_app
from telemetry.server.settings import ServerSettings
from telemetry.server.state import ServerState

__all__ = ["ServerSettings", "ServerState", "create_app"]
