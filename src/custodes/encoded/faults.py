"""Fault injection at the level of encoded operations (the FAIL* style, but on the emulated ALU).

An :class:`Injector` wraps an ALU (:class:`~custodes.encoded.ops.EncodedOps` or the :class:`PlainOps` baseline)
and is bound to a transformed function in its place. Every ALU call is a dynamic *event*. A golden run records the
trace of events; a :class:`FaultSpec` then names one event among those eligible for its model and exactly what to
corrupt, so a campaign (``campaign.py``) can sample the fault space uniformly or enumerate it.

Fault models (one per symptom, so that per-symptom rates are visible):

* ``bitflip``: flip the given bits of one operand word or of the result word;
* ``random``: replace one operand word by a given random word;
* ``exchange``: exchange the two operand words of a binary operation (``y op x``; for a store, index and value);
* ``faulty_op``: execute another operator of the same family (``+ - *``, ``// %``, comparisons, ``and or``, shifts);
* ``lost_update``: a store to memory does not happen (the old word stays; an ANBD version table still advances);
* ``wrong_branch``: a branch goes the other way.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from custodes.encoded.code import wrap

__all__ = [
    "FAMILIES",
    "SPECS",
    "CampaignCrash",
    "CampaignTimeout",
    "FaultModel",
    "FaultSpec",
    "Injector",
    "alternatives",
    "eligible",
    "slots",
]


class FaultModel(enum.Enum):
    """The fault models of the issue."""

    BITFLIP = "bitflip"
    RANDOM = "random"
    EXCHANGE = "exchange"
    FAULTY_OP = "faulty_op"
    LOST_UPDATE = "lost_update"
    WRONG_BRANCH = "wrong_branch"


@dataclass(frozen=True, slots=True)
class _Spec:
    operands: tuple[int, ...]  # argument positions that hold words
    result: bool  # the result is a word


#: ALU method -> where its words are. Methods not listed (enc_array, dec_array) are the I/O boundary.
SPECS: dict[str, _Spec] = {
    **{m: _Spec((0, 2), True) for m in ("add", "sub", "mul", "div", "mod", "lt", "le", "eq", "ne", "gt", "ge")},
    **{m: _Spec((0, 2), True) for m in ("land", "lor")},
    **{m: _Spec((0,), True) for m in ("mov", "neg", "shl", "shr", "lnot", "chk")},
    "enc": _Spec((), True),
    "dec": _Spec((0,), False),
    "select": _Spec((0, 2, 4), True),
    "branch": _Spec((0,), False),
    "expect": _Spec((0,), False),
    "load": _Spec((1,), True),
    "store": _Spec((1, 3), False),
    "new_array": _Spec((0,), False),
    "length": _Spec((), True),
}
#: Operator families for ``faulty_op``: an op may be replaced by another of its family.
FAMILIES: tuple[tuple[str, ...], ...] = (
    ("add", "sub", "mul"),
    ("div", "mod"),
    ("lt", "le", "eq", "ne", "gt", "ge"),
    ("land", "lor"),
    ("shl", "shr"),
)
_FAMILY = {op: fam for fam in FAMILIES for op in fam}
_MAX_ALLOCATION = 1 << 24


class CampaignTimeout(Exception):
    """The run exceeded its step budget (a hang, e.g. a corrupted loop bound)."""


class CampaignCrash(Exception):
    """The run asked for an absurd allocation (what the OS would kill); classified as a crash."""


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One fault: ``event`` indexes the events eligible for ``model`` in the golden trace.

    ``slot`` is the index into the event's word slots (operands, then the result), ``bits`` the bits to flip,
    ``value`` the replacement word (``random``) and ``alt`` the replacement operator (``faulty_op``).
    """

    model: FaultModel
    event: int
    slot: int = 0
    bits: tuple[int, ...] = ()
    value: int = 0
    alt: str = ""


def eligible(model: FaultModel, op: str) -> bool:
    """Whether a dynamic call of ``op`` is an injection point for ``model``."""
    spec = SPECS[op]
    if model is FaultModel.BITFLIP:
        return bool(spec.operands) or spec.result
    if model is FaultModel.RANDOM:
        return bool(spec.operands)
    if model is FaultModel.EXCHANGE:
        return len(spec.operands) >= 2
    if model is FaultModel.FAULTY_OP:
        return op in _FAMILY
    if model is FaultModel.LOST_UPDATE:
        return op == "store"
    return op == "branch"


