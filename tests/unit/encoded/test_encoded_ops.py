"""The scalar ALU: every op decodes to the plain result, checks its operands, and sees the fault models."""

from __future__ import annotations

import operator

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from custodes.encoded import (
    Code,
    EncodedArray,
    EncodedCell,
    EncodedError,
    EncodedOps,
    EncodedOverflowError,
    EncodedUsageError,
    FaultDetectedError,
    PlainOps,
)
from custodes.encoded._sig import signature_of
from custodes.encoded.code import wrap

CODE = Code()
OPS = EncodedOps(CODE)
A = CODE.A
I32 = st.integers(-(2**31), 2**31 - 1)
SMALL = st.integers(-50_000, 50_000)
SIG = st.integers(1, A - 1)

BINARY = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": operator.floordiv,
    "mod": operator.mod,
    "lt": lambda x, y: int(x < y),
    "le": lambda x, y: int(x <= y),
    "eq": lambda x, y: int(x == y),
    "ne": lambda x, y: int(x != y),
    "gt": lambda x, y: int(x > y),
    "ge": lambda x, y: int(x >= y),
}


def _in_range(v: int) -> bool:
    return CODE.min_value <= v <= CODE.max_value


@settings(max_examples=300, deadline=None)
@given(op=st.sampled_from(sorted(BINARY)), x=st.one_of(I32, SMALL), y=st.one_of(I32, SMALL), bx=SIG, by=SIG, bz=SIG)
def test_binary_ops_match_plain_and_check(op: str, x: int, y: int, bx: int, by: int, bz: int) -> None:
    assume(op not in ("div", "mod") or y != 0)
    expected = BINARY[op](x, y)
    k = bz - signature_of(op, bx, by, A, True)
    fn = getattr(OPS, op)
    if not _in_range(expected):
        with pytest.raises(EncodedOverflowError):
            fn(CODE.encode(x, bx), bx, CODE.encode(y, by), by, k)
        return
    z = fn(CODE.encode(x, bx), bx, CODE.encode(y, by), by, k)
    assert CODE.decode(z, bz) == expected  # decode checks the result's signature and range


@settings(max_examples=200, deadline=None)
@given(x=I32, bx=SIG, bz=SIG, n=st.integers(0, 31))
def test_unary_ops_match_plain(x: int, bx: int, bz: int, n: int) -> None:
    c = CODE.encode(x, bx)
    cases = [("neg", -x, (c, bx)), ("mov", x, (c, bx)), ("shl", x << n, (c, bx, n)), ("shr", x >> n, (c, bx, n))]
    for op, expected, args in cases:
        k = bz - signature_of(op, bx, 0, A, True)
        if not _in_range(expected):
            with pytest.raises(EncodedOverflowError):
                getattr(OPS, op)(*args, k)
            continue
        assert CODE.decode(getattr(OPS, op)(*args, k), bz) == expected


@settings(max_examples=100, deadline=None)
@given(a=st.booleans(), b=st.booleans(), ba=SIG, bb=SIG, bz=SIG, x=SMALL, y=SMALL)
def test_logic_and_select(a: bool, b: bool, ba: int, bb: int, bz: int, x: int, y: int) -> None:
    ca, cb = CODE.encode(int(a), ba), CODE.encode(int(b), bb)
    for op, expected in (("land", a and b), ("lor", a or b)):
        z = getattr(OPS, op)(ca, ba, cb, bb, bz - signature_of(op, ba, bb, A, True))
        assert CODE.decode(z, bz) == int(expected)
    assert CODE.decode(OPS.lnot(ca, ba, bz - signature_of("lnot", ba, 0, A, True)), bz) == int(not a)
    bx, by = 11, 13
    z = OPS.select(ca, ba, CODE.encode(x, bx), bx, CODE.encode(y, by), by, bz)
    assert CODE.decode(z, bz) == (x if a else y)
    assert OPS.branch(ca, ba) is a


EVERY_OP = EncodedOps(CODE, checks="every-op")


@settings(max_examples=150, deadline=None)
@given(
    op=st.sampled_from(sorted(BINARY)), x=SMALL, y=SMALL, bx=SIG, by=SIG, bit=st.integers(0, 63), which=st.booleans()
)
def test_a_flipped_operand_is_detected(op: str, x: int, y: int, bx: int, by: int, bit: int, which: bool) -> None:
    """Every-op mode: the operation itself raises. Deferred mode: at the latest where the result is consumed."""
    cx, cy = CODE.encode(x, bx), CODE.encode(y, by)
    if which:
        cx = wrap(cx ^ (1 << bit), 64)
    else:
        cy = wrap(cy ^ (1 << bit), 64)
    with pytest.raises(FaultDetectedError):
        getattr(EVERY_OP, op)(cx, bx, cy, by, 0)
    bz = signature_of(op, bx, by, A, True)
    with pytest.raises(EncodedError):  # deferred: a fault, or the overflow a corrupted addend can cause
        OPS.dec(getattr(OPS, op)(cx, bx, cy, by, 0), bz)
    if op not in ("add", "sub"):  # the operations that can mask an error check their operands themselves
        with pytest.raises(FaultDetectedError):
            getattr(OPS, op)(cx, bx, cy, by, 0)


