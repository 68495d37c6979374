"""PostgresStorage on the machine's real PostgreSQL: the conformance suite, then what only
a database server has (many writers at once, batches stored twice, partitions, the
schema shared by processes, a server restart)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from telemetry.storage import Storage
from telemetry.testing.conformance import StorageConformance

psycopg = pytest.importorskip("psycopg", reason="needs the postgres extra")

from telemetry.storage.postgres import PostgresStorage  # noqa: E402


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
