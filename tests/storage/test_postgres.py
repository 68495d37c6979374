"""PostgresStorage on the machine's real PostgreSQL: the conformance suite, then what only
a database server has (many writers at once, batches stored twice, partitions, the
schema shared by processes, a server restart)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from telemetry import (
    ConfigError,
    Event,
    EventType,
    Metric,
    StorageError,
    TelemetryCollector,
    TelemetryConfig,
    TelemetryData,
)
from telemetry.models import new_id
from telemetry.storage import Storage
from telemetry.testing.conformance import SECOND, StorageConformance

psycopg = pytest.importorskip("psycopg", reason="needs the postgres extra")

from telemetry.storage.postgres import DAY_NS, PostgresStorage  # noqa: E402


def schema_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


class TestPostgres(StorageConformance):
    """The whole storage protocol, each test on a schema of its own in this run's database."""

    @pytest.fixture(autouse=True)
    def _url(self, postgres_url: str) -> None:
        self.url = postgres_url

    def make_storage(self, path: Path) -> Storage:
        return PostgresStorage(self.url, schema=schema_name())


@pytest.fixture
def storage(postgres_url: str) -> Iterator[PostgresStorage]:
    s = PostgresStorage(postgres_url, schema=schema_name())
    yield s
    s.drop()


def metric(name: str, value: float, t: int, **tags: str) -> Metric:
    return Metric(name=name, value=value, unit="ms", tags=tags, time_ns=t, id=new_id())


def event(message: str, t: int, source: str = "api") -> Event:
    return Event(source, message, EventType.INFO, {"n": 1}, t, new_id())


T0 = 1_796_083_200 * SECOND  # a whole day


class TestIdempotence:
    def test_a_batch_stored_twice_is_stored_once(self, storage: PostgresStorage) -> None:
        """The same batch again (a bus redelivery) adds no event, point, count or rollup."""
        batch = TelemetryData(
            events=[event(f"e{i}", T0 + i * SECOND) for i in range(50)],
            metrics=[metric("rt", float(i), T0 + i * SECOND, host="a") for i in range(50)],
        )
        storage.store(batch)
        storage.store(batch)
        assert len(storage.query_events(limit=None)) == 50
        assert len(storage.query_metrics("rt")) == 50
        assert sum(b.count for b in storage.count_events(group_by=())) == 50
        (hour,) = storage.aggregate("rt", agg="sum", bucket=3600)
        assert (hour.count, hour.value) == (50, sum(range(50)))

    def test_a_batch_delivered_again_among_others_is_stored_once(
        self, storage: PostgresStorage
    ) -> None:
        """``store_many`` keeps each batch's own cut: batches written together, then one of
        them again with a new one (a bus redelivery fetched with other messages), store
        every point exactly once."""

        def batch(first: int) -> TelemetryData:
            return TelemetryData(
                metrics=[metric("rt", 1.0, T0 + (first + i) * SECOND, host="a") for i in range(10)]
            )

        a, b, c = batch(0), batch(5), batch(20)  # a and b interleave in time
        storage.store_many([a, b])
        storage.store_many([b, c])
        storage.store_many([a])
        points = storage.query_metrics("rt")
        assert sorted(p.id for p in points) == sorted(
            m.id for m in [*a.metrics, *b.metrics, *c.metrics]
        )
        (hour,) = storage.aggregate("rt", agg="count", bucket=3600)
        assert hour.count == 30

    def test_records_already_stored_inside_a_new_batch_are_skipped(
        self, storage: PostgresStorage
    ) -> None:
        """Events are unique by (id, time): a batch mixing stored and new events adds the new."""
        old = [event(f"old{i}", T0 + i) for i in range(5)]
        storage.store(TelemetryData(events=old))
        storage.store(TelemetryData(events=[*old, event("new", T0 + 10)]))
        assert sorted(e.message for e in storage.query_events()) == [
            "new", "old0", "old1", "old2", "old3", "old4",
        ]  # fmt: skip
        assert sum(b.count for b in storage.count_events(group_by=())) == 6

    def test_receipts_are_kept_with_the_batch(self, storage: PostgresStorage) -> None:
        """An idempotency answer stored with a batch is read back; unknown keys give None."""
        storage.store(TelemetryData(events=[event("x", T0)], receipts={"k1": b'{"accepted":1}'}))
        assert storage.receipt("k1") == b'{"accepted":1}'
        assert storage.receipt("other") is None


