"""Point chunks: the on-disk encoding of one series' points, in columns.

Each column (times, values, ids) is a blob whose first byte names its codec:

- ``R`` (raw): plain 8-byte arrays (ids as a JSON list). Cheap to write; used
  for the small chunks each ``store()`` writes, which are soon merged.
- ``D`` (decimal values): values that are exactly decimals of at most six
  digits are stored as scaled integers, delta-encoded, shuffled and zlib'd.
- ``Z`` (compressed): for merged chunks. Times become first value + deltas,
  then every 8-byte column is byte-shuffled (all first bytes, then all second
  bytes...) and zlib-compressed: shuffling puts the slowly changing high bytes
  of timestamps and floats side by side, which zlib then squeezes. Ids that
  are all 16 hex digits (RIMP's own) are stored as int64 deltas (consecutive
  ids compress to almost nothing); other ids as compressed JSON.

Measured on this machine (see ``docs/storage.md``): shuffle + zlib beat an
XOR-of-previous value encoding by 10-20 % in size and ~40 % in time, because
a Python-level XOR loop costs more than it saves. Values are stored exactly.

Decoding returns ``array.array`` columns (``q`` times, ``d`` values). Where numpy
is installed (the ``server`` extra brings it) the unshuffle, zigzag and running
sums run in numpy: a 100k-point chunk decodes in ~1 ms instead of ~12 ms, which
is what lets PromQL range queries read a day of points quickly. Both paths give
bit-identical columns (``tests/storage/test_chunks.py`` checks them against each
other); the core itself never needs numpy.
"""

from __future__ import annotations

import array
import importlib.util
import math
import re
import zlib
from collections.abc import Sequence
from itertools import accumulate, pairwise, repeat
from typing import Any

import msgspec

HAVE_NUMPY = importlib.util.find_spec("numpy") is not None
"""Whether decoding may use numpy (imported at the first decode, so ``import telemetry``
stays cheap: numpy takes ~50 ms to import)."""
_np: Any = None


def _numpy() -> Any:
    global _np  # a lazily imported module, set once
    if _np is None:
        import numpy

        _np = numpy
    return _np


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
_RAW = b"R"
_ZLIB = b"Z"
_GCD = b"G"
_DECIMAL = b"D"
_MAX_DIGITS = 6
_SCALES = tuple(10.0**k for k in range(_MAX_DIGITS + 1))
_HEX_IDS = b"H"
_JSON_IDS = b"J"
_HEX16 = re.compile(r"(?:[0-9a-f]{16})*")
_format_id = "{:016x}".format
_encode_json = msgspec.json.encode
_decode_strs = msgspec.json.Decoder(list[str]).decode


def _shuffle(raw: bytes) -> bytes:
    return b"".join([raw[i::_WIDTH] for i in range(_WIDTH)])


def _unshuffle(raw: bytes) -> bytes:
    n = len(raw) // _WIDTH
    out = bytearray(len(raw))
    for i in range(_WIDTH):
        out[i::_WIDTH] = raw[i * n : (i + 1) * n]
    return bytes(out)


def _pack(typecode: str, numbers: Sequence[int] | Sequence[float], level: int = _LEVEL) -> bytes:
    return zlib.compress(_shuffle(array.array(typecode, numbers).tobytes()), level)


def _unpack(typecode: str, blob: bytes, raw: bool) -> array.array:  # type: ignore[type-arg]
    out = array.array(typecode)
    out.frombytes(blob if raw else _unshuffle(zlib.decompress(blob)))
    return out


def _unpack_np(blob: bytes) -> Any:
    """A shuffled, compressed 8-byte column as a numpy int64 array (native order,
    like ``array.array``)."""
    np = _numpy()
    raw = np.frombuffer(zlib.decompress(blob), dtype=np.uint8)
    return raw.reshape(_WIDTH, -1).T.copy().view(np.int64).ravel()


def _pack_np(numbers: Any, level: int = _LEVEL) -> bytes:
    """:func:`_pack` of a numpy 8-byte array: the same shuffled, compressed bytes."""
    return zlib.compress(numbers.view(_numpy().uint8).reshape(-1, _WIDTH).T.tobytes(), level)


