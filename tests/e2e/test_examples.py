"""Tests of examples/: each script runs on its own and prints what its docstring promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, cwd: Path) -> list[str]:
    """Run ``examples/<name>`` with this interpreter; return its output lines."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout.splitlines()


class TestExamples:
    def test_basic_usage_records_queries_and_counts(self, tmp_path: Path) -> None:
        """basic_usage.py records events, metrics and instruments, then queries them."""
        lines = run_example("basic_usage.py", tmp_path)
        assert lines == [
            "events stored: 6",
            "  newest errors: api_server /api/orders failed (second 59)",
            "  newest errors: api_server /api/users failed (second 44)",
            "events per type: error=4, info=1, warning=1",
            "response_time count at 12:00: 60",
            "response_time avg at 12:00: 39.5",
            "response_time p95 at 12:00: 66.05",
            "response_time max at 12:00: 69",
            "  p50 /api/orders: 40 ms over 30 points",
            "  p50 /api/users: 39 ms over 30 points",
            "responses with status 500: 4",
            "http.requests counted: 100",
            "db.query p99: 99.01 ms",
            "http.in_flight: 3",
            "report.build timed 1 time(s)",
            "series of response_time: 4",
            "collector: 6 events, 61 metrics collected, 0 dropped, 0 buffered",
        ]

    def test_realtime_streaming_delivers_to_every_consumer(self, tmp_path: Path) -> None:
        """realtime_streaming.py alerts on each error and every consumer sees every record."""
        lines = run_example("realtime_streaming.py", tmp_path)
        assert lines == [
            "ALERT checkout: payment declined (order 8)",
            "ALERT checkout: payment declined (order 16)",
            "ALERT checkout: payment declined (order 24)",
            "ALERT checkout: payment declined (order 32)",
            "ALERT checkout: payment declined (order 40)",
            "totals consumer: events error=5, info=35; revenue 8200 EUR",
            "async consumer forwarded 40 events",
            "storage: 40 events",
            "storage: 40 checkout.amount points",
            "checkout.latency observations: 40",
            "  consumer alert: errors=0 dropped=0 pending=0",
            "  consumer totals: errors=0 dropped=0 pending=0",
            "  consumer forward: errors=0 dropped=0 pending=0",
            "collector dropped 0 records",
        ]

    def test_custom_storage_writes_csv(self, tmp_path: Path) -> None:
        """custom_storage.py stores through a Storage subclass and reads the CSV back."""
        lines = run_example("custom_storage.py", tmp_path)
        assert lines == [
            "CsvStorage wrote 13 rows",
            "the stream's consumer saw 3 records",
            "events.csv: 5 rows, columns id, time_ns, event_type, source, message, metadata",
            '  warning: importer file 3 imported {"file": "data-3.json", "rows": 300}',
            "metrics.csv: 8 rows, columns id, time_ns, name, value, unit, tags",
            "  import.rows: 5 points, total 1000",
            "  export.rows: 3 points, total 30",
            "query_events(event_type='warning'): ['file 3 imported']",
            "aggregate p50 of import.rows: 200",
        ]

    def test_custom_storage_passes_the_conformance_suite(self, tmp_path: Path) -> None:
        """The example's CsvStorage passes the storage conformance suite shipped to users."""
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             str(EXAMPLES / "custom_storage.py")],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        summary = result.stdout.strip().splitlines()[-1]
        assert re.fullmatch(r"\d+ passed in [\d.]+s", summary), summary  # no fail, skip, error

    def test_examples_leave_nothing_behind(self, tmp_path: Path) -> None:
        """No example writes into the directory it is run from."""
        for name in ("basic_usage.py", "realtime_streaming.py", "custom_storage.py"):
            run_example(name, tmp_path)
        assert list(tmp_path.iterdir()) == []
