"""The Prometheus HTTP query API under /prometheus, in process: the envelope, parameters,
limits and the endpoints Grafana calls (the values themselves are compared with a real
Prometheus in tests/e2e/test_promql_vs_prometheus.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.helpers import AppServer, unique

T0 = 1_796_126_400  # whole minutes
API = "/prometheus/api/v1"


@pytest.fixture(scope="module")
def metric(app_server: AppServer) -> str:
    """A counter `<name>.requests` of jobs api (x2) and web (x1) every 15 s for 20 minutes."""
    name = unique("prom").replace("-", "_")
    points = [
        {
            "name": f"{name}.requests",
            "value": float(i * (2 if job == "api" else 1)),
            "tags": {"job": job},
            "time_ns": (T0 + i * 15) * 10**9,
        }
        for i in range(81)
        for job in ("api", "web")
    ]
    assert app_server.client.post("/api/v1/metrics", json=points).status_code == 202
    return f"{name}_requests"


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    return body["data"]


def failed(response: httpx.Response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["status"], body["errorType"]) == ("error", kind)
    return str(body["error"])


class TestQueries:
    def test_grafanas_connection_test(self, client: httpx.Client) -> None:
        """`1+1` is a scalar 2, its value a string, as Prometheus answers it."""
        data = ok(client.get(f"{API}/query", params={"query": "1+1", "time": T0}))
        assert data == {"resultType": "scalar", "result": [T0, "2"]}

    def test_an_instant_vector_with_sanitised_names(
        self, client: httpx.Client, metric: str
    ) -> None:
        """A RIMP series named with dots is queried by its Prometheus name."""
        data = ok(client.get(f"{API}/query", params={"query": metric, "time": T0 + 1200}))
        assert data["resultType"] == "vector"
        values = {r["metric"]["job"]: r["value"] for r in data["result"]}
        assert values == {"api": [T0 + 1200, "160"], "web": [T0 + 1200, "80"]}
        assert data["result"][0]["metric"]["__name__"] == metric

    def test_a_form_post_as_grafana_sends(self, client: httpx.Client, metric: str) -> None:
        """Grafana posts form-encoded queries; the answer is the same as for GET."""
        form = {"query": f"sum(rate({metric}[5m]))", "time": str(T0 + 1200)}
        posted = ok(client.post(f"{API}/query", data=form))
        got = ok(client.get(f"{API}/query", params=form))
        assert posted == got
        assert float(posted["result"][0]["value"][1]) == pytest.approx(3 / 15)

    @pytest.mark.parametrize("step", ["60", "60s", "1m", "1m0s"])
    def test_a_range_query_takes_seconds_or_durations(
        self, client: httpx.Client, metric: str, step: str
    ) -> None:
        """step in seconds or as a duration; times as Unix seconds or RFC 3339."""
        params = {
            "query": f'{metric}{{job="web"}}',
            "start": str(T0 + 600),
            "end": "2026-12-01T12:15:00Z",
            "step": step,
        }
        data = ok(client.get(f"{API}/query_range", params=params))
        [series] = data["result"]
        assert data["resultType"] == "matrix"
        assert series["values"][0] == [T0 + 600, "40"]

    def test_an_instant_range_selector_is_a_matrix_of_raw_points(
        self, client: httpx.Client, metric: str
    ) -> None:
        """`m[1m]` at an instant returns the points in the window."""
        query = f'{metric}{{job="api"}}[1m]'
        data = ok(client.get(f"{API}/query", params={"query": query, "time": T0 + 600}))
        [series] = data["result"]
        assert [v for _, v in series["values"]] == ["72", "74", "76", "78", "80"]


class TestErrors:
    @pytest.mark.parametrize(
        ("params", "words"),
        [
            ({"query": "sum("}, "parse error"),
            ({"query": "holt_winters(x[5m], 0.5, 0.5)"}, "holt_winters"),
            ({"query": "x[5m:1m]"}, "subqueries"),
            ({}, '"query": missing'),
            ({"query": "up", "time": "yesterday"}, "valid timestamp"),
        ],
        ids=["syntax", "unsupported-function", "subquery", "missing", "bad-time"],
    )
    def test_bad_data_names_the_problem(
        self, client: httpx.Client, params: dict[str, str], words: str
    ) -> None:
        """400 with errorType bad_data and a message naming what is wrong."""
        assert words in failed(client.get(f"{API}/query", params=params), 400, "bad_data")

    def test_range_limits_are_prometheus_own(self, client: httpx.Client) -> None:
        """More than 11,000 steps, a zero step or an end before the start: bad_data."""
        base = {"query": "1", "start": "0"}
        message = failed(
            client.get(f"{API}/query_range", params={**base, "end": "20000", "step": "1"}),
            400,
            "bad_data",
        )
        assert "11,000 points" in message
        assert "step" in failed(
            client.get(f"{API}/query_range", params={**base, "end": "10", "step": "0"}),
            400,
            "bad_data",
        )
        assert "end" in failed(
            client.get(
                f"{API}/query_range", params={"query": "1", "start": "10", "end": "5", "step": "1"}
            ),
            400,
            "bad_data",
        )


class TestMetadataEndpoints:
    def test_labels_values_and_series(self, client: httpx.Client, metric: str) -> None:
        """Label names, a label's values and series by match[], from the stored series."""
        assert "job" in ok(client.get(f"{API}/labels"))
        assert {"api", "web"} <= set(ok(client.get(f"{API}/label/job/values")))
        series = ok(client.get(f"{API}/series", params={"match[]": metric}))
        assert sorted(s["job"] for s in series) == ["api", "web"]
        assert "no match[]" in failed(client.get(f"{API}/series"), 400, "bad_data")

    def test_the_pages_grafana_opens_do_not_error(self, client: httpx.Client) -> None:
        """buildinfo has a version and no features; rules, alerts, exemplars are empty."""
        info = ok(client.get(f"{API}/status/buildinfo"))
        assert info["version"].startswith("2.")
        assert "features" not in info
        assert ok(client.get(f"{API}/rules")) == {"groups": []}
        assert ok(client.get(f"{API}/alerts")) == {"alerts": []}
        assert ok(client.get(f"{API}/query_exemplars", params={"query": "up"})) == []
        assert isinstance(ok(client.get(f"{API}/metadata")), dict)


class TestScopes:
    def test_a_read_token_may_post_queries(self, make_app_server: Callable[..., AppServer]) -> None:
        """Grafana's form POSTs are reads: the read scope suffices, ingest does not."""
        server = make_app_server(tokens={"r": "read", "w": "ingest"})
        form = {"query": "1+1"}
        reader = server.client.post(
            f"{API}/query", data=form, headers={"Authorization": "Bearer r"}
        )
        assert reader.status_code == 200
        writer = server.client.post(
            f"{API}/query", data=form, headers={"Authorization": "Bearer w"}
        )
        assert writer.status_code == 403


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (0.1, "0.1"),
        (-2.5, "-2.5"),
        (123456.789, "123456.789"),
        (1e21, "1000000000000000000000"),
        (1.5e-7, "0.00000015"),
        (2.5e-5, "0.000025"),
        (1 / 3, "0.3333333333333333"),
        (-0.0, "0"),
        (float("nan"), "NaN"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
    ],
)
def test_sample_values_are_written_as_prometheus_writes_them(value: float, text: str) -> None:
    """Go's ``strconv.FormatFloat(v, 'f', -1, 64)``: the shortest digits that round-trip,
    never an exponent (what Grafana and promtool parse)."""
    from telemetry.server.prometheus import _format

    assert _format(value) == text
