"""``GET /healthz`` (the process answers) and ``GET /readyz`` (the storage, and on a bus
node the bus, answer)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from telemetry.server.errors import error_response, json_response
from telemetry.server.state import ServerState

__all__ = ["healthz", "readyz"]


async def healthz(request: Request) -> Response:
    """Liveness: the process answers."""
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Readiness: the storage answers a query and its writes are not failing."""
    state: ServerState = request.app.state.rimp
    try:
        await run_in_threadpool(state.storage.query_events, limit=1)
    except Exception as exc:  # whatever the backend raises, it is not ready
        return error_response(503, "storage_unavailable", f"storage does not answer: {exc}")
    if state.bus is not None and not state.bus.bus.connected:
        return error_response(503, "bus_unavailable", "the bus (NATS) does not answer")
    if state.collector.awaiting_retry():
        return error_response(503, "storage_unavailable", "storage writes are failing")
    return json_response({"status": "ready"})
