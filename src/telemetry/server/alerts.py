"""Alerting's HTTP surface: alerts, rules, reloads and silences.

RIMP's JSON under ``/api/v1`` (``alerts``, ``rules``, ``rules/reload``, ``silences``)
and Prometheus' own ``/prometheus/api/v1/alerts`` and ``/prometheus/api/v1/rules``
(answered from here, routed by :mod:`telemetry.server.prometheus`), so Grafana lists
RIMP's alerts as it lists a Prometheus server's. Silences take Alertmanager's JSON.
Reading needs the ``read`` scope; reloading and silencing the ``admin`` scope.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from telemetry._time import rfc3339
from telemetry.alerting import AlertEngine, RulesError, load_rules
from telemetry.alerting.engine import RuleStatus
from telemetry.alerting.rules import ALERTS_SOURCE, AlertingRule, EventRule, RecordingRule
from telemetry.alerting.state import INACTIVE, Alert
from telemetry.alerting.templates import go_exponent
from telemetry.errors import ValidationError
from telemetry.models import EventType
from telemetry.server.errors import error_response, json_response
from telemetry.server.state import ServerState

__all__ = [
    "delete_silence",
    "get_alerts",
    "get_rules",
    "get_silences",
    "post_reload",
    "post_silence",
    "prometheus_alerts",
    "prometheus_rules",
    "reload_rules",
]

_log = logging.getLogger("telemetry.alerting")
_NS = 1_000_000_000
_STATES = ("pending", "firing", "resolved")


def _engine(request: Request) -> AlertEngine:
    state: ServerState = request.app.state.rimp
    return state.alerts


def _when(ns: int) -> str | None:
    return rfc3339(ns) if ns else None


def _state(alert: Alert) -> str:
    return "resolved" if alert.state == INACTIVE else alert.state


def _alert_json(alert: Alert, engine: AlertEngine, now: int) -> dict[str, Any]:
    return {
        "name": alert.name,
        "state": _state(alert),
        "labels": alert.labels,
        "annotations": alert.annotations,
        "value": alert.value,
        "activeAt": rfc3339(alert.active_at),
        "firedAt": _when(alert.fired_at),
        "resolvedAt": _when(alert.resolved_at),
        "keepFiringSince": _when(alert.keep_firing_since),
        "fingerprint": alert.fp,
        "rule": alert.rule,
        "silencedBy": engine.silenced_by(alert.labels, now),
    }


async def get_alerts(request: Request) -> Response:
    """``GET /api/v1/alerts[?state=firing]``: every alert, firing first, newest first."""
    engine = _engine(request)
    wanted = request.query_params.get("state")
    if wanted is not None and wanted not in _STATES:
        return error_response(
            400,
            "invalid_parameter",
            f"state={wanted!r}: must be one of {', '.join(_STATES)}",
            "state",
        )
    now = engine.clock()
    order = {"firing": 0, "pending": 1, "resolved": 2}
    alerts = [a for a in engine.alerts() if wanted is None or _state(a) == wanted]
    alerts.sort(key=lambda a: (order[_state(a)], -a.active_at, a.fp))
    return json_response({"alerts": [_alert_json(a, engine, now) for a in alerts]})


def _rule_state(alerts: list[Alert]) -> str:
    """A rule's state: its most urgent alert's (``inactive`` when none is active)."""
    states = {a.state for a in alerts}
    return next((s for s in ("firing", "pending") if s in states), "inactive")


def _rule_json(status: RuleStatus, engine: AlertEngine, now: int) -> dict[str, Any]:
    rule = status.rule
    body: dict[str, Any] = {
        "name": rule.name,
        "type": {AlertingRule: "alerting", RecordingRule: "recording", EventRule: "events"}[
            type(rule)
        ],
        "query": rule.expr,
        "labels": {k: t.text for k, t in rule.labels.items()},
        "health": status.health,
        "lastError": status.last_error,
        "lastEvaluation": _when(status.last_evaluation),
        "evaluationTime": status.evaluation_seconds,
    }
    if not isinstance(rule, RecordingRule):
        alerts = sorted(status.alerts.values(), key=lambda a: a.fp)
        body.update(
            {
                "state": _rule_state(alerts),
                "for": rule.for_ns / _NS,
                "keepFiringFor": rule.keep_firing_for_ns / _NS,
                "annotations": {k: t.text for k, t in rule.annotations.items()},
                "alerts": [_alert_json(a, engine, now) for a in alerts],
            }
        )
    return body


async def get_rules(request: Request) -> Response:
    """``GET /api/v1/rules``: every group and rule, with its last evaluation and error."""
    engine = _engine(request)
    now = engine.clock()
    groups = [
        {
            "name": group.name,
            "file": group.file,
            "interval": group.interval_ns / _NS,
            "lastEvaluation": _when(clock.last_evaluation),
            "evaluationTime": clock.evaluation_seconds,
            "rules": [_rule_json(s, engine, now) for s in statuses],
        }
        for group, clock, statuses in engine.rule_groups()
    ]
    return json_response(
        {
            "files": list(engine.rules.files),
            "loadedAt": _when(engine.loaded_at),
            "receivers": sorted(engine.rules.receivers),
            "groups": groups,
        }
    )


def reload_rules(state: ServerState) -> str:
    """Read the rule files again and run them; a bad file changes nothing.

    Returns a line saying what is loaded.

    Raises:
        RulesError: the first problem, naming the file, group and rule.
        LookupError: the server was started without rule files.
    """
    settings = state.settings
    if not settings.rules and not settings.alert_webhooks:
        raise LookupError("no rule files to reload: start the server with --rules FILE")
    try:
        rules = load_rules(settings.rules, webhooks=settings.alert_webhooks)
        state.alerts.reload(rules)
    except Exception as exc:  # RulesError, or a file that parses but fails to start
        message = str(exc)
        _log.error("rules reload refused, the previous rules keep running: %s", message)
        state.collector.collect_event(
            ALERTS_SOURCE, f"rules reload refused: {message}", EventType.ERROR, {"error": message}
        )
        raise
    count = sum(1 for _ in rules.rules())
    summary = f"{count} rules in {len(rules.groups)} groups from {len(rules.files)} files"
    state.collector.collect_event(ALERTS_SOURCE, f"rules reloaded: {summary}", EventType.INFO, {})
    return summary


async def post_reload(request: Request) -> Response:
    """``POST /api/v1/rules/reload``."""
    state: ServerState = request.app.state.rimp
    try:
        summary = await run_in_threadpool(reload_rules, state)
    except LookupError as exc:
        return error_response(409, "no_rules", str(exc))
    except RulesError as exc:
        return error_response(400, "invalid_rules", str(exc), exc.where or None)
    return json_response({"status": "reloaded", "loaded": summary})


async def get_silences(request: Request) -> Response:
    """``GET /api/v1/silences``: every silence (expired ones for 5 days)."""
    engine = _engine(request)
    now = engine.clock()
    return json_response({"silences": [s.to_json(now) for s in engine.silences()]})


async def post_silence(request: Request) -> Response:
    """``POST /api/v1/silences``: Alertmanager's ``postableSilence``; answers its id."""
    engine = _engine(request)
    try:
        body = msgspec.json.decode(await request.body())
    except msgspec.DecodeError as exc:
        return error_response(400, "invalid_json", f"the body is not JSON: {exc}", "body")
    try:
        silence = await run_in_threadpool(engine.put_silence, body)
    except ValidationError as exc:
        return error_response(400, "invalid_silence", str(exc), exc.field)
    return json_response({"silenceID": silence.id})


