"""A real Prometheus (Debian's 2.42) scraping `rimp serve` and remote-writing into it: the
series come back through the query API, tagged with their labels."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.helpers import RimpServer, free_port, poll, running

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None and os.environ.get("CI") != "true",
    reason="Prometheus is not installed (apt-get install prometheus)",
)


@pytest.fixture(scope="module")
def rimp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RimpServer]:
    """The server Prometheus scrapes and writes into."""
    with running(tmp_path_factory.mktemp("rw") / "data") as s:
        yield s


@pytest.fixture(scope="module")
def prometheus(rimp: RimpServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Prometheus scraping RIMP's /metrics every second and remote-writing it back."""
    assert PROMETHEUS is not None, "CI=true: Prometheus must be installed (.ci/run does it)"
    home = tmp_path_factory.mktemp("prometheus")
    config = home / "prometheus.yml"
    target = rimp.url.removeprefix("http://")
    config.write_text(
        f"""
global:
  scrape_interval: 1s
  external_labels: {{replica: "test"}}
scrape_configs:
  - job_name: rimp
    static_configs: [{{targets: ["{target}"]}}]
remote_write:
  - url: {rimp.url}/api/v1/write
    queue_config: {{batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}}
"""
    )
    log = (home / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={home / 'data'}",
         f"--web.listen-address=127.0.0.1:{free_port()}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def series_named(rimp: RimpServer, name: str) -> list[dict[str, object]]:
    with rimp.client() as c:
        r = c.get("/api/v1/series", params={"name": name})
    assert r.status_code == 200, r.text
    return list(r.json()["series"])


class TestPrometheusRemoteWrite:
    def test_scraped_series_arrive_with_their_labels(
        self, rimp: RimpServer, prometheus: None
    ) -> None:
        """`up` and RIMP's own figures, scraped and written back, are stored as series
        tagged with Prometheus' labels (job, instance, external labels)."""
        assert poll(lambda: bool(series_named(rimp, "up")), 60, 0.5), "nothing written"
        [up] = series_named(rimp, "up")
        assert up["tags"] == {"job": "rimp", "instance": rimp.url.removeprefix("http://"),
                              "replica": "test"}  # fmt: skip
        assert up["last_value"] == 1.0
        assert poll(lambda: bool(series_named(rimp, "rimp_uptime_seconds")), 30, 0.5)
        with rimp.client() as c:
            points = c.get("/api/v1/metrics/up", params={"since": "-10m"}).json()["points"]
            figures = c.get("/metrics").text
        assert all(p["value"] == 1.0 for p in points)
        assert 'rimp_door_records_total{door="remote_write",outcome="accepted"}' in figures
        assert 'rimp_door_requests_total{door="remote_write",status="204"}' in figures
