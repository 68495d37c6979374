"""RIMP's PromQL against a real Prometheus (Debian's 2.42): the same hour of data loaded into
both, the same queries asked of both, the answers compared value by value.

Prometheus gets the data as OpenMetrics text turned into a TSDB block by ``promtool tsdb
create-blocks-from openmetrics``; RIMP gets the same points through its native
``POST /api/v1/metrics`` with explicit times. Every query of tests/e2e/promql_queries.py is
one test: asked as an instant query at a few times and as two range queries (one on the
sample grid, one off it), of ``/api/v1/query[_range]`` on Prometheus and of
``/prometheus/api/v1/query[_range]`` on RIMP. The answers must have the same result type, the
same label sets (in any order), the same timestamps and values equal within a relative
1e-9 (NaN equals NaN); an error of Prometheus must be the same error on RIMP.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.e2e.promql_data import BASE, Series, dataset, openmetrics, records
from tests.e2e.promql_queries import QUERIES, Query
from tests.helpers import free_port, poll, post, running

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    (PROMETHEUS is None or PROMTOOL is None) and os.environ.get("CI") != "true",
    reason="Prometheus and promtool are not installed (apt-get install prometheus)",
)

INSTANT_TIMES = (
    BASE + 600,
    BASE + 1620,  # 135 s after the last sample of queue_depth: still seen
    BASE + 1785,  # exactly 5 minutes after it: the edge of the lookback
    BASE + 1807.5,  # off the sample grid, and queue_depth is gone
    BASE + 3585,  # the last sample of every other series
)
RANGES = (  # (start, end, step) in seconds
    (BASE + 300, BASE + 3540, 60),  # every evaluation on a sample
    (BASE + 307, BASE + 3577, 30),  # every evaluation between two samples
)
REL_TOL = 1e-9
ABS_TOL = 1e-12  # only for results that are zero but for rounding residue on one side
BATCH = 10_000
MAX_LINES = 30  # of a failure message


@dataclass(frozen=True)
class Servers:
    """HTTP clients of the two query APIs: each one's base URL ends before ``/api/v1``."""

    prometheus: httpx.Client
    rimp: httpx.Client


@pytest.fixture(scope="module")
def series() -> list[Series]:
    """The dataset both servers hold."""
    return dataset()


