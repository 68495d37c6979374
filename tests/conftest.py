"""The one conftest: fixtures shared by every layer of the tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from telemetry import TelemetryCollector, TelemetryConfig
from telemetry.storage import MemoryStorage
from tests.helpers import (
    POSTGRES_ADMIN_URL,
    AppServer,
    RimpServer,
    missing_service,
    server_settings,
)

if TYPE_CHECKING:  # imported at run time by AppServer, under the tests' warning filters
    from starlette.testclient import TestClient


@pytest.fixture
def collector() -> Iterator[TelemetryCollector]:
    """A collector into an unbounded MemoryStorage that flushes only when asked; closed after."""
    c = TelemetryCollector(
        TelemetryConfig(flush_interval=60.0), storage=MemoryStorage(max_records=None)
    )
    yield c
    c.close()


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """One in-process server (no tokens, default limits, a DatabaseStorage) per test module;
    tests keep apart by unique sources, names and ids."""
    settings = server_settings(tmp_path_factory.mktemp("app") / "data")
    with AppServer(settings) as server:
        yield server


@pytest.fixture
def client(app_server: AppServer) -> TestClient:
    """An HTTP client of the module's in-process server."""
    return app_server.client


@pytest.fixture
def make_app_server(tmp_path: Path) -> Iterator[Callable[..., AppServer]]:
    """Start in-process servers of a test's own, with ``server_settings`` keyword arguments
    (tokens, max_pending, Limits fields, storage); each is shut down after the test."""
    with ExitStack() as stack:
        count = 0

        def make(**options: Any) -> AppServer:
            nonlocal count
            count += 1
            settings = server_settings(tmp_path / f"data{count}", **options)
            return stack.enter_context(AppServer(settings))

        yield make


@pytest.fixture
def rimp_server(tmp_path: Path) -> Iterator[RimpServer]:
    """A ``rimp serve`` subprocess, not started yet (its port is fixed once its url is read);
    stopped with SIGTERM after the test, which must then exit 0."""
    server = RimpServer(tmp_path / "data")
    yield server
    code = server.stop()
    assert code == 0, f"rimp serve exited with {code}:\n{server.output()}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run (``rimp_test_<hex>``), dropped after.
    The admin connection is opened for each step, so a test may restart the server."""
    try:
        import psycopg
    except ImportError:
        missing_service("psycopg is not installed: pip install 'rimp[postgres]'")
    name = f"rimp_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        missing_service(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