class TestManyWriters:
    def test_concurrent_writers_on_the_same_series_lose_nothing(self, postgres_url: str) -> None:
        """Four storages (four connections) write the same series and minutes at once:
        every point and event is stored once and the rollups add up."""
        schema = schema_name()
        storages = [PostgresStorage(postgres_url, schema=schema) for _ in range(4)]
        errors: list[BaseException] = []

        def write(k: int) -> None:
            try:
                for b in range(25):
                    storages[k].store(
                        TelemetryData(
                            events=[event(f"{k}-{b}-{i}", T0 + i * SECOND) for i in range(20)],
                            metrics=[
                                metric("rt", 1.0, T0 + i * SECOND, host=h)
                                for i in range(20)
                                for h in ("a", "b", "c")
                            ],
                        )
                    )
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        try:
            assert errors == []
            reader = storages[0]
            assert len(reader.query_events(limit=None)) == 4 * 25 * 20
            assert sum(b.count for b in reader.count_events(group_by=())) == 2000
            by_host = reader.aggregate("rt", agg="sum", bucket=3600, group_by=["host"])
            assert [(b.tags["host"], b.count, b.value) for b in by_host] == [
                (h, 2000, 2000.0) for h in ("a", "b", "c")
            ]
        finally:
            for s in storages[1:]:
                s.close()
            storages[0].drop()

    def test_processes_starting_together_migrate_once(self, postgres_url: str) -> None:
        """Three storages opening a new schema at once all start (the migration runs under
        an advisory lock) and see one schema version."""
        schema = schema_name()
        with ThreadPoolExecutor(3) as pool:
            opened = list(
                pool.map(lambda _: PostgresStorage(postgres_url, schema=schema), range(3))
            )
        try:
            opened[0].store(TelemetryData(events=[event("hello", T0)]))
            assert [e.message for e in opened[2].query_events()] == ["hello"]
        finally:
            for s in opened[1:]:
                s.close()
            opened[0].drop()


class TestPartitions:
    def partitions(self, storage: PostgresStorage, parent: str) -> list[str]:
        with psycopg.connect(storage.url) as conn:
            rows = conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n "
                "ON n.oid = p.relnamespace WHERE n.nspname = %s AND p.relname = %s",
                (storage.schema, parent),
            ).fetchall()
        return sorted(r[0] for r in rows)

    def test_days_get_partitions_and_retention_drops_them(self, storage: PostgresStorage) -> None:
        """Three days of records make three day partitions per table; deleting before the
        middle of the third day drops two whole days and trims the third, exactly."""
        day = DAY_NS
        times = [T0 + d * day + m * 60 * SECOND + 30 * SECOND for d in range(3) for m in range(3)]
        storage.store(
            TelemetryData(
                events=[event(str(t), t) for t in times],
                metrics=[metric("rt", 1.0, t) for t in times],
            )
        )
        first = T0 // day
        for parent in ("events", "chunks"):
            assert {f"{parent}_d{first + d}" for d in range(3)} <= set(
                self.partitions(storage, parent)
            )
        cut = T0 + 2 * day + 60 * SECOND + 15 * SECOND  # inside the third day's second minute
        assert storage.delete_before(cut) == 2 * (6 + 1)
        for parent in ("events", "chunks"):
            names = self.partitions(storage, parent)
            assert {f"{parent}_d{first}", f"{parent}_d{first + 1}"}.isdisjoint(names)
        assert [e.time_ns for e in storage.query_events()] == times[-1:-3:-1]
        # The minute the cut falls in still counts its later record, from the counts too.
        counts = storage.count_events(group_by=())
        assert [(b.start_ns, b.count) for b in counts] == [
            (T0 + 2 * day + 60 * SECOND, 1),
            (T0 + 2 * day + 120 * SECOND, 1),
        ]
        rolled = storage.aggregate("rt", agg="count", bucket=60)
        assert [(b.start_ns, b.count) for b in rolled] == [(c.start_ns, c.count) for c in counts]


