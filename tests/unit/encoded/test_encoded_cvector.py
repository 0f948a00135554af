"""``VectorOps(backend="c")``: the compiled loops return what the numpy form returns and raise what it raises."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from custodes.encoded import EncodedUsageError, VectorOps
from custodes.encoded._vkernels import CHUNK
from custodes.encoded.vector import EncodedVector, _vec

pytestmark = pytest.mark.usefixtures("have_cc")

VALUES = hnp.arrays(np.int64, st.integers(1, 40), elements=st.integers(-(1 << 15), (1 << 15) - 1))
MODES = ("deferred", "eager")
OPS: dict[str, Callable[[VectorOps, EncodedVector, EncodedVector, EncodedVector], Any]] = {
    "add": lambda v, x, y, k: v.add(x, y, 7),
    "sub": lambda v, x, y, k: v.sub(x, y, 8),
    "mul": lambda v, x, y, k: v.mul(x, y, 9),
    "mul_const": lambda v, x, y, k: v.mul(k, x, 9),
    "floordiv": lambda v, x, y, k: v.floordiv(x, y, 10),
    "mod": lambda v, x, y, k: v.mod(x, y, 11),
    "div_const": lambda v, x, y, k: v.floordiv(x, k, 12),
    "mod_const": lambda v, x, y, k: v.mod(y, k, 13),
    "shr": lambda v, x, y, k: v.shr(x, 3, 14),
    "lt": lambda v, x, y, k: v.compare("lt", x, y, 15),
    "ge": lambda v, x, y, k: v.compare("ge", x, y, 15),
    "eq": lambda v, x, y, k: v.compare("eq", x, k, 15),
    "where": lambda v, x, y, k: v.where(v.compare("le", x, y, 16), x, k, 17),
    "decode": lambda v, x, y, k: v.decode(x),
}
BACKENDS = {m: (VectorOps(check=m), VectorOps(check=m, backend="c")) for m in MODES}  # type: ignore[arg-type]


def _result(v: VectorOps, fn: Callable[..., Any], *vs: EncodedVector) -> Any:
    try:
        out = fn(v, *vs)
    except Exception as e:
        return type(e).__name__, str(e)
    return out.words if isinstance(out, EncodedVector) else out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.shape == b.shape and bool(np.array_equal(a, b))
    return bool(a == b)


@settings(max_examples=60, deadline=None)
@given(VALUES, st.data(), st.integers(-9, 9), st.sampled_from(MODES))
def test_valid_words_give_identical_results(xs: Any, data: Any, k: int, mode: str) -> None:
    ys = data.draw(hnp.arrays(np.int64, xs.shape, elements=st.integers(-300, 300)))
    numpy_v, c_v = BACKENDS[mode]
    for name, fn in OPS.items():
        got = [_result(v, fn, v.encode(xs, 1), v.encode(ys, 2), v.encode(k, 3)) for v in (numpy_v, c_v)]
        assert _same(*got), (name, got)


@settings(max_examples=60, deadline=None)
@given(VALUES, st.integers(0, 63), st.integers(0, 39), st.sampled_from(MODES), st.booleans())
def test_corrupted_words_give_identical_exceptions(xs: Any, bit: int, where: int, mode: str, in_y: bool) -> None:
    numpy_v, c_v = BACKENDS[mode]
    ys = (xs % 97) - 48  # includes zeros: division by zero must be refused the same way
    good_x, good_y, k = numpy_v.encode(xs, 1), numpy_v.encode(ys, 2), numpy_v.encode(5, 3)
    target = good_y if in_y else good_x
    words = target.words.copy()
    words[where % words.size] ^= np.int64(1) << np.int64(bit) if bit < 63 else np.int64(-(1 << 63))
    bad = _vec(words, target.sig)
    x, y = (good_x, bad) if in_y else (bad, good_y)
    for name, fn in OPS.items():
        got = [_result(v, fn, x, y, k) for v in (numpy_v, c_v)]
        assert _same(*got), (name, mode, got)


def test_chunks_report_failures_in_the_numpy_order() -> None:
    numpy_v, c_v = BACKENDS["eager"]
    n = 2 * CHUNK + 5
    xs = np.full(n, 30_000, dtype=np.int64)
    ys = np.ones(n, dtype=np.int64)
    ys[CHUNK + 3] = 0  # a zero divisor in chunk 2, an overflow (30000 + 30000) in every chunk
    for fn in (lambda v, x, y: v.add(x, x, 4), lambda v, x, y: v.floordiv(x, y, 5)):
        got = [_result(v, fn, v.encode(xs, 1), v.encode(ys, 2)) for v in (numpy_v, c_v)]
        assert _same(*got)


def test_broadcasting_and_shapes_match() -> None:
    numpy_v, c_v = BACKENDS["deferred"]
    a, b = np.arange(-6, 6).reshape(3, 4), np.arange(4)
    for v in (numpy_v, c_v):
        assert v.decode(v.add(v.encode(a, 1), v.encode(b, 2), 3)).shape == (3, 4)
    got = [v.decode(v.mul(v.encode(a, 1), v.encode(b, 2), 3)) for v in (numpy_v, c_v)]
    assert np.array_equal(*got) and np.array_equal(got[0], a * b)


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(EncodedUsageError):
        VectorOps(backend="fortran")  # type: ignore[arg-type]


def _dosage(t: Any, w: Any, d: Any, c: Any, cap: Any) -> Any:
    rate = t.floordiv(t.mul(w, d, 20), c, 21)
    return t.decode(t.where(t.compare("gt", rate, cap, 22), cap, rate, 23))


def _pid(t: Any, kp: Any, err: Any, prev: Any, k1000: Any, m: Any) -> Any:
    p = t.add(t.mul(kp, err, 24), t.shr(t.sub(err, prev, 25), 2, 26), 27)
    return t.mod(t.floordiv(p, k1000, 28), m, 30)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.integers(0, 2**32), st.integers(-1, 63), st.integers(0, 5))
def test_fused_kernels_equal_the_numpy_form(n: int, seed: int, bit: int, which: int) -> None:
    from custodes.encoded.vfused import fuse  # noqa: PLC0415 - compiled on first use

    v = BACKENDS["deferred"][0]
    rng = np.random.default_rng(seed)
    dos = [v.encode(rng.integers(0, 200, n), 3), v.encode(rng.integers(0, 100, n), 4)]
    dos += [v.encode(rng.integers(-3, 100, n), 5), v.encode(5000, 11)]
    pid = [v.encode(40, 12), v.encode(rng.integers(-100, 100, n), 8), v.encode(rng.integers(-100, 100, n), 10)]
    pid += [v.encode(rng.choice([-3, -2, -1, 1, 2, 3]), 13), v.encode(rng.integers(1, 50, n), 14)]
    if bit >= 0:  # one corrupted word in one input (a single failing operation: reported alike)
        group = dos if which % 2 == 0 else pid
        pos = 1 + which // 2
        target = group[pos]
        words = target.words.copy()
        words.reshape(-1)[seed % words.size] ^= np.int64(1) << np.int64(bit) if bit < 63 else np.int64(-(1 << 63))
        group[pos] = _vec(words, target.sig)
    for fn, args, sigs in ((_dosage, dos, (3, 4, 5, 11)), (_pid, pid, (12, 8, 10, 13, 14))):
        kernel = fuse(v, fn, *sigs)
        got = [_result(v, lambda _v, *a, k=kernel: k(*a), *args), _result(v, fn, *args)]
        if isinstance(got[1], EncodedVector):
            got[1] = got[1].words
        assert _same(*got), (fn.__name__, got)
