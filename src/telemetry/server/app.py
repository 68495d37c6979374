"""The RIMP server as an ASGI application (Starlette): the factory, the lifespan, the routes.

One pipeline, many doors: ingest endpoints submit whole batches to a
:class:`~telemetry.collector.TelemetryCollector` and answer ``202`` only once
the storage has the batch; the live hub is a consumer of the collector's
:class:`~telemetry.streaming.TelemetryStream`. No second pipeline. Each concept
has its module (``ingest``, ``queries``, ``live``, ``health``, ``selfmetrics``,
``auth``, ``dashboard``); this one only wires them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Route, WebSocketRoute

from telemetry.alerting import AlertEngine, AlertStore, RuleSet, load_rules
from telemetry.collector import TelemetryCollector
from telemetry.models import EventType, TelemetryData
from telemetry.server import (
    alerts,
    dashboard,
    health,
    ingest,
    live,
    loki,
    openapi,
    otlp,
    prometheus,
    queries,
    remote_write,
    selfmetrics,
)
from telemetry.server.auth import AuthMiddleware
from telemetry.server.errors import http_exception
from telemetry.server.hosts import HostGuard
from telemetry.server.settings import ServerSettings
from telemetry.server.state import ServerState
from telemetry.server.statsd import StatsdDoor
from telemetry.storage import DatabaseStorage, Storage
from telemetry.streaming import TelemetryStream

__all__ = ["create_app"]


def _routes() -> list[BaseRoute]:
    return [
        Route("/api/v1/events", ingest.post_events, methods=["POST"]),
        Route("/api/v1/events", queries.get_events, methods=["GET"]),
        Route("/api/v1/metrics", ingest.post_metrics, methods=["POST"]),
        Route("/api/v1/batch", ingest.post_batch, methods=["POST"]),
        Route("/api/v1/events/counts", queries.get_event_counts, methods=["GET"]),
        Route("/api/v1/series", queries.get_series, methods=["GET"]),
        Route("/api/v1/metrics/{name:path}/aggregate", queries.get_aggregate, methods=["GET"]),
        Route("/api/v1/metrics/{name:path}", queries.get_metric, methods=["GET"]),
        Route("/v1/logs", otlp.post_logs, methods=["POST"]),
        Route("/v1/metrics", otlp.post_metrics, methods=["POST"]),
        Route("/v1/traces", otlp.post_traces, methods=["POST"]),
        Route("/api/v1/write", remote_write.post_write, methods=["POST"]),
        Route("/prometheus/api/v1/write", remote_write.post_write, methods=["POST"]),
        Route("/loki/api/v1/push", loki.post_push, methods=["POST"]),
        Route("/api/v1/alerts", alerts.get_alerts, methods=["GET"]),
        Route("/api/v1/rules", alerts.get_rules, methods=["GET"]),
        Route("/api/v1/rules/reload", alerts.post_reload, methods=["POST"]),
        Route("/api/v1/silences", alerts.get_silences, methods=["GET"]),
        Route("/api/v1/silences", alerts.post_silence, methods=["POST"]),
        Route("/api/v1/silences/{id}", alerts.delete_silence, methods=["DELETE"]),
        Route("/api/v1/stream", live.get_stream, methods=["GET"]),
        WebSocketRoute("/api/v1/stream/ws", live.stream_ws),
        Route("/healthz", health.healthz, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
        Route("/metrics", selfmetrics.metrics, methods=["GET"]),
        Route("/openapi.json", openapi.openapi, methods=["GET"]),
        *prometheus.routes(),
        *dashboard.routes(),
    ]


def create_app(settings: ServerSettings | None = None) -> Starlette:
    """Build the ASGI application; the pipeline starts and drains with the app's lifespan.

    Example::

        app = create_app(ServerSettings(storage=DatabaseStorage("telemetry.db")))
        # uvicorn.run(app), or in tests: with TestClient(app) as client: ...
    """
    settings = settings or ServerSettings()
    state = ServerState(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        storage: Storage = settings.storage or DatabaseStorage(
            Path(settings.data_dir) / "telemetry.db"
        )
        state.storage = storage
        loop = asyncio.get_running_loop()
        state.hub.bind(loop)
        state.alerts = _alert_engine(state, storage)
        sink = storage
        if settings.bus is not None:
            from telemetry.server.busnode import BusNode

            def stored(batch: TelemetryData) -> None:
                state.hub.publish(batch)
                state.alerts.observe(batch)

            # Stored batches reach the hub and the event rules from the bus (every
            # node's, once stored).
            state.bus = await BusNode.start(
                settings.bus,
                storage,
                stored,
                role=settings.role,
                writers=settings.bus_writers,
            )
            sink = state.bus.sink(loop, settings.ack_timeout)
        state.collector = TelemetryCollector(settings.collector_config(), storage=sink)
        state.stream = TelemetryStream(state.collector, sink, interval=settings.flush_interval)
        if state.bus is None:
            state.stream.add_consumer(state.hub.publish, name="live-hub", inline=True)
            state.stream.add_consumer(state.alerts.observe, name="alerts")
        state.stream.start()
        state.alerts.start()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            # Only where the loop runs in the main thread (under uvicorn, not in tests).
            loop.add_signal_handler(signal.SIGHUP, _reload_on_hangup, state, loop)
        demo = _start_demo(state) if settings.demo else []
        if settings.statsd_port is not None:
            state.statsd = StatsdDoor(state, settings.statsd_flush_interval)
            await state.statsd.start(settings.statsd_host, settings.statsd_port)
        try:
            yield
        finally:
            if state.statsd is not None:
                await state.statsd.stop()
            state.demo_stop.set()
            for thread in demo:
                thread.join(5)
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGHUP)
            # Before the drain, so its last transitions are stored with everything else.
            await run_in_threadpool(state.alerts.stop)
            await run_in_threadpool(state.stream.stop, settings.drain_timeout)
            await run_in_threadpool(state.collector.close, settings.drain_timeout)
            if state.bus is not None:  # after the drain, which publishes through it
                await state.bus.stop()
            storage.close()
            state.alerts.store.close()

    app = Starlette(
        routes=_routes(),
        lifespan=lifespan,
        exception_handlers={HTTPException: http_exception},
    )
    app.state.rimp = state
    app.add_middleware(AuthMiddleware, tokens=state.tokens)
    if settings.allowed_hosts is not None:  # outermost: checked before anything else
        app.add_middleware(HostGuard, allowed=settings.allowed_hosts)
    return app


def _alert_engine(state: ServerState, storage: Storage) -> AlertEngine:
    """The alerting engine: the rule files' (checked by ``rimp serve`` before it got
    here), or none, which still answers the alerting API."""
    settings = state.settings
    active = bool(settings.rules or settings.alert_webhooks)
    rules = load_rules(settings.rules, webhooks=settings.alert_webhooks) if active else RuleSet()
    path = settings.alert_state or (
        str(Path(settings.data_dir) / "alerts.db") if active else ":memory:"
    )

    def record_event(source: str, message: str, etype: EventType, meta: dict[str, Any]) -> None:
        state.collector.collect_event(source, message, etype, meta)

    def record_metric(name: str, value: float, tags: dict[str, str], ns: int) -> None:
        state.collector.collect_metric(name, value, "", tags, ns)

    return AlertEngine(
        rules,
        storage,
        AlertStore(path),
        record_event=record_event,
        record_metric=record_metric,
        external_url=settings.external_url,
        alertmanagers=settings.alertmanagers,
    )


def _reload_on_hangup(state: ServerState, loop: asyncio.AbstractEventLoop) -> None:
    def reload() -> None:
        with contextlib.suppress(Exception):  # logged and recorded by reload_rules
            alerts.reload_rules(state)

    loop.run_in_executor(None, reload)


def _start_demo(state: ServerState) -> list[threading.Thread]:
    from telemetry._traffic import start_traffic

    return start_traffic(state.collector, state.demo_stop)
