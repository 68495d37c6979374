"""The remote_write decoder (pure) and the door's answers over HTTP in process."""

from __future__ import annotations

import math
import struct

import cramjam
import httpx
import pytest

from telemetry.errors import RequestError
from telemetry.protocols import remote_write
from telemetry.protocols.native import Limits
from telemetry.protocols.proto.remote_write_pb2 import WriteRequest
from tests.helpers import unique

LIMITS = Limits()
STALE = struct.unpack("<d", struct.pack("<Q", remote_write.STALE_NAN))[0]
HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


def body(*series: tuple[dict[str, str], list[tuple[float, int]]], metadata: bool = False) -> bytes:
    """A snappy-compressed WriteRequest of (labels, [(value, ms)]) series."""
    request = WriteRequest()
    for labels, samples in series:
        ts = request.timeseries.add()
        for name, text in labels.items():
            ts.labels.add(name=name, value=text)
        for number, ms in samples:
            ts.samples.add(value=number, timestamp=ms)
    if metadata:
        request.metadata.add(type=1, metric_family_name="up", help="targets up")
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


class TestDecode:
    def test_labels_become_the_name_and_tags(self) -> None:
        """__name__ is the name, the other labels tags, milliseconds become ns."""
        result = remote_write.decode(
            body(({"__name__": "up", "job": "api"}, [(1.0, 1_796_126_400_000)])), limits=LIMITS
        )
        [point] = result.data.metrics
        assert (point.name, point.tags, point.value) == ("up", {"job": "api"}, 1.0)
        assert point.time_ns == 1_796_126_400_000 * 1_000_000

    def test_nan_and_stale_markers_are_skipped_and_counted(self) -> None:
        """A stale marker or any NaN is not stored; the skip is counted; the rest stays."""
        samples = [(1.0, 1000), (STALE, 2000), (math.nan, 3000), (2.0, 4000)]
        result = remote_write.decode(body(({"__name__": "m"}, samples)), limits=LIMITS)
        assert [p.value for p in result.data.metrics] == [1.0, 2.0]
        assert (result.skipped, result.rejected) == (2, 0)

    def test_metadata_only_stores_nothing(self) -> None:
        """A request with metadata and no series decodes to nothing, without error."""
        result = remote_write.decode(body(metadata=True), limits=LIMITS)
        assert not result.data
        assert result.rejected == 0

    def test_a_series_without_a_name_is_rejected(self) -> None:
        """No __name__: its samples are rejected and counted; other series are kept."""
        result = remote_write.decode(
            body(({"job": "x"}, [(1.0, 1)]), ({"__name__": "ok"}, [(1.0, 1)])), limits=LIMITS
        )
        assert [p.name for p in result.data.metrics] == ["ok"]
        assert result.rejected == 1
        assert "__name__" in result.message

    @pytest.mark.parametrize(
        ("raw", "status"),
        [
            (b"not snappy at all", 400),
            (bytes(cramjam.snappy.compress_raw(b"\xff\xff\xff\xff")), 400),
            (b"\xff\xff\xff\xff\x0f", 413),
        ],
        ids=["not-snappy", "not-protobuf", "claims-16-gib"],
    )
    def test_an_undecodable_body_is_refused_whole(self, raw: bytes, status: int) -> None:
        """Not snappy, not a WriteRequest, or a length header past the limit."""
        with pytest.raises(RequestError) as refused:
            remote_write.decode(raw, limits=LIMITS)
        assert refused.value.status == status

    @pytest.mark.parametrize(
        "content_type",
        ["application/x-protobuf;proto=io.prometheus.write.v2.Request", "application/json"],
    )
    def test_other_versions_and_types_are_415(self, content_type: str) -> None:
        """A remote-write 2.0 body is never read as 1.0 (it would silently lose data)."""
        with pytest.raises(RequestError) as refused:
            remote_write.check_content_type(content_type)
        assert refused.value.status == 415

    def test_the_1_0_proto_parameter_is_accepted(self) -> None:
        """1.0 senders that name their message are accepted."""
        remote_write.check_content_type("application/x-protobuf;proto=prometheus.WriteRequest")


class TestDoorOverHttp:
    def test_204_once_stored_and_a_retry_stored_once(self, client: httpx.Client) -> None:
        """204 with no body; the same bytes again are answered without a second copy."""
        name = unique("rw").replace("-", "_")
        payload = body(({"__name__": name, "job": "api"}, [(5.0, 1_796_126_400_000)]))
        for _ in range(2):
            r = client.post("/api/v1/write", content=payload, headers=HEADERS)
            assert (r.status_code, r.content) == (204, b"")
        points = client.get(f"/api/v1/metrics/{name}", params={"since": "0"}).json()["points"]
        assert [(p["value"], p["tags"]) for p in points] == [(5.0, {"job": "api"})]

    def test_errors_are_plain_text(self, client: httpx.Client) -> None:
        """A bad body is a 400 in one line of text; a 2.0 body a 415."""
        r = client.post("/prometheus/api/v1/write", content=b"junk", headers=HEADERS)
        assert r.status_code == 400
        assert r.text.startswith("malformed_body: ")
        v2 = {
            **HEADERS,
            "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        }
        assert client.post("/api/v1/write", content=b"x", headers=v2).status_code == 415
