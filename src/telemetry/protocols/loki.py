"""Loki's push API: streams of log lines into RIMP events.

Two bodies, as Loki takes them: JSON (``{"streams": [{"stream": {labels},
"values": [["<unix ns>", "line", {structured metadata}?], ...]}]}``, optionally
gzip) and snappy-compressed protobuf ``PushRequest`` (what Promtail, Grafana
Alloy, Vector and Fluent Bit send by default; classes generated from a trimmed
copy of Loki's ``.proto``, ``proto/loki_push.proto``).

Each line is an event. Its source is the first of the stream labels
``service_name``, ``app``, ``job``, ``service`` (else ``unknown_service``); its type
comes from ``level`` or ``detected_level`` (``debug``, ``info``, ``warn``/``warning``,
``error``, ``fatal``/``critical``; else info); the other labels and the line's
structured metadata are its metadata.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import cramjam
import msgspec

from telemetry._ids import new_id
from telemetry._jsonform import encode
from telemetry._time import MAX_NS
from telemetry.errors import RequestError
from telemetry.models import Event, EventType, TelemetryData
from telemetry.protocols.native import Limits
from telemetry.protocols.proto.loki_push_pb2 import PushRequest

__all__ = ["SOURCE_LABELS", "LokiResult", "decode_json", "decode_protobuf", "parse_labels"]

SOURCE_LABELS = ("service_name", "app", "job", "service")
_LEVEL_LABELS = ("level", "detected_level", "severity")
_LEVELS = {
    "trace": EventType.DEBUG,
    "debug": EventType.DEBUG,
    "info": EventType.INFO,
    "notice": EventType.INFO,
    "warn": EventType.WARNING,
    "warning": EventType.WARNING,
    "error": EventType.ERROR,
    "err": EventType.ERROR,
    "fatal": EventType.CRITICAL,
    "critical": EventType.CRITICAL,
    "crit": EventType.CRITICAL,
}
_ESCAPE = re.compile(r"\\(.)")
_ESCAPES = {"n": "\n", "t": "\t"}
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_.]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


class _Stream(msgspec.Struct):
    stream: dict[str, str] = {}
    values: list[list[Any]] = []


class _Push(msgspec.Struct):
    streams: list[_Stream]


_push_json = msgspec.json.Decoder(_Push).decode


@dataclass
class LokiResult:
    """The events of one push, and how many lines were rejected (and why, the first)."""

    data: TelemetryData
    rejected: int
    message: str


def parse_labels(text: str) -> dict[str, str]:
    """Prometheus label syntax (``{app="api", level="error"}``) into a dict.

    Raises:
        RequestError: not that syntax (400).
    """
    inner = text.strip()
    if not (inner.startswith("{") and inner.endswith("}")):
        raise RequestError("invalid_body", f'labels {text[:60]!r} are not {{key="value", ...}}')
    inner = inner[1:-1]
    labels: dict[str, str] = {}
    position = 0
    while position < len(inner):
        found = _LABEL.match(inner, position)
        if found is None:
            raise RequestError("invalid_body", f"labels {text[:60]!r}: cannot read from {position}")
        labels[found.group(1)] = _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)),
                                             found.group(2))  # fmt: skip
        position = found.end()
    return labels


def decode_json(body: bytes, *, limits: Limits) -> LokiResult:
    """A JSON push.

    Raises:
        RequestError: not a Loki JSON push (400).
    """
    try:
        push = _push_json(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise RequestError("invalid_body", f"not a Loki JSON push: {exc}") from None
    out = _Out(limits)
    for stream in push.streams:
        for value in stream.values:
            if not 2 <= len(value) <= 3 or not isinstance(value[1], str):
                out.reject("a value is not [timestamp, line, {metadata}?]")
                continue
            extra = value[2] if len(value) == 3 and isinstance(value[2], dict) else {}
            out.line(stream.stream, _ns(value[0]), value[1], extra)
    return out.result()


def decode_protobuf(body: bytes, *, limits: Limits) -> LokiResult:
    """A snappy-compressed protobuf ``PushRequest``.

    Raises:
        RequestError: not snappy or not a PushRequest (400).
    """
    try:
        raw = bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise RequestError("malformed_body", f"not a snappy block: {exc}") from None
    if len(raw) > limits.max_body_bytes:
        raise RequestError(
            "body_too_large",
            f"body is over {limits.max_body_bytes} bytes once decompressed",
            status=413,
        )
    push = PushRequest()
    try:
        push.ParseFromString(raw)
    except Exception as exc:  # protobuf's DecodeError; a bad body must be a 400
        raise RequestError("malformed_body", f"not a Loki PushRequest: {exc}") from None
    out = _Out(limits)
    for stream in push.streams:
        labels = parse_labels(stream.labels)
        for entry in stream.entries:
            ns = entry.timestamp.seconds * 1_000_000_000 + entry.timestamp.nanos
            extra = {pair.name: pair.value for pair in entry.structured_metadata}
            out.line(labels, ns, entry.line, extra)
    return out.result()


def _ns(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


class _Out:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.events: list[Event] = []
        self.rejected = 0
        self.first = ""

    def reject(self, why: str) -> None:
        self.rejected += 1
        self.first = self.first or why

    def line(self, labels: dict[str, str], ns: int, line: str, extra: dict[str, Any]) -> None:
        lim = self.limits
        if not 0 <= ns < MAX_NS:
            self.reject(f"timestamp {ns}: must be Unix nanoseconds from 1970 to 2262")
            return
        if len(line) > lim.max_message_length:
            self.reject(f"a line is longer than {lim.max_message_length} characters")
            return
        meta: dict[str, Any] = dict(labels)
        source = next((meta.pop(k) for k in SOURCE_LABELS if k in meta), "unknown_service")
        kind = EventType.INFO
        for key in _LEVEL_LABELS:
            if key in meta:
                kind = _LEVELS.get(str(meta.pop(key)).lower(), EventType.INFO)
                break
        meta.update(extra)
        if len(encode(meta)) > lim.max_metadata_bytes:
            self.reject(f"labels and metadata are over {lim.max_metadata_bytes} bytes")
            return
        self.events.append(Event(source[: lim.max_name_length], line, kind, meta, ns, new_id()))

    def result(self) -> LokiResult:
        return LokiResult(TelemetryData(self.events, []), self.rejected, self.first)
