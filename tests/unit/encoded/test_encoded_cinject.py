"""Fault injection into the compiled code (the instrumented C build): detection per fault model, and agreement
with the Python injector fault by fault (same outcome, same exception, same reason and op)."""

from __future__ import annotations

import copy
import json
import random
from collections import Counter
from typing import Any

import pytest
from typer.testing import CliRunner

from custodes.cli._encoded import encoded_app
from custodes.encoded import Code, EncodedOps, FaultDetectedError, encoded
from custodes.encoded.campaign import (
    Outcome,
    encoded_variant,
    exhaustive,
    golden_run,
    plan,
    run_one,
    unencoded_variant,
)
from custodes.encoded.faults import FaultModel, FaultSpec, Injector, eligible, slots
from custodes.encoded.kernels import KERNELS, Kernel

pytestmark = pytest.mark.usefixtures("have_cc")


@encoded
def diff(x, y):
    return (x - y) * 3


DIFF = Kernel("diff", diff, lambda: (9, 4), lambda r: (r.randint(-9, 9), r.randint(-9, 9)))


def _outcomes(kernel: Kernel, model: FaultModel, n: int, code: Code | None = None) -> Counter[Outcome]:
    variant = encoded_variant(code or Code(), backend="c")
    args = kernel.default_args()
    golden, trace = golden_run(kernel, variant, args)
    specs = plan(model, trace, n, variant.word_bits, random.Random(f"c:{kernel.name}:{model.value}"))
    assert specs, "the kernel has injection points for this model"
    budget = 10 * len(trace) + 1000
    return Counter(run_one(kernel, variant, args, s, golden, budget) for s in specs)


@pytest.mark.parametrize(
    ("model", "kernel"),
    [
        (FaultModel.BITFLIP, "dosage"),
        (FaultModel.RANDOM, "checksum"),
        (FaultModel.EXCHANGE, "pid"),
        (FaultModel.FAULTY_OP, "pid"),
        (FaultModel.LOST_UPDATE, "bubblesort"),
        (FaultModel.WRONG_BRANCH, "dosage"),
    ],
)
def test_each_fault_model_is_detected_in_compiled_code(model: FaultModel, kernel: str) -> None:
    got = _outcomes(KERNELS[kernel], model, 60)
    assert got[Outcome.SDC] == 0 and got[Outcome.CRASH] == 0 and got[Outcome.TIMEOUT] == 0
    assert got[Outcome.DETECTED] >= 30  # the rest is masked (the output is the golden one)


def test_signatures_and_versions_matter_in_compiled_code() -> None:
    an, anb = _outcomes(DIFF, FaultModel.EXCHANGE, 20, Code.an()), _outcomes(DIFF, FaultModel.EXCHANGE, 20, Code.anb())
    assert an[Outcome.SDC] > 0 and anb[Outcome.SDC] == 0 and anb[Outcome.DETECTED] > 0
    bubble = KERNELS["bubblesort"]
    anb_lost = _outcomes(bubble, FaultModel.LOST_UPDATE, 30, Code.anb())
    anbd_lost = _outcomes(bubble, FaultModel.LOST_UPDATE, 30, Code.anbd())
    assert anb_lost[Outcome.SDC] > 0 and anbd_lost[Outcome.SDC] == 0


def test_unencoded_compiled_code_suffers_sdc() -> None:
    kernel = KERNELS["dosage"]
    variant = unencoded_variant("c")
    golden, trace = golden_run(kernel, variant, kernel.default_args())
    specs = plan(FaultModel.BITFLIP, trace, 40, 32, random.Random(3))
    outcomes = Counter(run_one(kernel, variant, kernel.default_args(), s, golden, 10**4) for s in specs)
    assert outcomes[Outcome.SDC] > 0


