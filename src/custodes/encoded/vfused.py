"""Whole-kernel fusion for encoded vectors: one compiled C loop for a whole expression of ``VectorOps`` calls.

``fuse(ops, fn, *sigs)`` calls ``fn`` once with symbolic vectors (a tracer with ``VectorOps``' methods), records
the expression and generates one C loop that computes it element by element in registers, with every check the
deferred numpy form makes at the same operation (``mul`` and division check their operands, comparisons their
word difference, ``where`` its condition, ``decode`` its operand; additive operations propagate errors). The loop
reads each input once and writes the result once: no intermediate array is ever stored. The source is compiled
once and cached (``_cbuild.py``).

Same results as running ``fn`` on ``VectorOps(check="deferred")``, and the same exception when one operation
fails. The tracer keeps the numpy form's magnitude bounds and checks an additive operation's operands where the
numpy form does (``VectorOps.grown``: before a lane could wrap back into range). The trace assumes inputs within the
range: for an input that is itself an unchecked result beyond it (``EncodedVector.bound``), a call re-derives the
decisions, and if one differs runs the traced expression through ``VectorOps`` (the numpy form's semantics). Shift
counts are those of ``VectorOps.shift``. When several fail, the first failing operation (in evaluation order) of
the first failing chunk is reported; the numpy form finishes each operation over all chunks before the next, so
when independent failures sit in different chunks it may report another of them.
"""

from __future__ import annotations

import ctypes
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from custodes.encoded._cbuild import NATIVE, CompilerUnavailable, build
from custodes.encoded._cvector import CMP_CODES, operands, ptr, raise_status
from custodes.encoded._vkernels import CHUNK
from custodes.encoded.errors import EncodedUsageError
from custodes.encoded.vector import EncodedVector, VectorOps, _vec

__all__ = ["FusedKernel", "fuse"]

Int64Array = npt.NDArray[np.int64]
_M = (1 << 64) - 1
_CMP_C = {"lt": "<", "le": "<=", "eq": "==", "ne": "!=", "gt": ">", "ge": ">="}


@dataclass(frozen=True, eq=False)
class Sym:
    """A symbolic encoded vector: an input or the result of a traced operation."""

    kind: str
    args: tuple[Sym, ...]
    sig: int
    extra: tuple[Any, ...] = field(default=())
    bound: int | None = None  # as ``EncodedVector.bound``: the magnitude of an unchecked result beyond the range


class _Tracer:
    """``VectorOps``' element-wise methods, recording instead of computing."""

    def __init__(self, ops: VectorOps) -> None:
        self.ops = ops
        self.range = ops._range

    def _s(self, sig: int) -> int:
        return self.ops._sig(sig)

    def _additive(self, kind: str, x: Sym, y: Sym, sig: int) -> Sym:
        bound, check = self.ops.grown(operator.add, (x.bound, y.bound))
        return Sym(kind, (x, y), self._s(sig), check, bound)

    def add(self, x: Sym, y: Sym, sig: int = 0) -> Sym:
        return self._additive("add", x, y, sig)

    def sub(self, x: Sym, y: Sym, sig: int = 0) -> Sym:
        return self._additive("sub", x, y, sig)

    def mul(self, x: Sym, y: Sym, sig: int = 0) -> Sym:
        return Sym("mul", (x, y), self._s(sig), (), self.range * self.range)  # checked factors, as VectorOps.mul

    def floordiv(self, x: Sym, y: Sym, sig: int = 0) -> Sym:
        return Sym("div", (x, y), self._s(sig))

    def mod(self, x: Sym, y: Sym, sig: int = 0) -> Sym:
        return Sym("mod", (x, y), self._s(sig))

    def shr(self, x: Sym, n: int, sig: int = 0) -> Sym:
        return Sym("shr", (x,), self._s(sig), (self.ops.shift(n),))

    def compare(self, op: str, x: Sym, y: Sym, sig: int = 0) -> Sym:
        if op not in CMP_CODES:
            raise EncodedUsageError(None, f"unknown comparison {op!r}")
        return Sym("cmp", (x, y), self._s(sig), (op,))

    def where(self, c: Sym, x: Sym, y: Sym, sig: int = 0) -> Sym:
        bound, check = self.ops.grown(max, (x.bound, y.bound))
        return Sym("where", (c, x, y), self._s(sig), tuple(i + 1 for i in check), bound)

    def decode(self, x: Sym) -> Sym:
        return Sym("decode", (x,), 0)


