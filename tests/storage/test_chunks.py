"""Tests of the chunk encodings used by DatabaseStorage: every codec round-trips exactly."""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telemetry.models import new_id
from telemetry.storage import _chunks, _eventblocks
from telemetry.storage._chunks import (
    decode_ids,
    decode_times,
    decode_values,
    encode_ids,
    encode_times,
    encode_values,
)

int64 = st.integers(min_value=0, max_value=2**62)


def bits(values: Sequence[float]) -> list[bytes]:
    return [struct.pack("<d", v) for v in values]


@pytest.fixture
def without_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decode as the core does where numpy is not installed."""
    monkeypatch.setattr(_chunks, "HAVE_NUMPY", False)


class TestNumpyAndPurePython:
    """The numpy decoders (server extra) and the pure-Python ones give the same bits."""

    @pytest.fixture(autouse=True)
    def _needs_numpy(self) -> None:
        if not _chunks.HAVE_NUMPY:
            pytest.skip("numpy is not installed (it comes with the server extra)")

    @given(st.lists(st.integers(min_value=0, max_value=2**62), min_size=1, max_size=300))
    def test_times_decode_alike(self, times: list[int]) -> None:
        """Delta-encoded times decode to the same int64s both ways."""
        times.sort()
        blob = encode_times(times, compress=True)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_chunks, "HAVE_NUMPY", False)
            pure = decode_times(blob)
        assert decode_times(blob) == pure
        assert list(pure) == times

    @given(st.lists(st.integers(min_value=-(2**52), max_value=2**52), min_size=1, max_size=300),
           st.integers(min_value=0, max_value=6))  # fmt: skip
    def test_decimal_values_decode_alike(self, mantissas: list[int], digits: int) -> None:
        """Scaled decimals, up to the 2**53 limit and negative, decode to the same bits."""
        values = [m / 10**digits for m in mantissas]
        blob = encode_values(values, compress=True)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_chunks, "HAVE_NUMPY", False)
            pure = decode_values(blob)
        assert bits(decode_values(blob)) == bits(pure) == bits(values)

    @given(st.lists(st.integers(min_value=0, max_value=2**63 - 1), min_size=1, max_size=300))
    def test_hex_ids_encode_and_decode_alike(self, numbers: list[int]) -> None:
        """16-hex-digit ids anywhere under 2**63, in any order (client ids far apart
        included): the same bytes both ways, and back to themselves."""
        ids = [f"{n:016x}" for n in numbers]
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_chunks, "HAVE_NUMPY", False)
            pure = encode_ids(ids, compress=True)
            assert decode_ids(pure) == ids
        assert encode_ids(ids, compress=True) == pure
        assert decode_ids(pure) == ids


def test_ids_far_apart_are_stored() -> None:
    """Ids whose differences need all 64 bits (a regression: this raised OverflowError
    and made the whole batch fail for ever)."""
    ids = ["7fffffffffffffff", "0000000000000000", "4000000000000001"] * 50
    assert decode_ids(encode_ids(ids, compress=True)) == ids


@pytest.mark.usefixtures("without_numpy")
class TestWithoutNumpy:
    """The core's own decoders round-trip on their own."""

    @given(st.lists(int64, max_size=300), st.lists(st.floats(), max_size=300))
    def test_round_trip(self, times: list[int], values: list[float]) -> None:
        """Times and any floats decode to themselves without numpy."""
        times.sort()
        assert list(decode_times(encode_times(times, compress=True))) == times
        assert bits(decode_values(encode_values(values, compress=True))) == bits(values)


class TestTimes:
    @given(st.lists(int64, max_size=300), st.booleans())
    def test_sorted_times_round_trip(self, times: list[int], compress: bool) -> None:
        """Ascending ns times decode to themselves with either codec."""
        times.sort()
        assert list(decode_times(encode_times(times, compress=compress))) == times

    @given(st.lists(st.integers(min_value=0, max_value=2**40), min_size=2, max_size=300),
           st.sampled_from([1_000, 1_000_000, 7]), st.booleans())  # fmt: skip
    def test_times_on_a_coarser_grid_round_trip_and_shrink(
        self, ticks: list[int], unit: int, ordered: bool
    ) -> None:
        """Times in whole microseconds or milliseconds (any order) come back exactly,
        through the divided-differences codec, the same bytes with or without numpy."""
        times = [1_796_083_200_000_000_000 + t * unit for t in ticks]
        if ordered:
            times.sort()
        blob = encode_times(times, compress=True)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_chunks, "HAVE_NUMPY", False)
            assert encode_times(times, compress=True) == blob
            assert list(decode_times(blob)) == times
        assert list(decode_times(blob)) == times

    def test_millisecond_times_take_two_bytes(self) -> None:
        """Irregular millisecond times (a point every ~10 s) cost about 2 bytes each."""
        rng = random.Random(1)
        times = sorted(10**18 + i * 10**10 + rng.randrange(10**4) * 10**6 for i in range(10_000))
        blob = encode_times(times, compress=True)
        assert blob[:1] == b"G"
        assert len(blob) / len(times) < 2.2

    def test_regular_times_compress_to_almost_nothing(self) -> None:
        """A point every second costs well under a byte per time once compressed."""
        times = [1_796_000_000_000_000_000 + i * 1_000_000_000 for i in range(10_000)]
        assert len(encode_times(times, compress=True)) < 1_000


