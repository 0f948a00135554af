"""The fast call path of the C backend (a generated METH_FASTCALL extension) against the checked ctypes path.

Both run the same compiled kernel; the fast path must give the same results, the same exceptions (type, code,
reason, ``where``) and leave list arguments in the same state, for valid and for invalid arguments alike.
"""

from __future__ import annotations

import copy
import random
import types
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.encoded import Code, EncodedRangeError, FaultDetectedError, _cbuild, encoded
from custodes.encoded.kernels import KERNELS

pytestmark = pytest.mark.usefixtures("have_cc")

LO, HI = -(1 << 31), (1 << 31) - 1


@encoded(backend="c")
def scale(xs: list[int], k):
    """Stores into its list, then may fail before the write-back: the caller's list must stay as in Python."""
    for i in range(len(xs)):
        xs[i] = xs[i] * k
    return 100 // k


@encoded(backend="c")
def flag(a, b):
    return a < b


@encoded(backend="c")
def nothing(a):
    a = a + 1


@encoded(backend="c")
def doubled(xs: list[int]):
    ys = [0] * len(xs)
    for i in range(len(xs)):
        ys[i] = xs[i] * 2
    return ys


def _kernel(fn: Any) -> Any:
    return fn.c_kernel(Code())


def _outcome(call: Any, args: tuple[Any, ...]) -> tuple[Any, Any]:
    run = copy.deepcopy(args)
    try:
        result: Any = call(*run)
    except FaultDetectedError as e:
        result = ("FaultDetectedError", e.code, tuple(e.reasons), str(e))
    except Exception as e:  # any exception must match the slow path's
        result = (type(e).__name__, getattr(e, "code", None), str(e))
    return result, run


def test_production_entry_is_the_extension() -> None:
    kernel = _kernel(scale)
    assert isinstance(kernel.entry, types.BuiltinFunctionType)
    assert scale.__call__ is kernel.entry  # the decorated function calls it without a Python frame


def test_instrumented_and_plain_builds_keep_ctypes() -> None:
    k = KERNELS["dosage"].fn
    assert k.c_kernel(None).entry is k.c_kernel(None)
    assert k.c_kernel(Code(), inject=True).entry is k.c_kernel(Code(), inject=True)


ODD = st.one_of(
    st.integers(LO, HI),
    st.integers(LO - 5, LO - 1),
    st.integers(HI + 1, HI + 5),
    st.integers(-(1 << 70), 1 << 70),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.none(),
)


@settings(max_examples=120, deadline=None)
@given(xs=st.lists(st.integers(-300, 300), max_size=90), k=st.one_of(st.integers(-50, 50), ODD))
def test_list_kernel_fast_equals_slow(xs: list[int], k: Any) -> None:
    kernel = _kernel(scale)
    assert _outcome(kernel.entry, (xs, k)) == _outcome(kernel._slow_call, (xs, k))


@settings(max_examples=80, deadline=None)
@given(xs=st.lists(ODD, max_size=70), k=st.integers(-3, 3))
def test_odd_list_elements_fast_equals_slow(xs: list[Any], k: int) -> None:
    kernel = _kernel(scale)
    fast, slow = _outcome(kernel.entry, (xs, k)), _outcome(kernel._slow_call, (xs, k))
    assert fast == slow


@settings(max_examples=120, deadline=None)
@given(a=ODD, b=ODD)
def test_scalar_kernel_fast_equals_slow(a: Any, b: Any) -> None:
    kernel = _kernel(flag)
    assert _outcome(kernel.entry, (a, b)) == _outcome(kernel._slow_call, (a, b))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from(sorted(KERNELS)))
def test_builtin_kernels_fast_equals_slow_and_original(seed: int, name: str) -> None:
    kernel = KERNELS[name]
    args = kernel.random_args(random.Random(seed))
    c = kernel.fn.c_kernel(Code())
    fast = _outcome(c.entry, args)
    assert fast == _outcome(c._slow_call, args)
    assert fast == _outcome(kernel.fn.original, args)


def test_write_back_follows_the_python_form() -> None:
    xs, ys = [1, 2, 3], [1, 2, 3]
    with pytest.raises(ZeroDivisionError):
        scale(xs, 0)
    with pytest.raises(ZeroDivisionError):
        encoded(scale.original)(ys, 0)
    assert xs == ys == [1, 2, 3]  # the return value fails before the write-back, in both forms
    ys = list(range(200))  # beyond the on-stack buffer
    assert scale(ys, 3) == 33
    assert ys == [3 * v for v in range(200)]


def test_kinds_and_arity() -> None:
    assert flag(1, 2) is True
    assert flag(2, 1) is False
    assert nothing(5) is None
    xs = [4, -5]
    assert doubled(xs) == [8, -10]
    assert xs == [4, -5]
    assert doubled([]) == []
    with pytest.raises(TypeError):
        flag(1)
    with pytest.raises(TypeError):
        flag(1, b=2)
    with pytest.raises(EncodedRangeError):
        flag(1, HI + 1)
    with pytest.raises(EncodedRangeError):
        scale([1, HI + 1], 2)


def test_int_subclass_and_bool_are_ints() -> None:
    class Meters(int):
        pass

    assert flag(Meters(3), True) is False
    xs = [Meters(2), False]
    assert scale(xs, 2) == 50
    assert xs == [4, 0]


def test_extension_key_names_the_python_abi(monkeypatch: pytest.MonkeyPatch) -> None:
    cc, src = ["cc"], "int x;"
    base = _cbuild._key(cc, _cbuild.BASE_FLAGS, src, _cbuild.python_abi())
    assert base != _cbuild._key(cc, _cbuild.BASE_FLAGS, src, ("cpython-399", ".so", "/x"))
    native = (*_cbuild.BASE_FLAGS, _cbuild.NATIVE)
    first = _cbuild._key(cc, native, src)
    monkeypatch.setattr(_cbuild, "host_cpu", lambda: "another cpu")
    assert _cbuild._key(cc, native, src) != first  # objects built for one CPU are not reused on another
    assert _cbuild._key(cc, _cbuild.BASE_FLAGS, src) == _cbuild._key(cc, _cbuild.BASE_FLAGS, src)


def test_extension_object_is_private_and_named_by_its_key() -> None:
    kernel = _kernel(flag)
    path = _cbuild.cache_dir()
    objects = [p for p in path.iterdir() if p.name.endswith(_cbuild.python_abi()[1])]
    assert objects, "the extension object lives in the private cache"
    assert all(len(p.name.split(".", 1)[0]) == 64 for p in objects)
    assert kernel.entry(1, 2) is True