async def delete_silence(request: Request) -> Response:
    """``DELETE /api/v1/silences/{id}``: end a silence now."""
    engine = _engine(request)
    sid = request.path_params["id"]
    ended = await run_in_threadpool(engine.expire_silence, sid)
    if ended is None:
        return error_response(404, "not_found", f"no silence {sid!r}", "id")
    return json_response({"silence": ended.to_json(engine.clock())})


def _prom_alert(alert: Alert) -> dict[str, Any]:
    body = {
        "labels": alert.labels,
        "annotations": alert.annotations,
        "state": alert.state,
        "activeAt": rfc3339(alert.active_at),
        "value": go_exponent(alert.value),
    }
    if alert.keep_firing_since:
        body["keepFiringSince"] = rfc3339(alert.keep_firing_since)
    return body


def _prom_success(data: Any) -> Response:
    return json_response({"status": "success", "data": data})


async def prometheus_alerts(request: Request) -> Response:
    """``/prometheus/api/v1/alerts``: the pending and firing alerts, as Prometheus lists them."""
    alerts = [a for a in _engine(request).alerts() if a.state != INACTIVE]
    alerts.sort(key=lambda a: (a.labels.get("alertname", ""), a.fp))
    return _prom_success({"alerts": [_prom_alert(a) for a in alerts]})


async def prometheus_rules(request: Request) -> Response:
    """``/prometheus/api/v1/rules[?type=alert|record]``: groups and rules as Prometheus
    lists them (event rules as alerting rules, their match as the query)."""
    engine = _engine(request)
    kind = request.query_params.get("type")
    if kind not in (None, "alert", "record"):
        return json_response(
            {"status": "error", "errorType": "bad_data", "error": f'unsupported type "{kind}"'}, 400
        )
    groups = []
    for group, clock, statuses in engine.rule_groups():
        rules = []
        for status in statuses:
            rule = status.rule
            recording = isinstance(rule, RecordingRule)
            if (kind == "alert" and recording) or (kind == "record" and not recording):
                continue
            body: dict[str, Any] = {
                "name": rule.name,
                "query": rule.expr,
                "labels": {k: t.text for k, t in rule.labels.items()},
                "health": status.health,
                "evaluationTime": status.evaluation_seconds,
                "lastEvaluation": rfc3339(status.last_evaluation or 0),
                "type": "recording" if recording else "alerting",
            }
            if status.last_error:
                body["lastError"] = status.last_error
            if not isinstance(rule, RecordingRule):
                active = [a for a in status.alerts.values() if a.state != INACTIVE]
                body.update(
                    {
                        "state": _rule_state(active),
                        "duration": rule.for_ns / _NS,
                        "keepFiringFor": rule.keep_firing_for_ns / _NS,
                        "annotations": {k: t.text for k, t in rule.annotations.items()},
                        "alerts": [_prom_alert(a) for a in active],
                    }
                )
            rules.append(body)
        groups.append(
            {
                "name": group.name,
                "file": group.file,
                "rules": rules,
                "interval": group.interval_ns / _NS,
                "limit": 0,
                "evaluationTime": clock.evaluation_seconds,
                "lastEvaluation": rfc3339(clock.last_evaluation or 0),
            }
        )
    return _prom_success({"groups": groups})