class _Gen:
    def __init__(self, ops: VectorOps) -> None:
        self.v = ops
        self.inv = ops._inv_int & _M
        self.A = ops.code.A
        self.names: dict[int, str] = {}
        self.order: list[Sym] = []
        self.lines: list[str] = []
        self.flags: list[tuple[str, str]] = []  # (flag variable, operation name) in evaluation order

    def ok(self, expr: str, sig: int, low: int | None = None, span: int | None = None) -> str:
        """The C test ``expr`` is a valid word (``Checker`` as one unsigned comparison)."""
        low = self.v.code.min_value if low is None else low
        span = self.v._span if span is None else span
        base = (sig * self.inv + low) & _M
        return f"((uint64_t)({expr}) * UINT64_C({self.inv}) - UINT64_C({base}) <= UINT64_C({span}))"

    def flag(self, op: str, kind: str, cond: str) -> None:
        name = f"f{len(self.flags)}"
        self.flags.append((name, f"{kind}:{op}"))
        self.lines.append(f"{name} |= ({cond});")

    def emit(self, s: Sym, inputs: list[Sym]) -> str:
        if id(s) in self.names:
            return self.names[id(s)]
        if s.kind == "input":
            name = f"x{inputs.index(s)}"
            self.names[id(s)] = name
            return name
        a = [self.emit(x, inputs) for x in s.args]
        sigs = [x.sig for x in s.args]
        name = f"t{len(self.names)}"
        self.names[id(s)] = name
        w = "(int64_t)"
        if s.kind in ("add", "sub", "where") and s.extra:  # VectorOps.grown: operands checked before they could wrap
            self.flag(s.kind, "bad", " | ".join(f"!{self.ok(a[i], sigs[i])}" for i in s.extra))
        if s.kind in ("add", "sub"):
            k = s.sig - sigs[0] - sigs[1] if s.kind == "add" else s.sig - sigs[0] + sigs[1]
            sign = "+" if s.kind == "add" else "-"
            add = f"(uint64_t){a[0]} {sign} (uint64_t){a[1]} + (uint64_t)INT64_C({k})"
            self.lines.append(f"int64_t {name} = {w}({add});")
        elif s.kind == "mul":
            self.flag("mul", "bad", f"!{self.ok(a[0], sigs[0])} | !{self.ok(a[1], sigs[1])}")
            dec = (-sigs[1] * self.inv) & _M
            yv = f"((uint64_t){a[1]} * UINT64_C({self.inv}) + UINT64_C({dec}))"
            self.lines.append(
                f"int64_t {name} = {w}(((uint64_t){a[0]} - UINT64_C({sigs[0]})) * {yv} + UINT64_C({s.sig}));"
            )
        elif s.kind in ("div", "mod", "shr"):
            self.division(s, name, a, sigs)
        elif s.kind == "cmp":
            off = sigs[0] - sigs[1]
            d = f"{name}_d"
            self.lines.append(f"int64_t {d} = {w}((uint64_t){a[0]} - (uint64_t){a[1]});")
            self.flag(s.extra[0], "bad", f"!{self.ok(d, off, -self.v._span, 2 * self.v._span)}")
            test = f"{d} {_CMP_C[s.extra[0]]} INT64_C({off})"
            self.lines.append(f"int64_t {name} = (int64_t)({test}) * INT64_C({self.A}) + INT64_C({s.sig});")
        elif s.kind == "where":
            self.flag("where", "bad", f"!{self.ok(a[0], sigs[0], 0, 1)}")
            kx, ky = s.sig - sigs[1], s.sig - sigs[2]
            # branch-free select (a mask), so that the loop has no control flow and vectorises
            self.lines.append(
                f"uint64_t {name}_m = -(uint64_t)({a[0]} != INT64_C({sigs[0]})); int64_t {name} = {w}("
                f"({name}_m & ((uint64_t){a[1]} + (uint64_t)INT64_C({kx})))"
                f" | (~{name}_m & ((uint64_t){a[2]} + (uint64_t)INT64_C({ky}))));"
            )
        elif s.kind == "decode":
            self.flag("decode", "bad", f"!{self.ok(a[0], sigs[0])}")
            dec = (-sigs[0] * self.inv) & _M
            self.lines.append(f"int64_t {name} = {w}((uint64_t){a[0]} * UINT64_C({self.inv}) + UINT64_C({dec}));")
        else:
            raise EncodedUsageError(None, f"cannot fuse {s.kind!r}")
        return name

    def division(self, s: Sym, name: str, a: list[str], sigs: list[int]) -> None:
        where = "shr" if s.kind == "shr" else s.kind
        mod = s.kind == "mod"
        if s.kind == "shr":  # a constant divisor fixed by the program: 2**n, never zero
            self.flag(where, "bad", f"!{self.ok(a[0], sigs[0])}")
            w = f"INT64_C({(1 << s.extra[0]) * self.A})"
        else:
            self.flag(where, "bad", f"!{self.ok(a[0], sigs[0])} | !{self.ok(a[1], sigs[1])}")
            self.lines.append(f"int64_t {name}_w = {a[1]} - INT64_C({sigs[1]});")
            self.flag(where, "zero", f"{name}_w == 0")
            w = f"({name}_w + ({name}_w == 0))"  # a zero divisor (flagged above) becomes 1, without a branch
        u, q, r = f"{name}_u", f"{name}_q", f"{name}_r"
        self.lines += [
            f"int64_t {u} = {a[0]} - INT64_C({sigs[0]}), ws_{name} = {w};",
            # An estimate within 1 of the quotient (|u|, |w| < 2**53: a loop-invariant reciprocal is hoisted, so a
            # constant divisor costs a multiplication), moved to the floor quotient without branches; the
            # multiply-back test below (VERIFY) checks the result whatever computed it.
            f"int64_t {q} = (int64_t)((double){u} * (1.0 / (double)ws_{name})), {r} = {u} - {q} * ws_{name};",
            f"int64_t {name}_p = ws_{name} > 0;",
            # ``&``/``|`` of comparisons, not ``?:``: no control flow, so the loop vectorises
            f"int64_t {name}_a = ({name}_p & ({r} < 0)) | (!{name}_p & ({r} > 0));",
            f"{q} -= {name}_a; {r} += {name}_a * ws_{name};",
            f"int64_t {name}_b = ({name}_p & ({r} >= ws_{name})) | (!{name}_p & ({r} <= ws_{name}));",
            f"{q} += {name}_b; {r} -= {name}_b * ws_{name};",
        ]
        # 0 <= r < w (w > 0) or w < r <= 0 (w < 0), as unsigned comparisons (no branch)
        ws = f"ws_{name}"
        self.flag(
            where,
            "ver",
            f"({name}_p & ((uint64_t){r} >= (uint64_t){ws}))"
            f" | (!{name}_p & ((UINT64_C(0) - (uint64_t){r}) >= (UINT64_C(0) - (uint64_t){ws})))",
        )
        if not mod:
            self.flag(where, "ovf", f"{q} > INT64_C({self.v.code.max_value})")
        value = f"{r} + INT64_C({s.sig})" if mod else f"{q} * INT64_C({self.A}) + INT64_C({s.sig})"
        self.lines.append(f"int64_t {name} = {value};")


