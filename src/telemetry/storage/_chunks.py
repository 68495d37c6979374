"""Compressed point chunks: the on-disk encoding of one series' points.

A chunk holds the points of one series sorted by time. Each column is an array
of 8-byte numbers, byte-shuffled (all first bytes, then all second bytes...)
and zlib-compressed: shuffling puts the slowly changing high bytes of
timestamps and floats next to each other, which zlib then squeezes.
Measured on this machine (``benchmarks/storage_encoding.py``): shuffle + zlib
beat XOR-of-previous encodings of values by 10-20 % in size and ~40 % in time,
because a Python-level XOR loop costs more than it saves.

- times: first time, then deltas (``int64``); regular intervals compress to ~nothing.
- values: the raw ``float64`` bits, exact.
- ids: when every id is 16 hex digits (RIMP's own), the ids as ``int64`` deltas
  (consecutive ids from one process compress to ~nothing); otherwise JSON.
"""

from __future__ import annotations

import array
import zlib
from collections.abc import Sequence
from itertools import pairwise

import msgspec

__all__ = [
    "decode_ids",
    "decode_times",
    "decode_values",
    "encode_ids",
    "encode_times",
    "encode_values",
]

_WIDTH = 8
_LEVEL = 6
_HEX_IDS = b"H"
_JSON_IDS = b"J"
_format_id = "{:016x}".format


def _shuffle(raw: bytes) -> bytes:
    return b"".join([raw[i::_WIDTH] for i in range(_WIDTH)])


def _unshuffle(raw: bytes) -> bytes:
    n = len(raw) // _WIDTH
    out = bytearray(len(raw))
    for i in range(_WIDTH):
        out[i::_WIDTH] = raw[i * n : (i + 1) * n]
    return bytes(out)


def _pack(typecode: str, numbers: Sequence[int] | Sequence[float]) -> bytes:
    return zlib.compress(_shuffle(array.array(typecode, numbers).tobytes()), _LEVEL)


def _unpack(typecode: str, blob: bytes) -> array.array:  # type: ignore[type-arg]
    out = array.array(typecode)
    out.frombytes(_unshuffle(zlib.decompress(blob)))
    return out


def encode_times(times: Sequence[int]) -> bytes:
    """Encode ascending ``int`` ns times as first value plus deltas."""
    deltas = [times[0]] if times else []
    deltas.extend([b - a for a, b in pairwise(times)])
    return _pack("q", deltas)


def decode_times(blob: bytes) -> list[int]:
    """Inverse of :func:`encode_times`."""
    deltas = _unpack("q", blob)
    out: list[int] = []
    total = 0
    append = out.append
    for d in deltas:
        total += d
        append(total)
    return out


def encode_values(values: Sequence[float]) -> bytes:
    """Encode float values exactly."""
    return _pack("d", values)


def decode_values(blob: bytes) -> list[float]:
    """Inverse of :func:`encode_values`."""
    return _unpack("d", blob).tolist()


def encode_ids(ids: Sequence[str]) -> bytes:
    """Encode record ids: int64 deltas when all are 16 hex digits, else JSON."""
    try:
        numbers = [int(i, 16) for i in ids]
    except ValueError:
        numbers = []
    # int() also takes "0x", "_", signs and upper case: keep only exact round trips.
    if numbers and max(numbers) < 2**63 and list(map(_format_id, numbers)) == list(ids):
        deltas = [numbers[0]]
        deltas.extend([b - a for a, b in pairwise(numbers)])
        return _HEX_IDS + _pack("q", deltas)
    return _JSON_IDS + zlib.compress(msgspec.json.encode(list(ids)), _LEVEL)


def decode_ids(blob: bytes) -> list[str]:
    """Inverse of :func:`encode_ids`."""
    if blob[:1] == _HEX_IDS:
        return list(map(_format_id, decode_times(blob[1:])))
    return list(msgspec.json.decode(zlib.decompress(blob[1:]), type=list[str]))
