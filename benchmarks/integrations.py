"""What the one-line integrations cost, side by side with the peer.

    ./dev bench integrations            # 15 rounds of 2,000 requests per variant
    ./dev bench integrations --quick

The same FastAPI app (one route, ``GET /items/{item_id}``, returning a small JSON body)
three times: bare, with RIMP's ``TelemetryMiddleware``, and with
prometheus-fastapi-instrumentator (its default ``Instrumentator().instrument(app)``).
Requests are ASGI calls made in this process (no network, no server), interleaved by
round, so the difference to the bare app is the middleware's own cost per request. The
same for a Flask app through WSGI (bare and with RIMP's middleware), and the cost of one
runtime-metrics sample.

Target (issue 15): RIMP's ASGI middleware under 15 us per request and no slower than
the instrumentator's.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from flask import Flask
from prometheus_client import CollectorRegistry
from prometheus_fastapi_instrumentator import Instrumentator

from telemetry import TelemetryCollector, TelemetryConfig
from telemetry.integrations.asgi import TelemetryMiddleware as AsgiMiddleware
from telemetry.integrations.wsgi import TelemetryMiddleware as WsgiMiddleware


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return app


def flask_app() -> Flask:
    app = Flask(__name__)

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return app


def collector() -> TelemetryCollector:
    # Memory storage with room for every point: the cost measured is recording, not I/O.
    return TelemetryCollector(
        TelemetryConfig(service_name="bench", buffer_capacity=2_000_000, flush_interval=1.0)
    )


async def asgi_round(app: Any, n: int) -> float:
    """Seconds per request for ``n`` requests to ``app``."""
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    started = time.perf_counter()
    for i in range(n):
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": f"/items/{i % 100}",
            "raw_path": f"/items/{i % 100}".encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"bench")],
            "client": ("127.0.0.1", 1234),
            "server": ("bench", 80),
        }
        await app(scope, receive, send)
        sent.clear()
    return (time.perf_counter() - started) / n


def wsgi_round(app: Callable[..., Any], n: int) -> float:
    def start_response(status: str, headers: list[Any], *exc: Any) -> None:
        pass

    started = time.perf_counter()
    for i in range(n):
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": f"/items/{i % 100}",
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "SERVER_NAME": "bench",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": io.StringIO(),
            "wsgi.version": (1, 0),
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "HTTP_HOST": "bench",
        }
        body = app(environ, start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return (time.perf_counter() - started) / n


def report(title: str, rounds: dict[str, list[float]], bare: str) -> dict[str, float]:
    medians = {k: statistics.median(v) * 1e6 for k, v in rounds.items()}
    print(f"\n{title}\n")
    print("| variant | us per request (median) | min | overhead vs bare, us |")
    print("|---|---:|---:|---:|")
    for name, us in medians.items():
        extra = us - medians[bare]
        print(f"| {name} | {us:.1f} | {min(rounds[name]) * 1e6:.1f} | {extra:+.1f} |")
    return medians


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, n = (5, 500) if args.quick else (args.rounds, args.requests)

    rimp = collector()
    bare = fastapi_app()
    ours = fastapi_app()
    ours.add_middleware(AsgiMiddleware, collector=rimp)
    theirs = fastapi_app()
    Instrumentator(registry=CollectorRegistry()).instrument(theirs)
    asgi = {
        "bare FastAPI": bare,
        "RIMP TelemetryMiddleware": ours,
        "prometheus-fastapi-instrumentator": theirs,
    }
    timings: dict[str, list[float]] = {k: [] for k in asgi}

    async def run() -> None:
        for app in asgi.values():  # warm up: routes compiled, lazy imports done
            await asgi_round(app, 200)
        for _ in range(rounds):
            for name, app in asgi.items():
                timings[name].append(await asgi_round(app, n))

    asyncio.run(run())
    medians = report(
        f"ASGI: FastAPI, {rounds} rounds x {n:,} requests, interleaved", timings, "bare FastAPI"
    )
    ours_us = medians["RIMP TelemetryMiddleware"] - medians["bare FastAPI"]
    theirs_us = medians["prometheus-fastapi-instrumentator"] - medians["bare FastAPI"]
    print(
        f"\nRIMP's middleware: {ours_us:.1f} us per request (target < 15); the instrumentator's: "
        f"{theirs_us:.1f} us; ratio {ours_us / theirs_us:.2f}"
    )

    plain = flask_app()
    wrapped = flask_app()
    wrapped.wsgi_app = WsgiMiddleware(wrapped.wsgi_app, collector=rimp)  # type: ignore[method-assign]
    wsgi = {"bare Flask": plain, "RIMP TelemetryMiddleware": wrapped}
    wtimings: dict[str, list[float]] = {k: [] for k in wsgi}
    for app in wsgi.values():
        wsgi_round(app, 200)
    for _ in range(rounds):
        for name, app in wsgi.items():
            wtimings[name].append(wsgi_round(app, n))
    report(f"WSGI: Flask, {rounds} rounds x {n:,} requests, interleaved", wtimings, "bare Flask")

    runtime = TelemetryCollector(TelemetryConfig(runtime_metrics=True)).runtime
    assert runtime is not None
    best = min(_time(lambda: runtime.collect(time.time_ns()), 200) for _ in range(5))
    print(
        f"\nruntime metrics: {best * 1e6:.0f} us per sample; at the default 5-s flush interval "
        f"{best / 5 * 100:.4f} % of a core"
    )
    stats = rimp.stats()
    rimp.close()
    print(
        f"points recorded by RIMP's middlewares: {stats['metrics_collected']:,}, "
        f"dropped: {stats['records_dropped']:,}"
    )
    return 0


def _time(fn: Callable[[], Any], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n


if __name__ == "__main__":
    raise SystemExit(main())
