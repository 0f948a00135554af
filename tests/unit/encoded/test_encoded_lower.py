"""The production (inline) form is equivalent to the ALU-call form that campaigns inject into.

Each lowered operation must return exactly what the ALU method returns, or raise the same error, on *every* input:
valid words, flipped words, random words, words with another signature and out-of-range multiples of A. Whole
functions must agree too, with and without faults in their memory.
"""

from __future__ import annotations

import ast
import copy
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.encoded import Code, EncodedArray, EncodedOps, FaultDetectedError
from custodes.encoded._lower import Lowering, runtime_names
from custodes.encoded._sig import signature_of
from custodes.encoded.code import wrap
from custodes.encoded.faults import Injector
from custodes.encoded.kernels import KERNELS

_EXTRA: dict[str, Any] = {"type_params": []} if "type_params" in ast.FunctionDef._fields else {}
CODES = [Code(), Code.anb(A=63877), Code.an(), Code.anbd(A=59665, kbits=16, nbits=40)]
BINARY = ["add", "sub", "mul", "div", "mod", "lt", "le", "eq", "ne", "gt", "ge"]
CHECKS = st.sampled_from(["deferred", "every-op"])  # each inline form against the ALU of its own mode


def _outcome(fn: Any, *args: Any) -> tuple[Any, ...]:
    try:
        return ("ok", fn(*args))
    except FaultDetectedError as e:
        return ("fault", e.reasons)
    except Exception as e:
        return ("error", type(e).__name__)


class _Counter:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"_e_l{self.n}"


def _low(code: Code, checks: str) -> Lowering:
    deferred = checks == "deferred"
    return Lowering(code.A, code.signed, code.versioned, code.min_value, code.max_value, _Counter(), deferred=deferred)


def _compile(code: Code, method: str, args: list[ast.expr], params: list[str], checks: str) -> Any:
    low = _low(code, checks)
    expr = low.lower(method, args)
    if expr is None:  # only a constant zero divisor stays a call (it always raises ZeroDivisionError)
        assert method in ("div", "mod") and isinstance(args[2], ast.Constant)
        assert (args[2].value - args[3].value) == 0  # type: ignore[attr-defined, operator]
        expr = ast.Call(ast.Attribute(ast.Name("_RT", ast.Load()), method, ast.Load()), args, [])
    fn = ast.FunctionDef(
        name="f",
        args=ast.arguments(
            posonlyargs=[], args=[ast.arg(p) for p in params], kwonlyargs=[], kw_defaults=[], defaults=[]
        ),
        body=[ast.Return(expr)],
        decorator_list=[],
        returns=None,
        **_EXTRA,
    )
    module = ast.fix_missing_locations(ast.Module(body=[fn], type_ignores=[]))
    namespace: dict[str, Any] = {"_RT": EncodedOps(code, checks), **runtime_names()}
    exec(compile(module, "<lowered>", "exec"), namespace)
    return namespace["f"]


def _word(code: Code, draw: st.DrawFn, b: int, small: bool = False) -> int:
    """A valid word, or one corrupted the ways the fault models corrupt words."""
    bound = 60 if small else code.max_value
    x = draw(st.integers(-bound if small else code.min_value, bound))
    c = code.A * x + b
    kind = draw(st.sampled_from(["valid", "valid", "flip", "random", "othersig", "range"]))
    if kind == "flip":
        bits = draw(st.lists(st.integers(0, code.nbits - 1), min_size=1, max_size=3, unique=True))
        for bit in bits:
            c = wrap(c ^ (1 << bit), code.nbits)
    elif kind == "random":
        c = wrap(draw(st.integers(0, (1 << code.nbits) - 1)), code.nbits)
    elif kind == "othersig":
        c += draw(st.integers(1, 5))
    elif kind == "range":
        c = code.A * (code.max_value + draw(st.integers(1, 3))) + b
    return c


