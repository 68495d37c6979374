"""Event blocks: the on-disk form of many events of one source, in columns.

One row of ``event_blocks`` holds up to a few thousand events of one source, in the
order they were stored (not sorted by time: ``seq`` keeps that order and the query sorts).
Each column is a blob:

- ``times`` and ``seqs``: int64 deltas, byte-shuffled and zlib'd (the points' codec);
- ``kinds``: one byte per event, the type's code (:data:`KIND_CODES`);
- ``ids``: the points' id codec (RIMP's hex ids as zigzagged int64 deltas);
- ``messages``: a msgpack list of text, and ``metadata``: one JSON array of the events'
  metadata (encoded and decoded in one C call each), both compressed with zlib level 1,
  which measured 0.24 us per event to write against 0.85 at level 6, for 20 % more bytes.

The row also keeps what lets a query skip a block without opening it: the time range,
the last seq, the number of events and a bit mask of the types present. Writing a block
costs a few microseconds per event against ~7 for a SQLite row with its index entries;
reading decodes whole blocks, which is what a scan of many events does anyway.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import Any

import msgspec

from telemetry.models import Event, EventType
from telemetry.storage import _chunks

__all__ = [
    "ASCII_BIT",
    "KIND_CODES",
    "KIND_VALUES",
    "BlockRow",
    "DecodedBlock",
    "decode_block",
    "encode_block",
    "type_mask",
]

KIND_CODES: dict[str, int] = {kind.value: code for code, kind in enumerate(EventType)}
"""Each event type's one-byte code in ``kinds`` (the enum's order; never reordered)."""
ASCII_BIT = 1 << 8
"""Set in a block's ``types`` when every message is ASCII: a search may then look for
the word in the raw bytes, lower-cased, without decoding a single message."""
KIND_VALUES: list[str] = [kind.value for kind in EventType]
"""The type value of each code."""
_KINDS = list(EventType)
_LEVEL = 1
_encode_list = msgspec.msgpack.Encoder().encode
_decode_messages = msgspec.msgpack.Decoder(list[str]).decode
_decode_metadata = msgspec.json.Decoder(list[dict[str, Any]]).decode
_encode_json = msgspec.json.Encoder().encode

BlockRow = tuple[str, int, int, int, int, int, bytes, bytes, bytes, bytes, bytes, bytes]
"""(source, start_ns, end_ns, last_seq, n, types, times, seqs, kinds, ids, messages,
metadata): the values of one ``event_blocks`` row, in its column order."""


def type_mask(kinds: Sequence[str]) -> int:
    """The bit mask of the event types named in ``kinds`` (type values)."""
    mask = 0
    for kind in kinds:
        mask |= 1 << KIND_CODES[kind]
    return mask


def encode_block(
    source: str,
    *,
    times: Sequence[int],
    seqs: Sequence[int],
    kinds: bytes,
    ids: Sequence[str],
    messages: Sequence[str],
    metadata: bytes,
) -> BlockRow:
    """A block of one source's events, given as columns (``kinds`` already as codes and
    ``metadata`` already as one JSON array)."""
    mask = 0
    for code in set(kinds):
        mask |= 1 << code
    if "".join(messages).isascii():
        mask |= ASCII_BIT
    return (
        source,
        min(times),
        max(times),
        seqs[-1],
        len(times),
        mask,
        _chunks.encode_times(times, compress=True, level=_LEVEL),
        _chunks.encode_times(seqs, compress=True, level=_LEVEL),
        zlib.compress(kinds, _LEVEL),
        _chunks.encode_ids(ids, compress=True, level=_LEVEL),
        zlib.compress(_encode_list(messages), _LEVEL),
        zlib.compress(metadata, _LEVEL),
    )


class DecodedBlock:
    """A block's columns, each decoded on first use: a search that finds no word in a
    block decodes nothing else of it, a query that filters by time and type never
    inflates the messages, and metadata is parsed only for blocks with results."""

    def __init__(self, row: Sequence[Any], end_ns: int = 0) -> None:
        types, self.source, self._times, self._seqs, self._kinds, self._ids = row[:6]
        self._messages, self._metadata = row[6:8]
        self.ascii = bool(types & ASCII_BIT)
        self.end_ns = end_ns

    @cached_property
    def times(self) -> Sequence[int]:
        """The events' times (ns)."""
        return _chunks.decode_times(self._times)

    @cached_property
    def seqs(self) -> Sequence[int]:
        """The events' stored order (a later event has a larger seq)."""
        return _chunks.decode_times(self._seqs)

    @cached_property
    def kinds(self) -> bytes:
        """The events' type codes (:data:`KIND_CODES`), one byte each."""
        return zlib.decompress(self._kinds)

    @cached_property
    def ids(self) -> list[str]:
        """The events' ids."""
        return _chunks.decode_ids(self._ids)

    @cached_property
    def messages(self) -> list[str]:
        """The events' messages."""
        return _decode_messages(zlib.decompress(self._messages))

    @cached_property
    def metadata(self) -> list[dict[str, Any]]:
        """The events' metadata (the whole block's, parsed at once)."""
        return _decode_metadata(zlib.decompress(self._metadata))

    def event(self, i: int) -> Event:
        """The ``i``-th event of the block, whole."""
        return Event(
            self.source,
            self.messages[i],
            _KINDS[self.kinds[i]],
            self.metadata[i],
            self.times[i],
            self.ids[i],
        )

    def subset(self, positions: Sequence[int]) -> BlockRow:
        """A block row of the events at ``positions`` (retention keeps part of a block)."""
        metadata = self.metadata
        return encode_block(
            self.source,
            times=[self.times[i] for i in positions],
            seqs=[self.seqs[i] for i in positions],
            kinds=bytes(self.kinds[i] for i in positions),
            ids=[self.ids[i] for i in positions],
            messages=[self.messages[i] for i in positions],
            metadata=_encode_json([metadata[i] for i in positions]),
        )

    def matching(
        self,
        *,
        codes: frozenset[int] | None,
        lo: int | None,
        hi: int | None,
        needle: str | None,
    ) -> Iterator[int]:
        """Positions of the events in ``[lo, hi)`` of one of the type ``codes``, whose
        case-folded message holds ``needle``."""
        messages: list[str] = []
        if needle:
            if self.ascii:
                # Case-folding ASCII text gives ASCII: a word with other letters cannot
                # be in it, and an ASCII word can be looked for in the lower-cased bytes
                # (C speed, no message decoded). Most blocks lack a rare word.
                if not needle.isascii():
                    return
                if needle.encode() not in zlib.decompress(self._messages).lower():
                    return
            messages = self.messages
            if needle not in "\x00".join(messages).casefold():
                return
        times, kinds = self.times, self.kinds
        for i, t in enumerate(times):
            if (lo is not None and t < lo) or (hi is not None and t >= hi):
                continue
            if codes is not None and kinds[i] not in codes:
                continue
            if needle and needle not in messages[i].casefold():
                continue
            yield i


def decode_block(row: Sequence[Any], end_ns: int = 0) -> DecodedBlock:
    """A block read as (types, source, times, seqs, kinds, ids, messages, metadata)."""
    return DecodedBlock(row, end_ns)