_STATUS = {"bad": 1, "zero": 3, "ver": 4, "ovf": 2}
_FLAGS: tuple[str, ...] = ("-O3", NATIVE)


class FusedKernel:
    """A traced expression compiled to one C loop. Call it with the input vectors, in the traced order."""

    def __init__(self, ops: VectorOps, root: Sym, inputs: list[Sym]) -> None:
        if ops.eager:
            raise EncodedUsageError(None, "fusion implements check='deferred' only")
        gen = _Gen(ops)
        result = gen.emit(root, inputs)
        self.ops, self.inputs, self.root = ops, inputs, root
        self.flags = gen.flags
        self._result, self._lines = result, gen.lines
        self._compiled: dict[tuple[int, ...], Any] = {}
        self._function((1,) * len(inputs))  # compile now: a missing compiler fails at fuse(), not at the first call

    def _function(self, strides: tuple[int, ...]) -> Any:
        """The loop for one pattern of strides: a 0-d input (stride 0) is loaded once, before the loop."""
        fn = self._compiled.get(strides)
        if fn is not None:
            return fn
        head = [
            f"int64_t x{i} = ins[{i}][0];" if s == 0 else f"const int64_t *restrict in{i} = ins[{i}];"
            for i, s in enumerate(strides)
        ]
        # The optimisation barrier, once per chunk (an ``asm`` inside the element loop would stop it vectorising):
        # the compiler must assume the asm rewrote the 0-d inputs and any memory, so every word a check reads
        # comes from a load or a register it cannot see through, and no check condition can be folded.
        opaque = [f"__asm__ volatile(\"\" : \"+r\"(x{i}));" for i, s in enumerate(strides) if s == 0]
        pointers = ", ".join(f'"r"(in{i})' for i, s in enumerate(strides) if s)
        opaque.append(f'__asm__ volatile("" : : {pointers} : "memory");' if pointers else 'asm_clobber();')
        loads = [f"int64_t x{i} = in{i}[i];" for i, s in enumerate(strides) if s]
        decl = " ".join(f"uint64_t {f} = 0;" for f, _ in self.flags) or ";"
        # Per chunk, the first failing operation in evaluation order (the numpy form raises at the first failing
        # operation); within one operation the numpy order: operand fault, zero divisor, multiply-back, overflow.
        checks = [
            f"if ({f}) {{ *err = {idx}; return {_STATUS[label.split(':', 1)[0]]}; }}"
            for idx, (f, label) in enumerate(self.flags)
        ]
        source = "\n".join(
            [
                "#include <stdint.h>",
                '#define asm_clobber() __asm__ volatile("" ::: "memory")',
                "int fused(const int64_t *const *ins, int64_t *restrict out, int64_t n, int64_t *err) {",
                *("    " + h for h in head),
                f"    for (int64_t s = 0; s < n; s += {CHUNK}) {{",
                f"        int64_t e = s + {CHUNK} < n ? s + {CHUNK} : n;",
                f"        {decl}",
                *("        " + o for o in opaque),
                "        for (int64_t i = s; i < e; i++) {",
                *("            " + x for x in loads + self._lines),
                f"            out[i] = {self._result};",
                "        }",
                *("        " + c for c in checks),
                "    }",
                "    return 0;",
                "}",
                "",
            ]
        )
        try:
            lib = build(source, _FLAGS)
        except CompilerUnavailable as e:
            raise EncodedUsageError(None, f"fusion needs a C compiler: {e}") from e
        fn = lib.fused
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p]
        fn.restype = ctypes.c_int
        self._compiled[strides] = fn
        self.source = source
        return fn

    def __call__(self, *vectors: EncodedVector) -> EncodedVector | Int64Array:
        if len(vectors) != len(self.inputs):
            raise EncodedUsageError(None, f"expected {len(self.inputs)} input vectors")
        for vec, sym in zip(vectors, self.inputs, strict=True):
            if vec.sig != sym.sig:
                raise EncodedUsageError(None, "an input vector's signature differs from the traced one")
        bound = self.root.bound
        if any(v.bound is not None for v in vectors):  # the trace assumed inputs within the range
            same, bound = _bounds(self.ops, self.root, self.inputs, vectors)
            if not same:
                return _interpret(self.ops, self.root, self.inputs, vectors)
        shape, arrays = operands(*(vec.words for vec in vectors))
        n = int(np.prod(shape))
        out = np.empty(n, dtype=np.int64)
        ins = (ctypes.c_void_p * len(arrays))(*(ptr(a) for a, _ in arrays))
        fn = self._function(tuple(s for _, s in arrays))
        err = ctypes.c_int64(-1)
        status = fn(ins, ptr(out), n, ctypes.byref(err))
        if status:
            raise_status(status, self.flags[err.value][1].split(":", 1)[1])
        if self.root.kind == "decode":
            return out.reshape(shape)
        return _vec(out.reshape(shape), self.root.sig, bound)