@pytest.fixture(scope="module")
def prometheus(
    series: list[Series], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """A Prometheus serving a TSDB block made of the dataset, scraping nothing."""
    assert PROMETHEUS is not None, "CI=true: Prometheus must be installed (.ci/run does it)"
    assert PROMTOOL is not None, "CI=true: promtool must be installed (.ci/run does it)"
    home = tmp_path_factory.mktemp("promql-prometheus")
    text = home / "data.om"
    text.write_text(openmetrics(series))
    tsdb = home / "tsdb"
    done = subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(text), str(tsdb)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"promtool failed:\n{done.stdout}\n{done.stderr}"
    config = home / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\n")
    url = f"http://127.0.0.1:{free_port()}"
    log_path = home / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tsdb}",
             f"--web.listen-address={url.removeprefix('http://')}",
             "--storage.tsdb.retention.time=100y"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        with httpx.Client(base_url=url, timeout=30.0, trust_env=False) as client:

            def ready() -> bool:
                if proc.poll() is not None:
                    return True
                try:
                    return client.get("/-/ready").status_code == 200
                except httpx.TransportError:
                    return False

            assert poll(ready, 60, 0.05), f"Prometheus not ready:\n{log_path.read_text()}"
            assert proc.poll() is None, f"Prometheus exited:\n{log_path.read_text()}"
            yield client
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="module")
def rimp(series: list[Series], tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A ``rimp serve`` holding the dataset; the client's base URL is its ``/prometheus``."""
    with running(tmp_path_factory.mktemp("promql-rimp") / "data") as server:
        with server.client() as client:
            batch = list(records(series))
            for first in range(0, len(batch), BATCH):
                post(client, "/api/v1/metrics", batch[first : first + BATCH])
            expected = {s.name: 0 for s in series}
            for s in series:
                expected[s.name] += len(s.samples)

            def stored() -> bool:
                return all(
                    len(client.get(f"/api/v1/metrics/{name}", params=_window()).json()["points"])
                    == n
                    for name, n in expected.items()
                )

            assert poll(stored, 30, 0.05), "RIMP did not store every point"
        base = f"{server.url}/prometheus"
        with httpx.Client(base_url=base, timeout=30.0, trust_env=False) as client:
            yield client


@pytest.fixture(scope="module")
def servers(prometheus: httpx.Client, rimp: httpx.Client) -> Servers:
    """Both query APIs, loaded with the same data."""
    return Servers(prometheus, rimp)


def _window() -> dict[str, str]:
    return {"since": str(BASE), "until": str(BASE + 3600), "limit": "1000000"}


# --- asking --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What a query API answered: the HTTP status and the JSON body (its text when not JSON)."""

    status: int
    body: Any

    @property
    def ok(self) -> bool:
        """A ``success`` envelope."""
        return (
            self.status == 200
            and isinstance(self.body, dict)
            and self.body.get("status") == "success"
        )

    def error(self) -> str:
        """The answer as an error: status, errorType, error."""
        if isinstance(self.body, dict):
            return f"{self.status} {self.body.get('errorType')}: {self.body.get('error')}"
        return f"{self.status} (not JSON: {self.body!r})"


def ask(client: httpx.Client, path: str, params: dict[str, str], form: bool = False) -> Answer:
    """GET ``path`` with ``params`` (or POST them as a form); a dropped connection is answer 0."""
    try:
        if form:
            response = client.post(f"/api/v1/{path}", data=params)
        else:
            response = client.get(f"/api/v1/{path}", params=params)
    except httpx.TransportError as exc:
        return Answer(0, {"errorType": "no answer", "error": repr(exc)})
    try:
        body = response.json()
    except ValueError:
        body = response.text[:200]
    return Answer(response.status_code, body)


def _num(t: float) -> str:
    return str(int(t)) if float(t).is_integer() else repr(float(t))


def evaluations(query: Query) -> list[tuple[str, str, dict[str, str]]]:
    """(where, path, params) of every evaluation of ``query``."""
    out = [
        (f"instant @{_rel(t)}", "query", {"query": query.expr, "time": _num(t)})
        for t in INSTANT_TIMES
    ]
    for start, end, step in RANGES:
        params = {"query": query.expr, "start": _num(start), "end": _num(end), "step": str(step)}
        out.append((f"range {_rel(start)}..{_rel(end)} step {step}", "query_range", params))
    return out


# --- comparing -----------------------------------------------------------------------------

Labels = tuple[tuple[str, str], ...]
Samples = dict[float, float]  # time to value


def _rel(t: float) -> str:
    """A time as an offset from BASE: ``+1620``, ``+1807.5``."""
    return f"+{_num(t - BASE)}"


def _labels(metric: dict[str, str]) -> str:
    name = metric.get("__name__", "")
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{inner}}}"


def _point(point: Any, problems: list[str]) -> tuple[float, float]:
    t, v = point
    if not isinstance(v, str):
        problems.append(f"value {v!r} is not a JSON string")
    return float(t), float(v)


def normalize(data: Any) -> tuple[str, dict[str, Samples], list[str]]:
    """(result type, samples by label set, problems of form) of a ``data`` object."""
    kind = data.get("resultType")
    result = data.get("result")
    problems: list[str] = []
    series: dict[str, Samples] = {}
    if kind in ("scalar", "string"):
        t, v = result
        series["(scalar)"] = {float(t): v if kind == "string" else float(v)}
        if not isinstance(v, str):
            problems.append(f"value {v!r} is not a JSON string")
        return kind, series, problems
    for item in result:
        key = _labels(item["metric"])
        if key in series:
            problems.append(f"{key} appears twice")
        points = [item["value"]] if kind == "vector" else item["values"]
        series[key] = dict(_point(p, problems) for p in points)
    return str(kind), series, problems


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return bool(a == b)


def _samples(samples: Samples, limit: int = 4) -> str:
    shown = ", ".join(f"{_rel(t)}: {v!r}" for t, v in list(samples.items())[:limit])
    more = f", ... ({len(samples)} in all)" if len(samples) > limit else ""
    return f"[{shown}{more}]"


