"""``GET /openapi.json``: the HTTP API described as OpenAPI 3.1.

The request bodies' schemas come from the wire structs themselves
(:mod:`telemetry.protocols.native`, through ``msgspec.json.schema_components``),
so the document cannot drift from what the decoder takes; the rest is written
out here, next to the routes in :mod:`telemetry.server.app`.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from telemetry._version import __version__
from telemetry.models import EventType
from telemetry.protocols.native import WireBatch, WireEvent, WireMetric
from telemetry.server.errors import json_response
from telemetry.storage import AGGREGATES

__all__ = ["document", "openapi"]

_REF = "#/components/schemas/{name}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(name=name)}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json(_ref("Error"))}


_ERRORS = {
    "400": _error("a parameter or the body breaks a rule (the error names the field)"),
    "401": _error("a token is required"),
    "403": _error("the token lacks the scope, or Host/Origin is not allowed"),
}
_INGEST_ERRORS = {
    **_ERRORS,
    "413": _error("the body or its record count is over the limit"),
    "415": _error("unsupported Content-Type or Content-Encoding"),
    "429": _error("back-pressure: retry after Retry-After seconds"),
    "503": _error("storage is failing or did not confirm in time: retry with the same key"),
}
_QUERY_ERRORS = {**_ERRORS, "503": _error("storage does not answer")}
_NAMED_ERRORS = {**_QUERY_ERRORS, "404": _error("no such path (a name with a line break)")}


def _param(name: str, where: str, schema: dict[str, Any], doc: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": where, "schema": schema, "description": doc, **extra}


_TIME = {"type": "string", "examples": ["-15m", "now", "2026-12-01T10:30:00Z", "1796126400"]}
_SINCE = _param(
    "since", "query", _TIME, "window start, inclusive (RFC 3339, Unix seconds, -15m, now)"
)
_UNTIL = _param("until", "query", _TIME, "window end, exclusive")
_BUCKET = _param(
    "bucket",
    "query",
    {"type": "string", "examples": ["60", "1m", "1h"]},
    "bucket width: seconds or a duration",
)
_TYPE = _param(
    "type", "query", {"type": "string", "enum": [t.value for t in EventType]}, "event type"
)
_NAME = _param("name", "path", {"type": "string", "minLength": 1}, "metric name", required=True)
_TAGS = _param(
    "tags",
    "query",
    {"type": "array", "items": {"type": "string"}},
    "tag filters as key:value (repeatable)",
    style="form",
    explode=True,
)
_IDEMPOTENCY = _param(
    "Idempotency-Key",
    "header",
    {"type": "string", "minLength": 1, "maxLength": 256},
    "stores the request once however often it is sent",
)
_PARTIAL = _param(
    "partial", "query", {"type": "boolean"}, "store the valid records, list the others"
)
_FEED = [
    _param(
        "kind",
        "query",
        {"type": "string", "enum": ["event", "metric", "events", "metrics"]},
        "record kind",
    ),
    _param("source", "query", {"type": "string"}, "event sources (comma-separated)"),
    _param("type", "query", {"type": "string"}, "event types (comma-separated)"),
    _param("name", "query", {"type": "string"}, "metric names (comma-separated)"),
    _param("mode", "query", {"type": "string", "enum": ["sample"]}, "sample, never cut off"),
]


def _ingest(summary: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": [_PARTIAL, _IDEMPOTENCY],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": body},
                    "application/x-ndjson": {"schema": {"type": "string"}},
                },
            },
            "responses": {
                "202": {"description": "stored", "content": _json(_ref("Accepted"))},
                **_INGEST_ERRORS,
            },
        }
    }


_BINARY = {"type": "string", "format": "binary"}


def _door(
    summary: str, request: dict[str, Any], ok: str, ok_content: dict[str, Any]
) -> dict[str, Any]:
    """A standard-format door: its request types, success answer and errors (any type)."""
    error = {
        "description": "refused (see docs/integrations.md)",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/x-protobuf": {"schema": _BINARY},
            "text/plain": {"schema": {"type": "string"}},
        },
    }
    ok_response: dict[str, Any] = {"description": "stored"}
    if ok_content:
        ok_response["content"] = ok_content
    responses = {
        ok: ok_response,
        **dict.fromkeys(("400", "401", "403", "413", "415", "429", "503"), error),
    }
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": request},
            "responses": responses,
        }
    }


def _otlp(signal: str) -> dict[str, Any]:
    return _door(
        f"OTLP/HTTP {signal} (see docs/integrations.md)",
        {
            "application/x-protobuf": {"schema": _BINARY},
            "application/json": {"schema": {"type": "object"}},
        },
        "200",
        {
            "application/x-protobuf": {"schema": _BINARY},
            "application/json": {"schema": {"type": "object"}},
        },
    )


def _get(summary: str, params: list[dict[str, Any]], result: dict[str, Any]) -> dict[str, Any]:
    errors = _NAMED_ERRORS if any(p["in"] == "path" for p in params) else _QUERY_ERRORS
    return {
        "get": {
            "summary": summary,
            "parameters": params,
            "responses": {
                "200": {"description": "found", "content": _json(result)},
                **errors,
            },
        }
    }


_OBJECT = {"type": "object"}
_MATCHER = {
    "type": "object",
    "required": ["name", "value"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "value": {"type": "string"},
        "isRegex": {"type": "boolean"},
        "isEqual": {"type": "boolean"},
    },
}
_SILENCE = {
    "type": "object",
    "required": ["matchers", "endsAt"],
    "properties": {
        "id": {"type": "string", "description": "replace this silence"},
        "matchers": {"type": "array", "minItems": 1, "items": _MATCHER},
        "startsAt": {"type": "string", "format": "date-time"},
        "endsAt": {"type": "string", "format": "date-time"},
        "createdBy": {"type": "string"},
        "comment": {"type": "string"},
    },
}


def _alerting_paths() -> dict[str, Any]:
    """Alerting: alerts, rules, reloads and silences (docs/alerting.md)."""
    state = _param(
        "state",
        "query",
        {"type": "string", "enum": ["firing", "pending", "resolved"]},
        "only these",
    )
    alerts = {"type": "object", "properties": {"alerts": {"type": "array", "items": _OBJECT}}}
    silences = {"type": "object", "properties": {"silences": {"type": "array", "items": _OBJECT}}}
    sid = _param("id", "path", {"type": "string"}, "silence id", required=True)
    return {
        "/api/v1/alerts": _get("Alerts: firing, pending and recently resolved", [state], alerts),
        "/api/v1/rules": _get("Rule groups and rules, with their last evaluation", [], _OBJECT),
        "/api/v1/rules/reload": {
            "post": {
                "summary": "Read the rule files again (a bad file changes nothing); admin scope",
                "responses": {
                    "200": {"description": "reloaded", "content": _json(_OBJECT)},
                    "400": _error("a rule file breaks a rule (the message names it)"),
                    "409": _error("the server runs no rule files"),
                    **{k: v for k, v in _ERRORS.items() if k != "400"},
                },
            }
        },
        "/api/v1/silences": {
            **_get("Silences (expired ones for 5 days)", [], silences),
            "post": {
                "summary": "Create or replace a silence (Alertmanager's JSON); admin scope",
                "requestBody": {"required": True, "content": _json(_SILENCE)},
                "responses": {
                    "200": {
                        "description": "the silence's id",
                        "content": _json(
                            {"type": "object", "properties": {"silenceID": {"type": "string"}}}
                        ),
                    },
                    **_ERRORS,
                },
            },
        },
        "/api/v1/silences/{id}": {
            "delete": {
                "summary": "End a silence now; admin scope",
                "parameters": [sid],
                "responses": {
                    "200": {"description": "the ended silence", "content": _json(_OBJECT)},
                    "404": _error("no such silence"),
                    **_ERRORS,
                },
            }
        },
    }


@cache
def document() -> dict[str, Any]:
    """The OpenAPI document (built once)."""
    _, wire = msgspec.json.schema_components([WireEvent, WireMetric, WireBatch], ref_template=_REF)
    groups = {"type": "array", "items": _ref("Group")}
    components: dict[str, Any] = {
        **wire,
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "field": {"type": "string"},
                    },
                }
            },
        },
        "Accepted": {
            "type": "object",
            "required": ["accepted"],
            "properties": {
                "accepted": {"type": "integer"},
                "events": {"type": "integer"},
                "metrics": {"type": "integer"},
                "folded": {"type": "integer"},
                "rejected": {"type": "array", "items": {"type": "object"}},
                "rejected_count": {"type": "integer"},
            },
        },
        "Event": {"type": "object", "required": ["id", "source", "message", "type", "time_ns"]},
        "Metric": {"type": "object", "required": ["id", "name", "value", "time_ns"]},
        "Group": {
            "type": "object",
            "required": ["tags", "buckets"],
            "properties": {
                "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                "buckets": {"type": "array", "items": {"type": "object"}},
            },
        },
    }
    one_or_many = {"anyOf": [_ref("WireEvent"), {"type": "array", "items": _ref("WireEvent")}]}
    metrics = {"anyOf": [_ref("WireMetric"), {"type": "array", "items": _ref("WireMetric")}]}
    limit = _param("limit", "query", {"type": "integer", "minimum": 1}, "most records returned")
    paths = {
        "/api/v1/events": {
            **_ingest("Store events", one_or_many),
            **_get(
                "Stored events, newest first",
                [
                    _param("source", "query", {"type": "string"}, "event source"),
                    _TYPE,
                    _SINCE,
                    _UNTIL,
                    _param("search", "query", {"type": "string"}, "text in the message"),
                    limit,
                ],
                {
                    "type": "object",
                    "properties": {"events": {"type": "array", "items": _ref("Event")}},
                },
            ),
        },
        "/api/v1/metrics": _ingest("Store metric points", metrics),
        "/api/v1/batch": _ingest("Store events and metric points together", _ref("WireBatch")),
        "/api/v1/events/counts": _get(
            "Events per bucket and group",
            [
                _BUCKET,
                _SINCE,
                _UNTIL,
                _param("source", "query", {"type": "string"}, "source"),
                _TYPE,
                _param(
                    "group_by", "query", {"type": "string", "enum": ["type", "source"]}, "group key"
                ),
            ],
            {"type": "object", "properties": {"groups": groups}},
        ),
        "/api/v1/series": _get(
            "The stored series with their latest point",
            [_param("name", "query", {"type": "string"}, "only this metric")],
            {"type": "object", "properties": {"series": {"type": "array"}}},
        ),
        "/api/v1/metrics/{name}": _get(
            "Stored points of a metric, oldest first",
            [_NAME, _TAGS, _SINCE, _UNTIL, limit],
            {
                "type": "object",
                "properties": {"points": {"type": "array", "items": _ref("Metric")}},
            },
        ),
        "/api/v1/metrics/{name}/aggregate": _get(
            "A metric aggregated per bucket and group (the last hour by default)",
            [
                _NAME,
                _param("agg", "query", {"type": "string", "enum": list(AGGREGATES)}, "aggregate"),
                _BUCKET,
                _SINCE,
                _UNTIL,
                _TAGS,
                _param("group_by", "query", {"type": "string"}, "tag keys (comma-separated)"),
            ],
            {"type": "object", "properties": {"groups": groups}},
        ),
        "/api/v1/stream": {
            "get": {
                "summary": "The live feed as Server-Sent Events (resumes from Last-Event-ID)",
                "parameters": _FEED,
                "responses": {
                    "200": {
                        "description": "an endless event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_ERRORS,
                },
            }
        },
        "/v1/logs": _otlp("logs"),
        "/v1/metrics": _otlp("metrics"),
        "/v1/traces": _otlp("traces"),
        "/api/v1/write": _door(
            "Prometheus remote_write 1.0 (snappy + protobuf)",
            {"application/x-protobuf": {"schema": _BINARY}},
            "204",
            {},
        ),
        "/loki/api/v1/push": _door(
            "Loki push (JSON, or snappy + protobuf)",
            {
                "application/json": {"schema": {"type": "object"}},
                "application/x-protobuf": {"schema": _BINARY},
            },
            "204",
            {},
        ),
        **_alerting_paths(),
        "/healthz": _get("Liveness", [], {"type": "object"}),
        "/readyz": _get("Readiness: storage answers", [], {"type": "object"}),
        "/metrics": {
            "get": {
                "summary": "The server's figures and stored series, Prometheus text format",
                "responses": {
                    "200": {
                        "description": "exposition",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "RIMP",
            "version": __version__,
            "description": "Real-time telemetry: ingest, queries and live feeds. The WebSocket "
            "feed is /api/v1/stream/ws (not described by OpenAPI); see docs/server.md.",
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
        "paths": paths,
    }


async def openapi(request: Request) -> Response:
    """``GET /openapi.json``."""
    return json_response(document())
