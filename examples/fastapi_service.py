"""A FastAPI service instrumented with one line, sending its telemetry to a RIMP server.

    .venv/bin/rimp serve                                   # terminal 1: http://127.0.0.1:8787
    .venv/bin/python examples/fastapi_service.py           # terminal 2: http://127.0.0.1:8000
    curl 127.0.0.1:8000/items/42; curl 127.0.0.1:8000/checkout -X POST; curl 127.0.0.1:8000/fail

Then open http://127.0.0.1:8787/#services: request rate, p95 latency and error rate per
route of ``shop-api``; the failure's traceback is in the event feed. Environment:
``RIMP_ENDPOINT`` (default ``http://127.0.0.1:8787``), ``PORT`` (8000), ``RIMP_TOKEN``.
"""

from __future__ import annotations

import asyncio
import os
import random

import httpx
import uvicorn
from fastapi import FastAPI

from telemetry import TelemetryCollector, TelemetryConfig
from telemetry.integrations.asgi import TelemetryMiddleware
from telemetry.integrations.httpx import AsyncTelemetryTransport

collector = TelemetryCollector(
    TelemetryConfig(
        endpoint=os.environ.get("RIMP_ENDPOINT", "http://127.0.0.1:8787"),
        token=os.environ.get("RIMP_TOKEN") or None,
        service_name="shop-api",
        runtime_metrics=True,  # CPU, memory, GC, event-loop lag
        capture_exceptions=True,  # a crash leaves its traceback as an event
        flush_interval=1.0,
    )
)

app = FastAPI()
app.add_middleware(TelemetryMiddleware, collector=collector)  # the one line
# Outgoing calls are timed too (http.client.request.duration).
upstream = httpx.AsyncClient(transport=AsyncTelemetryTransport(collector=collector), timeout=5)


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    """A fast route."""
    await asyncio.sleep(random.uniform(0.001, 0.01))
    return {"id": item_id}


@app.post("/checkout")
async def checkout() -> dict[str, str]:
    """A slower route that calls a dependency (here: the RIMP server's health check)."""
    await upstream.get(os.environ.get("RIMP_ENDPOINT", "http://127.0.0.1:8787") + "/healthz")
    await asyncio.sleep(random.uniform(0.02, 0.08))
    return {"status": "paid"}


@app.get("/fail")
async def fail() -> None:
    """A route that raises: a 500, an error event with the traceback."""
    raise RuntimeError("payment provider unreachable")


if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), log_level="warning"
    )
