"""schemathesis drives every documented endpoint from /openapi.json with generated requests,
valid and invalid: no request may get a 5xx, and every answer (status, content type, body)
must be one the document describes.

One check is left out: ``positive_data_acceptance`` (a request valid by the document is
accepted). The document describes the shape of a record; the rules past its shape (no
control characters, times between 1970 and 2262, 32 levels of metadata, the server's size
limits) are the decoder's, answered as a 400 naming the field, as docs/server.md says.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.helpers import AppServer, server_settings

schemathesis = pytest.importorskip("schemathesis")
checks = pytest.importorskip("schemathesis.specs.openapi.checks")

# The live feed never ends; /metrics is Prometheus text; the standard-format doors take
# protobuf bodies schemathesis cannot write (tests/protocols/test_fuzz.py fuzzes them).
SKIPPED = {
    "/api/v1/stream",
    "/metrics",
    "/v1/logs",
    "/v1/metrics",
    "/v1/traces",
    "/api/v1/write",
    "/loki/api/v1/push",
}


@pytest.fixture(scope="module")
def app_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The document served by a running in-process server, bound to that server's app."""
    with AppServer(server_settings(tmp_path_factory.mktemp("contract") / "data")) as server:

        async def app(scope: Any, receive: Any, send: Any) -> None:
            # Our AppServer runs the app's lifespan; schemathesis' client must not run it
            # again (its shutdown would close the pipeline under the running server).
            if scope["type"] != "lifespan":
                await server.app(scope, receive, send)
                return
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return

        yield schemathesis.openapi.from_asgi("/openapi.json", app)


def operations(schema: Any) -> list[Any]:
    found = [result.ok() for result in schema.get_all_operations()]
    return [op for op in found if op.path not in SKIPPED]


def test_every_operation_is_driven(app_schema: Any) -> None:
    """The document lists the endpoints driven below, so none escapes the contract test."""
    labels = {f"{op.method.upper()} {op.path}" for op in operations(app_schema)}
    assert not labels & {f"POST {p}" for p in SKIPPED}
    assert {"POST /api/v1/events", "POST /api/v1/batch", "GET /api/v1/metrics/{name}/aggregate",
            "GET /api/v1/events/counts", "GET /readyz"} <= labels  # fmt: skip


def test_every_endpoint_honours_its_document(app_schema: Any) -> None:
    """Generated requests to every operation: no 5xx, answers as documented."""
    for op in operations(app_schema):

        @settings(
            max_examples=40,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(case=op.as_strategy())
        def check(case: Any) -> None:
            case.call_and_validate(excluded_checks=[checks.positive_data_acceptance])

        check()
