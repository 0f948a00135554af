"""The @encoded transformer: same outputs as the original, clear refusals, fail-stop on faults."""

from __future__ import annotations

import copy
import inspect
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.encoded import (
    Code,
    EncodedOps,
    EncodedOverflowError,
    EncodedRangeError,
    EncoderError,
    FaultDetectedError,
    PlainOps,
    encoded,
)
from custodes.encoded.faults import FaultModel, FaultSpec, Injector
from custodes.encoded.kernels import KERNELS

LIMIT = 77
SMALL = st.integers(-5_000, 5_000)


@encoded
def constructs(x, y):
    """Exercises every supported construct."""
    s = 0
    i = 0
    while i < 12:
        i += 1
        if i == 3:
            continue
        if i > 10:
            break
        s += x % (i + 1) - (y >> 2) + (x << 1)
        s = min(s, 100_000) + max(-x, y) + abs(x - y)
        t = 1 if (x > y and not y == 2) or x == 0 else -1  # noqa: SIM201 - `not` on a comparison is under test
        s = s - t * LIMIT
    b = [0] * 4
    b[2] += s
    b[3] = -b[2] // 3
    b[0], b[1] = b[3], b[2]
    for j in range(3, -1, -1):
        s += b[j] * (j + 1)
    return s + len(b) + (not x) + (y != 0 and x // y > 2)


@encoded
def flag(x):
    return x > 3


@encoded
def scale_in_place(a: list[int], k):
    for i in range(len(a)):
        a[i] *= k


@settings(max_examples=60, deadline=None)
@given(x=SMALL, y=SMALL)
def test_constructs_match_the_original(x: int, y: int) -> None:
    expected = constructs.original(x, y)
    assert constructs(x, y) == expected
    assert constructs.bind(EncodedOps(Code.an()))(x, y) == expected
    assert constructs.bind(EncodedOps(Code.anb(A=63877)))(x, y) == expected
    assert constructs.bind(PlainOps())(x, y) == expected


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), name=st.sampled_from(sorted(KERNELS)))
def test_kernels_match_originals_on_random_inputs(seed: int, name: str) -> None:
    kernel = KERNELS[name]
    args = kernel.random_args(random.Random(seed))
    a1, a2 = copy.deepcopy(args), copy.deepcopy(args)
    assert kernel.fn(*a1) == kernel.fn.original(*a2)
    assert a1 == a2  # in-place updates of list arguments are written back


def test_bool_results_and_in_place_lists() -> None:
    assert flag(5) is True and flag(1) is False
    data = [1, -2, 3]
    assert scale_in_place(data, 3) is None
    assert data == [3, -6, 9]


def test_short_circuit_is_kept() -> None:
    assert constructs(5, 0) == constructs.original(5, 0)  # `y != 0 and x // y > 2` with y == 0


def test_generated_code_uses_the_alu_only() -> None:
    src = constructs.source()
    assert "_RT.mul" in src and "_RT.branch" in src and "_RT.expect" in src
    assert " * " not in src and " // " not in src


def test_overflow_and_range_are_fail_stop() -> None:
    @encoded
    def square(x):
        return x * x

    assert square(46_340) == 46_340**2
    with pytest.raises(EncodedOverflowError):
        square(46_341)
    with pytest.raises(EncodedRangeError):
        square(2**31)


def test_a_fault_in_production_configuration_raises() -> None:
    kernel = KERNELS["dosage"]
    injector = Injector(EncodedOps(Code()), FaultSpec(FaultModel.BITFLIP, event=3, slot=0, bits=(17,)))
    with pytest.raises(FaultDetectedError) as e:
        kernel.fn.bind(injector)(*kernel.default_args())
    assert e.value.code == "FAULT_DETECTED"
    assert injector.fired


def _def_line(fn_source: str, needle: str) -> int:
    lines = fn_source.splitlines()
    return next(i for i, line in enumerate(lines) if needle in line)


REFUSED = {
    "true division": ("def f(x):\n    return x / 2\n", "/ 2", "Div"),
    "power": ("def f(x):\n    return x ** 2\n", "**", "Pow"),
    "call": ("def f(x):\n    y = print(x)\n    return y\n", "print", "unsupported call"),
    "iterate a list": (
        "def f(a: list[int]):\n    s = 0\n    for v in a:\n        s += v\n    return s\n",
        "in a",
        "range",
    ),
    "chained comparison": ("def f(x):\n    return 0 < x < 5\n", "0 < x", "chained"),
    "try": ("def f(x):\n    try:\n        return x\n    finally:\n        pass\n", "try", "Try"),
    "float": ("def f(x):\n    return x + 1.5\n", "1.5", "float"),
    "nested def": ("def f(x):\n    def g():\n        return 1\n    return x\n", "def g", "nested"),
    "continue in for": ("def f(x):\n    for i in range(x):\n        continue\n    return x\n", "continue", "while"),
    "unknown name": ("def f(x):\n    return x + undefined_thing\n", "undefined", "neither"),
    "keyword args": ("def f(x, *, y):\n    return x\n", "def f", "positional"),
    "bitwise": ("def f(x):\n    return x & 3\n", "x & 3", "BitAnd"),
    "string": ("def f(x):\n    return 'a'\n", "'a'", "str"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_unsupported_constructs_are_refused_with_line_and_column(case: str, tmp_path: object) -> None:
    body, needle, fragment = REFUSED[case]
    namespace: dict[str, object] = {}
    path = f"{tmp_path}/mod_{abs(hash(case))}.py"
    source = "# header\n" + body
    with open(path, "w") as fh:
        fh.write(source)
    exec(compile(source, path, "exec"), namespace)
    with pytest.raises(EncoderError) as e:
        encoded(namespace["f"])  # type: ignore[arg-type]
    err = e.value
    assert fragment in err.message
    assert err.filename == path
    expected_line = _def_line(source, needle) + 1
    assert err.lineno == expected_line
    line = source.splitlines()[expected_line - 1]
    assert 1 <= err.col <= len(line)
    assert f"{path}:{err.lineno}:{err.col}" in str(err)


def test_other_decorators_are_refused() -> None:
    def deco(fn: object) -> object:
        return fn

    with pytest.raises(EncoderError, match="other decorators"):

        @encoded
        @deco
        def f(x):
            return x

    assert inspect.isfunction(deco)
