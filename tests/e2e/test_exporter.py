"""Tests of HTTPExporter against a real `rimp serve` process (stopped and restarted)."""

from __future__ import annotations

import contextlib
import math
import os
import time
from pathlib import Path

import pytest

from telemetry import (
    Event,
    EventType,
    Metric,
    StorageError,
    TelemetryCollector,
    TelemetryConfig,
    TelemetryData,
)
from telemetry.exporters.http import HTTPExporter
from telemetry.models import new_id
from tests.helpers import RimpServer, free_port, poll


@pytest.fixture
def server(rimp_server: RimpServer) -> RimpServer:
    """A real server, not started yet: each test starts (and may restart) it."""
    return rimp_server


def events(n: int, start: int = 0) -> list[Event]:
    return [
        Event("app", f"e{i}", EventType.INFO, {"i": i}, 10**18 + i, new_id())
        for i in range(start, start + n)
    ]


class TestExporter:
    def test_every_record_arrives_once(self, server: RimpServer, tmp_path: Path) -> None:
        """Records shipped through a collector reach the server, each exactly once."""
        server.start()
        collector = TelemetryCollector(
            TelemetryConfig(endpoint=server.url, spool_dir=str(tmp_path / "spool"), buffer_size=500)
        )
        sent = [collector.collect_event("app", f"m{i}") for i in range(3_000)]
        assert collector.close(30)
        ids = server.event_ids()
        assert sorted(ids) == sorted(e.id for e in sent if e)

    def test_batches_wait_in_the_spool_until_the_server_starts(
        self, server: RimpServer, tmp_path: Path
    ) -> None:
        """With no server, batches are spooled and counted; they are sent once it starts."""
        exporter = HTTPExporter(server.url, spool_dir=tmp_path / "spool", max_backoff=0.5)
        batch = events(100)
        exporter.store(TelemetryData(batch, []))
        assert poll(lambda: exporter.stats()["retried"] >= 1, 10)
        assert exporter.stats()["spooled"] == 1
        server.start()
        assert exporter.flush(20)
        assert sorted(server.event_ids()) == sorted(e.id for e in batch)
        exporter.close()

    @pytest.mark.slow
    def test_a_server_restart_mid_stream_loses_and_duplicates_nothing(
        self, server: RimpServer, tmp_path: Path
    ) -> None:
        """SIGTERM and restart the server while batches flow: every id arrives exactly once."""
        server.start()
        exporter = HTTPExporter(server.url, spool_dir=tmp_path / "spool", max_backoff=0.5)
        shipped: list[str] = []
        for round_ in range(6):
            batch = events(200, start=round_ * 200)
            shipped += [e.id for e in batch]
            exporter.store(TelemetryData(batch, []))
            if round_ == 2:
                server.stop()
            if round_ == 4:
                server.start()
        assert exporter.flush(30)
        ids = server.event_ids()
        assert len(ids) == len(set(ids)) == len(shipped)
        assert set(ids) == set(shipped)
        exporter.close()

    def test_a_batch_the_server_rejects_is_dropped_and_counted(
        self, server: RimpServer, tmp_path: Path
    ) -> None:
        """A 4xx answer (bad record) drops that batch, counted, and later batches still flow."""
        server.start()
        exporter = HTTPExporter(server.url, spool_dir=tmp_path / "spool")
        bad = Metric("x", math.nan, "", {}, 1, new_id())
        exporter.store(TelemetryData([], [bad]))
        good = events(5)
        exporter.store(TelemetryData(good, []))
        assert exporter.flush(20)
        assert exporter.stats()["dropped"] == {"rejected": 1}
        assert sorted(server.event_ids()) == sorted(e.id for e in good)
        exporter.close()

    def test_a_bad_endpoint_is_refused(self, tmp_path: Path) -> None:
        """Only http(s) URLs are endpoints, in the config and in the exporter."""
        from telemetry import ConfigError

        with pytest.raises(ConfigError, match="endpoint='ftp://x': must be an http"):
            TelemetryConfig(endpoint="ftp://x")
        with pytest.raises(StorageError, match="must be an http"):
            HTTPExporter("localhost:8787", spool_dir=tmp_path)

    def test_close_is_bounded_and_keeps_the_backlog(self, tmp_path: Path) -> None:
        """Closing with the server unreachable returns in time; the backlog stays on disk."""
        port = free_port()
        exporter = HTTPExporter(
            f"http://127.0.0.1:{port}", spool_dir=tmp_path / "s", max_backoff=0.2
        )
        exporter.store(TelemetryData(events(10), []))
        started = time.monotonic()
        exporter.close(timeout=0.5)
        assert time.monotonic() - started < 5
        again = HTTPExporter(f"http://127.0.0.1:{port}", spool_dir=tmp_path / "s")
        assert again.stats()["spooled"] == 1
        with contextlib.suppress(Exception):
            again.close(timeout=0.1)
        assert os.path.isdir(tmp_path / "s")


class TestLargeBatches:
    def test_a_batch_over_the_server_limits_is_split_not_rejected(
        self, server: RimpServer, tmp_path: Path
    ) -> None:
        """60,000 records in one batch arrive whole, in several requests, none dropped."""
        server.start()
        exporter = HTTPExporter(server.url, spool_dir=tmp_path / "spool")
        batch = events(25_000)
        metrics = [Metric("m", float(i), "", {}, 10**18 + i, new_id()) for i in range(35_000)]
        exporter.store(TelemetryData(batch, metrics))
        assert exporter.flush(60)
        stats = exporter.stats()
        assert stats["dropped"] == {}
        assert stats["sent"] == 60_000
        assert stats["requests"] >= 6
        exporter.close()