def _python_error(kernel: Kernel, spec: FaultSpec) -> tuple[str, str, str]:
    inj = Injector(EncodedOps(Code()), spec, 10**6)
    try:
        kernel.fn.bind(inj)(*copy.deepcopy(kernel.default_args()))
    except FaultDetectedError as e:
        return "FaultDetectedError", e.reason, e.where
    except Exception as e:
        return type(e).__name__, "", ""
    return "none", "", ""


def _c_error(kernel: Kernel, spec: FaultSpec) -> tuple[str, str, str]:
    c_kernel = kernel.fn.c_kernel(Code(), inject=True)
    run = c_kernel.run_injected(copy.deepcopy(kernel.default_args()), spec, 10**6, record=False)
    e: Any = run.error
    if isinstance(e, FaultDetectedError):
        return "FaultDetectedError", e.reason, e.where
    return (type(e).__name__, "", "") if e is not None else ("none", "", "")


def test_every_single_bit_flip_gives_the_same_exception_as_python() -> None:
    kernel = KERNELS["dosage"]
    _, trace = golden_run(kernel, encoded_variant(Code()), kernel.default_args())
    events = [op for op in trace if eligible(FaultModel.BITFLIP, op)]
    checked = 0
    for e, op in enumerate(events):
        for slot in range(slots(op)):
            for bit in range(0, 64, 3):
                spec = FaultSpec(FaultModel.BITFLIP, e, slot, (bit,))
                assert _c_error(kernel, spec) == _python_error(kernel, spec), spec
                checked += 1
    assert checked > 500


def test_exhaustive_flips_in_compiled_code_match_the_python_injector() -> None:
    kernel = KERNELS["dosage"]
    c_tally = exhaustive(kernel, encoded_variant(Code(), backend="c"), kernel.default_args(), max_bits=1)
    py_tally = exhaustive(kernel, encoded_variant(Code()), kernel.default_args(), max_bits=1)
    assert c_tally.counts == py_tally.counts
    assert c_tally.counts["sdc"] == 0 and c_tally.counts["detected"] > 0
    plain = exhaustive(kernel, unencoded_variant("c"), kernel.default_args(), max_bits=1)
    assert plain.counts == exhaustive(kernel, unencoded_variant(), kernel.default_args(), max_bits=1).counts


@pytest.mark.parametrize("model", list(FaultModel))
def test_sampled_faults_classify_identically_in_both_backends(model: FaultModel) -> None:
    for name in ("pid", "bubblesort"):
        kernel, args = KERNELS[name], KERNELS[name].default_args()
        pairs = (
            (encoded_variant(Code()), encoded_variant(Code(), backend="c")),
            (unencoded_variant(), unencoded_variant("c")),
        )
        for py_v, c_v in pairs:
            golden, trace = golden_run(kernel, py_v, args)
            assert golden_run(kernel, c_v, args) == (golden, trace)  # same output, same dynamic trace
            budget = 10 * len(trace) + 1000
            for spec in plan(model, trace, 25, py_v.word_bits, random.Random(f"{name}{model}")):
                assert run_one(kernel, py_v, args, spec, golden, budget) == run_one(
                    kernel, c_v, args, spec, golden, budget
                ), spec


def test_c_variant_refuses_every_op_checks() -> None:
    with pytest.raises(Exception, match="deferred"):
        encoded_variant(Code(), "every-op", backend="c")


def test_cli_campaign_on_the_c_backend() -> None:
    args = ["campaign", "-k", "pid", "-n", "30", "-m", "bitflip", "-m", "lost_update", "--backend", "c", "--json"]
    result = CliRunner().invoke(encoded_app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["backend"] == "c"
    assert doc["summary"]["encoded"]["sdc"] == 0 and doc["summary"]["encoded"]["injected"] == 60
    assert doc["summary"]["unencoded"]["sdc"] > 0
    bad = CliRunner().invoke(encoded_app, ["campaign", "-k", "pid", "--backend", "c", "--checks", "every-op"])
    assert bad.exit_code != 0
