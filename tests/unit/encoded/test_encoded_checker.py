"""The chunk check of the vector kernels (``Checker``) accepts exactly the valid words, on both of its paths."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.encoded._vkernels import Checker
from custodes.encoded.code import Code, wrap

A = 58659
INV = Code(kbits=16).a_inverse
LOW, SPAN = -(1 << 15), (1 << 16) - 1


def _reference(c: int, sig: int, low: int, span: int) -> bool:
    u = c - sig
    return u % A == 0 and low <= u // A <= low + span


@st.composite
def _words(draw: st.DrawFn, sig: int) -> list[int]:
    """Valid words, words just outside the range, bit flips of valid words and random int64 words."""
    out = []
    for _ in range(draw(st.integers(1, 12))):
        edges = st.sampled_from([LOW - 1, LOW, LOW + SPAN, LOW + SPAN + 1])
        x = draw(st.one_of(edges, st.integers(LOW - 2, LOW + SPAN + 2)))
        c = A * x + sig
        kind = draw(st.sampled_from(["valid", "flip", "flip2", "random", "neighbour"]))
        if kind == "flip":
            c = wrap(c ^ (1 << draw(st.integers(0, 63))), 64)
        elif kind == "flip2":
            c = wrap(c ^ (1 << draw(st.integers(0, 63))) ^ (1 << draw(st.integers(0, 63))), 64)
        elif kind == "random":
            c = draw(st.integers(-(1 << 63), (1 << 63) - 1))
        elif kind == "neighbour":
            c += draw(st.sampled_from([-1, 1, -A + 1, A - 1]))
        out.append(c)
    return out


@settings(max_examples=300, deadline=None)
@given(sig=st.integers(0, A - 1), data=st.data(), fallback=st.booleans())
def test_checker_accepts_exactly_the_valid_words_and_decodes(sig: int, data: st.DataObject, fallback: bool) -> None:
    checker = Checker.make(INV, sig, LOW, SPAN)
    if fallback:  # the unsigned path, taken when the accepted interval straddles the int64 sign boundary
        checker = dataclasses.replace(checker, interval=False)
    words = data.draw(_words(sig))
    for c in words:  # word by word: the verdict of each word, not only of the chunk
        buf = np.empty(1, dtype=np.int64)
        with np.errstate(over="ignore"):
            got = checker.ok(np.array([c], dtype=np.int64), buf)
        assert got == _reference(c, sig, LOW, SPAN)
        if got:
            with np.errstate(over="ignore"):
                checker.values(buf)
            assert int(buf[0]) == (c - sig) // A
    chunk = np.array(words, dtype=np.int64)
    buf = np.empty(len(words), dtype=np.int64)
    with np.errstate(over="ignore"):
        assert checker.ok(chunk, buf) == all(_reference(c, sig, LOW, SPAN) for c in words)


def test_checker_takes_the_unsigned_path_when_the_interval_wraps() -> None:
    assert Checker.make(INV, 0, (1 << 63) - 3, 10).interval is False
    assert Checker.make(INV, 5, LOW, SPAN).interval is True
