"""Fault-injection campaigns: sample (or enumerate) the fault space of a kernel and classify every run.

Each kernel runs in two variants on the same injection points: ``encoded`` (the ALU of a :class:`Code`) and
``unencoded`` (the 32-bit wrapping baseline). A golden run of each variant gives the trace of ALU calls and the
expected output. For each fault model, ``n`` faults are drawn uniformly over the eligible dynamic events (and bits,
slots, values), each in a fresh run, and each run is classified:

* ``detected``: an :class:`~custodes.encoded.errors.EncodedError` stopped the run (fail-stop);
* ``masked``: the output (return value and array arguments) equals the golden output;
* ``sdc``: silent data corruption, a different output and no detection;
* ``crash``: any other exception (index error, division by zero, absurd allocation);
* ``timeout``: the run exceeded ``10 x`` the golden number of ALU calls plus 1000.

Sampling uses :class:`random.Random` with an explicit seed: campaigns are reproducible experiments, not security.

A variant with ``backend="c"`` runs the instrumented C build of the same program (``cbackend.py``): the C hooks
count dynamic events the way :class:`~custodes.encoded.faults.Injector` does, so the same :class:`FaultSpec`
names the same operation, operand and bits in both backends.
"""

from __future__ import annotations

import copy
import enum
import itertools
import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from custodes.encoded.baseline import PlainOps
from custodes.encoded.code import Code
from custodes.encoded.errors import EncodedError, EncodedUsageError
from custodes.encoded.faults import (
    CampaignCrash,
    CampaignTimeout,
    FaultModel,
    FaultSpec,
    Injector,
    alternatives,
    eligible,
    slots,
)
from custodes.encoded.kernels import KERNELS, Kernel
from custodes.encoded.ops import DEFAULT_CHECKS, EncodedOps

__all__ = [
    "Outcome",
    "Tally",
    "Variant",
    "encoded_variant",
    "exhaustive",
    "golden_run",
    "plan",
    "run_campaign",
    "run_one",
    "unencoded_variant",
    "wilson",
]


class Outcome(enum.Enum):
    """How one injected run ended."""

    DETECTED = "detected"
    MASKED = "masked"
    SDC = "sdc"
    CRASH = "crash"
    TIMEOUT = "timeout"


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval (95% by default) for ``k`` successes in ``n`` trials; ``(0, 1)`` for ``n == 0``."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(slots=True)
class Tally:
    """Outcome counts of one (kernel, model, variant) cell."""

    counts: dict[str, int] = field(default_factory=lambda: {o.value: 0 for o in Outcome})

    def add(self, outcome: Outcome) -> None:
        """Count one run."""
        self.counts[outcome.value] += 1

    @property
    def total(self) -> int:
        """Number of runs."""
        return sum(self.counts.values())

    def rate(self, outcome: Outcome) -> tuple[float, float, float]:
        """``(rate, low, high)`` of an outcome, with the Wilson 95% interval."""
        k, n = self.counts[outcome.value], self.total
        lo, hi = wilson(k, n)
        return (k / n if n else 0.0), lo, hi

    def to_json(self) -> dict[str, Any]:
        """Counts plus rates with intervals."""
        rates = {o.value: dict(zip(("rate", "low", "high"), self.rate(o), strict=True)) for o in Outcome}
        return {"n": self.total, "counts": dict(self.counts), "rates": rates}


@dataclass(frozen=True, slots=True)
class Variant:
    """One way to run a kernel: a name and an ALU factory."""

    name: str
    make_ops: Callable[[], EncodedOps | PlainOps]
    word_bits: int
    backend: str = "python"  # "c": the instrumented C build of the same program
    code: Code | None = None  # the C backend's code (None: the plain baseline)


def encoded_variant(code: Code, checks: str = DEFAULT_CHECKS, backend: str = "python") -> Variant:
    """The encoded variant under ``code``, with operand checks placed as ``checks`` says (see ``ops.py``)."""
    EncodedOps(code, checks)  # validates ``checks`` now, not in the first run
    if backend not in ("python", "c"):
        raise EncodedUsageError(None, "backend must be 'python' or 'c'")
    if backend == "c" and checks != "deferred":
        raise EncodedUsageError(None, "the C backend implements checks='deferred' only")
    return Variant("encoded", lambda: EncodedOps(code, checks), code.nbits, backend, code)


def unencoded_variant(backend: str = "python") -> Variant:
    """The 32-bit wrapping baseline."""
    if backend not in ("python", "c"):
        raise EncodedUsageError(None, "backend must be 'python' or 'c'")
    return Variant("unencoded", PlainOps, 32, backend, None)


_GOLDEN_BUDGET = 1 << 24  # ALU calls of a golden run of the C build (the trace buffer's size)


def _c_run(kernel: Kernel, variant: Variant, args: tuple[Any, ...], spec: FaultSpec | None, budget: int) -> Any:
    ck = kernel.fn.c_kernel(variant.code, inject=True)
    return ck.run_injected(args, spec, budget, record=spec is None)


