"""The compiled backend of ``@encoded``: same results, same refusals, same exceptions as the Python form."""

from __future__ import annotations

import copy
import os
import random
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.encoded import Code, EncodedOverflowError, EncodedRangeError, EncoderError, _cbuild, encoded
from custodes.encoded.kernels import KERNELS

pytestmark = pytest.mark.usefixtures("have_cc")

I32 = st.integers(-(1 << 31), (1 << 31) - 1)


@encoded(backend="c")
def mixed(a, b, c):
    """Floor division and modulo of negative values, shifts, logic, abs/min/max, a while loop with continue."""
    if b == 0 or c == 0:
        return -7
    q = a // b
    r = a % c
    s = (abs(q) >> 3) + (r << 2)
    t = max(min(q, r), -1000) - s
    n = 0
    i = 0
    while i < 5:
        i += 1
        if i == 2 or not (t < 0 and a > b):
            continue
        n += i * 3
    return t + n - q * r


@encoded(backend="c")
def product(a, b):
    return a * b + a - b


@encoded(backend="c")
def is_sorted(xs: list[int]):
    for i in range(len(xs) - 1):  # noqa: SIM110 - @encoded has no generators or all()
        if xs[i] > xs[i + 1]:
            return False
    return True


@encoded(backend="c")
def fill(xs: list[int], k):
    ys = [0] * len(xs)
    for i in range(len(xs)):
        ys[-1 - i] = xs[i] * k
        xs[i] = xs[i] - 1
    return ys


MIXED_PY = encoded(mixed.original)
PRODUCT_PY = encoded(product.original)


def _outcome(fn: Any, args: tuple[Any, ...]) -> tuple[Any, Any]:
    run = copy.deepcopy(args)
    try:
        result: Any = fn(*run)
    except (EncodedOverflowError, ZeroDivisionError, IndexError, EncodedRangeError) as e:
        result = (type(e).__name__, getattr(e, "code", None))
    return result, run


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from(sorted(KERNELS)))
def test_kernels_equal_python_and_original(seed: int, name: str) -> None:
    kernel = KERNELS[name]
    args = kernel.random_args(random.Random(seed))
    c = kernel.fn.c_kernel(Code())
    assert _outcome(c, args) == _outcome(kernel.fn, args) == _outcome(kernel.fn.original, args)


@settings(max_examples=300, deadline=None)
@given(st.integers(-(10**6), 10**6), st.integers(-(10**4), 10**4), st.integers(-999, 999))
def test_mixed_operations_match(a: int, b: int, c: int) -> None:
    want = _outcome(mixed.original, (a, b, c))
    assert _outcome(mixed, (a, b, c)) == want
    assert _outcome(MIXED_PY, (a, b, c)) == want


@settings(max_examples=300, deadline=None)
@given(I32, I32)
def test_overflow_refusals_match_python_form(a: int, b: int) -> None:
    got, want = _outcome(product, (a, b)), _outcome(PRODUCT_PY, (a, b))
    assert got == want
    if not isinstance(got[0], tuple):
        assert got[0] == a * b + a - b  # in range: the original's value
    else:
        assert got[0] == ("EncodedOverflowError", "ENCODED_OVERFLOW")
        steps = (a * b, a * b + a, a * b + a - b)
        assert any(not -(1 << 31) <= v <= (1 << 31) - 1 for v in steps)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-1000, 1000), max_size=9), st.integers(-50, 50))
def test_lists_bools_and_write_back(xs: list[int], k: int) -> None:
    assert is_sorted(list(xs)) is is_sorted.original(list(xs))
    mine, theirs = list(xs), list(xs)
    assert fill(mine, k) == fill.original(theirs, k)
    assert mine == theirs  # written back as the Python form does


def test_range_and_type_refusals_match() -> None:
    python_form = PRODUCT_PY
    for bad in ((1 << 31, 1), (1, -(1 << 31) - 1), (1.5, 2), ("3", 1)):
        with pytest.raises(EncodedRangeError) as got:
            product(*bad)
        with pytest.raises(EncodedRangeError) as want:
            python_form(*bad)
        assert str(got.value) == str(want.value)
    with pytest.raises(EncodedRangeError):
        is_sorted([1, 2**40])
    with pytest.raises(TypeError):
        product(1)


def test_c_source_is_reviewable() -> None:
    text = product.c_source()
    assert "E_mul(cx," in text and "custodes_call" in text and "OPAQUE" in text
    assert product.backend == "c" and encoded(product.original).backend == "python"


def test_no_compiler_is_a_clear_encoder_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_cbuild.sysconfig, "get_config_var", lambda _name: "no-such-cc-custodes")
    monkeypatch.setenv("PATH", "")
    with pytest.raises(EncoderError, match="no C compiler found") as e:

        @encoded(backend="c")
        def f(x):
            return x + 1

    assert e.value.code == "ENCODER_UNSUPPORTED"
    with pytest.raises(EncoderError, match="deferred"):

        @encoded(backend="c", checks="every-op")
        def g(x):
            return x + 1


def test_cache_is_keyed_atomic_and_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("CUSTODES_CACHE_DIR", str(cache))
    source = "int custodes_probe(void) { return 41 + %d; }\n" % random.randrange(10**9)  # noqa: UP031
    lib = _cbuild.build(source)
    assert lib.custodes_probe() >= 41
    objects = sorted(p.name for p in cache.iterdir())
    assert len(objects) == 2 and objects[0].endswith(".c") and objects[1].endswith(".so")  # no temporaries left
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    mtime = (cache / objects[1]).stat().st_mtime_ns
    _cbuild._LOADED.clear()
    _cbuild.build(source)  # reused from disk, not recompiled
    assert (cache / objects[1]).stat().st_mtime_ns == mtime
    other = tmp_path / "shared"
    other.mkdir()
    other.chmod(0o777)
    monkeypatch.setenv("CUSTODES_CACHE_DIR", str(other))
    with pytest.raises(_cbuild.CompilerUnavailable, match="writable by group or others"):
        _cbuild.build(source + "/* other */")
    assert os.listdir(other) == []


def test_compile_error_names_the_cause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUSTODES_CACHE_DIR", str(tmp_path / "c"))
    with pytest.raises(_cbuild.CompilerUnavailable, match="C compilation failed"):
        _cbuild.build("this is not C;")
    assert list((tmp_path / "c").iterdir()) == []
