"""The AST compiler behind ``@encoded``: a plain integer function in, an encoded function out.

Every local variable gets a static signature, every intermediate result a fresh one, and every operation becomes a
call to the ALU (``_RT``, an :class:`~custodes.encoded.ops.EncodedOps` or the plain baseline) with the signatures
and correction constants as literals. Branches decide on encoded booleans and re-check the condition as the first
statement of each arm, so a wrong branch is a detected fault. Anything else is refused here, at decoration time,
with the file, line and column of the construct.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from custodes.encoded._lower import Lowering
from custodes.encoded._sig import signature_of
from custodes.encoded.errors import EncoderError

__all__ = ["Target", "compile_function"]

_BINOPS: dict[type[ast.operator], str] = {
    ast.Add: "add",
    ast.Sub: "sub",
    ast.Mult: "mul",
    ast.FloorDiv: "div",
    ast.Mod: "mod",
    ast.LShift: "shl",
    ast.RShift: "shr",
}
_CMPOPS: dict[type[ast.cmpop], str] = {
    ast.Lt: "lt",
    ast.LtE: "le",
    ast.Eq: "eq",
    ast.NotEq: "ne",
    ast.Gt: "gt",
    ast.GtE: "ge",
}
_PREFIX = "_e_"
_INT, _BOOL = "int", "bool"


@dataclass(frozen=True, slots=True)
class Target:
    """What to compile for: an encoded code (``A``, ``signed``) or the plain baseline (``plain=True``)."""

    A: int
    signed: bool
    kmin: int
    kmax: int
    plain: bool = False
    versioned: bool = False
    inline: bool = False  # lower ALU calls to inline checks (the production form); else calls (for injection)
    deferred: bool = False  # inline checks of EncodedOps(checks="deferred") (only with inline)


@dataclass(frozen=True, slots=True)
class _Where:
    filename: str
    line_offset: int
    col_offset: int


def _call(method: str, *args: ast.expr | int) -> ast.Call:
    return ast.Call(
        func=ast.Attribute(value=ast.Name("_RT", ast.Load()), attr=method, ctx=ast.Load()),
        args=[a if isinstance(a, ast.expr) else ast.Constant(a) for a in args],
        keywords=[],
    )


def _load(name: str) -> ast.Name:
    return ast.Name(name, ast.Load())


def _store(name: str) -> ast.Name:
    return ast.Name(name, ast.Store())


class _Compiler:
    def __init__(self, fn: ast.FunctionDef, target: Target, where: _Where, consts: dict[str, int]) -> None:
        self.fn = fn
        self.t = target
        self.where = where
        self.consts = consts
        self.sigs: dict[str, int] = {}
        self.arrays: set[str] = set()
        self.params_in: dict[str, str] = {}
        self._n = 0
        self._low_n = 0
        self.low = (
            Lowering(
                target.A,
                target.signed,
                target.versioned,
                target.kmin,
                target.kmax,
                self.low_tmp,
                deferred=target.deferred,
            )
            if target.inline and not target.plain
            else None
        )
        self._stride = next(p for p in (7919, 7907, 7901, 104729) if _gcd(p, max(target.A - 1, 1)) == 1)

    # -- helpers --------------------------------------------------------------------------------------------------
    def err(self, node: ast.AST, message: str) -> EncoderError:
        line = getattr(node, "lineno", 1) + self.where.line_offset
        col = getattr(node, "col_offset", 0) + self.where.col_offset + 1
        return EncoderError(message, filename=self.where.filename, lineno=line, col=col)

    def fresh(self) -> int:
        """A new static signature in [1, A), distinct from the previous A-1 ones."""
        self._n += 1
        if not self.t.signed:
            return 0
        return 1 + (self._n * self._stride) % (self.t.A - 1)

    def low_tmp(self) -> str:
        """A temporary of the lowering (own counter: signatures do not depend on the form compiled)."""
        self._low_n += 1
        return f"{_PREFIX}l{self._low_n}"

    def op(self, method: str, *args: ast.expr | int) -> ast.expr:
        """The ALU call ``_RT.method(*args)``, or its inline form when compiling the production form."""
        call = _call(method, *args)
        if self.low is not None:
            lowered = self.low.lower(method, call.args)
            if lowered is not None:
                return lowered
        return call

    def tmp(self) -> str:
        self._n += 1
        return f"{_PREFIX}t{self._n}"

    def lit(self, value: int, sig: int, node: ast.AST) -> ast.Constant:
        if not self.t.kmin <= value <= self.t.kmax:
            raise self.err(node, f"constant {value} outside the functional range [{self.t.kmin}, {self.t.kmax}]")
        return ast.Constant(value if self.t.plain else self.t.A * value + sig)

    def k(self, op: str, bx: int, by: int, bz: int) -> int:
        return bz - signature_of(op, bx, by, self.t.A, self.t.signed)

    def want(self, want: int | None) -> int:
        return self.fresh() if want is None else want

    # -- pre-pass -------------------------------------------------------------------------------------------------
    def declare(self) -> None:
        args = self.fn.args
        if args.vararg or args.kwarg or args.kwonlyargs or args.defaults or args.kw_defaults:
            raise self.err(self.fn, "only plain positional parameters are supported")
        for a in [*args.posonlyargs, *args.args]:
            self.check_name(a, a.arg)
            ann = a.annotation
            is_list = (isinstance(ann, ast.Name) and ann.id == "list") or (
                isinstance(ann, ast.Subscript) and isinstance(ann.value, ast.Name) and ann.value.id == "list"
            )
            if is_list:
                self.arrays.add(a.arg)
            self.sigs[a.arg] = self.fresh()
        changed = True
        while changed:
            changed = False
            for node in ast.walk(self.fn):
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    name, value = node.targets[0].id, node.value
                    is_arr = _is_list_mult(value) or (isinstance(value, ast.Name) and value.id in self.arrays)
                    if is_arr and name not in self.arrays:
                        self.arrays.add(name)
                        changed = True
        for node in ast.walk(self.fn):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                self.check_name(node, node.id)
                self.sigs.setdefault(node.id, self.fresh())

    def check_name(self, node: ast.AST, name: str) -> None:
        if name.startswith(_PREFIX) or name == "_RT":
            raise self.err(node, f"name {name!r} is reserved by the encoder")

    # -- expressions: return (code, signature, type) --------------------------------------------------------------
    def expr(self, node: ast.expr, want: int | None = None) -> tuple[ast.expr, int, str]:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool):
                b = self.want(want)
                return self.lit(int(node.value), b, node), b, _BOOL
            if isinstance(node.value, int):
                b = self.want(want)
                return self.lit(node.value, b, node), b, _INT
            raise self.err(node, f"unsupported constant of type {type(node.value).__name__}; only int and bool")
        if isinstance(node, ast.Name):
            return self.name(node, want)
        if isinstance(node, ast.BinOp):
            return self.binop(node, want)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node, want)
        if isinstance(node, ast.Compare):
            return self.compare(node, want)
        if isinstance(node, ast.BoolOp):
            return self.boolop(node, want)
        if isinstance(node, ast.IfExp):
            return self.ifexp(node, want)
        if isinstance(node, ast.Call):
            return self.call(node, want)
        if isinstance(node, ast.Subscript):
            arr, idx, bi = self.subscript(node)
            b = self.want(want)
            return self.op("load", arr, idx, bi, b), b, _INT
        raise self.err(node, f"unsupported expression {type(node).__name__}")

    def name(self, node: ast.Name, want: int | None) -> tuple[ast.expr, int, str]:
        if node.id in self.arrays:
            raise self.err(node, f"array {node.id!r} used where an integer is expected")
        if node.id in self.sigs:
            b = self.sigs[node.id]
            if want is None or want == b:
                return _load(node.id), b, _INT
            return self.op("mov", _load(node.id), b, self.k("mov", b, 0, want)), want, _INT
        if node.id in self.consts:
            b = self.want(want)
            return self.lit(self.consts[node.id], b, node), b, _INT
        raise self.err(node, f"name {node.id!r} is neither a local variable nor a module-level int constant")

    def binop(self, node: ast.BinOp, want: int | None) -> tuple[ast.expr, int, str]:
        if _is_list_mult(node):
            raise self.err(node, "an array literal may only be assigned to a variable")
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise self.err(node, f"unsupported operator {type(node.op).__name__}")
        x, bx, _ = self.expr(node.left)
        b = self.want(want)
        if op in ("shl", "shr"):
            n = node.right
            if not (isinstance(n, ast.Constant) and type(n.value) is int and 0 <= n.value < 32):
                raise self.err(node.right, "shifts need a constant amount in 0..31")
            return self.op(op, x, bx, n.value, self.k(op, bx, 0, b)), b, _INT
        y, by, _ = self.expr(node.right)
        return self.op(op, x, bx, y, by, self.k(op, bx, by, b)), b, _INT

    def unary(self, node: ast.UnaryOp, want: int | None) -> tuple[ast.expr, int, str]:
        if isinstance(node.op, ast.UAdd):
            x, bx, _ = self.expr(node.operand, want)
            return x, bx, _INT
        if isinstance(node.op, ast.USub):
            if isinstance(node.operand, ast.Constant) and type(node.operand.value) is int:
                b = self.want(want)
                return self.lit(-node.operand.value, b, node), b, _INT
            x, bx, _ = self.expr(node.operand)
            b = self.want(want)
            return self.op("neg", x, bx, self.k("neg", bx, 0, b)), b, _INT
        if isinstance(node.op, ast.Not):
            x, bx, ty = self.expr(node.operand)
            b = self.want(want)
            if ty == _BOOL:
                return self.op("lnot", x, bx, self.k("lnot", bx, 0, b)), b, _BOOL
            b0 = self.fresh()
            return self.op("eq", x, bx, self.lit(0, b0, node), b0, self.k("eq", bx, b0, b)), b, _BOOL
        raise self.err(node, f"unsupported unary operator {type(node.op).__name__}")

    def compare(self, node: ast.Compare, want: int | None) -> tuple[ast.expr, int, str]:
        if len(node.ops) != 1:
            raise self.err(node, "chained comparisons are not supported; split them with 'and'")
        op = _CMPOPS.get(type(node.ops[0]))
        if op is None:
            raise self.err(node, f"unsupported comparison {type(node.ops[0]).__name__}")
        x, bx, _ = self.expr(node.left)
        y, by, _ = self.expr(node.comparators[0])
        b = self.want(want)
        return self.op(op, x, bx, y, by, self.k(op, bx, by, b)), b, _BOOL

    def cond(self, node: ast.expr) -> tuple[ast.expr, int]:
        """A branch condition as an encoded boolean (ints compare against 0, as Python's truth test does)."""
        x, bx, ty = self.expr(node)
        if ty == _BOOL:
            return x, bx
        b0, b = self.fresh(), self.fresh()
        return self.op("ne", x, bx, self.lit(0, b0, node), b0, self.k("ne", bx, b0, b)), b

    def guarded(self, c: ast.expr, bc: int, then: ast.expr, orelse: ast.expr) -> ast.IfExp:
        """``then if c else orelse`` with each arm re-checking the encoded condition (control-flow check)."""
        t = self.tmp()
        test = self.op("branch", ast.NamedExpr(target=_store(t), value=c), bc)
        # ``expect(...)`` returns None, so ``expect(...) or value`` checks the arm first, then evaluates it.
        if self.low is not None:
            low = self.low
            return ast.IfExp(test=test, body=low.expect_then(t, bc, 1, then), orelse=low.expect_then(t, bc, 0, orelse))
        body = ast.BoolOp(op=ast.Or(), values=[self.op("expect", _load(t), bc, 1), then])
        other = ast.BoolOp(op=ast.Or(), values=[self.op("expect", _load(t), bc, 0), orelse])
        return ast.IfExp(test=test, body=body, orelse=other)

    def boolop(self, node: ast.BoolOp, want: int | None) -> tuple[ast.expr, int, str]:
        b = self.want(want)
        acc, bacc, ty = self.expr(node.values[0])
        if ty != _BOOL:
            raise self.err(node.values[0], "operands of 'and'/'or' must be comparisons or boolean expressions")
        for i, value in enumerate(node.values[1:], start=1):
            last = i == len(node.values) - 1
            bz = b if last else self.fresh()
            rhs, _, rty = self.expr(value, bz)
            if rty != _BOOL:
                raise self.err(value, "operands of 'and'/'or' must be comparisons or boolean expressions")
            const = self.lit(0 if isinstance(node.op, ast.And) else 1, bz, value)
            if isinstance(node.op, ast.And):
                acc = self.guarded(acc, bacc, rhs, const)
            else:
                acc = self.guarded(acc, bacc, const, rhs)
            bacc = bz
        return acc, bacc, _BOOL

    def ifexp(self, node: ast.IfExp, want: int | None) -> tuple[ast.expr, int, str]:
        c, bc = self.cond(node.test)
        b = self.want(want)
        body, _, t1 = self.expr(node.body, b)
        orelse, _, t2 = self.expr(node.orelse, b)
        return self.guarded(c, bc, body, orelse), b, _BOOL if t1 == t2 == _BOOL else _INT

    def call(self, node: ast.Call, want: int | None) -> tuple[ast.expr, int, str]:
        fname = node.func.id if isinstance(node.func, ast.Name) else None
        if node.keywords or fname not in ("len", "min", "max", "abs"):
            raise self.err(node, "unsupported call; only len(array), min(a, b), max(a, b) and abs(x)")
        b = self.want(want)
        if fname == "len":
            if len(node.args) != 1 or not (isinstance(node.args[0], ast.Name) and node.args[0].id in self.arrays):
                raise self.err(node, "len() takes one array variable")
            return self.op("length", _load(node.args[0].id), b), b, _INT
        if fname == "abs":
            if len(node.args) != 1:
                raise self.err(node, "abs() takes one argument")
            x, bx, _ = self.expr(node.args[0])
            t, b0, bc, bn = self.tmp(), self.fresh(), self.fresh(), self.fresh()
            named = ast.NamedExpr(target=_store(t), value=x)
            c = self.op("ge", named, bx, self.lit(0, b0, node), b0, self.k("ge", bx, b0, bc))
            neg = self.op("neg", _load(t), bx, self.k("neg", bx, 0, bn))
            return self.op("select", c, bc, _load(t), bx, neg, bn, b), b, _INT
        if len(node.args) != 2:
            raise self.err(node, f"{fname}() takes exactly two arguments here")
        x, bx, _ = self.expr(node.args[0])
        y, by, _ = self.expr(node.args[1])
        bc = self.fresh()
        op = "le" if fname == "min" else "ge"
        (nx, rx), (ny, ry) = self.once(x), self.once(y)
        c = self.op(op, nx, bx, ny, by, self.k(op, bx, by, bc))
        return self.op("select", c, bc, rx, bx, ry, by, b), b, _INT

    def once(self, code: ast.expr) -> tuple[ast.expr, ast.expr]:
        """(first use, later use) of a value used twice: constants and names as they are, others via a temporary."""
        if isinstance(code, ast.Constant | ast.Name):
            return code, code
        t = self.tmp()
        return ast.NamedExpr(target=_store(t), value=code), _load(t)

    def subscript(self, node: ast.Subscript) -> tuple[ast.Name, ast.expr, int]:
        if not (isinstance(node.value, ast.Name) and node.value.id in self.arrays):
            raise self.err(node, "only array variables can be indexed")
        if isinstance(node.slice, ast.Slice | ast.Tuple):
            raise self.err(node, "slices and tuple indices are not supported")
        idx, bi, _ = self.expr(node.slice)
        return _load(node.value.id), idx, bi


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def _is_list_mult(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Mult)
        and isinstance(node.left, ast.List)
        and len(node.left.elts) == 1
    )


def compile_function(
    fn: ast.FunctionDef, target: Target, *, filename: str, line_offset: int, col_offset: int, consts: dict[str, int]
) -> ast.Module:
    """Compile ``fn`` for ``target``. Raises :class:`EncoderError` on the first unsupported construct."""
    from custodes.encoded._statements import compile_body  # noqa: PLC0415 - the statement half needs _Compiler

    comp = _Compiler(fn, target, _Where(filename, line_offset, col_offset), consts)
    comp.declare()
    if comp.low is not None:
        comp.low.hoisted = set(comp.arrays)
    return compile_body(comp)
