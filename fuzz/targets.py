"""The decoders every network door runs on untrusted bytes, as fuzz targets.

Each target takes raw bytes and must either decode them or refuse them with a
:class:`telemetry.RequestError` (which the server answers as ``4xx``). Any other
exception is a crash: the server would answer ``500``. The same targets run
two ways:

- in the test command, under hypothesis, bounded in time
  (``tests/protocols/test_fuzz.py``);
- for as long as you like under atheris (coverage-guided, libFuzzer):
  ``.venv/bin/python fuzz/run.py native_events -- -max_total_time=600``
  (``pip install atheris`` first; ``fuzz/run.py --list`` names the targets).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from telemetry._time import parse_time
from telemetry.errors import RequestError, ValidationError
from telemetry.protocols.native import Limits, WireDecoder

__all__ = ["TARGETS"]

_DECODER = WireDecoder(Limits(max_records=1000))


def _decode(kind: str, ndjson: bool, partial: bool) -> Callable[[bytes], object]:
    def target(data: bytes) -> object:
        try:
            return _DECODER.decode(kind, data, ndjson=ndjson, partial=partial)
        except RequestError:
            return None

    return target


def _gunzip(data: bytes) -> object:
    from telemetry.server.doors import gunzip  # the server extra: imported when run

    try:
        return gunzip(data, 1 << 20)
    except RequestError:
        return None


def _otlp(signal: str, json: bool) -> Callable[[bytes], object]:
    from telemetry.protocols import otlp  # the server extra: imported when run

    def target(data: bytes) -> object:
        try:
            return otlp.decode(signal, data, json=json, limits=Limits())
        except RequestError:
            return None

    return target


def _remote_write(data: bytes) -> object:
    import cramjam

    from telemetry.protocols import remote_write  # the server extra: imported when run

    for body in (data, bytes(cramjam.snappy.compress_raw(data))):
        with contextlib.suppress(RequestError):
            remote_write.decode(body, limits=Limits())
    return None


def _statsd(data: bytes) -> object:
    from telemetry.protocols.statsd import Aggregator, parse

    aggregator = Aggregator()
    aggregator.add(parse(data, 0))  # never raises: bad lines are counted
    return aggregator.flush(1)


def _loki(data: bytes) -> object:
    import cramjam

    from telemetry.protocols import loki  # the server extra: imported when run

    with contextlib.suppress(RequestError):
        loki.decode_json(data, limits=Limits())
    with contextlib.suppress(RequestError):
        loki.decode_protobuf(bytes(cramjam.snappy.compress_raw(data)), limits=Limits())
    return None


def _time(data: bytes) -> object:
    try:
        return parse_time(data.decode("utf-8", "replace"), "since", now_ns=0)
    except ValidationError:
        return None


TARGETS: dict[str, Callable[[bytes], object]] = {
    "native_events": _decode("events", ndjson=False, partial=False),
    "native_events_partial": _decode("events", ndjson=False, partial=True),
    "native_events_ndjson": _decode("events", ndjson=True, partial=True),
    "native_metrics": _decode("metrics", ndjson=False, partial=True),
    "native_batch": _decode("batch", ndjson=False, partial=True),
    "gunzip": _gunzip,
    "otlp_logs_json": _otlp("logs", json=True),
    "otlp_logs_protobuf": _otlp("logs", json=False),
    "otlp_metrics_json": _otlp("metrics", json=True),
    "otlp_metrics_protobuf": _otlp("metrics", json=False),
    "otlp_traces_json": _otlp("traces", json=True),
    "otlp_traces_protobuf": _otlp("traces", json=False),
    "remote_write": _remote_write,
    "statsd": _statsd,
    "loki": _loki,
    "query_time": _time,
}
