"""Regressions for the defects of the encoded-processing review: wrapped shifts and narrow codes (scalar and
vector), large shift counts, one list passed for two parameters, unbound locals in C, and the hidden counter of a
``for`` loop with a large step. Each test asserts the exact outcome (value or exception type) in every form that
exists for it: the production Python form, the ALU-call form campaigns inject into, every-op checks, and C."""

from __future__ import annotations

import copy
import random
from typing import Any

import numpy as np
import pytest

from custodes.encoded import (
    Code,
    EncodedOps,
    EncodedOverflowError,
    EncodedUsageError,
    FaultDetectedError,
    encoded,
    vector,
)
from custodes.encoded._cvector import word
from custodes.encoded.campaign import encoded_variant, exhaustive, golden_run
from custodes.encoded.faults import FaultModel, FaultSpec, Injector, eligible, slots
from custodes.encoded.kernels import KERNELS, Kernel
from custodes.encoded.vector import EncodedVector, VectorOps
from custodes.encoded.vfused import fuse

pytestmark = pytest.mark.usefixtures("have_cc")

#: A valid narrow code: A * 2**15 + 8A < 2**31 (16-bit values in 32-bit words).
C16 = Code.anbd(58659, 16, 32)
M = 1 << 31


def _forms(fn: Any, code: Code) -> dict[str, Any]:
    """Every callable form of ``fn`` under ``code``."""
    ef = encoded(fn, code=code)
    return {
        "python": ef,
        "every-op": encoded(fn, code=code, checks="every-op"),
        "alu-call": ef.bind(Injector(EncodedOps(code, "deferred"))),
        "c": encoded(fn, code=code, backend="c"),
    }


def _outcome(f: Any, *args: Any) -> Any:
    try:
        return f(*args)
    except Exception as e:  # the exception type is the outcome
        return type(e)


# -- 1 and 6: shifts range-checked before they wrap; narrow codes in every form -----------------------------------
def shl31(x):
    return x << 31


def shl31_plus(x):
    y = x << 31
    return y + 7


def add2(x, y):
    return x + y


def less(x, y):
    return x < y


def test_deferred_alu_shl_checks_the_exact_product() -> None:
    # 2 << 31 = 2**32: in 32-bit words A * 2**32 wraps to 0, a valid word of 0
    narrow = EncodedOps(C16, "deferred")
    with pytest.raises(EncodedOverflowError):
        narrow.shl(narrow.enc(2, 5), 5, 31, 0)
    # the default code: 146438 << 31 wraps in 64 bits into the range (a false RESIDUE fault downstream before)
    ops = EncodedOps(Code(), "deferred")
    with pytest.raises(EncodedOverflowError):
        ops.shl(ops.enc(146438, 5), 5, 31, 0)
    assert ops.dec(ops.shl(ops.enc(-1, 5), 5, 31, 0), (5 + 1009) % Code().A) == -1 << 31


@pytest.mark.parametrize(
    ("code", "fn", "args"),
    [(C16, shl31, (2,)), (C16, shl31_plus, (-4,)), (C16, add2, (32767, 32767)), (Code(), shl31, (146438,))],
    ids=["c16-shl", "c16-shl-add", "c16-add", "default-shl"],
)
def test_overflow_is_an_overflow_in_every_form(code: Code, fn: Any, args: tuple[int, ...]) -> None:
    got = {form: _outcome(f, *args) for form, f in _forms(fn, code).items()}
    assert got == dict.fromkeys(got, EncodedOverflowError)


def test_narrow_code_gives_the_plain_results() -> None:
    for form in ("python", "every-op", "alu-call", "c"):
        f = _forms(less, C16)[form]
        assert f(-32768, 32767) is True and f(32767, -32768) is False, form  # 65535 A apart: no wrap, no alarm
        g = _forms(add2, C16)[form]
        assert g(32767, -32768) == -1 and g(16000, 16767) == 32767, form


def small(x, y, a: list[int]):
    z = x + y
    if z > 100:
        z = z - 50
    a[0] = z << 2
    return z * 3 + (a[1] >> 1) - min(x, y)


