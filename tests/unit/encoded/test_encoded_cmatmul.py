"""``VectorOps(backend="c").matmul``: checks inside the product's loop, same results and exceptions as numpy.

Also fault injection: 1- and 2-bit flips of operand words at the first/last row and column, in the vector body
and in the scalar tail of the fused check-and-multiply loop, for a matrix-vector product (the checksum kernel)
and a matrix-matrix product; 0 silent data corruptions allowed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _vector_flips import tally_flips
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from custodes.encoded import FaultDetectedError, _cbuild
from custodes.encoded._cmatmul import SOURCE
from custodes.encoded.vector import EncodedVector, VectorOps, _vec

pytestmark = pytest.mark.usefixtures("have_cc")

MODES = ("deferred", "eager")
BACKENDS = {m: (VectorOps(check=m), VectorOps(check=m, backend="c")) for m in MODES}  # type: ignore[arg-type]
SHAPES = st.tuples(st.integers(0, 7), st.integers(0, 21), st.integers(0, 5), st.booleans(), st.booleans())


def _run(v: VectorOps, x: EncodedVector, y: EncodedVector, sig: int = 9) -> Any:
    try:
        out = v.matmul(x, y, sig)
    except Exception as e:
        return type(e).__name__, str(e)
    return out.words.shape, out.words.tolist()


def _shapes(m: int, k: int, p: int, x1: bool, y1: bool) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return ((k,) if x1 else (m, k)), ((k,) if y1 else (k, p))


@settings(max_examples=80, deadline=None)
@given(SHAPES, st.data(), st.sampled_from(MODES), st.integers(1, 1 << 15))
def test_valid_words_give_the_numpy_forms_result(dims: Any, data: Any, mode: str, bound: int) -> None:
    xs, ys = _shapes(*dims)
    values = st.integers(-min(bound, 1 << 15), min(bound, (1 << 15) - 1))  # large bounds overflow in eager mode
    x = data.draw(hnp.arrays(np.int64, xs, elements=values))
    y = data.draw(hnp.arrays(np.int64, ys, elements=values))
    numpy_v, c_v = BACKENDS[mode]
    got = [_run(v, v.encode(x, 1), v.encode(y, 2)) for v in (numpy_v, c_v)]
    assert got[0] == got[1]


@settings(max_examples=80, deadline=None)
@given(SHAPES, st.data(), st.sampled_from(MODES), st.integers(0, 63), st.booleans())
def test_corrupted_words_give_the_numpy_forms_exception(dims: Any, data: Any, mode: str, bit: int, in_y: bool) -> None:
    xs, ys = _shapes(*dims)
    values = st.integers(-300, 300)
    numpy_v, c_v = BACKENDS[mode]
    x = numpy_v.encode(data.draw(hnp.arrays(np.int64, xs, elements=values)), 1)
    y = numpy_v.encode(data.draw(hnp.arrays(np.int64, ys, elements=values)), 2)
    target = y if in_y else x
    if target.words.size:
        words = target.words.copy().reshape(-1)
        pos = data.draw(st.integers(0, words.size - 1))
        words[pos] ^= np.int64(1) << np.int64(bit) if bit < 63 else np.int64(-(1 << 63))
        bad = _vec(words.reshape(target.words.shape), target.sig)
        x, y = (x, bad) if in_y else (bad, y)
    got = [_run(v, x, y) for v in (numpy_v, c_v)]
    assert got[0] == got[1]
    if target.words.size:
        assert got[1] == ("FaultDetectedError", str(FaultDetectedError("RESIDUE", "matmul")))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("xs", "ys"), [((3, 4), (5, 2)), ((2, 3, 4), (4, 2)), ((4,), (3,)), ((), (3,)), ((3, 2), ())]
)
def test_other_shapes_take_the_numpy_form(mode: str, xs: tuple[int, ...], ys: tuple[int, ...]) -> None:
    numpy_v, c_v = BACKENDS[mode]
    rng = np.random.default_rng(3)
    x, y = numpy_v.encode(rng.integers(-9, 9, xs), 1), numpy_v.encode(rng.integers(-9, 9, ys), 2)
    assert _run(numpy_v, x, y) == _run(c_v, x, y)
    bad = _vec(x.words ^ np.int64(4), x.sig)  # an invalid operand: refused before numpy's shape error
    assert _run(numpy_v, bad, y) == _run(c_v, bad, y)


@pytest.mark.parametrize("sig", [-1, 58659, 1 << 70])
def test_invalid_signature_is_refused_like_the_numpy_form(sig: int) -> None:
    numpy_v, c_v = BACKENDS["deferred"]
    x, y = numpy_v.encode(np.ones((2, 2), dtype=np.int64), 1), numpy_v.encode(np.ones((2, 2), dtype=np.int64), 2)
    assert _run(numpy_v, x, y, sig) == _run(c_v, x, y, sig)
    assert _run(c_v, x, y, sig)[0] == "EncodedUsageError"


def test_eager_overflow_and_operand_fault_priority() -> None:
    numpy_v, c_v = BACKENDS["eager"]
    big = np.full((3, 4), 32767, dtype=np.int64)
    x, y = numpy_v.encode(big, 1), numpy_v.encode(big.T.copy(), 2)
    assert _run(c_v, x, y)[0] == "EncodedOverflowError"
    assert _run(numpy_v, x, y) == _run(c_v, x, y)
    words = y.words.copy()
    words[-1, -1] ^= np.int64(1 << 20)  # the last word of y: still refused as an operand fault, not an overflow
    assert _run(c_v, x, _vec(words, y.sig))[0] == "FaultDetectedError"
    words = x.words.copy()
    words[-1, -1] ^= np.int64(1 << 20)  # the last word of x, after every result row overflowed
    assert _run(c_v, _vec(words, x.sig), y)[0] == "FaultDetectedError"
    deferred = BACKENDS["deferred"][1].matmul(x, y, 9)  # deferred: the overflow propagates to the next check
    with pytest.raises(FaultDetectedError):
        BACKENDS["deferred"][1].decode(deferred)


# -- fault injection ----------------------------------------------------------------------------------------------
M, K = 37, 103  # rows of 103 words: a vector body (8 lanes) and a scalar tail


def _cases(v: VectorOps) -> list[tuple[str, Any, list[EncodedVector]]]:
    rng = np.random.default_rng(11)
    rows = v.encode(rng.integers(0, 256, (M, K)), 17)
    ones = v.encode(np.ones((K, 1), dtype=np.int64), 18)
    e255 = v.encode(255, 19)
    a, b = v.encode(rng.integers(-99, 99, (9, 13)), 6), v.encode(rng.integers(-99, 99, (13, 11)), 7)
    return [
        ("checksum", lambda x, y: v.decode(v.mod(v.matmul(x, y, 34), e255, 35)), [rows, ones]),
        ("matvec", lambda x, y: v.matmul(x, y, 34).words, [rows, ones]),
        ("matmul", lambda x, y: v.matmul(x, y, 33).words, [a, b]),
    ]


def _positions(shape: tuple[int, ...]) -> set[tuple[int, int]]:
    rows, cols = shape
    mid_r, mid_c = rows // 2, cols // 2
    last = {(r, c) for r in (0, mid_r, rows - 1) for c in (0, cols - 1)}  # first/last row and column
    return last | {(mid_r, mid_c), (mid_r, cols - 2), (rows - 1, max(cols - 3, 0))}  # body and tail lanes


def _flipped(vec: EncodedVector, pos: tuple[int, int], bits: tuple[int, ...]) -> EncodedVector:
    words = vec.words.copy()
    for b in bits:
        words[pos] ^= np.int64(1) << np.int64(b) if b < 63 else np.int64(-(1 << 63))
    return _vec(words, vec.sig)


def _campaign(bits_of: Any) -> dict[str, int]:
    def positions(vec: EncodedVector) -> list[tuple[int, int]]:
        return sorted(_positions(vec.words.shape))

    tally = {"detected": 0, "masked": 0, "sdc": 0}
    for mode in MODES:
        for key, count in tally_flips(_cases(BACKENDS[mode][1]), positions, bits_of, _flipped).items():
            tally[key] += count
    return tally


def test_every_single_bit_flip_of_matmul_operands_is_detected() -> None:
    tally = _campaign(lambda _s, _p: [(b,) for b in range(64)])
    assert tally["sdc"] == 0, tally
    assert tally["detected"] == sum(tally.values()), tally  # a 1-bit error is never a multiple of A


def test_sampled_double_bit_flips_of_matmul_operands_are_caught_or_masked() -> None:
    def pairs(slot: int, pos: tuple[int, int]) -> list[tuple[int, int]]:
        rng = np.random.default_rng(slot * 10_000 + pos[0] * 100 + pos[1])
        return [(int(i), int(j)) for i, j in rng.integers(0, 64, (64, 2)) if i != j]

    tally = _campaign(pairs)
    assert tally["sdc"] == 0, tally
    assert tally["detected"] > 0.9 * sum(tally.values()), tally


def test_source_has_one_barrier_per_row_outside_the_inner_loops() -> None:
    loops = SOURCE.split("for (int64_t i = 0; i < m; i++) {", 1)[1]
    assert loops.count("__asm__ volatile") == 1
    assert '"memory"' in loops.split("if (p == 1)", 1)[0]


def test_the_checks_stay_in_the_compiled_product_loop(tmp_path: Path) -> None:
    """``-O3 -march=native``: the check multiply and its unsigned compare are emitted in the vector loop."""
    cc = shutil.which("gcc") or shutil.which("cc")
    assert cc is not None
    src, asm = tmp_path / "cm.c", tmp_path / "cm.s"
    src.write_text(SOURCE)
    subprocess.run([cc, "-O3", _cbuild.NATIVE, "-std=gnu99", "-fPIC", "-S", str(src), "-o", str(asm)], check=True)
    text = asm.read_text()
    if "avx512dq" in _cbuild.host_cpu():
        # the matrix-vector loop: load-and-multiply by A^-1, unsigned compare, then the multiply-accumulate
        blocks = text.split("\n.L")
        dot = [b for b in blocks if "vpmullq\t(" in b and "vpcmpuq" in b and b.count("vpmullq") >= 2]
        assert dot, "no vector loop holds both the check and the product"
    else:  # no 64-bit vector multiply: the check multiplies must still be there, as scalar imul
        assert text.count("imul") >= 4, "the check multiplies are missing"
