"""Tests of the rimp command line."""

from __future__ import annotations

from pathlib import Path

from telemetry import __version__
from telemetry.storage import FileStorage
from tests.helpers import rimp


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