def test_narrow_code_injection_agrees_between_python_and_c() -> None:
    # The C backend emulates 32-bit words: a flipped or random word is sign-extended from bit 31, as in Python.
    ef = encoded(small, code=C16)
    args = (30, 90, [1, 7, 3])
    kernel = Kernel("small", ef, lambda: copy.deepcopy(args), lambda r: copy.deepcopy(args))
    _, trace = golden_run(kernel, encoded_variant(C16), args)
    ck = ef.c_kernel(C16, inject=True)

    def py(spec: FaultSpec) -> Any:
        try:
            return ef.bind(Injector(EncodedOps(C16), spec, 10**6))(*copy.deepcopy(args))
        except FaultDetectedError as e:
            return e.reason, e.where
        except Exception as e:
            return type(e)

    def c(spec: FaultSpec) -> Any:
        run = ck.run_injected(copy.deepcopy(args), spec, 10**6, record=False)
        if isinstance(run.error, FaultDetectedError):
            return run.error.reason, run.error.where
        return type(run.error) if run.error is not None else run.result

    events = [op for op in trace if eligible(FaultModel.BITFLIP, op)]
    for e, op in enumerate(events):
        for slot in range(slots(op)):
            for bits in [(31,), (30, 31), (0, 31), (16,)]:
                spec = FaultSpec(FaultModel.BITFLIP, e, slot, bits)
                assert c(spec) == py(spec), spec
    for model in (FaultModel.RANDOM,):
        for e in range(len(events)):
            spec = FaultSpec(model, e, 0, value=(1 << 31) | 12345)
            assert c(spec) == py(spec), spec
    py_tally = exhaustive(kernel, encoded_variant(C16), args, max_bits=1)
    c_tally = exhaustive(kernel, encoded_variant(C16, backend="c"), args, max_bits=1)
    assert py_tally.counts == c_tally.counts and py_tally.counts["sdc"] == 0


# -- 2: vector shifts and deferred additive chains cannot wrap ----------------------------------------------------
VBACKENDS = ["numpy", "c"]


@pytest.mark.parametrize("backend", VBACKENDS)
@pytest.mark.parametrize("n", [50, 64, 1000])
def test_vector_shl_beyond_the_lane_is_reported(backend: str, n: int) -> None:
    values = np.array([-32768, 0, -16384])
    deferred = VectorOps(check="deferred", backend=backend)  # type: ignore[arg-type]
    with pytest.raises(FaultDetectedError):
        deferred.decode(deferred.shl(deferred.encode(values), n))
    eager = VectorOps(check="eager", backend=backend)  # type: ignore[arg-type]
    with pytest.raises(EncodedOverflowError):
        eager.shl(eager.encode(values), n)
    for v in (deferred, eager):
        assert v.decode(v.shl(v.encode(np.array([0, 0])), n)).tolist() == [0, 0]


def test_vector_shift_counts_are_checked() -> None:
    v = VectorOps()
    x = v.encode(np.array([1, -1]))
    with pytest.raises(ValueError, match="negative shift count"):
        v.shl(x, -1)
    with pytest.raises(ValueError, match="negative shift count"):
        v.shr(x, -1)
    assert v.shift(3) == 3 and v.shift(200) == v.code.kbits


@pytest.mark.parametrize("backend", VBACKENDS)
def test_vector_doubling_chain_is_checked_before_it_wraps(backend: str) -> None:
    v = VectorOps(check="deferred", backend=backend)  # type: ignore[arg-type]
    start = np.array([1, 0, -1, 3])
    x = _doublings(v, v.encode(start), 44)  # 3 * 2**44 < MAGNITUDE_LIMIT: unchecked, exact, exact after x - x
    assert x.bound == (1 << 15) << 44
    assert v.decode(v.sub(x, x)).tolist() == [0, 0, 0, 0]
    with pytest.raises(FaultDetectedError) as info:  # was: 64 doublings of 1 decoded to 0
        _doublings(v, v.encode(start), 64)
    assert info.value.where == "add"
    y = _doublings(v, v.encode(np.array([0, 0])), 64)  # zeros stay in range: the checks pass, the chain goes on
    assert v.decode(y).tolist() == [0, 0] and (y.bound is None or y.bound <= vector.MAGNITUDE_LIMIT)


