"""Event blocks: the on-disk form of many events of one source, in columns.

One row of ``event_blocks`` holds up to a few thousand events of one source, in the
order they were stored (not sorted by time: ``seq`` keeps that order and the query sorts).
Each column is a blob:

- ``times`` and ``seqs``: int64 deltas, byte-shuffled and zlib'd (the points' codec);
- ``kinds``: one byte per event, the type's code (:data:`KIND_CODES`);
- ``ids``: the points' id codec (RIMP's hex ids as zigzagged int64 deltas);
- ``messages``: a msgpack list of text, and ``metadata``: one JSON array of the events'
  metadata (encoded and decoded in one C call each), both compressed with zlib level 1,
  which measured 0.24 us per event to write against 0.85 at level 6, for 20 % more bytes;
- ``grams``: for an all-ASCII block, a bit set of the hashed trigrams of its lower-cased
  messages (one bit per trigram, about half a bit per character of text), so a search
  skips every block that lacks one of the word's trigrams without inflating a message:
  a block that holds the word always has all its bits (no false negatives), a block
  that does not has them all by chance with a probability of roughly the set's fill
  (~1/3) to the power of the word's trigrams. NULL when the block is not ASCII, when
  numpy is not installed (with it, ~0.15 us an event to build; in pure Python it would
  cost more than the rest of the block), and in blocks written before schema version 4.

The row also keeps what lets a query skip a block without opening it: the time range,
the last seq, the number of events and a bit mask of the types present. Writing a block
costs a few microseconds per event against ~7 for a SQLite row with its index entries;
reading decodes whole blocks, which is what a scan of many events does anyway.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import Any, NamedTuple

import msgspec

from telemetry.models import Event, EventType
from telemetry.storage import _chunks

__all__ = [
    "ASCII_BIT",
    "KIND_CODES",
    "KIND_VALUES",
    "BlockParts",
    "BlockRow",
    "DecodedBlock",
    "decode_block",
    "encode_blocks",
    "grams_of",
    "may_hold",
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

BlockRow = tuple[
    str, int, int, int, int, int, bytes, bytes, bytes, bytes, bytes, bytes, bytes | None
]
"""(source, start_ns, end_ns, last_seq, n, types, times, seqs, kinds, ids, messages,
metadata, grams): the values of one ``event_blocks`` row, in its column order."""
_GOLDEN = 2654435761  # Knuth's multiplicative hash: spreads trigram codes over the bits
_MIN_GRAM_BITS = 1024


def _gram_bits(text_length: int) -> int:
    """The bit set's size for ``text_length`` characters: a power of two, about half a
    bit per character, at least 1,024."""
    return max(_MIN_GRAM_BITS, 1 << max(0, text_length // 2 - 1).bit_length())


def grams_of(texts: Sequence[str]) -> list[bytes | None]:
    """The trigram bit sets of blocks' ASCII ``texts`` (each block's messages joined; a
    trigram that spans two messages only sets a bit, which can make a block be read,
    never be skipped), all None without numpy. (Hashing a batch's texts in one numpy
    pass measured slower than block by block: the small arrays stay in cache.)"""
    if not _chunks.HAVE_NUMPY:
        return [None] * len(texts)
    return [_grams(text.lower().encode("ascii")) for text in texts]


def _grams(data: bytes) -> bytes:
    np = _chunks._numpy()
    bits = _gram_bits(len(data))
    present = np.zeros(bits, dtype=bool)
    if len(data) >= 3:
        codes = np.frombuffer(data, dtype=np.uint8).astype(np.uint32)
        grams = (codes[:-2] << 16) | (codes[1:-1] << 8) | codes[2:]
        # uint32 arithmetic wraps, as the multiplicative hash wants; the top bits index.
        slots = (grams * np.uint32(_GOLDEN)) >> np.uint32(33 - bits.bit_length())
        present[slots.astype(np.intp)] = True  # intp indices: ~35 % faster than uint32
    return bytes(np.packbits(present).tobytes())


def may_hold(grams: bytes | None, word: bytes) -> bool:
    """False when the block of bit set ``grams`` cannot hold ``word`` (lower-case ASCII
    bytes): one of the word's trigrams is missing. True when it may (or without a set,
    or for a word shorter than a trigram)."""
    if not grams or len(word) < 3:
        return True
    shift = 33 - (len(grams) * 8).bit_length()
    for i in range(len(word) - 2):
        slot = (((word[i] << 16) | (word[i + 1] << 8) | word[i + 2]) * _GOLDEN % 2**32) >> shift
        if not grams[slot >> 3] & (0x80 >> (slot & 7)):  # packbits: the first bit is the top
            return False
    return True


def type_mask(kinds: Sequence[str]) -> int:
    """The bit mask of the event types named in ``kinds`` (type values)."""
    mask = 0
    for kind in kinds:
        mask |= 1 << KIND_CODES[kind]
    return mask


class BlockParts(NamedTuple):
    """One block's events as columns (``kinds`` already as codes, ``metadata`` already
    as one JSON array): what :func:`encode_blocks` encodes."""

    source: str
    times: Sequence[int]
    seqs: Sequence[int]
    kinds: bytes
    ids: Sequence[str]
    messages: Sequence[str]
    metadata: bytes


def encode_blocks(blocks: Sequence[BlockParts]) -> list[BlockRow]:
    """The rows of ``blocks``."""
    texts = ["".join(block.messages) for block in blocks]
    all_ascii = [text.isascii() for text in texts]
    sets = iter(grams_of([text for text, yes in zip(texts, all_ascii, strict=True) if yes]))
    return [
        _encode(block, next(sets) if yes else None, yes)
        for block, yes in zip(blocks, all_ascii, strict=True)
    ]


def _encode(block: BlockParts, grams: bytes | None, all_ascii: bool) -> BlockRow:
    mask = ASCII_BIT if all_ascii else 0
    for code in set(block.kinds):
        mask |= 1 << code
    times, seqs = block.times, block.seqs
    return (
        block.source,
        min(times),
        max(times),
        seqs[-1],
        len(times),
        mask,
        _chunks.encode_times(times, compress=True, level=_LEVEL),
        _chunks.encode_times(seqs, compress=True, level=_LEVEL),
        zlib.compress(block.kinds, _LEVEL),
        _chunks.encode_ids(block.ids, compress=True, level=_LEVEL),
        zlib.compress(_encode_list(block.messages), _LEVEL),
        zlib.compress(block.metadata, _LEVEL),
        grams,
    )


class DecodedBlock:
    """A block's columns, each decoded on first use: a search that finds no word in a
    block decodes nothing else of it, a query that filters by time and type never
    inflates the messages, and metadata is parsed only for blocks with results."""

    def __init__(self, row: Sequence[Any], end_ns: int = 0) -> None:
        types, self.source, self._times, self._seqs, self._kinds, self._ids = row[:6]
        self._messages, self._metadata, self._grams = row[6:9]
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
        part = BlockParts(
            self.source,
            times=[self.times[i] for i in positions],
            seqs=[self.seqs[i] for i in positions],
            kinds=bytes(self.kinds[i] for i in positions),
            ids=[self.ids[i] for i in positions],
            messages=[self.messages[i] for i in positions],
            metadata=_encode_json([metadata[i] for i in positions]),
        )
        return encode_blocks([part])[0]

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
                word = needle.encode()
                if not may_hold(self._grams, word):
                    return  # a trigram of the word is missing: not even inflated
                if word not in zlib.decompress(self._messages).lower():
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
    """A block read as (types, source, times, seqs, kinds, ids, messages, metadata,
    grams)."""
    return DecodedBlock(row, end_ns)
