"""Tests of the rimp command line."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from telemetry import __version__
from telemetry.cli.serve import cpu_list
from telemetry.storage import FileStorage
from tests.helpers import RimpServer, rimp


class TestVersion:
    def test_prints_the_package_version(self) -> None:
        """`rimp --version` prints the version and exits 0."""
        result = rimp("--version")
        assert result.returncode == 0
        assert result.stdout.strip() == f"rimp {__version__}"


class TestDemo:
    def test_demo_streams_and_stores(self, tmp_path: Path) -> None:
        """`rimp demo` runs fake services, prints a summary and leaves a readable store."""
        out = tmp_path / "demo"
        result = rimp("demo", "--duration", "1.5", "--out", str(out), "--rate", "100")
        assert result.returncode == 0, result.stderr
        assert "p95 latency" in result.stdout
        assert "== collector:" in result.stdout
        assert " 0 dropped" in result.stdout
        storage = FileStorage(out)
        services = {s.tags["service"] for s in storage.series("response_time")}
        assert services == {"api", "billing", "search"}

    def test_help_describes_the_demo(self) -> None:
        """`rimp demo --help` explains what the demo does."""
        result = rimp("demo", "--help")
        assert result.returncode == 0
        assert "fake services" in result.stdout


class TestCpus:
    @pytest.mark.parametrize(
        ("text", "cpus"),
        [("0", {0}), ("2,3", {2, 3}), ("0-2", {0, 1, 2}), (" 1 , 4-5", {1, 4, 5}), ("3-3", {3})],
    )
    def test_cpu_lists_are_read(self, text: str, cpus: set[int]) -> None:
        """Single CPUs, lists and ranges, as taskset takes them."""
        assert cpu_list(text) == cpus

    @pytest.mark.parametrize("text", ["", "x", "1-", "-1", "2-1", "0,,1", "1.5"])
    def test_a_bad_cpu_list_is_refused_by_part(self, text: str) -> None:
        """Anything else is a ValueError naming the part at fault."""
        with pytest.raises(ValueError, match=r"give CPU numbers|low to high"):
            cpu_list(text)

    def test_a_cpu_this_process_may_not_use_stops_serve_at_once(self, tmp_path: Path) -> None:
        """`rimp serve --cpus` with a CPU outside the allowed set: exit 2, the CPU named."""
        result = rimp("serve", "--cpus", "4096", "--data-dir", str(tmp_path / "d"), timeout=30)
        assert result.returncode == 2
        assert "--cpus: CPU 4096 is not among those this process may use" in result.stderr

    @pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux CPU affinity only")
    def test_every_thread_of_the_server_runs_on_the_cpus_given(self, tmp_path: Path) -> None:
        """`rimp serve --cpus 0`: the server's threads (event loop, dispatch, consumers) are
        all kept on CPU 0, and it serves."""
        server = RimpServer(tmp_path / "data", "--cpus", "0").start()
        try:
            assert server.proc is not None
            tasks = list(Path(f"/proc/{server.proc.pid}/task").iterdir())
            assert len(tasks) >= 3  # the loop, the dispatch thread, the consumers
            for task in tasks:
                status = (task / "status").read_text()
                allowed = next(
                    ln for ln in status.splitlines() if ln.startswith("Cpus_allowed_list")
                )
                assert allowed.split()[-1] == "0", task.name
            assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
        finally:
            server.stop()