def _bounds(
    ops: VectorOps, root: Sym, inputs: list[Sym], vectors: tuple[EncodedVector, ...]
) -> tuple[bool, int | None]:
    """Whether the traced operand checks are also those for the actual input bounds, and the result's bound."""
    got: dict[int, int | None] = {id(sym): vec.bound for sym, vec in zip(inputs, vectors, strict=True)}
    same = True

    def walk(s: Sym) -> int | None:
        nonlocal same
        if id(s) not in got:
            bs = [walk(x) for x in s.args]
            if s.kind in ("add", "sub", "where"):
                combine = max if s.kind == "where" else operator.add
                got[id(s)], check = ops.grown(combine, tuple(bs[-2:]))
                same = same and (check if s.kind != "where" else tuple(i + 1 for i in check)) == s.extra
            else:
                got[id(s)] = s.bound
        return got[id(s)]

    bound = walk(root)
    return same, bound


def _interpret(ops: VectorOps, root: Sym, inputs: list[Sym], vectors: tuple[EncodedVector, ...]) -> Any:
    """The traced expression evaluated by ``VectorOps`` (the numpy form), operation by operation."""
    done: dict[int, Any] = {id(sym): vec for sym, vec in zip(inputs, vectors, strict=True)}

    def ev(s: Sym) -> Any:
        if id(s) not in done:
            a = [ev(x) for x in s.args]
            if s.kind in ("add", "sub", "mul", "mod"):
                done[id(s)] = getattr(ops, s.kind)(*a, s.sig)
            elif s.kind == "div":
                done[id(s)] = ops.floordiv(*a, s.sig)
            elif s.kind == "shr":
                done[id(s)] = ops.shr(a[0], s.extra[0], s.sig)
            elif s.kind == "cmp":
                done[id(s)] = ops.compare(s.extra[0], *a, s.sig)
            elif s.kind == "where":
                done[id(s)] = ops.where(*a, s.sig)
            else:
                done[id(s)] = ops.decode(a[0])
        return done[id(s)]

    return ev(root)


def fuse(ops: VectorOps, fn: Callable[..., Any], *sigs: int) -> FusedKernel:
    """Trace ``fn(tracer, *inputs)`` (inputs with signatures ``sigs``) and compile it to one C loop."""
    inputs = [Sym("input", (), ops._sig(s)) for s in sigs]
    root = fn(_Tracer(ops), *inputs)
    if not isinstance(root, Sym):
        raise EncodedUsageError(None, "the fused function must return a traced vector")
    return FusedKernel(ops, root, inputs)
