"""The Prometheus HTTP query API under ``/prometheus``: what Grafana and promtool speak.

``/prometheus/api/v1/query`` and ``query_range`` (GET, or a form POST as Grafana
sends), ``labels``, ``label/<name>/values``, ``series``, ``metadata``,
``status/buildinfo``, ``rules`` and ``alerts`` (from :mod:`telemetry.server.alerts`),
and an empty but valid ``query_exemplars``. The envelope is Prometheus' own: ``{"status": "success",
"data": ...}`` with sample values as strings, or ``{"status": "error",
"errorType": ..., "error": ...}`` with 400 (``bad_data``), 422 (``execution``) or
503. A RIMP series is ``__name__`` = its name sanitised as ``/metrics`` does
(``http.latency`` is ``http_latency``), its tags the labels. The queries are
evaluated by :mod:`telemetry.promql.engine` over the server's storage.
"""

from __future__ import annotations

import math
import time
import urllib.parse
from decimal import Decimal
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from telemetry._jsonform import encode
from telemetry._time import rfc3339_to_ns
from telemetry._version import __version__
from telemetry.errors import ValidationError
from telemetry.promql.duration import parse_duration
from telemetry.promql.engine import Evaluator, PromQLError, Result, parse
from telemetry.server import alerts
from telemetry.server.state import ServerState

__all__ = ["MAX_POINTS", "routes"]

MAX_POINTS = 11_000
"""Most steps a range query may have (Prometheus' own limit)."""
_STATUS = {"bad_data": 400, "execution": 422, "timeout": 503, "internal": 500}


def _success(data: Any) -> Response:
    return Response(encode({"status": "success", "data": data}), 200, media_type="application/json")


def _failure(kind: str, message: str) -> Response:
    body = {"status": "error", "errorType": kind, "error": message}
    return Response(encode(body), _STATUS.get(kind, 400), media_type="application/json")


async def _params(request: Request) -> dict[str, list[str]]:
    """Query-string and (for POST) form-encoded parameters, repeatable."""
    pairs = list(request.query_params.multi_items())
    if request.method == "POST":
        body = (await request.body()).decode("utf-8", "replace")
        pairs += urllib.parse.parse_qsl(body, keep_blank_values=True)
    out: dict[str, list[str]] = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return out


def _one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[-1] if values else None


def _time(text: str | None, name: str, default: int | None = None) -> int:
    """Unix seconds (a float) or RFC 3339, as Prometheus takes them."""
    if text is None or text == "":
        if default is None:
            raise PromQLError("bad_data", f'invalid parameter "{name}": missing')
        return default
    try:
        seconds = float(text)
    except ValueError:
        try:
            return rfc3339_to_ns(text, name)
        except ValidationError:
            raise PromQLError(
                "bad_data",
                f'invalid parameter "{name}": cannot parse "{text}" to a valid timestamp',
            ) from None
    if not math.isfinite(seconds):
        raise PromQLError(
            "bad_data", f'invalid parameter "{name}": cannot parse "{text}" to a valid timestamp'
        )
    return round(seconds * 1e9)


def _step(text: str | None) -> int:
    """Seconds (``15``, ``0.5``) or a duration (``15s``, ``1m``, ``1h30m``), in ns."""
    if not text:
        raise PromQLError("bad_data", 'invalid parameter "step": missing')
    try:
        return round(float(text) * 1e9)
    except ValueError:
        pass
    ns = parse_duration(text)
    if ns is None:
        raise PromQLError(
            "bad_data", f'invalid parameter "step": cannot parse "{text}" to a valid duration'
        )
    return ns


_SPECIAL = {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}


