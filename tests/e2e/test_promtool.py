"""promtool (Debian's Prometheus 2.42 client) querying a real `rimp serve` at
`/prometheus`: instant and range queries, labels and series, as Grafana's data source does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.helpers import RimpServer, running, unique

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMTOOL is None and os.environ.get("CI") != "true",
    reason="promtool is not installed (apt-get install prometheus)",
)
NOW = int(time.time()) // 60 * 60


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RimpServer, str]]:
    """A server holding a counter of two jobs over the last 20 minutes, every 15 s."""
    name = unique("promtool").replace("-", "_")
    with running(tmp_path_factory.mktemp("promtool") / "data") as server:
        points = [
            {
                "name": f"{name}.requests",
                "value": float(i * (2 if job == "api" else 1)),
                "tags": {"job": job},
                "time_ns": (NOW - 1200 + i * 15) * 10**9,
            }
            for i in range(81)
            for job in ("api", "web")
        ]
        with server.client() as c:
            assert c.post("/api/v1/metrics", json=points).status_code == 202
        yield server, f"{name}_requests"


def promtool(*args: str) -> str:
    assert PROMTOOL is not None, "CI=true: promtool must be installed (.ci/run does it)"
    done = subprocess.run(
        [PROMTOOL, "query", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class TestPromtool:
    def test_instant_query(self, loaded: tuple[RimpServer, str]) -> None:
        """`promtool query instant` gets a vector with both jobs' rates."""
        server, metric = loaded
        out = promtool(
            "instant",
            "-o",
            "json",
            f"{server.url}/prometheus",
            f"sum by (job) (rate({metric}[5m]))",
            f"--time={NOW}",
        )
        result = {r["metric"]["job"]: float(r["value"][1]) for r in json.loads(out)}
        assert result == pytest.approx({"api": 2 / 15, "web": 1 / 15})

    def test_range_query(self, loaded: tuple[RimpServer, str]) -> None:
        """`promtool query range` gets a matrix at the step asked for."""
        server, metric = loaded
        out = promtool(
            "range",
            "-o",
            "json",
            f"--start={NOW - 300}",
            f"--end={NOW}",
            "--step=1m",
            f"{server.url}/prometheus",
            f'{metric}{{job="web"}}',
        )
        [series] = json.loads(out)
        assert [float(v) for _, v in series["values"]] == [60.0, 64.0, 68.0, 72.0, 76.0, 80.0]

    def test_labels_and_series(self, loaded: tuple[RimpServer, str]) -> None:
        """`promtool query labels` and `query series --match` list what is stored."""
        server, metric = loaded
        assert "web" in promtool("labels", f"{server.url}/prometheus", "job").split()
        out = promtool("series", f"--match={metric}", f"{server.url}/prometheus")
        assert out.count(metric) == 2

    def test_a_bad_query_is_reported_as_prometheus_does(
        self, loaded: tuple[RimpServer, str]
    ) -> None:
        """promtool's client reads RIMP's error envelope and shows the parse error."""
        server, _ = loaded
        assert PROMTOOL is not None
        done = subprocess.run(
            [PROMTOOL, "query", "instant", f"{server.url}/prometheus", "sum("],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode != 0
        assert "bad_data" in done.stderr
