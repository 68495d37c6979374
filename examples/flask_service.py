"""A Flask service instrumented with one line, sending its telemetry to a RIMP server.

    .venv/bin/rimp serve                                   # terminal 1: http://127.0.0.1:8787
    .venv/bin/python examples/flask_service.py             # terminal 2: http://127.0.0.1:8001
    curl 127.0.0.1:8001/users/7; curl 127.0.0.1:8001/report; curl 127.0.0.1:8001/fail

Then open http://127.0.0.1:8787/#services (service ``accounts``). Environment:
``RIMP_ENDPOINT`` (default ``http://127.0.0.1:8787``), ``PORT`` (8001), ``RIMP_TOKEN``.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time

import requests
from flask import Flask

from telemetry import TelemetryCollector, TelemetryConfig
from telemetry.integrations.requests import instrument_session
from telemetry.integrations.wsgi import TelemetryMiddleware

collector = TelemetryCollector(
    TelemetryConfig(
        endpoint=os.environ.get("RIMP_ENDPOINT", "http://127.0.0.1:8787"),
        token=os.environ.get("RIMP_TOKEN") or None,
        service_name="accounts",
        runtime_metrics=True,
        capture_exceptions=True,
        flush_interval=1.0,
    )
)
app = Flask(__name__)
app.wsgi_app = TelemetryMiddleware(app.wsgi_app, collector=collector)  # type: ignore[method-assign]  # the one line
session = instrument_session(requests.Session(), collector=collector)  # outgoing calls, timed


@app.get("/users/<int:user_id>")
def user(user_id: int) -> dict[str, int]:
    """A fast route."""
    time.sleep(random.uniform(0.001, 0.01))
    return {"id": user_id}


@app.get("/report")
def report() -> dict[str, int]:
    """A route calling a dependency (the RIMP server's health check)."""
    session.get(os.environ.get("RIMP_ENDPOINT", "http://127.0.0.1:8787") + "/healthz", timeout=5)
    return {"rows": 3}


@app.get("/fail")
def fail() -> str:
    """A route that raises: a 500, an error event with the traceback."""
    raise LookupError("no such ledger")


if __name__ == "__main__":
    # The development server dies on SIGTERM without running exit handlers: make SIGTERM
    # a normal exit, so the collector's last records are flushed (uvicorn does this itself).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8001")))