def _output(result: Any, args: tuple[Any, ...]) -> Any:
    return (result, [list(a) for a in args if isinstance(a, list)])


def golden_run(kernel: Kernel, variant: Variant, args: tuple[Any, ...]) -> tuple[Any, list[str]]:
    """Run fault-free, recording the trace; returns ``(output, trace)``."""
    if variant.backend == "c":
        run_args = copy.deepcopy(args)
        run = _c_run(kernel, variant, run_args, None, _GOLDEN_BUDGET)
        if run.error is not None:
            raise run.error
        return _output(run.result, run_args), list(run.trace)
    inj = Injector(variant.make_ops(), record=True)
    run_args = copy.deepcopy(args)
    result = kernel.fn.bind(inj)(*run_args)
    return _output(result, run_args), inj.trace or []


def run_one(
    kernel: Kernel, variant: Variant, args: tuple[Any, ...], spec: FaultSpec, golden: Any, budget: int
) -> Outcome:
    """One injected run, classified."""
    if variant.backend == "c":
        run_args = copy.deepcopy(args)
        run = _c_run(kernel, variant, run_args, spec, budget)
        if isinstance(run.error, EncodedError):
            return Outcome.DETECTED
        if isinstance(run.error, CampaignTimeout):
            return Outcome.TIMEOUT
        if run.error is not None:
            return Outcome.CRASH
        return Outcome.MASKED if _output(run.result, run_args) == golden else Outcome.SDC
    inj = Injector(variant.make_ops(), spec, budget)
    run_args = copy.deepcopy(args)
    try:
        result = kernel.fn.bind(inj)(*run_args)
    except EncodedError:
        return Outcome.DETECTED
    except CampaignTimeout:
        return Outcome.TIMEOUT
    except (CampaignCrash, Exception):
        return Outcome.CRASH
    return Outcome.MASKED if _output(result, run_args) == golden else Outcome.SDC


def plan(
    model: FaultModel, trace: list[str], n: int, word_bits: int, rng: random.Random, max_bits: int = 2
) -> list[FaultSpec]:
    """``n`` faults of ``model`` drawn uniformly over the trace's eligible events (empty if there are none)."""
    events = [op for op in trace if eligible(model, op)]
    if not events:
        return []
    specs = []
    for _ in range(n):
        e = rng.randrange(len(events))
        op = events[e]
        if model is FaultModel.BITFLIP:
            k = rng.randint(1, max_bits)
            specs.append(
                FaultSpec(model, e, slot=rng.randrange(slots(op)), bits=tuple(rng.sample(range(word_bits), k)))
            )
        elif model is FaultModel.RANDOM:
            specs.append(FaultSpec(model, e, slot=rng.randrange(8), value=rng.getrandbits(word_bits)))
        elif model is FaultModel.FAULTY_OP:
            specs.append(FaultSpec(model, e, alt=rng.choice(alternatives(op))))
        else:
            specs.append(FaultSpec(model, e))
    return specs


def run_campaign(
    kernel_name: str,
    models: Iterable[FaultModel],
    n: int,
    *,
    code: Code | None = None,
    seed: int = 0,
    max_bits: int = 2,
    variants: Iterable[Variant] | None = None,
    checks: str = DEFAULT_CHECKS,
    backend: str = "python",
) -> dict[str, dict[str, Tally]]:
    """``n`` injections per model and variant on a built-in kernel: ``{model: {variant: Tally}}``."""
    kernel = KERNELS[kernel_name]
    args = kernel.default_args()
    default = [encoded_variant(code or Code(), checks, backend), unencoded_variant(backend)]
    chosen = list(variants) if variants is not None else default
    out: dict[str, dict[str, Tally]] = {}
    for model in models:
        out[model.value] = {}
        for variant in chosen:
            golden, trace = golden_run(kernel, variant, args)
            rng = random.Random(f"{seed}:{kernel_name}:{model.value}:{variant.name}")  # noqa: S311 - sampling
            tally = Tally()
            for spec in plan(model, trace, n, variant.word_bits, rng, max_bits):
                tally.add(run_one(kernel, variant, args, spec, golden, 10 * len(trace) + 1000))
            out[model.value][variant.name] = tally
    return out


def _flip_patterns(word_bits: int, max_bits: int) -> Iterator[tuple[int, ...]]:
    for k in range(1, max_bits + 1):
        yield from itertools.combinations(range(word_bits), k)


def exhaustive(kernel: Kernel, variant: Variant, args: tuple[Any, ...], max_bits: int = 2) -> Tally:
    """Every 1..``max_bits``-bit flip of every word slot (operands and result) at every dynamic ALU call."""
    golden, trace = golden_run(kernel, variant, args)
    budget = 10 * len(trace) + 1000
    tally = Tally()
    events = [op for op in trace if eligible(FaultModel.BITFLIP, op)]
    for e, op in enumerate(events):
        for slot in range(slots(op)):
            for bits in _flip_patterns(variant.word_bits, max_bits):
                tally.add(run_one(kernel, variant, args, FaultSpec(FaultModel.BITFLIP, e, slot, bits), golden, budget))
    return tally