def _np_deltas(numbers: Any) -> Any:
    """The first number, then each number less the one before (as ``np.diff`` with
    ``prepend=0``, whose Python wrapper costs ~10 us a call: more than the work on a
    block of a few hundred events)."""
    out = numbers.copy()
    _numpy().subtract(numbers[1:], numbers[:-1], out=out[1:])
    return out


def _deltas(numbers: Sequence[int]) -> list[int]:
    out = [numbers[0]] if numbers else []
    out.extend([b - a for a, b in pairwise(numbers)])
    return out


def _zigzag(numbers: Sequence[int]) -> list[int]:
    # Small negative numbers become small positive ones, so their high bytes are zero.
    return [(n << 1) ^ (n >> 63) for n in numbers]


def _unzigzag(numbers: Sequence[int]) -> list[int]:
    return [(n >> 1) ^ -(n & 1) for n in numbers]


def _running_sum(deltas: Sequence[int]) -> list[int]:
    # accumulate runs in C: 3-4x faster than a Python loop over a 100k-point chunk.
    return list(accumulate(deltas))


def encode_times(times: Sequence[int], *, compress: bool, level: int = _LEVEL) -> bytes:
    """Encode ``int`` ns times (any order; ascending ones compress best). ``level`` is
    zlib's: 6 for point chunks, which are kept for long; event blocks use 1, which costs
    a quarter of the time for a few more bytes.

    When every difference is a multiple of some ``g > 1`` (times in whole microseconds
    or milliseconds, as most clients send them), the differences are stored divided by
    it (codec ``G``): irregular millisecond times shrink from ~3.7 to ~2 bytes each.
    """
    if not compress:
        return _RAW + array.array("q", times).tobytes()
    if HAVE_NUMPY and len(times) > 64:  # below, numpy's call overhead costs more
        np = _numpy()
        deltas = _np_deltas(np.asarray(times, dtype=np.int64))
        g = int(np.gcd.reduce(deltas[1:])) if len(times) > 1 else 0
        if g > 1:
            deltas[1:] //= g
            return _GCD + g.to_bytes(8, "little") + _pack_np(deltas, level)
        return _ZLIB + _pack_np(deltas, level)
    deltas = _deltas(times)
    g = math.gcd(*deltas[1:]) if len(deltas) > 1 else 0
    if g > 1:
        return (
            _GCD
            + g.to_bytes(8, "little")
            + _pack("q", [deltas[0], *(d // g for d in deltas[1:])], level)
        )
    return _ZLIB + _pack("q", deltas, level)


def decode_times(blob: bytes) -> array.array[int]:
    """Inverse of :func:`encode_times`."""
    codec = blob[:1]
    if codec == _RAW:
        return _unpack("q", blob[1:], True)
    g, body = (int.from_bytes(blob[1:9], "little"), blob[9:]) if codec == _GCD else (1, blob[1:])
    if HAVE_NUMPY:
        deltas = _unpack_np(body)
        if g > 1:
            deltas[1:] *= g
        return array.array("q", _numpy().cumsum(deltas).tobytes())
    deltas_list = _unpack("q", body, False).tolist()
    if g > 1:
        deltas_list[1:] = [d * g for d in deltas_list[1:]]
    return array.array("q", _running_sum(deltas_list))


def _decimal_digits(values: Sequence[float]) -> tuple[int, list[int]] | None:
    """The fewest decimal digits ``k`` (0-6) for which every value is exactly
    ``round(v * 10**k) / 10**k``, with those integers; None if there is none.

    Telemetry values are mostly counts or numbers rounded to a few decimals;
    as scaled integers they have far fewer random bits than their float64
    mantissas (the idea of VictoriaMetrics' decimal encoding). The check uses
    the decoder's own arithmetic, so the round trip is exact by construction.
    """
    if not values:
        return None
    sample = values[:32]
    try:
        for k in range(_MAX_DIGITS + 1):
            scale = _SCALES[k]
            if all(round(v * scale) / scale == v for v in sample):
                break
        else:
            return None
        ints = [round(v * scale) for v in values]
    except (OverflowError, ValueError):  # inf or nan: not a decimal
        return None
    if max(map(abs, ints)) >= 2**53:
        return None
    # Bitwise comparison: also refuses -0.0, which equals 0.0 but would lose its sign.
    if array.array("d", [m / scale for m in ints]).tobytes() != array.array("d", values).tobytes():
        return None
    return k, ints


def encode_values(values: Sequence[float], *, compress: bool) -> bytes:
    """Encode float values exactly (as scaled decimal integers when that is exact)."""
    if not compress:
        return _RAW + array.array("d", values).tobytes()
    decimal = _decimal_digits(values)
    if decimal is not None:
        k, ints = decimal
        return _DECIMAL + bytes((k,)) + _pack("q", _zigzag(_deltas(ints)))
    return _ZLIB + _pack("d", values)


def decode_values(blob: bytes) -> array.array[float]:
    """Inverse of :func:`encode_values`."""
    codec = blob[:1]
    if codec == _DECIMAL:
        scale = _SCALES[blob[1]]
        if HAVE_NUMPY:
            zigzag = _unpack_np(blob[2:])
            # int64 -> float64 is exact below 2**53 (checked when encoding), and the
            # division is IEEE's, so this is bit for bit the pure-Python result.
            mantissas = _numpy().cumsum((zigzag >> 1) ^ -(zigzag & 1))
            return array.array("d", (mantissas / scale).tobytes())
        ints = _running_sum(_unzigzag(_unpack("q", blob[2:], False)))
        return array.array("d", [m / scale for m in ints])
    return _unpack("d", blob[1:], codec == _RAW)


_U64 = 2**64


def encode_ids(ids: Sequence[str], *, compress: bool, level: int = _LEVEL) -> bytes:
    """Encode record ids (see the module docs); ``level`` as for :func:`encode_times`."""
    if not compress:
        return _RAW + _encode_json(ids)
    joined = "".join(ids)
    if len(joined) == 16 * len(ids) and _HEX16.fullmatch(joined):
        if HAVE_NUMPY and len(ids) > 64:
            np = _numpy()
            numbers = np.frombuffer(bytes.fromhex(joined), dtype=">u8").astype(np.uint64)
            if int(numbers.max(initial=0)) < 2**63:
                # Deltas and zigzag wrap around 2**64, like the pure-Python code below.
                deltas = _np_deltas(numbers).view(np.int64)
                zigzag = (deltas << 1) ^ (deltas >> 63)
                return _ZLIB + _HEX_IDS + _pack_np(zigzag, level)
        else:
            values = list(map(int, ids, repeat(16)))
            if max(values, default=0) < 2**63:
                return _ZLIB + _HEX_IDS + _pack("Q", _zigzag64(_deltas(values)), level)
    return _ZLIB + _JSON_IDS + zlib.compress(_encode_json(ids), level)


def _zigzag64(deltas: Sequence[int]) -> list[int]:
    # A delta between two ids under 2**63 may need 64 bits signed: wrap it around 2**64
    # (the decoder's running sum wraps back), then zigzag it into an unsigned 64-bit.
    out = []
    for delta in deltas:
        signed = (delta + 2**63) % _U64 - 2**63
        out.append(((signed << 1) ^ (signed >> 63)) % _U64)
    return out


def decode_ids(blob: bytes) -> list[str]:
    """Inverse of :func:`encode_ids`."""
    if blob[:1] == _RAW:
        return _decode_strs(blob[1:])
    if blob[1:2] == _HEX_IDS:
        if HAVE_NUMPY:
            zigzag = _unpack_np(blob[2:]).view(_numpy().uint64)
            numbers = _numpy().cumsum((zigzag >> 1) ^ (-(zigzag & 1)))  # wraps, as encoded
            text = numbers.astype(">u8").tobytes().hex()
            return [text[i : i + 16] for i in range(0, len(text), 16)]
        unsigned = _unpack("Q", blob[2:], False)
        return [_format_id(n % _U64) for n in _running_sum(_unzigzag(unsigned))]
    return _decode_strs(zlib.decompress(blob[2:]))
