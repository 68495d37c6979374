"""Process lifecycle: flush at interpreter exit, and fork safety."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from telemetry import TelemetryCollector, TelemetryConfig
from telemetry.storage import FileStorage
from tests.helpers import run_python


class TestExitFlush:
    def test_records_are_flushed_when_the_interpreter_exits(self, tmp_path: Path) -> None:
        """A program that never calls close() still stores its records at exit."""
        result = run_python(
            f"""
            from telemetry import TelemetryCollector, TelemetryConfig
            c = TelemetryCollector(TelemetryConfig(
                storage_backend="file", storage_path={str(tmp_path)!r}, flush_interval=3600))
            for i in range(500):
                c.collect_event("job", f"step {{i}}")
            c.counter("steps").inc(500)
            """
        )
        assert result.returncode == 0, result.stderr
        storage = FileStorage(tmp_path)
        assert len(storage.query_events(limit=None)) == 500
        assert [p.value for p in storage.query_metrics("steps")] == [500.0]

    def test_exit_flush_is_bounded_by_shutdown_timeout(self) -> None:
        """A storage that hangs cannot keep the process alive past shutdown_timeout."""
        started = time.monotonic()
        result = run_python(
            """
            import threading
            from telemetry import TelemetryCollector, TelemetryConfig
            from telemetry.storage import Storage
            class Hang(Storage):
                def store(self, data):
                    threading.Event().wait()
            c = TelemetryCollector(TelemetryConfig(
                storage_backend=Hang(), shutdown_timeout=0.3, buffer_size=1))
            c.collect_event("job", "x")
            c.collect_event("job", "y")
            import atexit
            atexit.register(lambda: print("exit began", flush=True))
            """,
            timeout=20,
        )
        assert result.returncode == 0, result.stderr
        assert "exit began" in result.stdout
        assert time.monotonic() - started < 10


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is not available on this platform")
class TestFork:
    def test_a_forked_child_gets_a_working_collector(self, tmp_path: Path) -> None:
        """After fork the child records and flushes on its own; the parent keeps working."""
        parent_storage = FileStorage(tmp_path / "parent")
        c = TelemetryCollector(TelemetryConfig(flush_interval=3600), storage=parent_storage)
        c.collect_event("parent", "before fork")  # still buffered at fork time
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                child_storage = FileStorage(tmp_path / "child")
                child = TelemetryCollector(
                    TelemetryConfig(flush_interval=3600), storage=child_storage
                )
                c.collect_event("child", "via inherited collector")
                child.collect_event("child", "via new collector")
                ok = c.flush(10) and child.flush(10)
                stored = len(parent_storage.query_events(source="child"))
                own = len(child_storage.query_events())
                buffered_at_fork = len(parent_storage.query_events(source="parent"))
                os.write(write_fd, f"{ok} {stored} {own} {buffered_at_fork}".encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        _, status = os.waitpid(pid, 0)
        report = os.read(read_fd, 100).decode()
        os.close(read_fd)
        assert os.waitstatus_to_exitcode(status) == 0
        # The child stored its own records, and not the parent's buffered one.
        assert report == "True 1 1 0"
        c.collect_event("parent", "after fork")
        assert c.flush(10)
        assert [e.message for e in parent_storage.query_events(source="parent")] == [
            "after fork",
            "before fork",
        ]
        c.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is not available on this platform")
class TestForkInstruments:
    def test_a_child_reports_only_its_own_counts(self, tmp_path: Path) -> None:
        """A counter incremented before fork is reported by the parent alone."""
        c = TelemetryCollector(TelemetryConfig(flush_interval=3600), storage=FileStorage(tmp_path))
        requests = c.counter("requests")
        requests.inc(5)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                requests.inc(2)
                child = FileStorage(tmp_path / "child")
                c._storage = child  # the child writes elsewhere; the parent keeps its files
                code = 0 if c.flush(10) else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert c.flush(10)
        assert [p.value for p in c.storage.query_metrics("requests")] == [5.0]
        assert [p.value for p in FileStorage(tmp_path / "child").query_metrics("requests")] == [2.0]
        c.close()