def test_deferred_is_the_default_and_every_op_remains() -> None:
    assert OPS.checks == "deferred" and EVERY_OP.checks == "every-op"
    with pytest.raises(EncodedUsageError):
        EncodedOps(CODE, checks="never")
    bad = CODE.encode(5, 7) ^ (1 << 20)
    z = OPS.add(bad, 7, CODE.encode(1, 9), 9, 0)  # propagates: (x + e) + y = (x + y) + e
    with pytest.raises(FaultDetectedError) as e:
        OPS.mul(z, 16, CODE.encode(3, 2), 2, 0)  # a consumer that could mask e checks it
    assert e.value.reasons == ["RESIDUE"]
    with pytest.raises(FaultDetectedError) as e:
        OPS.add(CODE.encode(2**31 - 1, 7) + A * 2**40, 7, CODE.encode(-5, 9), 9, 0)  # out of range: diagnosed
    assert e.value.reasons == ["RANGE"]
    with pytest.raises(EncodedOverflowError):
        OPS.add(CODE.encode(2**31 - 1, 7), 7, CODE.encode(5, 9), 9, 0)


def _add_site(code: Code, x: int, y: int, *, exchange: bool = False, wrong_op: str = "") -> int:
    """``z = x - y`` as the transformer would emit it, with a fault; returns the decoded output."""
    ops = EncodedOps(code)
    bx, by, bz = (101, 202, 303) if code.signed else (0, 0, 0)
    cx, cy = code.encode(x, bx), code.encode(y, by)
    k = bz - signature_of("sub", bx, by, code.A, code.signed)
    if exchange:
        cx, cy = cy, cx  # the words are exchanged; the program's signature constants are not
    z = getattr(ops, wrong_op or "sub")(cx, bx, cy, by, k)
    return ops.dec(z, bz)


@pytest.mark.parametrize("fault", [{"exchange": True}, {"wrong_op": "add"}, {"wrong_op": "mul"}])
def test_exchanged_operands_and_faulty_operations_are_detected_by_anb_not_by_an(fault: dict[str, object]) -> None:
    assert _add_site(Code.anb(), 40, 2) == 38
    with pytest.raises(FaultDetectedError):
        _add_site(Code.anb(), 40, 2, **fault)  # type: ignore[arg-type]
    wrong = _add_site(Code.an(), 40, 2, **fault)  # type: ignore[arg-type]
    assert wrong != 38  # AN returns a valid code word of a wrong value: silent data corruption


def _lost_update(code: Code) -> int:
    cell = EncodedCell(code, 5, sig=7 if code.signed else 0)
    array = cell.array
    old = list(array.words)
    cell.set(9)
    array.words[:] = old  # the store never reached memory
    return cell.get()


def test_lost_updates_are_detected_by_anbd_only() -> None:
    with pytest.raises(FaultDetectedError) as e:
        _lost_update(Code.anbd())
    assert e.value.reasons == ["VERSION"]
    assert _lost_update(Code.anb()) == 5  # stale but valid: undetected
    assert _lost_update(Code.an()) == 5


def test_wrong_branch_is_detected_in_the_arm() -> None:
    c = OPS.lt(CODE.encode(1, 5), 5, CODE.encode(2, 6), 6, 0)
    bc = signature_of("lt", 5, 6, A, True)
    taken = OPS.branch(c, bc)
    assert taken is True
    OPS.expect(c, bc, 1)
    with pytest.raises(FaultDetectedError) as e:
        OPS.expect(c, bc, 0)  # the CPU went into the else arm
    assert e.value.reasons == ["CONTROL_FLOW"]
    with pytest.raises(FaultDetectedError):
        OPS.branch(c + 1, bc)


def test_division_by_zero_and_verification() -> None:
    with pytest.raises(ZeroDivisionError):
        OPS.div(CODE.encode(1, 3), 3, CODE.encode(0, 4), 4, 0)
    with pytest.raises(EncodedOverflowError):
        OPS.div(CODE.encode(-(2**31), 3), 3, CODE.encode(-1, 4), 4, 0)


def test_encoded_memory_load_store() -> None:
    arr = EncodedArray(CODE, [10, 20, 30], sig=17)
    i = CODE.encode(-1, 3)
    assert CODE.decode(OPS.load(arr, i, 3, 9), 9) == 30  # negative indices as in Python
    OPS.store(arr, CODE.encode(0, 3), 3, CODE.encode(-4, 8), 8)
    assert arr.to_list() == [-4, 20, 30]
    assert arr.versions == [1, 0, 0]
    with pytest.raises(IndexError):
        OPS.load(arr, CODE.encode(3, 3), 3, 9)
    with pytest.raises(FaultDetectedError):
        OPS.load(arr, CODE.encode(0, 3) + 1, 3, 9)  # corrupted index
    arr.words[1] ^= 1 << 40
    with pytest.raises(FaultDetectedError) as e:
        arr.get(1)
    assert e.value.reasons == ["RESIDUE"]
    assert "20" not in repr(arr)


def test_plain_baseline_wraps_like_hardware() -> None:
    p = PlainOps()
    assert p.add(2**31 - 1, 0, 1, 0, 0) == -(2**31)
    assert p.mul(2**16, 0, 2**16, 0, 0) == 0
    assert p.lt(1, 0, 2, 0, 0) == 1


def test_no_switch_disables_checks() -> None:
    # The production ALU has no "checks off" mode: a corrupted word always raises.
    assert not any("disable" in name or "unsafe" in name for name in dir(OPS))
    with pytest.raises(FaultDetectedError):
        OPS.chk(CODE.encode(3, 5) ^ 4, 5)


def test_encoded_cell_roundtrip_and_repr() -> None:
    cell = EncodedCell(CODE, 123_456, sig=9)
    assert cell.get() == 123_456
    cell.set(-7)
    assert cell.get() == -7
    assert cell.array.versions == [1]
    assert "123456" not in repr(cell) and "-7" not in repr(cell)
