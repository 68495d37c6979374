"""``GET /metrics``: the server's own figures and the last value of each stored series,
in the Prometheus text exposition format (version 0.0.4)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from telemetry._promnames import sanitize_label, sanitize_name
from telemetry.models import SeriesInfo
from telemetry.server.state import ServerState
from telemetry.storage import Storage

__all__ = ["exposition", "metrics", "sanitize_label", "sanitize_name"]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: dict[str, str]) -> str:
    if not pairs:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(pairs.items()))
    return "{" + inner + "}"


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


async def metrics(request: Request) -> Response:
    """``GET /metrics``: Prometheus text exposition of the server and the stored series."""
    state: ServerState = request.app.state.rimp
    series = await run_in_threadpool(state.storage.series)
    state.storage_bytes = _storage_bytes(state.storage)
    text = exposition(state, series)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")


def _storage_bytes(storage: Storage) -> int | None:
    # File sizes only: storage.stats() counts rows, too slow for every scrape.
    path = getattr(storage, "path", None)
    if not isinstance(path, Path):
        return None
    files = [path, path.with_name(path.name + "-wal")] if path.is_file() else list(path.glob("*"))
    return sum(f.stat().st_size for f in files if f.is_file())


_BUS_GAUGES = {
    ("bus", "connected"): "1 while the node's NATS connection is up.",
    ("bus", "max_msg_bytes"): "Largest message the node publishes (bigger batches are split).",
    ("feed", "buffered"): "Messages the live feed holds, fetched beyond the writers' ack floor.",
    ("feed", "ack_floor"): "The writers' ack floor: every message up to it is stored.",
    ("feed", "last_released"): "Stream sequence of the last batch shown to live clients.",
}
_BUS_PARTS = {
    "bus": "the node's publishing to JetStream",
    "writers": "the node's bus writers (JetStream to storage)",
    "feed": "the node's feed of stored batches to its live clients",
}


def _bus_families(info: dict[str, dict[str, Any]], family: Any) -> None:
    """One family per counter of the bus, its writers and its feed:
    ``rimp_bus_published_messages_total``, ``rimp_bus_writers_redelivered_total``..."""
    for part, counters in info.items():
        for key, value in sorted(counters.items()):
            name = f"rimp_bus_{key}" if part == "bus" else f"rimp_bus_{part}_{key}"
            if (part, key) in _BUS_GAUGES:
                family(name, "gauge", _BUS_GAUGES[part, key], [({}, float(value))])
            else:
                help_text = f"{key.replace('_', ' ').capitalize()}: {_BUS_PARTS[part]}."
                family(f"{name}_total", "counter", help_text, [({}, float(value))])


def _alerting_families(state: ServerState, family: Any) -> None:
    figures = state.alerts.figures()
    family("rimp_alerts", "gauge", "Alerts by state (resolved: in the last 15 minutes).",
           [({"state": s}, n) for s, n in figures["alerts"].items()])  # fmt: skip
    family("rimp_rule_evaluations_total", "counter", "Rule evaluations.",
           [({}, figures["evaluations"])])  # fmt: skip
    family("rimp_rule_evaluation_failures_total", "counter",
           "Rule evaluations that failed (the rule's lastError says why).",
           [({}, figures["failures"])])  # fmt: skip
    family("rimp_alert_notifications_total", "counter",
           "Notification attempts: sent (2xx), retried (failed, queued again), abandoned.",
           [({"outcome": o}, figures[o]) for o in ("sent", "retried", "abandoned")])  # fmt: skip
    family("rimp_alert_notifications_queued", "gauge",
           "Notifications in the outbox, not yet delivered.",
           [({}, figures["queued"])])  # fmt: skip
    family("rimp_silences_active", "gauge", "Silences in force now.",
           [({}, figures["silences"])])  # fmt: skip


def exposition(state: ServerState, series: list[SeriesInfo]) -> str:
    """The whole ``/metrics`` page."""
    stats = state.collector.stats()
    hub = state.hub.stats()
    lines: list[str] = []

    def family(
        name: str, kind: str, help_text: str, samples: list[tuple[dict[str, str], float]]
    ) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{_labels(labels)} {_number(value)}")

    family(
        "rimp_records_received_total",
        "counter",
        "Records accepted by the ingest endpoints and stored.",
        [({"kind": k}, v) for k, v in sorted(state.received.items())],
    )
    family(
        "rimp_records_rejected_total",
        "counter",
        "Records or requests refused at ingest, by reason.",
        [({"reason": k}, v) for k, v in sorted(state.rejected.items())]
        or [({"reason": "none"}, 0)],
    )
    family(
        "rimp_records_dropped_total",
        "counter",
        "Records lost after acceptance, by reason.",
        [({"reason": k}, v) for k, v in sorted(stats["dropped_by_reason"].items())]
        or [({"reason": "none"}, 0)],
    )
    family("rimp_records_stored_total", "counter", "Records written to storage.",
           [({}, stats["records_flushed"])])  # fmt: skip
    family("rimp_storage_writes_total", "counter",
           "Batches written to storage, one transaction each (records stored / writes: "
           "the mean batch, larger under load).",
           [({}, state.stream.stats()["batches"])])  # fmt: skip
    family("rimp_door_requests_total", "counter",
           "Ingest requests answered, by door and HTTP status.",
           [({"door": d, "status": str(c)}, v)
            for (d, c), v in sorted(state.door_requests.items())])  # fmt: skip
    family("rimp_door_records_total", "counter",
           "Records each door accepted (stored) or rejected.",
           [({"door": d, "outcome": o}, v)
            for (d, o), v in sorted(state.door_records.items())])  # fmt: skip
    family("rimp_series_folded_total", "counter",
           "Metric points moved to the overflow series by the per-name tag-set limit.",
           [({}, stats["cardinality_overflow"])])  # fmt: skip
    family("rimp_storage_errors_total", "counter", "Failed storage writes.",
           [({}, stats["storage_errors"])])  # fmt: skip
    family("rimp_queue_depth", "gauge", "Records accepted but not yet stored.",
           [({}, state.collector.pending())])  # fmt: skip
    storage_bytes = state.storage_bytes
    if storage_bytes is not None:
        family("rimp_storage_bytes", "gauge", "Size of the storage on disk (database and WAL).",
               [({}, storage_bytes)])  # fmt: skip
    family("rimp_live_clients", "gauge", "Connected SSE and WebSocket clients.",
           [({}, hub["clients"])])  # fmt: skip
    family("rimp_live_stalled_total", "counter",
           "Live readers dropped, with their connection, for taking no data for 30 s.",
           [({}, hub["stalled"])])  # fmt: skip
    family("rimp_live_disconnected_slow_total", "counter",
           "Live clients cut off for not keeping up.",
           [({}, hub["disconnected_slow"])])  # fmt: skip
    writes = state.storage_writes
    family(
        "rimp_ingest_store_latency_seconds",
        "summary",
        "Time from submitting a request's batch to its storage acknowledgement.",
        [],
    )
    lines.append(f"rimp_ingest_store_latency_seconds_sum {_number(state.storage_seconds)}")
    lines.append(f"rimp_ingest_store_latency_seconds_count {writes}")
    family("rimp_uptime_seconds", "gauge", "Seconds since the server started.",
           [({}, time.time() - state.started)])  # fmt: skip
    if state.bus is not None:
        _bus_families(state.bus.info(), family)
    _alerting_families(state, family)

    # Grouped by the name as exposed (sanitised, and moved out of the server's own
    # rimp_ namespace), so names that collide on the way share one family.
    by_name: dict[str, list[SeriesInfo]] = {}
    for s in series:
        clean = sanitize_name(s.name)
        name = "stored_" + clean if clean.startswith("rimp_") else clean
        by_name.setdefault(name, []).append(s)
    for name, members in sorted(by_name.items()):
        unit = members[0].unit
        lines.append(f"# HELP {name} Last stored value of {members[0].name!r}"
                     + (f" ({_escape(unit)})" if unit else "") + ".")  # fmt: skip
        lines.append(f"# TYPE {name} gauge")
        seen: set[str] = set()
        for s in members:
            labels = _labels({sanitize_label(k): v for k, v in s.tags.items()})
            if labels in seen:  # two tag sets that sanitise alike: keep the first
                continue
            seen.add(labels)
            lines.append(f"{name}{labels} {_number(s.last_value)} {s.last_time_ns // 1_000_000}")
    return "\n".join(lines) + "\n"
