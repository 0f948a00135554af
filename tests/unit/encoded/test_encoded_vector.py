"""numpy vectors: same results as numpy on int values, checks, and refusal of bad codes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from custodes.encoded import (
    Code,
    EncodedOverflowError,
    EncodedRangeError,
    EncodedUsageError,
    FaultDetectedError,
    Scheme,
    VectorOps,
)

VALUES = hnp.arrays(np.int64, st.integers(1, 40), elements=st.integers(-180, 180))
MODES = st.sampled_from(["eager", "deferred", "lazy"])


@settings(max_examples=80, deadline=None)
@given(x=VALUES, mode=MODES, data=st.data())
def test_vector_ops_match_numpy(x: np.ndarray, mode: str, data: st.DataObject) -> None:
    y = data.draw(hnp.arrays(np.int64, x.shape, elements=st.integers(-180, 180)))
    v = VectorOps(check=mode)  # type: ignore[arg-type]
    ex, ey = v.encode(x, 5), v.encode(y, 9)
    nz = np.where(y == 0, 1, y)
    enz = v.encode(nz, 10)
    cases = {
        "add": (v.add(ex, ey, 3), x + y),
        "sub": (v.sub(ex, ey, 4), x - y),
        "mul": (v.mul(ex, ey, 6), x * y),
        "neg": (v.neg(ex, 8), -x),
        "shl": (v.shl(ex, 3, 2), x << 3),
        "shr": (v.shr(ex, 2, 2), x >> 2),
        "floordiv": (v.floordiv(ex, enz, 1), x // nz),
        "mod": (v.mod(ex, enz, 1), x % nz),
        "sum": (v.sum(ex, 12), np.sum(x)),
        "lt": (v.compare("lt", ex, ey, 13), (x < y).astype(np.int64)),
        "ge": (v.compare("ge", ex, ey, 13), (x >= y).astype(np.int64)),
    }
    for name, (got, want) in cases.items():
        assert np.array_equal(v.decode(got), want), name
    c = v.compare("le", ex, ey, 14)
    assert np.array_equal(v.decode(v.where(c, ex, ey, 15)), np.where(x <= y, x, y))
    assert np.array_equal(v.decode(v.lnot(c, 16)), (x > y).astype(np.int64))
    d = v.compare("eq", ex, ey, 17)
    assert np.array_equal(v.decode(v.land(c, d, 1)), ((x <= y) & (x == y)).astype(np.int64))
    assert np.array_equal(v.decode(v.lor(c, d, 1)), ((x <= y) | (x == y)).astype(np.int64))


def test_matmul() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.integers(-20, 20, (7, 7)), rng.integers(-20, 20, (7, 7))
    v = VectorOps()
    assert np.array_equal(v.decode(v.matmul(v.encode(a, 3), v.encode(b, 4), 5)), a @ b)


@settings(max_examples=60, deadline=None)
@given(x=VALUES, bit=st.integers(0, 63), index=st.integers(0, 39), mode=MODES)
def test_a_flipped_word_is_detected(x: np.ndarray, bit: int, index: int, mode: str) -> None:
    v = VectorOps(check=mode)  # type: ignore[arg-type]
    ex = v.encode(x, 5)
    words = ex.words.copy()
    words[index % len(words)] ^= np.int64(1) << np.int64(bit) if bit < 63 else np.int64(-(2**63))
    bad = type(ex)(words, ex.sig)
    with pytest.raises(FaultDetectedError):
        v.check(bad)
    with pytest.raises(FaultDetectedError):
        v.decode(v.add(bad, ex, 3))  # lazy ops propagate the error; eager ones stop at once


def test_eager_overflow_and_range() -> None:
    v = VectorOps(check="eager")
    big = v.encode(np.array([30_000]), 1)
    with pytest.raises(EncodedOverflowError):
        v.add(big, big, 2)
    with pytest.raises(EncodedOverflowError):
        v.mul(big, big, 2)
    with pytest.raises(EncodedRangeError):
        v.encode(np.array([40_000]))
    with pytest.raises(EncodedRangeError):
        v.encode(np.array([1.5]))
    with pytest.raises(ZeroDivisionError):
        v.floordiv(big, v.encode(np.array([0]), 1))
    lazy = VectorOps(check="lazy")
    s = lazy.add(lazy.encode(np.array([30_000]), 1), lazy.encode(np.array([30_000]), 1), 2)
    with pytest.raises(FaultDetectedError):
        lazy.decode(s)  # lazily found by the next check


def test_bad_vector_codes_are_refused() -> None:
    with pytest.raises(EncodedUsageError):
        VectorOps(Code())  # 32-bit values: A**2 * 2**62 does not fit int64
    with pytest.raises(EncodedUsageError):
        VectorOps(check="never")  # type: ignore[arg-type]
    with pytest.raises(EncodedUsageError):
        VectorOps(Code(kbits=16, scheme=Scheme.AN)).encode(np.array([1]), 3)


def test_words_are_read_only() -> None:
    ex = VectorOps().encode(np.array([1, 2]), 3)
    with pytest.raises(ValueError):
        ex.words[0] = 0


@pytest.mark.parametrize("position", [0, 65_535, 65_536, 200_000, 262_143])
def test_chunked_checks_see_a_flip_in_every_chunk(position: int) -> None:
    """Vectors larger than a check chunk are checked chunk by chunk: a flip anywhere is still detected."""
    v = VectorOps(check="eager")
    x = v.encode(np.arange(262_144, dtype=np.int64) % 1000 - 500, 3)
    v.check(x)
    words = x.words.copy()
    words[position] ^= 1 << 21
    bad = type(x)(words, 3)
    with pytest.raises(FaultDetectedError):
        v.check(bad)
    with pytest.raises(FaultDetectedError):
        v.add(bad, x, 4)
    big = v.encode(np.full(262_144, 30_000), 5)
    with pytest.raises(EncodedOverflowError):
        v.add(big, big, 6)  # the overflow is in every chunk, the last one included
    d = VectorOps()  # deferred: the add propagates, its consumers check
    with pytest.raises(FaultDetectedError):
        d.decode(d.add(bad, x, 4))
    with pytest.raises(FaultDetectedError):
        d.mul(bad, x, 4)
    with pytest.raises(FaultDetectedError):
        d.compare("lt", d.add(bad, x, 4), x, 7)
    with pytest.raises(FaultDetectedError):
        d.decode(d.add(big, big, 6))  # an additive overflow is caught before the value leaves the encoded domain


@settings(max_examples=80, deadline=None)
@given(x=VALUES, c=st.integers(-180, 180), mode=MODES, n=st.integers(0, 20))
def test_encoded_constants_take_the_scalar_paths(x: np.ndarray, c: int, mode: str, n: int) -> None:
    """0-d vectors (encoded constants): multiply the word directly, divide through numpy's scalar division."""
    v = VectorOps(check=mode)  # type: ignore[arg-type]
    ex, ec = v.encode(x, 5), v.encode(c, 9)
    assert ec.words.ndim == 0
    assert np.array_equal(v.decode(v.mul(ex, ec, 3)), x * c)
    assert np.array_equal(v.decode(v.mul(ec, ex, 3)), x * c)
    assert np.array_equal(v.decode(v.shr(ex, n, 4)), x >> n)
    for op, fn in (("lt", np.less), ("ge", np.greater_equal), ("eq", np.equal)):
        assert np.array_equal(v.decode(v.compare(op, ex, ec, 6)), fn(x, c).astype(np.int64))
    assert np.array_equal(v.decode(v.where(v.compare("gt", ex, ec, 6), ec, ex, 7)), np.minimum(x, c))
    if c == 0:
        with pytest.raises(ZeroDivisionError):
            v.floordiv(ex, ec, 1)
        return
    assert np.array_equal(v.decode(v.floordiv(ex, ec, 1)), x // c)
    assert np.array_equal(v.decode(v.mod(ex, ec, 2)), x % c)


def test_division_by_minus_one_overflows_and_flips_are_caught_by_consumers() -> None:
    v = VectorOps()
    low = v.encode(np.array([-(2**15), 5]), 3)
    with pytest.raises(EncodedOverflowError):
        v.floordiv(low, v.encode(-1, 4), 1)
    with pytest.raises(EncodedOverflowError):
        v.floordiv(low, v.encode(np.array([-1, 1]), 4), 1)
    assert np.array_equal(v.decode(v.mod(low, v.encode(-1, 4), 1)), [0, 0])
    x = v.encode(np.arange(-50, 50), 3)
    for bit in (0, 17, 40, 63):
        words = x.words.copy()
        words[7] ^= np.int64(1) << np.int64(bit) if bit < 63 else np.int64(-(2**63))
        bad = type(x)(words, 3)
        for consumer in (
            lambda b: v.mul(b, v.encode(3, 2), 1),
            lambda b: v.floordiv(v.add(b, x, 4), v.encode(7, 2), 1),
            lambda b: v.mod(b, v.encode(-7, 2), 1),
            lambda b: v.compare("le", v.sub(x, b, 4), x, 1),
            lambda b: v.where(v.compare("lt", x, v.encode(0, 2), 5), b, x, 1),  # the flip is selected (x < 0)
            lambda b: v.shr(v.neg(b, 4), 3, 1),
        ):
            with pytest.raises(FaultDetectedError):
                v.decode(consumer(bad))


@pytest.mark.parametrize("mode", ["deferred", "eager"])
def test_chunked_operations_match_numpy_and_stop_in_the_last_chunk(mode: str) -> None:
    """Every chunked loop over several chunks (and a partial last one): numpy's result; a flip in the last chunk."""
    v = VectorOps(check=mode)  # type: ignore[arg-type]
    n = 3 * 32_768 + 5
    x = np.arange(n, dtype=np.int64) % 301 - 150
    y = (np.arange(n, dtype=np.int64) * 7) % 199 - 99
    nz = np.where(y == 0, 3, y)
    ex, ey, enz, seven = v.encode(x, 3), v.encode(y, 4), v.encode(nz, 5), v.encode(-7, 6)
    assert np.array_equal(v.decode(v.mul(ex, ey, 7)), x * y)
    assert np.array_equal(v.decode(v.mul(ex, seven, 7)), x * -7)
    assert np.array_equal(v.decode(v.add(ex, ey, 8)), x + y)
    assert np.array_equal(v.decode(v.sub(ex, ey, 8)), x - y)
    assert np.array_equal(v.decode(v.floordiv(ex, enz, 9)), x // nz)
    assert np.array_equal(v.decode(v.mod(ex, enz, 9)), x % nz)
    assert np.array_equal(v.decode(v.floordiv(ex, seven, 9)), x // -7)
    assert np.array_equal(v.decode(v.mod(ex, seven, 9)), x % -7)
    c = v.compare("le", ex, ey, 10)
    assert np.array_equal(v.decode(c), (x <= y).astype(np.int64))
    assert np.array_equal(v.decode(v.where(c, ex, ey, 11)), np.minimum(x, y))
    words = ex.words.copy()
    words[n - 2] ^= np.int64(1) << np.int64(33)
    bad = type(ex)(words, 3)
    for consumer in (
        lambda: v.mul(bad, ey, 7),
        lambda: v.floordiv(bad, seven, 9),
        lambda: v.mod(bad, enz, 9),
        lambda: v.compare("gt", bad, ey, 10),
        lambda: v.decode(v.where(v.compare("eq", ex, ex, 10), bad, ey, 11)),
        lambda: v.decode(v.add(bad, ey, 8)),
    ):
        with pytest.raises(FaultDetectedError):
            consumer()
