"""Loki clients pushing into a real `rimp serve`: python-logging-loki's handler (JSON) and a
snappy-protobuf PushRequest as Promtail, Alloy, Vector and Fluent Bit send it."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator

import cramjam
import httpx
import pytest

from telemetry.protocols.proto.loki_push_pb2 import PushRequest
from tests.helpers import RimpServer, events_of, poll, running, unique

logging_loki = pytest.importorskip("logging_loki")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RimpServer]:
    """One real server for the Loki clients."""
    with running(tmp_path_factory.mktemp("loki") / "data") as s:
        yield s


class TestLoggingHandler:
    def test_python_logging_loki_lines_become_events(self, server: RimpServer) -> None:
        """The handler's JSON push: each record an event of its `app` tag, typed by its
        severity, with the other labels in metadata."""
        app = unique("orders")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the client warns that version 0 is deprecated
            handler = logging_loki.LokiHandler(
                url=f"{server.url}/loki/api/v1/push",
                tags={"app": app, "env": "prod"},
                version="1",
            )
        log = logging.getLogger(f"loki.{app}")
        log.propagate = False
        log.setLevel(logging.INFO)
        log.addHandler(handler)
        try:
            log.error("payment failed", extra={"tags": {"order": "1001"}})
            log.info("order placed")
        finally:
            log.removeHandler(handler)
            handler.close()
        with server.client() as c:
            assert poll(lambda: len(events_of(c, app)) == 2, 10)
            by_message = {e["message"]: e for e in events_of(c, app)}
        failed = by_message["payment failed"]
        assert failed["type"] == "error"
        assert failed["metadata"]["env"] == "prod"
        assert failed["metadata"]["order"] == "1001"
        assert by_message["order placed"]["type"] == "info"


class TestProtobufPush:
    def test_a_snappy_protobuf_push_is_stored(self, server: RimpServer) -> None:
        """What shippers send by default: labels in Prometheus syntax, nanosecond times,
        structured metadata; 204; a retried push is stored once."""
        service = unique("gateway")
        push = PushRequest()
        stream = push.streams.add()
        stream.labels = f'{{service_name="{service}", level="warn", pod="gw-1"}}'
        entry = stream.entries.add(line="upstream slow")
        entry.timestamp.seconds, entry.timestamp.nanos = 1_796_126_400, 123
        entry.structured_metadata.add(name="trace_id", value="abc")
        body = bytes(cramjam.snappy.compress_raw(push.SerializeToString()))
        headers = {"Content-Type": "application/x-protobuf"}
        with httpx.Client(base_url=server.url, trust_env=False) as c:
            for _ in range(2):
                r = c.post("/loki/api/v1/push", content=body, headers=headers)
                assert (r.status_code, r.content) == (204, b"")
            [event] = events_of(c, service)
        assert (event["message"], event["type"]) == ("upstream slow", "warning")
        assert event["time_ns"] == 1_796_126_400_000_000_123
        assert event["metadata"] == {"pod": "gw-1", "trace_id": "abc"}
