"""Fault injection and campaigns: outcomes, per-model detection, exhaustive flips, Wilson intervals."""

from __future__ import annotations

import pytest

from custodes.encoded import Code, PlainOps, encoded
from custodes.encoded.campaign import (
    Outcome,
    Variant,
    encoded_variant,
    exhaustive,
    golden_run,
    run_campaign,
    run_one,
    unencoded_variant,
    wilson,
)
from custodes.encoded.faults import FaultModel, FaultSpec, Injector, eligible, slots
from custodes.encoded.kernels import Kernel


@encoded
def tiny(x, y):
    z = x * y + 3
    if z > 10:
        return z - x
    return z


@encoded
def count_up(n):
    i = 0
    while i < n:
        i += 1
    return i


TINY = Kernel("tiny", tiny, lambda: (4, 5), lambda r: (r.randint(-9, 9), r.randint(-9, 9)))
LOOP = Kernel("loop", count_up, lambda: (5,), lambda r: (r.randint(0, 9),))


def test_wilson_interval() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    lo, hi = wilson(0, 100)
    assert lo == 0.0 and 0.036 < hi < 0.038
    lo, hi = wilson(50, 100)
    assert lo < 0.5 < hi and abs((lo + hi) / 2 - 0.5) < 1e-9
    assert wilson(100, 100)[1] == pytest.approx(1.0)


def test_exhaustive_one_and_two_bit_flips_at_every_point() -> None:
    args = TINY.default_args()
    _, trace = golden_run(TINY, encoded_variant(Code()), args)
    tally = exhaustive(TINY, encoded_variant(Code()), args, max_bits=2)
    points = sum(slots(op) for op in trace if eligible(FaultModel.BITFLIP, op))
    assert points > 10
    assert tally.total == points * (64 + 64 * 63 // 2)  # every 1- and 2-bit pattern of every word slot
    assert tally.counts["sdc"] == 0
    assert tally.counts["detected"] + tally.counts["masked"] == tally.total
    plain = exhaustive(TINY, unencoded_variant(), args, max_bits=1)
    assert plain.counts["sdc"] > 0 and plain.counts["detected"] == 0


def test_encoded_campaign_has_no_sdc_and_baseline_does() -> None:
    result = run_campaign("pid", list(FaultModel), 25, seed=7)
    enc = [result[m.value]["encoded"] for m in FaultModel]
    base = [result[m.value]["unencoded"] for m in FaultModel]
    assert sum(t.counts["sdc"] for t in enc) == 0
    assert sum(t.counts["detected"] for t in enc) > 0
    assert sum(t.counts["sdc"] for t in base) > 0
    assert sum(t.counts["detected"] for t in base) == 0


@pytest.mark.parametrize("model", [FaultModel.EXCHANGE, FaultModel.FAULTY_OP])
def test_signatures_matter_anb_detects_what_an_misses(model: FaultModel) -> None:
    anb = run_campaign("dosage", [model], 40, code=Code.anb(), seed=1)[model.value]["encoded"]
    an = run_campaign("dosage", [model], 40, code=Code.an(), seed=1)[model.value]["encoded"]
    assert anb.counts["sdc"] == 0 and anb.counts["detected"] == 40
    assert an.counts["sdc"] > 0
    assert an.counts["detected"] == 0


def test_lost_updates_need_versions() -> None:
    model = FaultModel.LOST_UPDATE
    for code, detected in ((Code.anbd(), True), (Code.anb(), False), (Code.an(), False)):
        tally = run_campaign("bubblesort", [model], 30, code=code, seed=2)[model.value]["encoded"]
        if detected:
            assert tally.counts["detected"] == 30
        else:
            assert tally.counts["detected"] == 0 and tally.counts["sdc"] > 0


def test_wrong_branch_detected_encoded_and_hangs_plain() -> None:
    golden, trace = golden_run(LOOP, unencoded_variant(), (5,))
    branches = trace.count("branch")
    outcomes = {
        run_one(LOOP, unencoded_variant(), (5,), FaultSpec(FaultModel.WRONG_BRANCH, event=e), golden, 200)
        for e in range(branches)
    }
    assert Outcome.SDC in outcomes
    enc_golden, _ = golden_run(LOOP, encoded_variant(Code()), (5,))
    for e in range(branches):
        spec = FaultSpec(FaultModel.WRONG_BRANCH, event=e)
        assert run_one(LOOP, encoded_variant(Code()), (5,), spec, enc_golden, 200) is Outcome.DETECTED


def test_timeouts_and_crashes_are_classified() -> None:
    golden, trace = golden_run(LOOP, unencoded_variant(), (5,))
    # Flip bit 30 of the loop bound in the plain variant: the loop runs for about 2**30 steps -> timeout.
    spec = FaultSpec(FaultModel.BITFLIP, event=0, slot=0, bits=(30,))
    assert run_one(LOOP, unencoded_variant(), (5,), spec, golden, 10 * len(trace) + 100) is Outcome.TIMEOUT

    @encoded
    def pick(a: list[int], i):
        return a[i]

    kernel = Kernel("pick", pick, lambda: ([1, 2, 3], 1), lambda r: ([1, 2, 3], 0))
    g, _ = golden_run(kernel, unencoded_variant(), kernel.default_args())
    spec = FaultSpec(FaultModel.BITFLIP, event=1, slot=0, bits=(12,))  # the load's index operand
    assert run_one(kernel, unencoded_variant(), kernel.default_args(), spec, g, 100) is Outcome.CRASH


def test_injector_fires_exactly_once() -> None:
    inj = Injector(PlainOps(), FaultSpec(FaultModel.FAULTY_OP, event=0, alt="sub"))
    assert tiny.bind(inj)(4, 5) != tiny.original(4, 5)
    assert inj.fired
    golden = Injector(PlainOps(), record=True)
    assert tiny.bind(golden)(4, 5) == tiny.original(4, 5)
    assert golden.trace and "mul" in golden.trace


def test_variant_factory_is_used_per_run() -> None:
    made: list[object] = []

    def make() -> PlainOps:
        made.append(object())
        return PlainOps()

    variant = Variant("counting", make, 32)
    golden, _ = golden_run(TINY, variant, (4, 5))
    run_one(TINY, variant, (4, 5), FaultSpec(FaultModel.BITFLIP, 0, 0, (3,)), golden, 100)
    assert len(made) == 2
