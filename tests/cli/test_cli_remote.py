"""Tests of `rimp send`, `query`, `tail` and `bench` against a real `rimp serve` process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.helpers import RimpServer, free_port, rimp, running, unique


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RimpServer]:
    """One real server for the module: the commands talk to it over HTTP."""
    with running(tmp_path_factory.mktemp("cli") / "data") as srv:
        yield srv


class TestSendAndQuery:
    def test_a_sent_event_can_be_queried(self, server: RimpServer) -> None:
        """`rimp send event` stores an event that `rimp query events --json` returns."""
        sent = rimp(
            "send",
            "event",
            "--url",
            server.url,
            "--source",
            "cron",
            "-m",
            "backup done",
            "--type",
            "warning",
            "--meta",
            "size=12GB",
        )
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.strip() == "accepted 1"
        found = rimp("query", "events", "--url", server.url, "--source", "cron", "--json")
        events = json.loads(found.stdout)["events"]
        assert [(e["message"], e["type"], e["metadata"]) for e in events] == [
            ("backup done", "warning", {"size": "12GB"})
        ]
        table = rimp("query", "events", "--url", server.url, "--source", "cron")
        assert table.stdout.splitlines()[0].split() == ["time", "type", "source", "message"]
        assert "backup done" in table.stdout

    def test_a_sent_metric_shows_in_series_and_aggregates(self, server: RimpServer) -> None:
        """`rimp send metric` then `query series` and `query metrics --agg` see the point."""
        for value in ("70", "72"):
            result = rimp(
                "send",
                "metric",
                "--url",
                server.url,
                "--name",
                "disk.used",
                "--value",
                value,
                "--unit",
                "%",
                "--tag",
                "host=db1",
            )
            assert result.returncode == 0, result.stderr
        series = rimp("query", "series", "--url", server.url, "--name", "disk.used", "--json")
        (info,) = json.loads(series.stdout)["series"]
        assert (info["tags"], info["last_value"], info["unit"]) == ({"host": "db1"}, 72.0, "%")
        agg = rimp(
            "query",
            "metrics",
            "disk.used",
            "--url",
            server.url,
            "--agg",
            "avg",
            "--bucket",
            "1h",
            "--group-by",
            "host",
            "--json",
        )
        groups = json.loads(agg.stdout)["groups"]
        assert groups[0]["tags"] == {"host": "db1"}
        assert groups[0]["buckets"][0]["value"] == 71.0

    def test_promql_instant_range_and_errors(self, server: RimpServer) -> None:
        """`rimp query promql` answers now or over --range, and names a PromQL error."""
        # The server is shared: a name of its own keeps other tests' disk.used points out.
        name = unique("disk.promql")
        promname = name.replace(".", "_").replace("-", "_")
        sent = rimp(
            "send",
            "metric",
            "--url",
            server.url,
            "--name",
            name,
            "--value",
            "41.5",
            "--tag",
            "host=db-1",
        )
        assert sent.returncode == 0, sent.stderr
        now = rimp("query", "promql", "--url", server.url, f"{promname} * 2")
        assert now.returncode == 0, now.stderr
        assert now.stdout.splitlines()[1].split() == ["host=db-1", "83"]
        over = rimp(
            "query",
            "promql",
            "--url",
            server.url,
            "--range",
            "5m",
            "--step",
            "1m",
            "--json",
            f"max({promname})",
        )
        data = json.loads(over.stdout)["data"]
        assert data["resultType"] == "matrix"
        assert {v for _, v in data["result"][0]["values"]} == {"41.5"}
        bad = rimp("query", "promql", "--url", server.url, f"rate({promname})")
        assert bad.returncode == 1
        assert "bad_data" in bad.stderr

    def test_bad_input_and_unreachable_servers_give_one_line_errors(
        self, server: RimpServer
    ) -> None:
        """A server-side 400 and a refused connection both exit 1 with a clear message."""
        bad = rimp("query", "metrics", "x", "--url", server.url, "--agg", "median")
        assert bad.returncode == 1
        assert "HTTP 400" in bad.stderr
        assert "agg='median'" in bad.stderr
        gone = rimp("query", "events", "--url", f"http://127.0.0.1:{free_port()}")
        assert gone.returncode == 1
        assert "cannot reach the RIMP server" in gone.stderr
        assert "Traceback" not in gone.stderr


class TestTail:
    def test_tail_prints_live_events_with_filters(self, server: RimpServer) -> None:
        """`rimp tail --count 2 --source` prints the next matching events and stops."""
        tail = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "telemetry.cli",
                "tail",
                "--url",
                server.url,
                "--source",
                "live",
                "--count",
                "2",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # Keep sending until tail, once connected, has seen two matching events.
            for i in range(200):
                rimp("send", "event", "--url", server.url, "--source", "other", "-m", "skip")
                rimp("send", "event", "--url", server.url, "--source", "live", "-m", f"hello {i}")
                if tail.poll() is not None:
                    break
            out, err = tail.communicate(timeout=30)
        finally:
            if tail.poll() is None:
                tail.kill()
        assert tail.returncode == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        assert len(lines) == 2
        assert {line["record"]["source"] for line in lines} == {"live"}


class TestBench:
    def test_bench_reports_throughput_and_latency(self, server: RimpServer) -> None:
        """`rimp bench` sends the records and prints records/s and latency percentiles."""
        result = rimp(
            "bench",
            "--url",
            server.url,
            "--records",
            "5000",
            "--concurrency",
            "2",
            "--batch",
            "500",
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("sent 5,000 events in ")
        assert "records/s" in result.stdout
        assert "p99" in result.stdout
