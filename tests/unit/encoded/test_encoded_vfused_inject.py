"""Fault injection into the fused (vectorised) C loops: every flipped word is detected or masked, never SDC.

The fused loops are compiled with ``-march=native`` and one optimisation barrier per chunk, so that they vectorise
(AVX-512 ``vpmullq`` where the CPU has it). These tests flip 1 and 2 bits of input words, in the vector body, in
the scalar epilogue and in 0-d (broadcast) constants, and require 0 silent data corruptions.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _vector_flips import tally_flips

from custodes.encoded import _cbuild
from custodes.encoded.vector import VectorOps, _vec
from custodes.encoded.vfused import fuse

pytestmark = pytest.mark.usefixtures("have_cc")

N = 1003  # a vector body and a scalar epilogue


def _axpy(t: Any, a: Any, b: Any) -> Any:
    return t.decode(t.add(t.mul(a, b, 31), a, 32))


def _dosage(t: Any, a: Any, b: Any, c: Any, k: Any) -> Any:
    return t.decode(t.where(t.compare("gt", r := t.floordiv(t.mul(a, b, 20), c, 21), k, 22), k, r, 23))


def _pid(t: Any, p: Any, e: Any, i: Any, q: Any, d: Any, pr: Any, m: Any) -> Any:
    s = t.add(t.add(t.mul(p, e, 24), t.mul(i, q, 25), 26), t.mul(d, t.sub(e, pr, 27), 28), 29)
    return t.decode(t.floordiv(s, m, 30))


def _cases(v: VectorOps) -> list[tuple[str, Any, list[Any]]]:
    rng = np.random.default_rng(7)
    x, y = rng.integers(-150, 150, N), rng.integers(-150, 150, N)
    w, d, c = rng.integers(1, 200, N), rng.integers(0, 100, N), rng.integers(1, 100, N)
    err, integ, prev = rng.integers(-100, 100, N), rng.integers(-200, 200, N), rng.integers(-100, 100, N)
    return [
        ("axpy", fuse(v, _axpy, 1, 2), [v.encode(x, 1), v.encode(y, 2)]),
        ("dosage", fuse(v, _dosage, 3, 4, 5, 11), [v.encode(w, 3), v.encode(d, 4), v.encode(c, 5), v.encode(5000, 11)]),
        (
            "pid",
            fuse(v, _pid, 12, 8, 13, 9, 14, 10, 15),
            [v.encode(k, s) for k, s in ((40, 12), (err, 8), (30, 13), (integ, 9), (20, 14), (prev, 10), (1000, 15))],
        ),
    ]


def _flipped(vec: Any, pos: int, bits: tuple[int, ...]) -> Any:
    words = vec.words.copy()
    flat = words.reshape(-1)
    for b in bits:
        flat[pos % flat.size] ^= np.int64(1) << np.int64(b) if b < 63 else np.int64(-(1 << 63))
    return _vec(words, vec.sig)


def _campaign(bits_of: Any) -> dict[str, int]:
    def positions(vec: Any) -> tuple[int, ...]:
        return (0,) if vec.words.ndim == 0 else (3, 517, N - 2)  # vector body and epilogue lanes

    return tally_flips(_cases(VectorOps(check="deferred")), positions, bits_of, _flipped)


def test_every_single_bit_flip_of_fused_inputs_is_caught_or_masked() -> None:
    tally = _campaign(lambda _s, _p: [(b,) for b in range(64)])
    assert tally["sdc"] == 0, tally
    assert tally["detected"] > 0.95 * sum(tally.values()), tally


def test_sampled_double_bit_flips_of_fused_inputs_are_caught_or_masked() -> None:
    def pairs(slot: int, pos: int) -> list[tuple[int, int]]:
        rng = np.random.default_rng(slot * 1000 + pos)
        return [(int(i), int(j)) for i, j in rng.integers(0, 64, (24, 2)) if i != j]

    tally = _campaign(pairs)
    assert tally["sdc"] == 0, tally
    assert tally["detected"] > 0.9 * sum(tally.values()), tally


def test_fused_loop_source_has_one_barrier_per_chunk_and_no_branches() -> None:
    v = VectorOps(check="deferred")
    kernel = fuse(v, _dosage, 3, 4, 5, 11)
    kernel._function((1, 1, 1, 0))
    body = kernel.source.split("for (int64_t i = s; i < e; i++) {", 1)[1].split("\n        }\n", 1)[0]
    assert "__asm__" not in body and "?" not in body and "if (" not in body  # nothing stops vectorisation
    head = kernel.source.split("for (int64_t i = s; i < e; i++) {", 1)[0]
    assert '__asm__ volatile("" : "+r"(x3));' in head  # the 0-d constant is laundered per chunk
    assert '"memory"' in head


def test_fused_loops_vectorise_where_the_cpu_has_64_bit_vector_multiplies(tmp_path: Path) -> None:
    """The check condition multiplies (``vpmullq``) are emitted in the vector loop, so they were not folded."""
    cc = shutil.which("gcc") or shutil.which("cc")
    assert cc is not None
    v = VectorOps(check="deferred")
    kernel = fuse(v, _pid, 12, 8, 13, 9, 14, 10, 15)
    kernel._function((0, 1, 0, 1, 0, 1, 0))
    src = tmp_path / "pid.c"
    src.write_text(kernel.source)
    asm = tmp_path / "pid.s"
    cmd = [cc, "-O3", _cbuild.NATIVE, "-std=gnu99", "-fPIC", "-S", str(src), "-o", str(asm)]
    subprocess.run(cmd, check=True)
    text = asm.read_text()
    flags = _cbuild.host_cpu()
    if "avx512dq" in flags:
        assert text.count("vpmullq") >= 8, "the loop did not vectorise its 64-bit multiplies"
        assert "vcvtqq2pd" in text  # the division estimate, vectorised
    else:  # no 64-bit vector multiply on this CPU: the check multiplies must still be there, as scalar imul
        assert text.count("imul") >= 8, "the check multiplies are missing from the loop"
