"""The bus's message format: a batch as one or more msgpack messages, each under a byte cap.

A message is one format-version byte (:data:`FORMAT_VERSION`) followed by a
``TelemetryData`` encoded by msgspec as msgpack. msgpack rather than JSON because
``receipts`` hold bytes and JSON would have to base64 them; the version byte lets a
later format be read beside this one during a rolling upgrade.

JetStream refuses a message above the server's ``max_payload`` (1 MiB by default), so a
batch that encodes larger is split by records into several messages, each at most
``max_bytes``. The split is deterministic (same batch, same limit, same parts), which is
what lets a retried publish reuse per-part message ids and be deduplicated.
"""

from __future__ import annotations

import msgspec

from telemetry.bus.errors import BusFormatError
from telemetry.models import Event, Metric, TelemetryData

__all__ = [
    "FORMAT_VERSION",
    "MIN_MESSAGE_BYTES",
    "decode_batch",
    "encode_batches",
    "encode_counted",
]

FORMAT_VERSION = 1
"""The first byte of every message this version writes; a reader refuses any other."""

MIN_MESSAGE_BYTES = 256
"""The smallest ``max_bytes`` accepted: below it hardly one record would fit."""

_PREFIX = bytes([FORMAT_VERSION])
# An Encoder and a typed Decoder are built once: msgspec reuses their buffers and type
# plans, and both are safe to share between threads.
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(TelemetryData)
# A part is encoded as a map holding two msgpack arrays. An empty array's header is one
# byte and the longest form (array 32) five, so a part's size is at most the size of the
# same part without records, plus these 8 bytes, plus the sum of its records' sizes.
_ARRAY_HEADERS_SLACK = 8


def encode_batches(data: TelemetryData, max_bytes: int) -> list[bytes]:
    """Encode ``data`` as messages of at most ``max_bytes`` each, in record order.

    A batch that fits is one message. A larger one is split by records: events first,
    then metrics, each part filled greedily. ``receipts`` travel with the first part
    only (alone in it if they and the first record do not fit together), so a
    receipt is written once. Decoding every part and concatenating the lists gives
    the batch back.

    Raises:
        ValueError: ``max_bytes`` is below :data:`MIN_MESSAGE_BYTES`, or a single record
            (or the receipts alone) encodes to more than ``max_bytes``.
    """
    return [payload for _, payload in encode_counted(data, max_bytes)]


def encode_counted(data: TelemetryData, max_bytes: int) -> list[tuple[int, bytes]]:
    """:func:`encode_batches`, each message with the number of records it holds.

    Raises:
        ValueError: as :func:`encode_batches`.
    """
    if not isinstance(max_bytes, int) or max_bytes < MIN_MESSAGE_BYTES:
        raise ValueError(f"max_bytes={max_bytes!r}: must be an integer of at least 256")
    whole = _encode(data)
    if len(whole) <= max_bytes:
        return [(len(data), whole)]
    return [(len(part), _encode(part)) for part in _split(data, max_bytes)]


def decode_batch(payload: bytes | bytearray | memoryview) -> TelemetryData:
    """Decode one message written by :func:`encode_batches`.

    Raises:
        BusFormatError: the payload is empty, of another format version, or not a
            valid batch (the message names which).
    """
    if len(payload) == 0:
        raise BusFormatError("malformed bus message: empty payload")
    version = payload[0]
    if version != FORMAT_VERSION:
        raise BusFormatError(
            f"malformed bus message: format version {version} is unknown "
            f"(this version of RIMP reads version {FORMAT_VERSION})"
        )
    try:
        return _decoder.decode(memoryview(payload)[1:])
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError too
        raise BusFormatError(f"malformed bus message: {exc}") from exc


def _encode(data: TelemetryData) -> bytes:
    return _PREFIX + _encoder.encode(data)


def _split(data: TelemetryData, max_bytes: int) -> list[TelemetryData]:
    """Cut ``data`` into parts whose encodings are each at most ``max_bytes``."""
    # Sizes are measured on each record encoded alone: msgpack has no context, so a
    # record takes exactly those bytes inside a part's array too.
    records: list[tuple[Event | Metric, int]] = [(e, len(_encoder.encode(e))) for e in data.events]
    records += [(m, len(_encoder.encode(m))) for m in data.metrics]
    empty = len(_encode(TelemetryData())) + _ARRAY_HEADERS_SLACK
    first = len(_encode(TelemetryData(receipts=data.receipts))) + _ARRAY_HEADERS_SLACK
    if first > max_bytes:
        raise ValueError(
            f"the batch's receipts alone encode to {first} bytes, more than the bus "
            f"message limit of {max_bytes} bytes (max_msg_bytes)"
        )
    parts: list[TelemetryData] = []
    part = TelemetryData(receipts=data.receipts)
    used = first
    for record, size in records:
        if used + size > max_bytes and part:
            parts.append(part)
            part, used = TelemetryData(), empty
        if used + size > max_bytes and part.receipts and empty + size <= max_bytes:
            # The receipts and this record do not fit together: the receipts go alone.
            parts.append(part)
            part, used = TelemetryData(), empty
        if used + size > max_bytes:
            raise ValueError(
                f"{type(record).__name__.lower()} {record.id!r} encodes to {size} bytes, "
                f"more than the bus message limit of {max_bytes} bytes (max_msg_bytes)"
            )
        if isinstance(record, Event):
            part.events.append(record)
        else:
            part.metrics.append(record)
        used += size
    parts.append(part)
    return parts
