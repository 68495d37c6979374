"""The read endpoints: stored events, event counts, series, points and aggregates.

Storage calls run in the thread pool (they do I/O); their answers are shaped
into the JSON the API documents (docs/server.md).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from telemetry._jsonform import event_to_wire, metric_to_wire, rfc3339
from telemetry.errors import RequestError, StorageError, TelemetryError, ValidationError
from telemetry.models import Bucket
from telemetry.server import params
from telemetry.server.errors import error_response, json_response, request_error
from telemetry.server.state import ServerState

__all__ = ["get_aggregate", "get_event_counts", "get_events", "get_metric", "get_series"]

_HOUR_NS = 3600 * 1_000_000_000
Handler = Callable[[Request], Awaitable[Response]]


def _answers_errors(handler: Handler) -> Handler:
    """Turn the errors a query can raise into answers: bad input is the client's
    (400, naming the parameter), a failing storage is temporary (503)."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except RequestError as err:
            return request_error(err)
        except ValidationError as err:
            return error_response(400, "invalid_parameter", str(err), err.field)
        except StorageError as err:
            return error_response(503, "storage_unavailable", str(err))
        except TelemetryError as err:  # a bug or misconfiguration, not the client's fault
            return error_response(500, "internal_error", str(err))

    return wrapped


def _groups(buckets: list[Bucket]) -> list[dict[str, Any]]:
    groups: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for b in buckets:
        key = tuple(sorted(b.tags.items()))
        group = groups.get(key)
        if group is None:
            group = groups[key] = {"tags": b.tags, "buckets": []}
        group["buckets"].append(
            {
                "start": rfc3339(b.start_ns),
                "start_ns": b.start_ns,
                "value": b.value,
                "count": b.count,
            }
        )
    return list(groups.values())


@_answers_errors
async def get_events(request: Request) -> Response:
    """``GET /api/v1/events``: newest first."""
    state: ServerState = request.app.state.rimp
    q = request.query_params
    found = await run_in_threadpool(
        state.storage.query_events,
        source=q.get("source") or None,
        event_type=params.parse_event_type(q.get("type")),
        since=params.parse_time(q.get("since"), "since"),
        until=params.parse_time(q.get("until"), "until"),
        search=q.get("search") or None,
        limit=params.parse_limit(q.get("limit"), 100, 10_000),
    )
    return json_response({"events": [event_to_wire(e) for e in found]})


@_answers_errors
async def get_event_counts(request: Request) -> Response:
    """``GET /api/v1/events/counts``: the last hour by default."""
    state: ServerState = request.app.state.rimp
    q = request.query_params
    group_by = [
        "event_type" if g == "type" else g for g in params.parse_list(q.getlist("group_by"))
    ] or ["event_type"]
    since = params.parse_time(q.get("since"), "since")
    buckets = await run_in_threadpool(
        state.storage.count_events,
        bucket=params.parse_bucket(q.get("bucket")),
        since=since if since is not None else time.time_ns() - _HOUR_NS,
        until=params.parse_time(q.get("until"), "until"),
        source=q.get("source") or None,
        event_type=params.parse_event_type(q.get("type")),
        group_by=group_by,
    )
    groups = _groups(buckets)
    for group in groups:
        if "event_type" in group["tags"]:
            group["tags"]["type"] = group["tags"].pop("event_type")
    return json_response({"groups": groups})


@_answers_errors
async def get_series(request: Request) -> Response:
    """``GET /api/v1/series``."""
    state: ServerState = request.app.state.rimp
    found = await run_in_threadpool(state.storage.series, request.query_params.get("name") or None)
    return json_response(
        {
            "series": [
                {
                    "name": s.name,
                    "unit": s.unit,
                    "tags": s.tags,
                    "last_value": s.last_value,
                    "last_timestamp": rfc3339(s.last_time_ns),
                    "last_time_ns": s.last_time_ns,
                }
                for s in found
            ]
        }
    )


@_answers_errors
async def get_metric(request: Request) -> Response:
    """``GET /api/v1/metrics/{name}``: points oldest first."""
    state: ServerState = request.app.state.rimp
    q = request.query_params
    name = request.path_params["name"]
    points = await run_in_threadpool(
        state.storage.query_metrics,
        name,
        tags=params.parse_tags(q.getlist("tags")),
        since=params.parse_time(q.get("since"), "since"),
        until=params.parse_time(q.get("until"), "until"),
        limit=params.parse_limit(q.get("limit"), 10_000, 1_000_000),
    )
    return json_response({"name": name, "points": [metric_to_wire(p) for p in points]})


@_answers_errors
async def get_aggregate(request: Request) -> Response:
    """``GET /api/v1/metrics/{name}/aggregate``: the last hour by default."""
    state: ServerState = request.app.state.rimp
    q = request.query_params
    name = request.path_params["name"]
    agg = q.get("agg") or "avg"
    bucket = params.parse_bucket(q.get("bucket"))
    since = params.parse_time(q.get("since"), "since")
    buckets = await run_in_threadpool(
        state.storage.aggregate,
        name,
        agg=agg,
        bucket=bucket,
        since=since if since is not None else time.time_ns() - _HOUR_NS,
        until=params.parse_time(q.get("until"), "until"),
        tags=params.parse_tags(q.getlist("tags")),
        group_by=params.parse_list(q.getlist("group_by")) or None,
    )
    return json_response({"name": name, "agg": agg, "bucket": bucket, "groups": _groups(buckets)})