class TestServer:
    def test_an_unreachable_server_is_named_quickly(self) -> None:
        """No server on the port: StorageError naming the host, without a password."""
        started = time.monotonic()
        with pytest.raises(StorageError, match=r"127\.0\.0\.1.*cannot connect") as info:
            PostgresStorage("postgresql://rimp:secret@127.0.0.1:1/x", connect_timeout=2)
        assert "secret" not in str(info.value)
        assert time.monotonic() - started < 10

    def test_a_lost_connection_is_replaced(self, storage: PostgresStorage) -> None:
        """The server ends the storage's sessions (as a restart does): the next store and
        query reconnect and succeed; nothing stored before is lost."""
        storage.store(TelemetryData(events=[event("before", T0)]))
        assert len(storage.query_events()) == 1  # the reading connection is open too
        with psycopg.connect(storage.url, autocommit=True) as admin:
            ended = admin.execute(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s) t",
                (f"rimp:{storage.schema}",),
            ).fetchone()
        assert ended == (2,)  # its writing and its reading connection
        storage.store(TelemetryData(events=[event("after", T0 + 1)]))
        assert [e.message for e in storage.query_events()] == ["after", "before"]

    def test_the_schema_can_ride_in_the_url(self, postgres_url: str) -> None:
        """``?schema=NAME`` in the URL picks the schema (and is not sent to libpq)."""
        schema = schema_name()
        storage = PostgresStorage(f"{postgres_url}?schema={schema}&connect_timeout=5")
        try:
            assert storage.schema == schema
            storage.store(TelemetryData(events=[event("in its schema", T0)]))
            with psycopg.connect(postgres_url) as conn:
                row = conn.execute(f"SELECT message FROM {schema}.events").fetchone()
            assert row == ("in its schema",)
        finally:
            storage.drop()

    def test_a_newer_schema_is_refused(self, storage: PostgresStorage) -> None:
        """A schema written by a newer RIMP is not touched: StorageError says to upgrade."""
        with psycopg.connect(storage.url, autocommit=True) as conn:
            conn.execute(
                f"UPDATE {storage.schema}.rimp_meta SET value = '99' WHERE key = 'schema_version'"
            )
        with pytest.raises(StorageError, match="newer than this RIMP"):
            PostgresStorage(storage.url, schema=storage.schema)


class TestConfig:
    def test_a_postgres_url_in_the_config_builds_postgres_storage(self, postgres_url: str) -> None:
        """``storage_backend="database"`` with a postgresql:// path is PostgresStorage."""
        config = TelemetryConfig(storage_backend="database", storage_path=postgres_url)
        with TelemetryCollector(config) as collector:
            assert isinstance(collector.storage, PostgresStorage)
            collector.collect_event("api", "through the collector")
            collector.flush()
            assert [e.message for e in collector.storage.query_events(source="api")] == [
                "through the collector"
            ]
            collector.storage.drop()

    @pytest.mark.parametrize(
        ("options", "field"),
        [
            ({"storage_backend": "file", "storage_path": "postgresql://x/y"}, "storage_path"),
            ({"storage_backend": "database", "storage_path": "mysql://x/y"}, "storage_path"),
            (
                {"storage_backend": "database", "storage_path": "postgresql://x/y",
                 "raw_retention": "7d"},
                "raw_retention",
            ),
        ],
    )  # fmt: skip
    def test_bad_combinations_name_the_field(self, options: dict[str, Any], field: str) -> None:
        """A URL with another backend, another database or raw_retention: ConfigError."""
        with pytest.raises(ConfigError, match=field) as info:
            TelemetryConfig(**options)
        assert info.value.field == field
