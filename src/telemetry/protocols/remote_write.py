"""Prometheus remote_write 1.0: a snappy-compressed ``WriteRequest`` into metric points.

The body is the snappy *block* format (not framed) around a protobuf
``prometheus.WriteRequest``, parsed with classes generated from a trimmed copy of
Prometheus' ``.proto`` (``proto/remote_write.proto``; its own package name, so
it never clashes with another copy in the process). ``__name__`` is the metric
name and every other label a tag; timestamps are milliseconds. NaN samples and
Prometheus' stale markers (a NaN with a reserved bit pattern, written when a
series disappears) are skipped and counted, not stored: RIMP's series end when
their points stop. Requests that carry only metadata store nothing. A body
that cannot be decoded is refused whole, since Prometheus never retries a 400.

A remote-write 2.0 body (``Content-Type: application/x-protobuf;
proto=io.prometheus.write.v2.Request``) must not be read as 1.0 (it would decode
as an empty message and lose everything silently): :func:`check_content_type`
refuses it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cramjam

from telemetry._ids import new_id
from telemetry._time import MAX_NS
from telemetry.errors import RequestError
from telemetry.models import Metric, TelemetryData
from telemetry.protocols.native import Limits
from telemetry.protocols.proto.remote_write_pb2 import WriteRequest

__all__ = ["STALE_NAN", "RemoteWriteResult", "check_content_type", "decode"]

STALE_NAN = 0x7FF0000000000002
"""The bits of Prometheus' stale marker (value.StaleNaN)."""
_V2 = "io.prometheus.write.v2.request"
_MAX_MS = MAX_NS // 1_000_000


@dataclass
class RemoteWriteResult:
    """The points of one request, and how many samples were skipped or rejected."""

    data: TelemetryData
    skipped: int
    rejected: int
    message: str


def check_content_type(header: str) -> None:
    """Refuse what is not remote-write 1.0.

    Raises:
        RequestError: a 2.0 body, or not protobuf (415).
    """
    parts = [p.strip().lower() for p in header.split(";")]
    if parts[0] not in ("application/x-protobuf", ""):
        raise RequestError(
            "unsupported_media_type",
            f"Content-Type {header!r}: remote_write sends application/x-protobuf",
            status=415,
        )
    for part in parts[1:]:
        if part.startswith("proto=") and part.removeprefix("proto=") != "prometheus.writerequest":
            raise RequestError(
                "unsupported_media_type",
                f"{part}: only remote-write 1.0 (prometheus.WriteRequest) is supported; "
                "configure the sender for protobuf_message: prometheus.WriteRequest",
                status=415,
            )


def _uncompressed_length(body: bytes) -> int:
    # A snappy block starts with its uncompressed length as a varint.
    length = shift = 0
    for i, byte in enumerate(body[:10]):
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return length
        shift += 7
        if i == 9:
            break
    raise RequestError("malformed_body", "not a snappy block (no length header)")


def decode(body: bytes, *, limits: Limits) -> RemoteWriteResult:
    """Decode a snappy-compressed ``WriteRequest`` into points.

    Raises:
        RequestError: not snappy, not a WriteRequest (400), or over the size limit (413).
    """
    if _uncompressed_length(body) > limits.max_body_bytes:
        raise RequestError(
            "body_too_large", f"body is over {limits.max_body_bytes} bytes once decompressed",
            status=413,
        )  # fmt: skip
    try:
        raw = bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise RequestError("malformed_body", f"not a snappy block: {exc}") from None
    request = WriteRequest()
    try:
        request.ParseFromString(raw)
    except Exception as exc:  # protobuf's DecodeError; a bad body must be a 400
        raise RequestError("malformed_body", f"not a remote-write WriteRequest: {exc}") from None
    metrics: list[Metric] = []
    skipped = rejected = 0
    first_error = ""
    for series in request.timeseries:
        name = ""
        tags: dict[str, str] = {}
        for label in series.labels:
            if label.name == "__name__":
                name = label.value
            else:
                tags[label.name] = label.value
        problem = _check_series(name, tags, limits)
        if problem:
            rejected += len(series.samples)
            first_error = first_error or problem
            continue
        for sample in series.samples:
            value = sample.value
            if math.isnan(value):  # NaN and stale markers: ends of series, not values
                skipped += 1
                continue
            if not math.isfinite(value) or not 0 <= sample.timestamp < _MAX_MS:
                rejected += 1
                first_error = first_error or f"{name}: a sample is infinite or out of time range"
                continue
            metrics.append(Metric(name, value, "", tags, sample.timestamp * 1_000_000, new_id()))
    return RemoteWriteResult(TelemetryData([], metrics), skipped, rejected, first_error)


def _check_series(name: str, tags: dict[str, str], limits: Limits) -> str:
    if not name:
        return "a series has no __name__ label"
    if len(name) > limits.max_name_length:
        return f"metric name {name[:40]!r}... is longer than {limits.max_name_length} characters"
    if len(tags) > limits.max_tags:
        return f"{name}: more than {limits.max_tags} labels"
    for key, value in tags.items():
        if len(key) > limits.max_tag_length or len(value) > limits.max_tag_length:
            return f"{name}: label {key[:40]!r} is longer than {limits.max_tag_length} characters"
    return ""
