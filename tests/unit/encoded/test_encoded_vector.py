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
MODES = st.sampled_from(["eager", "lazy"])


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
    v = VectorOps()
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
    v = VectorOps()
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