def slots(op: str) -> int:
    """How many word slots (operands, then result) a call of ``op`` has."""
    spec = SPECS[op]
    return len(spec.operands) + (1 if spec.result else 0)


def alternatives(op: str) -> tuple[str, ...]:
    """The other operators of ``op``'s family."""
    return tuple(o for o in _FAMILY.get(op, ()) if o != op)


class Injector:
    """Wraps an ALU; records the trace, or injects one :class:`FaultSpec`. Not thread-safe: one per run.

    Args:
        inner: the ALU (``EncodedOps`` or ``PlainOps``).
        fault: the fault to inject, or None for a golden run.
        budget: maximum number of ALU calls before :class:`CampaignTimeout`.
        record: keep the op names of all calls in ``trace``.
    """

    def __init__(self, inner: Any, fault: FaultSpec | None = None, budget: int = 1 << 62, *, record: bool = False):
        self.inner = inner
        self.fault = fault
        self.budget = budget
        self.steps = 0
        self.seen = 0
        self.fired = False
        self.trace: list[str] | None = [] if record else None
        self._bits = inner.word_bits
        self._mask = (1 << self._bits) - 1

    def _flip(self, word: int, bits: tuple[int, ...]) -> int:
        mask = 0
        for b in bits:
            mask |= 1 << b
        return wrap((word & self._mask) ^ mask, self._bits)

    def _call(self, op: str, args: tuple[Any, ...]) -> Any:
        self.steps += 1
        if self.steps > self.budget:
            raise CampaignTimeout(op)
        if self.trace is not None:
            self.trace.append(op)
        f = self.fault
        if f is not None and not self.fired and eligible(f.model, op):
            if self.seen == f.event:
                self.fired = True
                return self._inject(f, op, list(args))
            self.seen += 1
        if op == "new_array":
            return self._new_array(*args)
        return getattr(self.inner, op)(*args)

    def _new_array(self, *args: Any) -> Any:
        self._guard_allocation(args)
        return self.inner.new_array(*args)

    def _inject(self, f: FaultSpec, op: str, args: list[Any]) -> Any:
        spec = SPECS[op]
        fn: Callable[..., Any] = self._new_array if op == "new_array" else getattr(self.inner, op)
        if f.model is FaultModel.BITFLIP:
            if f.slot < len(spec.operands):
                pos = spec.operands[f.slot]
                args[pos] = self._flip(args[pos], f.bits)
                return fn(*args)
            return self._flip(fn(*args), f.bits)
        if f.model is FaultModel.RANDOM:
            args[spec.operands[f.slot % len(spec.operands)]] = wrap(f.value, self._bits)
            return fn(*args)
        if f.model is FaultModel.EXCHANGE:
            p, q = spec.operands[-2], spec.operands[-1]
            args[p], args[q] = args[q], args[p]
            return fn(*args)
        if f.model is FaultModel.FAULTY_OP:
            return getattr(self.inner, f.alt or alternatives(op)[0])(*args)
        if f.model is FaultModel.LOST_UPDATE:
            arr = args[0]
            old = list(arr.words)
            fn(*args)
            arr.words[:] = old  # the word never reached memory; an ANBD version table has advanced
            return None
        return not fn(*args)  # WRONG_BRANCH

    def _guard_allocation(self, args: tuple[Any, ...]) -> None:
        n, bn = args[0], args[1]
        code = getattr(self.inner, "code", None)
        size = n if code is None else ((n - bn) // code.A if (n - bn) % code.A == 0 else 0)
        if size > _MAX_ALLOCATION:
            raise CampaignCrash("allocation too large")
        self.steps += max(size, 0)  # initialising memory takes time: a huge array counts against the budget
        if self.steps > self.budget:
            raise CampaignTimeout("new_array")


def _method(op: str) -> Callable[..., Any]:
    def method(self: Injector, *args: Any) -> Any:
        return self._call(op, args)

    method.__name__ = op
    return method


for _op in SPECS:
    setattr(Injector, _op, _method(_op))
for _op in ("enc_array", "dec_array"):
    setattr(Injector, _op, lambda self, *a, _o=_op: getattr(self.inner, _o)(*a))
