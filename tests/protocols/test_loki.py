"""The Loki push decoders (pure functions) and the door's answers over HTTP in process."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest

from telemetry.errors import RequestError
from telemetry.models import EventType
from telemetry.protocols import loki
from telemetry.protocols.native import Limits
from tests.helpers import unique

LIMITS = Limits()


def push(*streams: tuple[dict[str, str], list[list[object]]]) -> bytes:
    return json.dumps(
        {"streams": [{"stream": labels, "values": values} for labels, values in streams]}
    ).encode()


class TestJson:
    def test_lines_become_events_with_source_type_and_metadata(self) -> None:
        """service_name is the source, level the type, other labels and structured
        metadata the metadata, the nanosecond time the event's."""
        body = push(
            (
                {"service_name": "api", "app": "ignored-too", "level": "ERROR", "pod": "a"},
                [["1796126400000000001", "boom", {"trace_id": "t1"}]],
            )
        )
        [event] = loki.decode_json(body, limits=LIMITS).data.events
        assert (event.source, event.message, event.event_type) == ("api", "boom", EventType.ERROR)
        assert event.time_ns == 1796126400000000001
        assert event.metadata == {"app": "ignored-too", "pod": "a", "trace_id": "t1"}

    @pytest.mark.parametrize(
        ("labels", "source", "kind"),
        [
            ({"app": "web"}, "web", EventType.INFO),
            ({"job": "cron", "detected_level": "warn"}, "cron", EventType.WARNING),
            ({}, "unknown_service", EventType.INFO),
            ({"service": "s", "level": "fatal"}, "s", EventType.CRITICAL),
        ],
    )
    def test_the_source_and_level_rules(
        self, labels: dict[str, str], source: str, kind: EventType
    ) -> None:
        """The first of service_name, app, job, service; level or detected_level."""
        [event] = loki.decode_json(push((labels, [["1", "m"]])), limits=LIMITS).data.events
        assert (event.source, event.event_type) == (source, kind)

    def test_a_bad_line_is_rejected_alone(self) -> None:
        """A line with a bad time or too long is counted; the others are kept."""
        body = push(({"app": "a"}, [["nope", "x"], ["1", "y" * 70_000], ["2", "ok"]]))
        result = loki.decode_json(body, limits=LIMITS)
        assert [e.message for e in result.data.events] == ["ok"]
        assert result.rejected == 2

    @pytest.mark.parametrize("body", [b"{", b'{"streams": 3}', b"[]"])
    def test_an_undecodable_push_is_refused_whole(self, body: bytes) -> None:
        """Not a Loki push: 400."""
        with pytest.raises(RequestError):
            loki.decode_json(body, limits=LIMITS)


class TestLabels:
    def test_prometheus_label_syntax_with_escapes(self) -> None:
        """Quotes, backslashes and unicode in values are read as Loki writes them."""
        got = loki.parse_labels('{app="a\\"b", path="c:\\\\d", city="Zürich"}')
        assert got == {"app": 'a"b', "path": "c:\\d", "city": "Zürich"}

    @pytest.mark.parametrize("text", ['app="x"', "{app=x}", '{="x"}', '{app="x" job="y"}'])
    def test_bad_label_text_is_refused(self, text: str) -> None:
        """Text that is not {key="value", ...} is a 400."""
        with pytest.raises(RequestError):
            loki.parse_labels(text)


class TestDoorOverHttp:
    def test_gzip_json_is_204_and_stored_once(self, client: httpx.Client) -> None:
        """A gzip JSON push: 204, and the same push again is not stored twice."""
        app = unique("gz")
        body = gzip.compress(push(({"app": app}, [["1796126400000000000", "hello"]])))
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        for _ in range(2):
            r = client.post("/loki/api/v1/push", content=body, headers=headers)
            assert (r.status_code, r.content) == (204, b"")
        stored = client.get("/api/v1/events", params={"source": app}).json()["events"]
        assert [e["message"] for e in stored] == ["hello"]

    def test_errors_are_plain_text(self, client: httpx.Client) -> None:
        """415 for another type, 400 for a bad body, in one line of text."""
        r = client.post("/loki/api/v1/push", content=b"x", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
        r = client.post(
            "/loki/api/v1/push", content=b"x", headers={"Content-Type": "application/x-protobuf"}
        )
        assert r.status_code == 400
        assert r.text.startswith("malformed_body: ")