def differences(where: str, prom: Answer, rimp: Answer) -> list[str]:
    """What ``rimp`` answered differently from ``prom`` (empty when they agree)."""
    if not prom.ok:
        if rimp.ok:
            return [f"{where}: Prometheus: error {prom.error()}; RIMP answered success"]
        if (prom.status, prom.body.get("errorType")) != (rimp.status, _error_type(rimp)):
            return [f"{where}: Prometheus: error {prom.error()}; RIMP: error {rimp.error()}"]
        return []
    if not rimp.ok:
        return [f"{where}: RIMP: error {rimp.error()}"]
    p_kind, p_series, _ = normalize(prom.body["data"])
    r_kind, r_series, problems = normalize(rimp.body["data"])
    out = [f"{where}: RIMP: {problem}" for problem in problems[:3]]
    if p_kind != r_kind:
        return [*out, f"{where}: result type: Prometheus {p_kind}, RIMP {r_kind}"]
    out += [
        f"{where}: only Prometheus has {key} {_samples(p_series[key])}"
        for key in sorted(p_series.keys() - r_series.keys())
    ]
    out += [
        f"{where}: only RIMP has {key} {_samples(r_series[key])}"
        for key in sorted(r_series.keys() - p_series.keys())
    ]
    for key in sorted(p_series.keys() & r_series.keys()):
        p, r = p_series[key], r_series[key]
        if p.keys() != r.keys():
            only_p = {t: p[t] for t in sorted(p.keys() - r.keys())}
            only_r = {t: r[t] for t in sorted(r.keys() - p.keys())}
            if only_p:
                out.append(f"{where}: {key}: only Prometheus has {_samples(only_p)}")
            if only_r:
                out.append(f"{where}: {key}: only RIMP has {_samples(only_r)}")
        wrong = [t for t in sorted(p.keys() & r.keys()) if not _same(p[t], r[t])]
        out += [f"{where}: {key} @{_rel(t)}: Prometheus {p[t]!r}, RIMP {r[t]!r}" for t in wrong[:3]]
        if len(wrong) > 3:
            out.append(f"{where}: {key}: {len(wrong) - 3} more values differ")
    return out


def _error_type(answer: Answer) -> Any:
    return answer.body.get("errorType") if isinstance(answer.body, dict) else None


def _has_samples(answer: Answer) -> bool:
    data = answer.body["data"]
    return data["resultType"] in ("scalar", "string") or bool(data["result"])


def _report(expr: str, lines: list[str]) -> str:
    shown = lines[:MAX_LINES]
    more = [f"... and {len(lines) - MAX_LINES} more"] if len(lines) > MAX_LINES else []
    return "\n".join([f"{expr}: RIMP differs from Prometheus", *shown, *more])


# --- the tests -----------------------------------------------------------------------------


@pytest.mark.parametrize("query", QUERIES, ids=[q.expr for q in QUERIES])
def test_query_matches_prometheus(servers: Servers, query: Query) -> None:
    """RIMP answers the query as Prometheus does, instant and range, value by value."""
    lines: list[str] = []
    answered = False
    for where, path, params in evaluations(query):
        prom = ask(servers.prometheus, path, params)
        if not prom.ok:  # the table's fault, unless a range query of a range vector
            assert query.instant_only, f"{where}: Prometheus: {prom.error()}"
            assert path == "query_range", f"{where}: Prometheus: {prom.error()}"
        else:
            answered = answered or _has_samples(prom)
        lines += differences(where, prom, ask(servers.rimp, path, params))
    assert answered or query.may_be_empty, f"{query.expr}: Prometheus answers nothing anywhere"
    if lines:
        pytest.fail(_report(query.expr, lines), pytrace=False)


def _window_params() -> dict[str, str]:
    return {"start": _num(BASE), "end": _num(BASE + 3600)}


METADATA = [
    ("labels", "labels", _window_params()),
    ("label job values", "label/job/values", _window_params()),
    ("label __name__ values", "label/__name__/values", _window_params()),
    ("label le values", "label/le/values", _window_params()),
    ("label missing values", "label/nonexistent/values", _window_params()),
]


@pytest.mark.parametrize(
    ("path", "params"), [m[1:] for m in METADATA], ids=[m[0] for m in METADATA]
)
def test_names_match_prometheus(servers: Servers, path: str, params: dict[str, str]) -> None:
    """The label names and label values RIMP lists are Prometheus' (in any order)."""
    prom, rimp = ask(servers.prometheus, path, params), ask(servers.rimp, path, params)
    assert prom.ok, prom.error()
    assert rimp.ok, f"RIMP: {rimp.error()}"
    assert sorted(rimp.body["data"]) == sorted(prom.body["data"])


SERIES_MATCHERS = [
    ['http_requests_total{job="api"}'],
    ["queue_depth", '{__name__=~"temperature_.*"}'],
    ['http_request_duration_seconds_bucket{instance="b:9100",le=~"0.*"}'],
]