def _format(value: float) -> str:
    """A sample value as Prometheus writes it (Go's strconv 'f', -1).

    Called once per sample of a range answer (tens of thousands): the common cases
    are a ``repr`` and a slice; only exponents go through ``Decimal``.
    """
    text = repr(value)  # the shortest string that round-trips, as Go's -1 precision
    if text.endswith(".0"):
        return "0" if text == "-0.0" else text[:-2]
    if "e" in text or "n" in text:
        special = _SPECIAL.get(text)
        if special is not None:
            return special
        # Go's 'f' never writes an exponent: spell the digits out.
        text = format(Decimal(text), "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
    return text


def _seconds(ns: int) -> msgspec.Raw:
    """A sample time as Prometheus writes it: whole seconds, or seconds and three digits."""
    ms = round(ns / 1e6)
    whole, frac = divmod(ms, 1000)
    return msgspec.Raw(f"{whole}.{frac:03d}".encode() if frac else str(whole).encode())


def _scalar_seconds(ns: int) -> msgspec.Raw:
    """A scalar's time, which Prometheus writes as a plain float (``1796128207.5``)."""
    ms = round(ns / 1e6)
    return msgspec.Raw(str(ms // 1000).encode() if ms % 1000 == 0 else repr(ms / 1000).encode())


def _metric(labels: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return dict(labels)


def _instant_data(result: Result) -> dict[str, Any]:
    t = _seconds(result.steps[0])
    if result.kind == "scalar":
        scalar_t = _scalar_seconds(result.steps[0])
        return {"resultType": "scalar", "result": [scalar_t, _format(result.scalars[0])]}
    if result.kind == "string":
        return {"resultType": "string", "result": [t, result.string]}
    vector = result.vectors[0]
    return {
        "resultType": "vector",
        "result": [
            {"metric": _metric(k), "value": [t, _format(v)]} for k, v in sorted(vector.items())
        ],
    }


def _range_data(result: Result) -> dict[str, Any]:
    if result.kind == "string":
        raise PromQLError("bad_data", "a range query cannot return a string")
    series: dict[tuple[tuple[str, str], ...], list[list[Any]]] = {}
    for step, t in enumerate(map(_seconds, result.steps)):
        if result.kind == "scalar":
            series.setdefault((), []).append([t, _format(result.scalars[step])])
            continue
        for labels, value in result.vectors[step].items():
            series.setdefault(labels, []).append([t, _format(value)])
    return {
        "resultType": "matrix",
        "result": [{"metric": _metric(k), "values": v} for k, v in sorted(series.items())],
    }


def _instant(state: ServerState, query: str, t: int) -> dict[str, Any]:
    tree = parse(query)
    evaluator = Evaluator(state.storage, [t])
    if type(tree).__name__ == "MatrixSelector":  # a range vector is an instant query's matrix
        _, ranges = evaluator.eval(tree)
        return {
            "resultType": "matrix",
            "result": [
                {
                    "metric": _metric(labels),
                    "values": [
                        [_seconds(ts), _format(v)] for ts, v in zip(times, values, strict=True)
                    ],
                }
                for labels, times, values in sorted(ranges.per_step[0])
            ],
        }
    return _instant_data(evaluator.run(tree))


def _range(state: ServerState, query: str, start: int, end: int, step: int) -> dict[str, Any]:
    tree = parse(query)
    steps = list(range(start, end + 1, step))
    return _range_data(Evaluator(state.storage, steps).run(tree))


async def query(request: Request) -> Response:
    """``/prometheus/api/v1/query``: ``query`` at ``time`` (default now)."""
    state: ServerState = request.app.state.rimp
    try:
        params = await _params(request)
        expr = _one(params, "query")
        if not expr:
            raise PromQLError("bad_data", 'invalid parameter "query": missing')
        t = _time(_one(params, "time"), "time", time.time_ns())
        return _success(await run_in_threadpool(_instant, state, expr, t))
    except PromQLError as err:
        return _failure(err.kind, err.message)


async def query_range(request: Request) -> Response:
    """``/prometheus/api/v1/query_range``: ``query`` from ``start`` to ``end`` every ``step``."""
    state: ServerState = request.app.state.rimp
    try:
        params = await _params(request)
        expr = _one(params, "query")
        if not expr:
            raise PromQLError("bad_data", 'invalid parameter "query": missing')
        start = _time(_one(params, "start"), "start")
        end = _time(_one(params, "end"), "end")
        if end < start:
            raise PromQLError(
                "bad_data", 'invalid parameter "end": end timestamp must not be before start time'
            )
        step = _step(_one(params, "step"))
        if step <= 0:
            raise PromQLError(
                "bad_data",
                "zero or negative query resolution step widths are not accepted. "
                "Try a positive integer",
            )
        if (end - start) // step > MAX_POINTS:
            raise PromQLError(
                "bad_data",
                "exceeded maximum resolution of 11,000 points per timeseries. "
                "Try decreasing the query resolution (?step=XX)",
            )
        return _success(await run_in_threadpool(_range, state, expr, start, end, step))
    except PromQLError as err:
        return _failure(err.kind, err.message)


def _series_matching(state: ServerState, matches: list[str]) -> list[dict[str, str]]:
    evaluator = Evaluator(state.storage, [time.time_ns()])
    if not matches:
        return [dict(labels) for labels, _, _ in evaluator.catalogue()]
    from telemetry.promql.engine import _matchers

    found: dict[tuple[tuple[str, str], ...], None] = {}
    for text in matches:
        tree = parse(text)
        if type(tree).__name__ != "VectorSelector":
            raise PromQLError("bad_data", f"match[] {text!r}: must be a series selector")
        tests = _matchers(tree)
        for labels, _, _ in evaluator.catalogue():
            as_dict = dict(labels)
            if all(test(as_dict) for test in tests):
                found[labels] = None
    return [dict(labels) for labels in found]


async def series(request: Request) -> Response:
    """``/prometheus/api/v1/series``: the label sets matching ``match[]``."""
    state: ServerState = request.app.state.rimp
    try:
        params = await _params(request)
        matches = params.get("match[]", [])
        if not matches:
            raise PromQLError("bad_data", "no match[] parameter provided")
        return _success(await run_in_threadpool(_series_matching, state, matches))
    except PromQLError as err:
        return _failure(err.kind, err.message)


async def labels(request: Request) -> Response:
    """``/prometheus/api/v1/labels``: every label name (of the series matching ``match[]``)."""
    state: ServerState = request.app.state.rimp
    try:
        params = await _params(request)
        found = await run_in_threadpool(_series_matching, state, params.get("match[]", []))
        return _success(sorted({name for s in found for name in s}))
    except PromQLError as err:
        return _failure(err.kind, err.message)


async def label_values(request: Request) -> Response:
    """``/prometheus/api/v1/label/<name>/values``."""
    state: ServerState = request.app.state.rimp
    name = request.path_params["name"]
    try:
        params = await _params(request)
        found = await run_in_threadpool(_series_matching, state, params.get("match[]", []))
        return _success(sorted({s[name] for s in found if name in s}))
    except PromQLError as err:
        return _failure(err.kind, err.message)


async def metadata(request: Request) -> Response:
    """``/prometheus/api/v1/metadata``: each metric's unit (RIMP keeps no type or help)."""
    state: ServerState = request.app.state.rimp
    from telemetry._promnames import sanitize_name

    infos = await run_in_threadpool(state.storage.series)
    out: dict[str, list[dict[str, str]]] = {}
    for info in infos:
        out.setdefault(sanitize_name(info.name), [{"type": "gauge", "help": "", "unit": info.unit}])
    return _success(out)


async def buildinfo(request: Request) -> Response:
    """``/prometheus/api/v1/status/buildinfo``: a Prometheus-like version and no features
    (Grafana takes a ``features`` object for Mimir and turns its ruler on)."""
    return _success(
        {
            "version": "2.42.0",
            "revision": f"rimp-{__version__}",
            "branch": "rimp",
            "buildUser": "rimp",
            "buildDate": "",
            "goVersion": "",
        }
    )


async def exemplars(request: Request) -> Response:
    """``/prometheus/api/v1/query_exemplars``: RIMP keeps no exemplars."""
    return _success([])


def routes() -> list[BaseRoute]:
    """The API's routes, for the app's route table."""
    both = ["GET", "POST"]
    base = "/prometheus/api/v1"
    return [
        Route(f"{base}/query", query, methods=both),
        Route(f"{base}/query_range", query_range, methods=both),
        Route(f"{base}/series", series, methods=both),
        Route(f"{base}/labels", labels, methods=both),
        Route(f"{base}/label/{{name}}/values", label_values, methods=["GET"]),
        Route(f"{base}/metadata", metadata, methods=["GET"]),
        Route(f"{base}/status/buildinfo", buildinfo, methods=["GET"]),
        Route(f"{base}/rules", alerts.prometheus_rules, methods=["GET"]),
        Route(f"{base}/alerts", alerts.prometheus_alerts, methods=["GET"]),
        Route(f"{base}/query_exemplars", exemplars, methods=both),
    ]