def _doublings(v: Any, x: EncodedVector, n: int) -> EncodedVector:
    for _ in range(n):
        x = v.add(x, x)
    return x


def test_fused_doubling_chain_is_checked_like_the_numpy_form() -> None:
    v = VectorOps()

    def chain(t: Any, x: Any) -> Any:
        for _ in range(64):
            x = t.add(x, x)
        return t.decode(x)

    k = fuse(v, chain, 0)
    with pytest.raises(FaultDetectedError) as info:
        k(v.encode(np.array([1, 0])))
    assert info.value.where == "add"
    assert k(v.encode(np.array([0, 0]))).tolist() == [0, 0]
    # an input that is itself an unchecked sum beyond the range runs with the numpy form's semantics
    a = v.encode(np.array([30000, -30000, 5]))
    twice = v.add(a, a)
    diff = fuse(v, lambda t, x, y: t.decode(t.sub(x, y)), 0, 0)
    assert diff(twice, a).tolist() == [30000, -30000, 5]

    def chain47(t: Any, x: Any) -> Any:  # traced for inputs in range: its first check would sit at doubling 48
        return t.decode(_doublings(t, x, 47))

    k47 = fuse(v, chain47, 0)
    for values in ([0, 0], [0, 1]):
        twice = v.add(v.encode(np.array(values)), v.encode(np.array(values)))  # bound 2**16: the check moves to 47
        fused, numpy_form = _outcome(k47, twice), _outcome(chain47, v, twice)
        assert (fused == numpy_form) if isinstance(fused, type) else fused.tolist() == numpy_form.tolist()
    assert fused is FaultDetectedError


# -- 3: vector shr by a large count agrees in every backend ------------------------------------------------------
SHR_VALUES = [5, -5, 32767, 0, -32768, -1]


@pytest.mark.parametrize("n", [48, 50, 62, 63, 100])
def test_vector_shr_large_count_in_every_backend(n: int) -> None:
    want = [a >> n for a in SHR_VALUES]
    for check in ("deferred", "eager"):
        for backend in VBACKENDS:
            v = VectorOps(check=check, backend=backend)  # type: ignore[arg-type]
            assert v.decode(v.shr(v.encode(np.array(SHR_VALUES)), n)).tolist() == want, (check, backend)
    v = VectorOps()
    k = fuse(v, lambda t, x: t.decode(t.shr(x, n)), 0)
    assert k(v.encode(np.array(SHR_VALUES))).tolist() == want


def test_c_vector_constants_are_refused_not_wrapped() -> None:
    assert word(-(1 << 63)) == -(1 << 63) and word((1 << 63) - 1) == (1 << 63) - 1
    with pytest.raises(EncodedUsageError):
        word(58659 << 48)


# -- 4: one list passed for two array parameters ------------------------------------------------------------------
def read_after_write(p: list[int], q: list[int]) -> int:
    p[0] = 5
    return q[0]


def three(p: list[int], q: list[int], r: list[int]) -> int:
    p[0] = p[0] + 10
    q[1] = q[0] * 2
    s = r[0] + r[1]
    r[2] = s
    return s + len(q)


class _Sub(list):  # type: ignore[type-arg]
    """A list subclass: the C fast path hands it to the checked ctypes path."""


def _alias_forms(fn: Any) -> dict[str, Any]:
    ef = encoded(fn)
    return {
        "python": ef,
        "every-op": encoded(fn, checks="every-op"),
        "alu-call": ef.bind(Injector(EncodedOps(Code()))),
        "c": encoded(fn, backend="c"),
        "c-slow": ef.c_kernel(Code())._slow_call,
    }


