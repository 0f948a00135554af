"""Deferred checks (the default): detection is proven on kernels built to stress deferral, not assumed.

Under ``checks="deferred"`` the additive operations (``+ - neg <<``, copies, the operands of a select) do not check
their operands; an error propagates to the first operation that could mask it, which checks. These tests inject
every 1- and 2-bit flip at every injection point of small kernels in which additive results travel far (through
selects, swaps, loops and memory) before they are consumed, and each fault model of the issue on top. The
``every-op`` mode is kept and gives the same outcomes.
"""

from __future__ import annotations

import copy
import random

import pytest

from custodes.encoded import Code, EncodedOps, FaultDetectedError, encoded
from custodes.encoded.campaign import (
    Outcome,
    encoded_variant,
    exhaustive,
    golden_run,
    run_campaign,
    run_one,
    unencoded_variant,
)
from custodes.encoded.faults import FaultModel, FaultSpec, Injector, eligible, slots
from custodes.encoded.kernels import KERNELS, Kernel


@encoded
def chain(x, y):
    """Every additive op, feeding the consumers that check: comparison of two variables, select, mul, return."""
    s = x + y
    t = (s << 1) - y
    u = max(-t, x)
    if u > s:
        return u * 3
    return u - 1


@encoded
def shuffle(a: list[int], m):
    """Additive values that reach memory and loops before any masking consumer."""
    a[0], a[1] = a[1], a[0] + m
    for i in range(1, len(a)):
        a[i] = a[i - 1] - a[i]
    return min(a[0], a[1]) << 1


CHAIN = Kernel("chain", chain, lambda: (5, -3), lambda r: (r.randint(-99, 99), r.randint(-99, 99)))
SHUFFLE = Kernel("shuffle", shuffle, lambda: ([4, -7], 3), lambda r: ([r.randint(-9, 9) for _ in range(3)], 2))
DEFERRED = encoded_variant(Code())
EVERY_OP = encoded_variant(Code(), "every-op")


def test_deferred_is_the_production_default() -> None:
    assert chain.checks == "deferred" and EncodedOps(Code()).checks == "deferred"
    src = chain.source(inline=True)
    assert "_RT.add(" in src  # only as the fallback of the result range check
    every = encoded(chain.original, checks="every-op")
    assert len(every.source(inline=True)) > len(src)  # every-op checks more
    for fn in (chain, every):
        assert fn(5, -3) == chain.original(5, -3)
        assert fn(-40, 17) == chain.original(-40, 17)


@pytest.mark.parametrize("kernel", [CHAIN, SHUFFLE], ids=["chain", "shuffle"])
def test_exhaustive_one_and_two_bit_flips_deferred(kernel: Kernel) -> None:
    args = kernel.default_args()
    _, trace = golden_run(kernel, DEFERRED, args)
    points = sum(slots(op) for op in trace if eligible(FaultModel.BITFLIP, op))
    tally = exhaustive(kernel, DEFERRED, args, max_bits=2)
    assert tally.total == points * (64 + 64 * 63 // 2)
    assert tally.counts["sdc"] == 0
    assert tally.counts["crash"] == tally.counts["timeout"] == 0
    assert tally.counts["detected"] > 0.9 * tally.total


def test_every_op_and_deferred_detect_the_same_single_flips() -> None:
    """Every 1-bit flip: both modes detect it (deferred possibly later), neither lets it through silently."""
    args = CHAIN.default_args()
    for variant in (DEFERRED, EVERY_OP):
        tally = exhaustive(CHAIN, variant, args, max_bits=1)
        assert tally.counts["sdc"] == 0 and tally.counts["crash"] == 0


_NO_POINT = {("chain", FaultModel.LOST_UPDATE), ("pid", FaultModel.WRONG_BRANCH)}  # no store / no branch


@pytest.mark.parametrize(
    ("name", "model"),
    [(k, m) for k in ("chain", "shuffle", "pid", "bubblesort") for m in FaultModel if (k, m) not in _NO_POINT],
)
def test_each_fault_model_is_detected_under_deferred_checks(name: str, model: FaultModel) -> None:
    """One test per fault model of the issue, on the production default; the unencoded baseline is silent."""
    kernel = {"chain": CHAIN, "shuffle": SHUFFLE}.get(name) or KERNELS[name]
    args = kernel.default_args()
    results = {}
    for variant in (DEFERRED, unencoded_variant()):
        golden, trace = golden_run(kernel, variant, args)
        events = [op for op in trace if eligible(model, op)]
        assert events
        rng = random.Random(f"{name}:{model.value}")
        counts = dict.fromkeys(Outcome, 0)
        for _ in range(40):
            e = rng.randrange(len(events))
            op = events[e]
            spec = {
                FaultModel.BITFLIP: FaultSpec(model, e, rng.randrange(slots(op)), (rng.randrange(64),)),
                FaultModel.RANDOM: FaultSpec(model, e, rng.randrange(8), value=rng.getrandbits(64)),
                FaultModel.FAULTY_OP: FaultSpec(model, e),
            }.get(model, FaultSpec(model, e))
            counts[run_one(kernel, variant, args, spec, golden, 10 * len(trace) + 1000)] += 1
        results[variant.name] = counts
    assert results["encoded"][Outcome.SDC] == 0
    assert results["encoded"][Outcome.DETECTED] > 0
    assert results["encoded"][Outcome.CRASH] == 0
    if model is not FaultModel.EXCHANGE:  # exchanging equal words is masked; plain code has no other defence
        assert results["unencoded"][Outcome.DETECTED] == 0


def test_campaign_default_is_deferred_and_has_no_sdc() -> None:
    result = run_campaign("matmul", list(FaultModel), 30, seed=11)
    assert sum(result[m.value]["encoded"].counts["sdc"] for m in FaultModel) == 0
    assert sum(result[m.value]["unencoded"].counts["sdc"] for m in FaultModel) > 0


def test_a_propagated_error_is_caught_at_its_consumer() -> None:
    """A flip in the result of an add is not checked by the add; the multiply that consumes it stops the run."""
    _, trace = golden_run(CHAIN, DEFERRED, CHAIN.default_args())
    add = [op for op in trace if eligible(FaultModel.BITFLIP, op)].index("add")
    spec = FaultSpec(FaultModel.BITFLIP, event=add, slot=2, bits=(13,))  # slot 2: the add's result word
    inj = Injector(EncodedOps(Code()), spec)
    with pytest.raises(FaultDetectedError) as e:
        chain.bind(inj)(*CHAIN.default_args())
    assert inj.fired and e.value.reasons == ["RESIDUE"]
    assert inj.steps > add + 1  # detected later than the faulty operation itself


def test_transformed_kernels_agree_in_both_modes() -> None:
    rng = random.Random(5)
    for kernel in (CHAIN, SHUFFLE, *KERNELS.values()):
        every = kernel.fn.bind(EncodedOps(Code(), "every-op"))
        for _ in range(20):
            args = kernel.random_args(rng)
            a1, a2, a3 = copy.deepcopy(args), copy.deepcopy(args), copy.deepcopy(args)
            assert kernel.fn(*a1) == every(*a2) == kernel.fn.original(*a3)
            assert a1 == a2 == a3
