"""Array I/O of ``@encoded`` functions: the decode check of ``EncodedArray.to_list`` and the write-back rule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.encoded import Code, EncodedOps, FaultDetectedError, encoded
from custodes.encoded.faults import FaultModel, FaultSpec, Injector
from custodes.encoded.memory import EncodedArray

CODES = st.sampled_from([Code.an(), Code.anb(), Code.anbd()])
VALUES = st.lists(st.integers(-(2**31), 2**31 - 1), max_size=12)


@settings(max_examples=200, deadline=None)
@given(code=CODES, values=VALUES, data=st.data())
def test_to_list_fails_exactly_when_an_element_check_fails(code: Code, values: list[int], data: st.DataObject) -> None:
    """``to_list`` checks every word as ``get`` does: it returns the same values, or raises if any ``get`` would."""
    sig = data.draw(st.integers(0, code.A - 1)) if code.signed else 0
    arr = EncodedArray(code, values, sig)
    for _ in range(data.draw(st.integers(0, 2))):  # corrupt some words: flips, multiples of A, stale versions
        if not values:
            break
        i = data.draw(st.integers(0, len(values) - 1))
        kind = data.draw(st.sampled_from(["flip", "multiple", "version", "none"]))
        if kind == "flip":
            arr.words[i] ^= 1 << data.draw(st.integers(0, 63))
        elif kind == "multiple":  # a valid residue moved out of range
            arr.words[i] += code.A * (2**32)
        elif kind == "version" and code.versioned:
            arr.versions[i] += 1  # the word no longer matches its version: a lost update
    expected: list[int] | None = []
    for i in range(len(values)):
        try:
            expected.append(arr.get(i))  # type: ignore[union-attr]
        except FaultDetectedError:
            expected = None
            break
    if expected is None:
        with pytest.raises(FaultDetectedError):
            arr.to_list()
    else:
        assert arr.to_list() == expected


@encoded
def _reads_a_writes_b(a: list[int], b: list[int]):
    for i in range(len(a)):
        b[i] = a[i] * 2
    return len(a)


@encoded
def _writes_through_an_alias(a: list[int], b: list[int]):
    x = a
    x[0] = b[0] + 1
    return 0


@encoded
def _reassigns_then_writes(a: list[int]):
    y = [0] * 3
    a = y
    y[0] = 7
    return a[0]


def test_only_reachable_array_parameters_are_written_back() -> None:
    a, b = [1, 2, 3], [0, 0, 0]
    assert _reads_a_writes_b(a, b) == 3
    assert (a, b) == ([1, 2, 3], [2, 4, 6])
    src = _reads_a_writes_b.source()
    assert "_e_in_b[:] = _RT.dec_array(_e_arr_b)" in src
    assert "_e_in_a[:]" not in src  # a is only read: nothing to copy back

    a, b = [10, 20], [5, 6]
    assert _writes_through_an_alias(a, b) == 0
    plain_a = [10, 20]
    _writes_through_an_alias.original(plain_a, [5, 6])
    assert a == plain_a == [6, 20]
    assert "_e_in_a[:]" in _writes_through_an_alias.source()

    a = [1, 2, 3]
    assert _reassigns_then_writes(a) == 7
    assert a == [1, 2, 3]  # the stores went to the new array
    assert "_e_in_a[:]" in _reassigns_then_writes.source()  # a aliases a stored array: written back, conservatively


def test_a_written_parameter_is_still_checked_on_the_way_out() -> None:
    """b is stored into but never loaded: only the write-back check can see a lost update of its last store."""
    fault = FaultSpec(FaultModel.LOST_UPDATE, event=2)  # the third (last) store, b[2] = a[2] * 2
    run = _reads_a_writes_b.bind(Injector(EncodedOps(Code()), fault))
    b = [0, 0, 0]
    with pytest.raises(FaultDetectedError) as info:
        run([1, 2, 3], b)
    assert list(info.value.reasons) == ["VERSION"]
    assert b == [0, 0, 0]  # nothing was copied back