def _sig(code: Code, draw: st.DrawFn) -> int:
    if not code.signed:
        return 0
    return draw(st.one_of(st.integers(1, code.A - 1), st.sampled_from([1, code.A // 2 + 1, code.A - 1])))


def _name(n: str) -> ast.Name:
    return ast.Name(n, ast.Load())


@settings(max_examples=400, deadline=None)
@given(
    data=st.data(),
    code=st.sampled_from(CODES),
    op=st.sampled_from(BINARY),
    const=st.sampled_from([0, 1, 2]),
    checks=CHECKS,
)
def test_binary_ops_lower_to_the_same_function(
    data: st.DataObject, code: Code, op: str, const: int, checks: str
) -> None:
    """``const``: 0 both operands variable, 1 the right one a constant word, 2 the left one."""
    draw = data.draw
    small = op in ("mul", "div", "mod")
    bx, by, bz = _sig(code, draw), _sig(code, draw), _sig(code, draw)
    k = bz - signature_of(op, bx, by, code.A, code.signed)
    x, y = _word(code, draw, bx, small), _word(code, draw, by, small)
    ops = EncodedOps(code, checks)
    if const == 1:
        args: list[ast.expr] = [_name("x"), ast.Constant(bx), ast.Constant(y), ast.Constant(by), ast.Constant(k)]
        fn = _compile(code, op, args, ["x"], checks)
        assert _outcome(fn, x) == _outcome(getattr(ops, op), x, bx, y, by, k)
    elif const == 2:
        args = [ast.Constant(x), ast.Constant(bx), _name("y"), ast.Constant(by), ast.Constant(k)]
        fn = _compile(code, op, args, ["y"], checks)
        assert _outcome(fn, y) == _outcome(getattr(ops, op), x, bx, y, by, k)
    else:
        args = [_name("x"), ast.Constant(bx), _name("y"), ast.Constant(by), ast.Constant(k)]
        fn = _compile(code, op, args, ["x", "y"], checks)
        assert _outcome(fn, x, y) == _outcome(getattr(ops, op), x, bx, y, by, k)


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    code=st.sampled_from(CODES),
    op=st.sampled_from(["mov", "neg", "shl", "shr", "lnot", "dec"]),
    checks=CHECKS,
)
def test_unary_ops_lower_to_the_same_function(data: st.DataObject, code: Code, op: str, checks: str) -> None:
    draw = data.draw
    bx, bz = _sig(code, draw), _sig(code, draw)
    if op == "lnot":
        x = code.A * draw(st.integers(0, 1)) + bx + draw(st.sampled_from([0, 0, 1, -1, code.A]))
    else:
        x = _word(code, draw, bx)
    ops = EncodedOps(code, checks)
    extra: list[int] = []
    if op in ("shl", "shr"):
        extra = [draw(st.integers(0, 31))]
    sig_op = "mov" if op == "dec" else op
    k = bz - signature_of(sig_op, bx, 0, code.A, code.signed)
    consts = [bx, *extra] if op == "dec" else [bx, *extra, k]
    fn = _compile(code, op, [_name("x"), *map(ast.Constant, consts)], ["x"], checks)
    assert _outcome(fn, x) == _outcome(getattr(ops, op), x, *consts)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), code=st.sampled_from(CODES), checks=CHECKS)
def test_select_branch_expect_enc_lower_to_the_same_function(data: st.DataObject, code: Code, checks: str) -> None:
    draw = data.draw
    ops = EncodedOps(code, checks)
    bc, bx, by, bz = (_sig(code, draw) for _ in range(4))
    c = code.A * draw(st.integers(0, 1)) + bc + draw(st.sampled_from([0, 0, 0, 1, code.A, -code.A]))
    x, y = _word(code, draw, bx), _word(code, draw, by)
    sel = [_name("c"), ast.Constant(bc), _name("x"), ast.Constant(bx), _name("y"), ast.Constant(by), ast.Constant(bz)]
    fn = _compile(code, "select", sel, ["c", "x", "y"], checks)
    assert _outcome(fn, c, x, y) == _outcome(ops.select, c, bc, x, bx, y, by, bz)
    fn = _compile(code, "branch", [_name("c"), ast.Constant(bc)], ["c"], checks)
    assert _outcome(fn, c) == _outcome(ops.branch, c, bc)
    v = draw(st.integers(0, 1))
    fn = _compile(code, "expect", [_name("c"), ast.Constant(bc), ast.Constant(v)], ["c"], checks)
    assert _outcome(fn, c) == _outcome(ops.expect, c, bc, v)
    value = draw(st.one_of(st.integers(code.min_value - 2, code.max_value + 2), st.booleans(), st.just(1.0)))
    fn = _compile(code, "enc", [_name("v"), ast.Constant(bx)], ["v"], checks)
    assert _outcome(fn, value) == _outcome(ops.enc, value, bx)


def _array(code: Code, draw: st.DrawFn) -> EncodedArray:
    sig = _sig(code, draw)
    arr = EncodedArray(code, draw(st.lists(st.integers(-99, 99), min_size=1, max_size=5)), sig)
    for i in range(len(arr.words)):
        if code.versioned and draw(st.booleans()):
            arr.store_word(i, arr.words[i], sig)  # bump the version
        if draw(st.integers(0, 4)) == 0:
            arr.words[i] = wrap(arr.words[i] ^ (1 << draw(st.integers(0, code.nbits - 1))), code.nbits)
        if code.versioned and draw(st.integers(0, 6)) == 0:
            arr.versions[i] = (arr.versions[i] + 1) % code.A  # a lost update
    return arr


@settings(max_examples=200, deadline=None)
@given(data=st.data(), code=st.sampled_from(CODES), checks=CHECKS)
def test_memory_ops_lower_to_the_same_function(data: st.DataObject, code: Code, checks: str) -> None:
    draw = data.draw
    arr = _array(code, draw)
    bi, bv, bout = _sig(code, draw), _sig(code, draw), _sig(code, draw)
    i = code.A * draw(st.integers(-7, 7)) + bi + draw(st.sampled_from([0, 0, 0, 1]))
    v = _word(code, draw, bv)
    ops = EncodedOps(code, checks)
    load = _compile(code, "load", [_name("a"), _name("i"), ast.Constant(bi), ast.Constant(bout)], ["a", "i"], checks)
    assert _outcome(load, copy.deepcopy(arr), i) == _outcome(ops.load, copy.deepcopy(arr), i, bi, bout)
    length = _compile(code, "length", [_name("a"), ast.Constant(bout)], ["a"], checks)
    assert length(arr) == ops.length(arr, bout)
    # store: statements, run on two copies of the array; words and versions must end up equal
    low = _low(code, checks)
    body = low.store("a", _name("i"), bi, _name("v"), bv)
    fn = ast.FunctionDef(
        name="f",
        args=ast.arguments(
            posonlyargs=[], args=[ast.arg(p) for p in ("a", "i", "v")], kwonlyargs=[], kw_defaults=[], defaults=[]
        ),
        body=[*body, ast.Return(ast.Constant(None))],
        decorator_list=[],
        returns=None,
        **_EXTRA,
    )
    namespace: dict[str, Any] = {"_RT": ops, **runtime_names()}
    exec(compile(ast.fix_missing_locations(ast.Module([fn], [])), "<lowered>", "exec"), namespace)
    a1, a2 = copy.deepcopy(arr), copy.deepcopy(arr)
    assert _outcome(namespace["f"], a1, i, v) == _outcome(ops.store, a2, i, bi, v, bv)
    assert (a1.words, a1.versions) == (a2.words, a2.versions)


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("code", CODES[:3], ids=["anbd", "anb", "an"])
@pytest.mark.parametrize("checks", ["deferred", "every-op"])
def test_inline_and_alu_forms_of_kernels_agree(name: str, code: Code, checks: str) -> None:
    kernel = KERNELS[name]
    fast = kernel.fn.bind(EncodedOps(code, checks))
    slow = kernel.fn.bind(Injector(EncodedOps(code, checks)))  # the ALU-call form, as campaigns run it
    rng = random.Random(name)
    for _ in range(40):
        args = kernel.random_args(rng)
        a1, a2 = copy.deepcopy(args), copy.deepcopy(args)
        assert _outcome(fast, *a1) == _outcome(slow, *a2)
        assert a1 == a2


def test_inline_form_is_what_calls_run() -> None:
    kernel = KERNELS["dosage"]
    src = kernel.fn.source(inline=True)
    assert "_RT.mul(" in src  # only as the fallback of a failed check
    assert "% 58659" in src  # the residue checks are inline
    assert kernel.fn(72_500, 1_500, 4_000) == kernel.fn.original(72_500, 1_500, 4_000)


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    code=st.sampled_from(CODES),
    op=st.sampled_from(["add", "sub", "mul", "div", "lt", "ge"]),
    edge=st.sampled_from(["max", "min"]),
    delta=st.integers(-2, 2),
    checks=CHECKS,
)
def test_lowered_range_checks_are_exact_at_the_overflow_boundary(
    data: st.DataObject, code: Code, op: str, edge: str, delta: int, checks: str
) -> None:
    """Results at and just past the functional range: where folded bounds would be off by a signature."""
    draw = data.draw
    bx, by, bz = _sig(code, draw), _sig(code, draw), _sig(code, draw)
    target = (code.max_value if edge == "max" else code.min_value) + delta
    yv = draw(st.integers(-3, 3).filter(bool)) if op in ("mul", "div") else draw(st.integers(-1000, 1000))
    if op in ("add", "sub"):  # y's sign keeps x in range, so that only the result can overflow
        yv = abs(yv) if (op == "add") == (edge == "max") else -abs(yv)
    xv = {"add": target - yv, "sub": target + yv}.get(op, target)
    if op in ("mul", "div"):
        xv = target // yv if op == "mul" else target * yv
    xv = max(code.min_value - 1, min(code.max_value + 1, xv))
    x, y = code.A * xv + bx, code.A * yv + by
    k = bz - signature_of(op, bx, by, code.A, code.signed)
    args = [_name("x"), ast.Constant(bx), _name("y"), ast.Constant(by), ast.Constant(k)]
    fn = _compile(code, op, args, ["x", "y"], checks)
    assert _outcome(fn, x, y) == _outcome(getattr(EncodedOps(code, checks), op), x, bx, y, by, k)
    for unary in ("neg", "shl"):
        extra = [draw(st.integers(0, 3))] if unary == "shl" else []
        kk = bz - signature_of(unary, bx, 0, code.A, code.signed)
        fn = _compile(code, unary, [_name("x"), *map(ast.Constant, [bx, *extra, kk])], ["x"], checks)
        assert _outcome(fn, x) == _outcome(getattr(EncodedOps(code, checks), unary), x, bx, *extra, kk)