@pytest.mark.parametrize("matchers", SERIES_MATCHERS, ids=[" ".join(m) for m in SERIES_MATCHERS])
def test_series_match_prometheus(servers: Servers, matchers: list[str]) -> None:
    """``series`` finds the label sets Prometheus finds for the same ``match[]``."""
    params: list[tuple[str, str | int | float | bool | None]] = [("match[]", m) for m in matchers]
    params += list(_window_params().items())
    answers = []
    for client in (servers.prometheus, servers.rimp):
        response = client.get("/api/v1/series", params=params)
        assert response.status_code == 200, response.text
        answers.append(sorted(_labels(m) for m in response.json()["data"]))
    assert answers[0], "Prometheus finds no series"
    assert answers[1] == answers[0]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("query", {"query": "sum by (job) (rate(http_requests_total[5m]))",
                   "time": _num(BASE + 1800)}),
        (
            "query_range",
            {"query": "max(temperature_celsius)", "start": _num(BASE + 600),
             "end": _num(BASE + 1200), "step": "60"},
        ),
    ],
    ids=["query", "query_range"],
)  # fmt: skip
def test_form_post_matches_prometheus(servers: Servers, path: str, params: dict[str, str]) -> None:
    """A query POSTed as a form is answered as Prometheus answers it."""
    prom = ask(servers.prometheus, path, params, form=True)
    assert prom.ok, prom.error()
    lines = differences(f"POST {path}", prom, ask(servers.rimp, path, params, form=True))
    if lines:
        pytest.fail(_report(params["query"], lines), pytrace=False)


ENVELOPES = [
    ("query", {"query": "temperature_celsius", "time": _num(BASE + 1800)}),
    ("query", {"query": "memory_usage_bytes", "time": _num(BASE + 1807.5)}),
    ("query", {"query": "memory_usage_bytes / 0", "time": _num(BASE + 1800)}),
    ("query", {"query": "-memory_usage_bytes / 0", "time": _num(BASE + 1800)}),
    ("query", {"query": "scalar(memory_usage_bytes)", "time": _num(BASE + 1800)}),
    ("query", {"query": "rate(http_requests_total[5m])", "time": _num(BASE + 1800)}),
    ("query", {"query": "time()", "time": _num(BASE + 1807.5)}),
    ("query", {"query": "queue_depth[1m]", "time": _num(BASE + 1200)}),
    ("query_range", {"query": "queue_depth", "start": _num(BASE + 1200),
                     "end": _num(BASE + 1900), "step": "60"}),
    ("query_range", {"query": "vector(1)", "start": _num(BASE + 600.5),
                     "end": _num(BASE + 900), "step": "30"}),
    ("query", {"query": "rate(", "time": _num(BASE + 600)}),
]  # fmt: skip


class _Number(str):
    """A JSON number as its text."""


def _verbatim(response: httpx.Response) -> Any:
    """The JSON body with every number kept as its text, and results in a fixed order."""
    body = json.loads(response.text, parse_float=_Number, parse_int=_Number)
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, dict) and data.get("resultType") in ("vector", "matrix"):
        data["result"].sort(key=lambda item: json.dumps(item.get("metric"), sort_keys=True))
    if isinstance(body, dict) and body.get("status") == "error":
        body["error"] = "(any message)"  # the wording is the engine's own
    return body


@pytest.mark.parametrize(
    ("path", "params"), ENVELOPES, ids=[f"{p} {q['query']}" for p, q in ENVELOPES]
)
def test_envelope_matches_prometheus(servers: Servers, path: str, params: dict[str, str]) -> None:
    """The JSON is Prometheus' to the text of each number: times, value strings, NaN, ±Inf."""
    answers = [c.get(f"/api/v1/{path}", params=params) for c in (servers.prometheus, servers.rimp)]
    assert answers[1].status_code == answers[0].status_code, answers[1].text
    assert answers[1].headers["content-type"].startswith("application/json")
    found = _json_differences("", _verbatim(answers[0]), _verbatim(answers[1]))
    if found:
        pytest.fail(_report(params["query"], found), pytrace=False)


def _json_differences(path: str, prom: Any, rimp: Any) -> list[str]:
    """Where two JSON documents differ (numbers compared as their text)."""
    if isinstance(prom, dict) and isinstance(rimp, dict):
        out = [f"{path}.{k}: only Prometheus has it" for k in sorted(prom.keys() - rimp.keys())]
        out += [f"{path}.{k}: only RIMP has it" for k in sorted(rimp.keys() - prom.keys())]
        for k in sorted(prom.keys() & rimp.keys()):
            out += _json_differences(f"{path}.{k}", prom[k], rimp[k])
        return out
    if isinstance(prom, list) and isinstance(rimp, list) and len(prom) == len(rimp):
        out = []
        for i, (p, r) in enumerate(zip(prom, rimp, strict=True)):
            out += _json_differences(f"{path}[{i}]", p, r)
        return out
    if prom == rimp and isinstance(prom, _Number) == isinstance(rimp, _Number):
        return []
    return [f"{path or '(body)'}: Prometheus {_short(prom)}, RIMP {_short(rimp)}"]


def _short(value: Any) -> str:
    text = str(value) if isinstance(value, _Number) else json.dumps(value)
    return text if len(text) <= 120 else f"{text[:117]}..."
