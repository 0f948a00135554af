"""Lowering of ALU calls to inline Python: the production form of ``@encoded`` code.

The compiler first emits every encoded operation as an ALU call (``_RT.add(x, bx, y, by, k)``). That form runs on
the fault injector. For production, each call is lowered here to an inline expression of the shape::

    <value> if <every check the ALU method would make passes> else _RT.add(x, bx, y, by, k)

with the signatures, bounds and correction constants folded at transform time. The fallback is the *same* ALU
method with the same operand words, so the lowered form returns exactly what the method returns on every input,
valid or corrupted: if the inline checks pass, the inline value equals the method's value (tested op by op on
valid, flipped, random and mis-signed words in tests/unit/encoded/test_encoded_lower.py); if any check fails, the
method runs and raises its precise error. A campaign on the ALU-call form therefore measures the detection of the
production form. Operands are evaluated once, in the ALU call's order, into fresh ``_e_`` temporaries.

With ``deferred=True`` the inline checks are those of ``EncodedOps(checks="deferred")``: additive operations
(``add sub neg mov shl`` and the operands of ``select``) check only their result range, and ``mul`` checks operand
residues and its result range. The fallback is then the deferred ALU, so the equivalence above still holds.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable
from dataclasses import dataclass

from custodes.encoded._sig import signature_of

__all__ = ["LOWERED", "Lowering", "runtime_names"]

#: ALU methods that have an inline form (the others stay calls: they run once per call of the function).
LOWERED = frozenset(
    {"enc", "dec", "mov", "add", "sub", "neg", "mul", "div", "mod", "shl", "shr", "lnot", "select", "branch"}
    | {"expect", "load", "length", "lt", "le", "eq", "ne", "gt", "ge"}
)
_CMP = {"lt": "<", "le": "<=", "eq": "==", "ne": "!=", "gt": ">", "ge": ">="}


def runtime_names() -> dict[str, object]:
    """Builtins the lowered code uses, under reserved names (a user variable may be called ``len``)."""
    return {"_e_type": type, "_e_int": int, "_e_len": len}


@dataclass(slots=True)
class _Opnd:
    bind: ast.expr  # first (evaluated) occurrence: the operand itself, or ``(t := operand)``
    ref: ast.expr  # later occurrences
    const: int | None  # the functional value, if the operand is a valid constant word


class _Subst(ast.NodeTransformer):
    def __init__(self, table: dict[str, ast.expr]) -> None:
        self.table = table

    def visit_Name(self, node: ast.Name) -> ast.expr:
        found = self.table.get(node.id)
        return copy.deepcopy(found) if found is not None else node


class Lowering:
    """Builds inline forms for one code (``A``, signatures on/off, versions on/off)."""

    def __init__(
        self, A: int, signed: bool, versioned: bool, kmin: int, kmax: int, tmp: Callable[[], str], *, deferred: bool
    ) -> None:
        self.A, self.signed, self.versioned, self.deferred = A, signed, versioned, deferred
        self.s = 1 if signed else 0
        self.kmin, self.kmax = kmin, kmax
        self.lo, self.hi = A * kmin, A * kmax
        self.tmp = tmp
        #: Array variables whose ``words``/``versions``/``sig``/length the compiler keeps in locals (see ``hoist``).
        self.hoisted: set[str] = set()

    def _mem(self, a: str) -> tuple[str, str, str, str]:
        """Expressions for an array's words, versions, signature and length."""
        if a in self.hoisted:
            return f"_e_aw_{a}", f"_e_av_{a}", f"_e_as_{a}", f"_e_an_{a}"
        return f"{a}.words", f"{a}.versions", f"{a}.sig", f"_e_len({a}.words)"

    def hoist(self, a: str) -> list[ast.stmt]:
        """After every assignment to array variable ``a``: its attributes in locals, not looked up per access.

        The lists are only ever mutated in place (``store_word``, the injector), so the locals stay in step.
        """
        text = f"_e_aw_{a} = {a}.words\n_e_as_{a} = {a}.sig\n_e_an_{a} = _e_len(_e_aw_{a})"
        if self.versioned:
            text += f"\n_e_av_{a} = {a}.versions"
        return ast.parse(text).body

    # -- plumbing -------------------------------------------------------------------------------------------------
    def _opnd(self, node: ast.expr, b: int) -> _Opnd:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            u = node.value - b
            const = u // self.A if u % self.A == 0 and self.lo <= u <= self.hi else None
            return _Opnd(node, node, const)
        if isinstance(node, ast.Name):
            return _Opnd(node, node, None)
        t = self.tmp()
        return _Opnd(ast.NamedExpr(target=ast.Name(t, ast.Store()), value=node), ast.Name(t, ast.Load()), None)

    def _build(self, text: str, ops: list[_Opnd]) -> ast.expr:
        """Parse ``text`` with ``B<i>`` (first occurrence) and ``R<i>`` (later ones) standing for operand ``i``."""
        table: dict[str, ast.expr] = {}
        for i, o in enumerate(ops):
            table[f"B{i}"] = o.bind
            table[f"R{i}"] = o.ref
        tree = ast.parse(text, mode="eval").body
        return _Subst(table).visit(tree)

    @staticmethod
    def _fallback(method: str, args: list[str]) -> str:
        return f"_RT.{method}({', '.join(args)})"

    def _checks(self, items: list[tuple[int, int, int, int]], *, ranges: bool = True) -> tuple[str, list[str]]:
        """Residue and range checks of operands ``(index, signature, low, high)`` on the *word* (bounds shifted).

        All residues are OR-ed (no short circuit), so every operand is evaluated before any fallback runs.
        ``ranges=False`` leaves out the operand range checks (deferred ``mul``: its result range subsumes them).
        """
        residues = [f"(B{i} - {b}) % {self.A}" for i, b, _, _ in items]
        parts = [f"not ({' | '.join(residues)})"] if residues else []
        if ranges:
            parts += [f"{lo + b} <= R{i} <= {hi + b}" for i, b, lo, hi in items if lo + b <= hi + b]
        if any(lo > hi for _, _, lo, hi in items):
            parts.append("False")
        return " and ".join(parts), residues

    def _sig(self, op: str, bx: int, by: int) -> int:
        return signature_of(op, bx, by, self.A, self.signed)

    # -- the lowering ---------------------------------------------------------------------------------------------
    def lower(self, method: str, args: list[ast.expr]) -> ast.expr | None:
        """The inline form of ``_RT.method(*args)``, or None if it stays a call."""
        if method not in LOWERED or not all(isinstance(a, ast.expr) for a in args):
            return None
        ints = [a.value if isinstance(a, ast.Constant) and type(a.value) is int else None for a in args]
        handler = getattr(self, f"_l_{method}", None) or (self._l_cmp if method in _CMP else None)
        if handler is None:
            return None
        return handler(method, args, ints)

    def _l_enc(self, _m: str, args: list[ast.expr], ints: list[int | None]) -> ast.expr | None:
        b = ints[1]
        if b is None or not 0 <= b < self.A or (b and not self.signed):
            return None
        x = self._opnd(args[0], 0)
        text = f"{self.A} * R0 + {b * self.s} if _e_type(B0) is _e_int and {self.kmin} <= R0 <= {self.kmax} "
        return self._build(text + f"else {self._fallback('enc', ['R0', str(b)])}", [x])

    def _l_dec(self, _m: str, args: list[ast.expr], ints: list[int | None]) -> ast.expr | None:
        b = ints[1]
        if b is None:
            return None
        x = self._opnd(args[0], b)
        cond, _ = self._checks([(0, b, self.lo, self.hi)])
        return self._build(f"(R0 - {b}) // {self.A} if {cond} else {self._fallback('dec', ['R0', str(b)])}", [x])

    def _l_mov(self, _m: str, args: list[ast.expr], ints: list[int | None]) -> ast.expr | None:
        bx, k = ints[1], ints[2]
        if bx is None or k is None:
            return None
        x = self._opnd(args[0], bx)
        if self.deferred:  # an error in x propagates unchanged to x + k
            return self._build(f"B0 + {k}", [x])
        cond, _ = self._checks([(0, bx, self.lo, self.hi)])
        return self._build(f"R0 + {k} if {cond} else {self._fallback('mov', ['R0', str(bx), str(k)])}", [x])

    def _binary(self, args: list[ast.expr], ints: list[int | None]) -> tuple[int, int, int, list[_Opnd]] | None:
        bx, by, k = ints[1], ints[3], ints[4]
        if bx is None or by is None or k is None:
            return None
        return bx, by, k, [self._opnd(args[0], bx), self._opnd(args[2], by)]

    def _operand_checks(self, ops: list[_Opnd], sigs: list[int]) -> list[tuple[int, int, int, int]]:
        return [(i, b, self.lo, self.hi) for i, (o, b) in enumerate(zip(ops, sigs, strict=True)) if o.const is None]

    def _value(self, o: _Opnd, i: int, b: int) -> str:
        """``u = word - b`` of operand ``i`` as text (folded for constants)."""
        return str(self.A * o.const) if o.const is not None else f"(R{i} - {b})"

    def _l_add(self, m: str, args: list[ast.expr], ints: list[int | None]) -> ast.expr | None:
        got = self._binary(args, ints)
        if got is None:
            return None
        bx, by, k, ops = got
        cond, _ = ("", []) if self.deferred else self._checks(self._operand_checks(ops, [bx, by]))
        sign = "+" if m == "add" else "-"
        z = self.tmp()
        # add: u + w = x + y - bx - by; sub: u - w = x - y - bx + by. Range of the functional result.
        off = bx + by if m == "add" else bx - by
        a, b = ("B0", "B1") if self.deferred else ("R0", "R1")
        range_check = f"{self.lo + off} <= ({z} := {a} {sign} {b}) <= {self.hi + off}"
        cond = f"{cond} and {range_check}" if cond else range_check
        fb = self._fallback(m, ["R0", str(bx), "R1", str(by), str(k)])
        return self._build(f"{z} + {k} if {cond} else {fb}", ops)

    _l_sub = _l_add

    def _l_neg(self, _m: str, args: list[ast.expr], ints: list[int | None]) -> ast.expr | None:
        bx, k = ints[1], ints[2]
        if bx is None or k is None:
            return None
        x = self._opnd(args[0], bx)
        if self.deferred:  # only the result range: lo <= bx - x <= hi
            cond = f"{bx - self.hi} <= B0 <= {bx - self.lo}"
        else:
            cond, _ = self._checks([(0, bx, max(self.lo, -self.hi), min(self.hi, -self.lo))])
        return self._build(f"{k} - R0 if {cond} else {self._fallback('neg', ['R0', str(bx), str(k)])}", [x])

    def _l_mul(self, _m: str, args: list[ast.expr], ints: list[int | None]) -> ast.expr | None:
        got = self._binary(args, ints)
        if got is None:
            return None
        bx, by, k, ops = got
        x, y = ops
        # Each operand's ``u = word - B`` is bound once, in its residue test, and reused by the product.
        us = {i: self.tmp() for i, o in enumerate(ops) if o.const is None}
        sigs = (bx, by)
        parts = []
        if us:
            parts.append(f"not ({' | '.join(f'({u} := B{i} - {sigs[i]}) % {self.A}' for i, u in us.items())})")
        if not self.deferred:  # every-op: operand ranges too (deferred: subsumed by the product's range)
            parts += [f"{self.lo} <= {u} <= {self.hi}" for u in us.values()]
        cond = " and ".join(parts)
        if y.const is not None:
            prod = f"{us[0] if 0 in us else self.A * x.const} * {y.const}"
        elif x.const is not None:
            prod = f"{x.const} * {us[1]}"
        else:
            prod = f"{us[0]} * {us[1]} // {self.A}"
        z = self.tmp()
        range_check = f"{self.lo} <= ({z} := {prod}) <= {self.hi}"
        cond = f"{cond} and {range_check}" if cond else range_check
        c = (bx * by) % self.A * self.s + k
        fb = self._fallback("mul", ["R0", str(bx), "R1", str(by), str(k)])
        return self._build(f"{z} + {c} if {cond} else {fb}", ops)

    def _l_div(self, m: str, args: list[ast.expr], ints: list[int | None]) -> ast.expr | None:
        got = self._binary(args, ints)
        if got is None:
            return None
        bx, by, k, ops = got
        cond, _ = self._checks(self._operand_checks(ops, [bx, by]))
        u_txt, w_txt = self._value(ops[0], 0, bx), self._value(ops[1], 1, by)
        q, u, w = self.tmp(), self.tmp(), self.tmp()
        if ops[1].const is not None:
            wv = self.A * ops[1].const
            if wv == 0:
                return None
            # The remainder test is the multiply-back verification: q is the floor quotient iff 0 <= u - q*w < w.
            r_bind = f"({u} := {u_txt}) - ({q} := {u} // {wv}) * {wv}"
            parts = [f"0 <= {r_bind} < {wv}" if wv > 0 else f"{wv} < {r_bind} <= 0"]
            r_txt = f"{u} - {q} * {wv}"
        else:
            parts = [
                f"(({q} := ({u} := {u_txt}) // ({w} := {w_txt})) is not None)",
                f"(0 <= {u} - {q} * {w} < {w} if {w} > 0 else {w} < {u} - {q} * {w} <= 0)",
            ]
            r_txt = f"{u} - {q} * {w}"
        if m == "div":
            parts.append(f"{self.kmin} <= {q} <= {self.kmax}")
            c = self._sig("div", bx, by) * self.s + k
            value = f"{self.A} * {q} + {c}"
        else:
            c = self._sig("mod", bx, by) * self.s + k
            value = f"{r_txt} + {c}"
        cond = " and ".join(([cond] if cond else []) + parts)
        fb = self._fallback(m, ["R0", str(bx), "R1", str(by), str(k)])
        return self._build(f"{value} if {cond} else {fb}", ops)

    _l_mod = _l_div

    def _l_shl(self, m: str, args: list[ast.expr], ints: list[int | None]) -> ast.expr | None:
        bx, n, k = ints[1], ints[2], ints[3]
        if bx is None or n is None or k is None or n < 0:
            return None
        x = self._opnd(args[0], bx)
        c = self._sig(m, bx, 0) * self.s + k
        p = 1 << n
        if m == "shl" and self.deferred:  # only the result range: u * 2**n in [lo, hi]
            cond = f"{-(-self.lo // p) + bx} <= B0 <= {self.hi // p + bx}"
            value = f"(R0 - {bx}) * {p} + {c}"
        elif m == "shl":  # u << n must stay in range: u in [ceil(lo / 2**n), floor(hi / 2**n)]
            cond, _ = self._checks([(0, bx, max(self.lo, -(-self.lo // p)), min(self.hi, self.hi // p))])
            value = f"(R0 - {bx}) * {p} + {c}"
        else:  # floor(A*x / (A * 2**n)) == x >> n; the remainder check is implied by the floor division
            cond, _ = self._checks([(0, bx, self.lo, self.hi)])
            value = f"{self.A} * ((R0 - {bx}) // {self.A * p}) + {c}"
        return self._build(f"{value} if {cond} else {self._fallback(m, ['R0', str(bx), str(n), str(k)])}", [x])

    _l_shr = _l_shl

    def _l_cmp(self, m: str, args: list[ast.expr], ints: list[int | None]) -> ast.expr | None:
        got = self._binary(args, ints)
        if got is None:
            return None
        bx, by, k, ops = got
        c = self._sig(m, bx, by) * self.s + k
        x, y = ops
        if self.deferred and x.const is None and y.const is None:  # check the difference (see EncodedOps._diff)
            d, off = self.tmp(), bx - by
            cond = f"not (({d} := B0 - B1) - {off}) % {self.A}"
            cond += f" and {self.lo - self.hi + off} <= {d} <= {self.hi - self.lo + off}"
            value = f"({self.A + c} if {d} {_CMP[m]} {off} else {c})"
            fb = self._fallback(m, ["R0", str(bx), "R1", str(by), str(k)])
            return self._build(f"{value} if {cond} else {fb}", ops)
        cond, _ = self._checks(self._operand_checks(ops, [bx, by]))
        if y.const is not None:
            test = f"R0 {_CMP[m]} {self.A * y.const + bx}"
        elif x.const is not None:
            test = f"{self.A * x.const + by} {_CMP[m]} R1"
        else:
            test = f"R0 - R1 {_CMP[m]} {bx - by}"
        value = f"({self.A + c} if {test} else {c})"
        if not cond:
            return self._build(value, ops)
        return self._build(f"{value} if {cond} else {self._fallback(m, ['R0', str(bx), 'R1', str(by), str(k)])}", ops)

    def _l_lnot(self, _m: str, args: list[ast.expr], ints: list[int | None]) -> ast.expr | None:
        bx, k = ints[1], ints[2]
        if bx is None or k is None:
            return None
        x = self._opnd(args[0], bx)
        c = self._sig("lnot", bx, 0) * self.s + k
        fb = self._fallback("lnot", ["R0", str(bx), str(k)])
        return self._build(f"{self.A + c} if B0 == {bx} else ({c} if R0 == {bx + self.A} else {fb})", [x])

    def _l_select(self, _m: str, args: list[ast.expr], ints: list[int | None]) -> ast.expr | None:
        bc, bx, by, bz = ints[1], ints[3], ints[5], ints[6]
        if bc is None or bx is None or by is None or bz is None:
            return None
        ops = [self._opnd(args[0], bc), self._opnd(args[2], bx), self._opnd(args[4], by)]
        items = [(0, bc, 0, self.A)]
        if not self.deferred:
            items += [(i, b, self.lo, self.hi) for i, b in ((1, bx), (2, by)) if ops[i].const is None]
            cond, _ = self._checks(items)
        else:  # the selected operand's error propagates; both operands are still evaluated first, as in the call
            evals = "".join(f" | (B{i} is None)" for i in (1, 2) if ops[i].bind is not ops[i].ref)
            cond = f"not ((B0 - {bc}) % {self.A}{evals}) and {bc} <= R0 <= {self.A + bc}"
        x_txt = str(self.A * ops[1].const + bz) if ops[1].const is not None else f"R1 + {bz - bx}"
        y_txt = str(self.A * ops[2].const + bz) if ops[2].const is not None else f"R2 + {bz - by}"
        fb = self._fallback("select", ["R0", str(bc), "R1", str(bx), "R2", str(by), str(bz)])
        if self.deferred and not evals:  # the condition must be exactly A + bc or bc, as ALU's _bools requires
            return self._build(f"{x_txt} if B0 == {self.A + bc} else ({y_txt} if R0 == {bc} else {fb})", ops)
        return self._build(f"({x_txt} if R0 != {bc} else {y_txt}) if {cond} else {fb}", ops)

    def _l_branch(self, _m: str, args: list[ast.expr], ints: list[int | None]) -> ast.expr | None:
        bc = ints[1]
        if bc is None:
            return None
        c = self._opnd(args[0], bc)
        return self._build(f"B0 == {self.A + bc} or (R0 != {bc} and {self._fallback('branch', ['R0', str(bc)])})", [c])

    def _l_expect(self, _m: str, args: list[ast.expr], ints: list[int | None]) -> ast.expr | None:
        bc, v = ints[1], ints[2]
        if bc is None or v is None:
            return None
        c = self._opnd(args[0], bc)
        fb = self._fallback("expect", ["R0", str(bc), str(v)])
        return self._build(f"None if B0 == {self.A * v + bc} else {fb}", [c])

    def expect_then(self, cw: str, bc: int, v: int, then: ast.expr) -> ast.expr:
        """``expect(cw, bc, v) or then`` with the check inline (the arm of a guarded expression)."""
        # EncodedOps.expect raises whenever the word differs, so ``then`` is only needed in the taken arm.
        text = f"T if {cw} == {self.A * v + bc} else {self._fallback('expect', [cw, str(bc), str(v)])}"
        return _Subst({"T": then}).visit(ast.parse(text, mode="eval").body)

    def _l_load(self, _m: str, args: list[ast.expr], ints: list[int | None]) -> ast.expr | None:
        arr, bi, bout = args[0], ints[2], ints[3]
        if not isinstance(arr, ast.Name) or bi is None or bout is None:
            return None
        i = self._opnd(args[1], bi)
        a = arr.id
        words, versions, sig, length = self._mem(a)
        n, w = self.tmp(), self.tmp()
        if i.const is not None and i.const >= 0:
            cond, idx = f"{i.const} < {length}", str(i.const)
        else:  # a valid residue and 0 <= index < len imply the range check of the index word
            u = self.tmp()
            cond = f"not ({u} := B0 - {bi}) % {self.A} and 0 <= ({n} := {u} // {self.A}) < {length}"
            idx = n
        ver = f" - {versions}[{idx}]" if self.versioned else ""
        word = f"({w} := {words}[{idx}] - {sig}{ver})"
        cond += f" and not {word} % {self.A} and {self.lo} <= {w} <= {self.hi}"
        fb = self._fallback("load", [a, "R0", str(bi), str(bout)])
        return self._build(f"{w} + {bout} if {cond} else {fb}", [i])

    def _l_length(self, _m: str, args: list[ast.expr], ints: list[int | None]) -> ast.expr | None:
        arr, bout = args[0], ints[1]
        if not isinstance(arr, ast.Name) or bout is None:
            return None
        return ast.parse(f"{self.A} * {self._mem(arr.id)[3]} + {bout}", mode="eval").body

    def store(self, arr: str, idx: ast.expr, bi: int, value: ast.expr, bv: int) -> list[ast.stmt]:
        """``_RT.store(arr, idx, bi, value, bv)`` as statements: checks inline, the ALU on any failure."""
        i, v, n, d, u = self.tmp(), self.tmp(), self.tmp(), self.tmp(), self.tmp()
        words, versions, sig, length = self._mem(arr)
        # A valid index residue and 0 <= index < len imply the index range check; the value is fully checked.
        lines = [
            f"if not (({u} := {i} - {bi}) % {self.A} | ({v} - {bv}) % {self.A})"
            f" and {self.lo + bv} <= {v} <= {self.hi + bv} and 0 <= ({n} := {u} // {self.A}) < {length}:",
        ]
        if self.versioned:
            lines.append(f"    {versions}[{n}] = {d} = ({versions}[{n}] + 1) % {self.A}")
            lines.append(f"    {words}[{n}] = {v} - {bv} + {sig} + {d}")
        else:
            lines.append(f"    {words}[{n}] = {v} - {bv} + {sig}")
        lines += ["else:", f"    {self._fallback('store', [arr, i, str(bi), v, str(bv)])}"]
        body = ast.parse("\n".join(lines)).body
        assign = [
            ast.Assign(targets=[ast.Name(i, ast.Store())], value=idx),
            ast.Assign(targets=[ast.Name(v, ast.Store())], value=value),
        ]
        return [*assign, *body]