@pytest.mark.parametrize("form", ["python", "every-op", "alu-call", "c", "c-slow"])
@pytest.mark.parametrize("pattern", ["aa", "aab", "aba", "abb", "aaa"])
@pytest.mark.parametrize("kind", [list, _Sub])
def test_one_list_for_two_parameters_is_one_list(form: str, pattern: str, kind: type) -> None:
    fn = read_after_write if len(pattern) == 2 else three

    def run(f: Any) -> tuple[Any, list[list[int]]]:
        lists: dict[str, list[int]] = {}
        args = [lists.setdefault(ch, kind([1, 5, 9])) for ch in pattern]
        return f(*args), [list(lists[k]) for k in sorted(lists)]

    assert run(_alias_forms(fn)[form]) == run(fn)


def test_one_list_for_two_parameters_in_the_instrumented_build() -> None:
    ck = encoded(three).c_kernel(Code(), inject=True)
    a, b = [1, 2, 3], [1, 2, 3]
    run = ck.run_injected([a, a, [4, 5, 6]], None, 10**6, record=False)
    assert (run.result, a) == (three(b, b, [4, 5, 6]), b) == (12, [11, 22, 3])


# -- 5: a local read before any assignment --------------------------------------------------------------------
def maybe(x):
    if x > 0:
        y = 7
    return y


def maybe_array(x):
    if x > 0:
        b = [0] * 2
    return len(b)


def maybe_in_loop(x):
    s = 0
    while x < 3:
        if x == 1:
            t = x
        s = s + t
        x = x + 1
    return s


@pytest.mark.parametrize("code", [Code.an(), Code.anb(), Code()], ids=["AN", "ANB", "ANBD"])
def test_unbound_local_raises_unboundlocalerror(code: Code) -> None:
    for fn, bad, good in ((maybe, 0, 1), (maybe_in_loop, 0, 1), (maybe_array, 0, 1)):  # the last crashed C before
        for backend in ("c", "python"):
            ef = encoded(fn, code=code, backend=backend)
            with pytest.raises(UnboundLocalError):
                ef(bad)
            assert ef(good) == fn(good)


def test_unbound_local_in_the_unencoded_c_baseline() -> None:
    plain = encoded(maybe).c_kernel(None)
    with pytest.raises(UnboundLocalError):
        plain(0)
    assert plain(3) == 7


def test_definitely_assigned_locals_carry_no_flag() -> None:
    # the hot path: only a read that some path reaches unassigned tests a flag
    for name in ("dosage", "checksum", "matmul", "bubblesort", "pid"):
        assert "cx_fail(cx, ST_UNBOUND" not in KERNELS[name].fn.c_source(), name
    assert "cx_fail(cx, ST_UNBOUND" in encoded(maybe).c_source()


# -- 7: the hidden counter of a for loop ---------------------------------------------------------------------
def count_up(n):
    s = 0
    for _i in range(n, 2147483647, 5):
        s = s + 1
    return s


def count_down(n):
    s = 0
    for i in range(n, -2147483648, -7):  # noqa: B007 - read after the loop
        s = s + 1
    return s + i // 1000000000


def loops(a, b):
    s = 0
    for _i in range(a, b, 3):
        s = s + 1
        if s > 20:
            break
    for _j in range(b, a, -2):
        s = s + 2
        if s > 60:
            break
    for _k in range(a, 7, 4):
        s = s + 1
        if s > 90:
            break
    return s


@pytest.mark.parametrize("form", ["python", "every-op", "alu-call", "c"])
def test_range_counter_never_passes_stop(form: str) -> None:
    assert _forms(count_up, Code())[form](2147483640) == count_up(2147483640) == 2
    assert _forms(count_down, Code())[form](-2147483640) == count_down(-2147483640) == -1
    f = _forms(loops, Code())[form]
    r = random.Random(7)
    edges = [-M, -M + 1, -M + 2, -M + 4, M - 1, M - 2, M - 3, M - 4, 0, 1, -1, 5, 7, 10]
    cases = [(a, b) for a in edges for b in edges] + [(a, a + r.randint(-30, 30)) for a in edges]
    cases = [(a, max(-M, min(M - 1, b))) for a, b in cases]
    assert [f(a, b) for a, b in cases] == [loops(a, b) for a, b in cases]
