"""Grafana's stock Prometheus data source, replayed: each request it sends (recorded in
tests/fixtures/grafana_requests.json) gets a valid Prometheus answer from /prometheus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import AppServer, unique

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "grafana_requests.json"
REQUESTS: list[dict[str, Any]] = json.loads(FIXTURE.read_text())["requests"]
T0 = 1_796_126_400


@pytest.fixture(scope="module")
def metric(app_server: AppServer) -> str:
    name = unique("grafana").replace("-", "_")
    points = [
        {
            "name": f"{name}.requests",
            "value": float(i),
            "tags": {"job": job},
            "time_ns": (T0 + i * 15) * 10**9,
        }
        for i in range(41)
        for job in ("a", "b")
    ]
    assert app_server.client.post("/api/v1/metrics", json=points).status_code == 202
    return f"{name}_requests"


def fill(value: str, metric: str) -> str:
    # Grafana expands $__rate_interval itself; it sends at least four scrape intervals.
    return (
        value.replace("{T0}", str(T0))
        .replace("{T1}", str(T0 + 600))
        .replace("{METRIC}", metric)
        .replace("$__rate_interval", "1m")
    )


@pytest.mark.parametrize("recorded", REQUESTS, ids=[r["name"] for r in REQUESTS])
def test_grafana_gets_a_valid_answer(
    client: httpx.Client, metric: str, recorded: dict[str, Any]
) -> None:
    """The recorded request is answered 200 in Prometheus' success envelope."""
    url = "/prometheus" + fill(recorded["path"], metric)
    params = {k: fill(v, metric) for k, v in recorded.get("params", {}).items()}
    form = {k: fill(v, metric) for k, v in recorded.get("form", {}).items()}
    if recorded["method"] == "POST":
        response = client.post(url, params=params, data=form)
    else:
        response = client.get(url, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    data = body["data"]
    if recorded["path"].endswith(("/query", "/query_range")):
        assert data["resultType"] in ("vector", "matrix", "scalar")
        assert data["result"], recorded["name"]
        if data["resultType"] != "scalar":
            assert all(isinstance(s["metric"], dict) for s in data["result"])