class TestValues:
    @given(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=300), st.booleans())
    def test_any_floats_round_trip_bit_for_bit(self, values: list[float], compress: bool) -> None:
        """Every float, NaN, infinities and -0.0 included, decodes to the same bits."""
        assert bits(decode_values(encode_values(values, compress=compress))) == bits(values)

    @given(st.lists(st.integers(min_value=-(10**9), max_value=10**9), min_size=1, max_size=300),
           st.integers(min_value=0, max_value=6))  # fmt: skip
    def test_decimals_round_trip(self, mantissas: list[int], digits: int) -> None:
        """Numbers rounded to a few decimals take the decimal codec and come back exactly."""
        values = [round(m / 10**digits, digits) for m in mantissas]
        blob = encode_values(values, compress=True)
        assert list(decode_values(blob)) == values

    def test_decimal_values_are_much_smaller_than_floats(self) -> None:
        """Two-decimal values cost a fraction of their 8 raw bytes."""
        values = [round(50 + 10 * math.sin(i / 50), 2) for i in range(5_000)]
        blob = encode_values(values, compress=True)
        assert blob[:1] == b"D"
        assert len(blob) / len(values) < 3

    def test_negative_zero_keeps_its_sign(self) -> None:
        """-0.0 is not folded into 0.0 by the decimal codec."""
        decoded = decode_values(encode_values([1.0, -0.0, 2.0], compress=True))
        assert math.copysign(1.0, decoded[1]) == -1.0


class TestIds:
    @given(st.lists(st.text(max_size=20), max_size=100), st.booleans())
    def test_any_ids_round_trip(self, ids: list[str], compress: bool) -> None:
        """Arbitrary id strings (empty, unicode, newlines) survive both codecs."""
        assert decode_ids(encode_ids(ids, compress=compress)) == ids

    @given(st.lists(st.sampled_from(["0x0000000000000a", "00000000000000A1", "-000000000000001"]),
                    max_size=5))  # fmt: skip
    def test_hex_lookalikes_are_not_normalised(self, ids: list[str]) -> None:
        """Strings int() would accept but that are not 16 lower-case hex digits stay as given."""
        assert decode_ids(encode_ids(ids, compress=True)) == ids

    def test_rimp_ids_compress_to_almost_nothing(self) -> None:
        """Consecutive RIMP ids cost well under a byte each."""
        ids = [new_id() for _ in range(10_000)]
        blob = encode_ids(ids, compress=True)
        assert decode_ids(blob) == ids
        assert len(blob) < 2_000


class TestTrigramFilter:
    """The bit set of a block's message trigrams never hides a word the block holds."""

    @given(
        st.lists(st.text(alphabet=st.characters(max_codepoint=127), max_size=40), max_size=60),
        st.data(),
    )
    def test_a_word_in_the_text_always_passes(
        self, messages: list[str], data: st.DataObject
    ) -> None:
        """Any ASCII messages, any word cut from them (in any case): may_hold is True."""
        text = "".join(messages)
        grams = _eventblocks.grams_of([text])[0]
        assert grams is not None
        assert len(grams) * 8 >= 1024
        if len(text) >= 3:
            start = data.draw(st.integers(0, len(text) - 3))
            end = data.draw(st.integers(start + 3, len(text)))
            word = text[start:end].swapcase().casefold().encode()
            assert _eventblocks.may_hold(grams, word)

    def test_words_that_are_not_there_mostly_do_not_pass(self) -> None:
        """Absent six-letter words are let through rarely: under 2 % of 500 tries on a
        block of 500 log lines (a pass only costs reading the block)."""
        rng = random.Random(3)
        text = "".join(f"request {i} handled in {rng.randint(1, 900)} ms" for i in range(500))
        grams = _eventblocks.grams_of([text])[0]
        letters = "abcdefghijklmnopqrstuvwxyz"
        words = {"".join(rng.choice(letters) for _ in range(6)) for _ in range(500)}
        absent = [w for w in words if w not in text]
        passed = sum(_eventblocks.may_hold(grams, w.encode()) for w in absent)
        assert passed <= 0.02 * len(absent)

    def test_short_words_and_missing_sets_never_skip(self) -> None:
        """Words under three letters, and blocks without a set (older ones), are read."""
        hello, short = _eventblocks.grams_of(["hello", "ab"])
        assert _eventblocks.may_hold(hello, b"zz")
        assert _eventblocks.may_hold(None, b"zebra")
        assert not _eventblocks.may_hold(short, b"abc")
