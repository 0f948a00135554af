"""Codes: encode/decode/check, the word model, and the computed detection guarantees."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.encoded import SUPER_AS, Code, EncodedRangeError, EncodedUsageError, FaultDetectedError, Scheme
from custodes.encoded.analysis import exhaustive_flip_check, realize_flip, undetected_weights
from custodes.encoded.code import wrap

CODE = Code()
I32 = st.integers(-(2**31), 2**31 - 1)
SIG = st.integers(0, CODE.A - 1)


def test_default_is_anbd_super_a_32_in_64() -> None:
    assert (CODE.A, CODE.kbits, CODE.nbits, CODE.scheme) == (58659, 32, 64, Scheme.ANBD)
    assert CODE.A in SUPER_AS
    assert (CODE.min_value, CODE.max_value) == (-(2**31), 2**31 - 1)


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"A": 65536}, "even A leaves high bits unprotected"),
        ({"A": 1}, "A must be >= 3"),
        ({"A": 2**33 + 1}, "A * 2**31 does not fit 64-bit words"),
        ({"kbits": 16, "nbits": 16}, "no room for A"),
        ({"kbits": 40}, "functional values wider than 32 bits"),
    ],
)
def test_invalid_codes_are_refused(kwargs: dict[str, int], why: str) -> None:
    with pytest.raises(EncodedUsageError):
        Code(**kwargs)


@settings(max_examples=200, deadline=None)
@given(x=I32, b=SIG, d=SIG)
def test_encode_decode_roundtrip(x: int, b: int, d: int) -> None:
    c = CODE.encode(x, b, d)
    assert -(2**63) <= c < 2**63
    assert CODE.decode(c, b, d) == x
    assert CODE.fast_decode(c, b, d) == x
    CODE.check(c, b, d)


@settings(max_examples=100, deadline=None)
@given(x=st.one_of(st.integers(max_value=-(2**31) - 1), st.integers(min_value=2**31)))
def test_out_of_range_values_are_rejected(x: int) -> None:
    with pytest.raises(EncodedRangeError):
        CODE.encode(x)


@pytest.mark.parametrize("value", [1.5, "3", None])
def test_non_integers_are_rejected(value: object) -> None:
    with pytest.raises(EncodedRangeError):
        CODE.encode(value)  # type: ignore[arg-type]


def test_signatures_need_the_right_scheme() -> None:
    with pytest.raises(EncodedUsageError):
        Code.an().encode(1, b=5)
    with pytest.raises(EncodedUsageError):
        Code.anb().encode(1, b=5, d=1)
    with pytest.raises(EncodedUsageError):
        CODE.encode(1, b=CODE.A)


def test_wrong_signature_or_version_is_detected() -> None:
    c = CODE.encode(42, 7, 3)
    with pytest.raises(FaultDetectedError) as e:
        CODE.decode(c, 8, 3)
    assert e.value.code == "FAULT_DETECTED" and e.value.reasons == ["RESIDUE"]
    with pytest.raises(FaultDetectedError):
        CODE.decode(c, 7, 2)


def test_range_and_word_checks() -> None:
    with pytest.raises(FaultDetectedError) as e:
        CODE.decode(CODE.A * 2**31)  # a multiple of A, but outside the functional range
    assert e.value.reasons == ["RANGE"]
    with pytest.raises(FaultDetectedError) as e:
        CODE.decode(2**63)  # not a 64-bit word
    assert e.value.reasons == ["WORD"]


@settings(max_examples=300, deadline=None)
@given(c=st.integers(-(2**63), 2**63 - 1), b=SIG)
def test_fast_decode_accepts_exactly_what_decode_accepts(c: int, b: int) -> None:
    for word in (c, CODE.A * (c % 2**31) + b, CODE.A * (c % 2**31) + b + (c % 7)):
        try:
            expected = CODE.decode(word, b)
        except FaultDetectedError:
            with pytest.raises(FaultDetectedError):
                CODE.fast_decode(word, b)
        else:
            assert CODE.fast_decode(word, b) == expected


def test_wrap_emulates_twos_complement() -> None:
    assert wrap(2**63, 64) == -(2**63)
    assert wrap(-(2**63) - 1, 64) == 2**63 - 1
    assert wrap(0xFFFFFFFF, 32) == -1


@settings(max_examples=200, deadline=None)
@given(x=I32, b=SIG, d=SIG)
def test_every_single_bit_flip_of_a_64_bit_word_is_detected(x: int, b: int, d: int) -> None:
    c = CODE.encode(x, b, d)
    for bit in range(64):
        flipped = wrap((c & (2**64 - 1)) ^ (1 << bit), 64)
        with pytest.raises(FaultDetectedError):
            CODE.decode(flipped, b, d)


def test_single_and_double_flips_exhaustive_for_16_bit_data_in_32_bit_words() -> None:
    # All 2**16 code words x all 32 single flips and all 496 double flips: none yields a valid word.
    assert exhaustive_flip_check(58659, 16, 32, 1) == 0
    assert exhaustive_flip_check(58659, 16, 32, 2) == 0


@pytest.mark.parametrize("A", SUPER_AS)
def test_super_as_detect_every_flip_of_up_to_5_bits_in_32_bit_words(A: int) -> None:
    # Computed: no signed sum of <= 5 distinct powers 2**i (i < 32) is divisible by A.
    assert undetected_weights(A, 32, 5) == []


def test_a_prime_is_weaker_than_a_super_a() -> None:
    # 65521 is the largest 16-bit prime: a 3-bit flip turns one code word into another.
    assert undetected_weights(65521, 32, 3) == [3]
    pair = realize_flip(65521, 16, 32, 3)
    assert pair is not None
    c1, c2 = pair
    assert c1 % 65521 == 0 and c2 % 65521 == 0 and c1 != c2
    assert bin(c1 ^ c2).count("1") == 3


def test_an_even_a_misses_single_bit_flips() -> None:
    assert undetected_weights(2**16, 32, 1) == [1]


def test_no_two_bit_flip_is_undetected_in_64_bit_words() -> None:
    assert undetected_weights(58659, 64, 2) == []
