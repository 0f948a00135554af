"""Translate the ALU-call form of an ``@encoded`` function (``fn.source()``) to a C99 function body.

The input is the module the Python compiler already built (same signatures, same correction constants, same
check placement); only its shape changes. Every expression is flattened into statements in Python's left-to-right
evaluation order (C leaves the order of call arguments unspecified, and the injector counts dynamic events in
order), every ``_RT.<op>(...)`` becomes ``E_<op>(cx, <site>, ...)`` with a static site number, and each
conditional expression becomes an ``if`` on the encoded branch decision. Anything outside the subset the Python
compiler emits is refused with :class:`EncodedUsageError` (fail closed: no partial translation).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from custodes.encoded.errors import EncodedUsageError

__all__ = ["CFunction", "translate"]

_RESULT_WORD = frozenset(
    {"enc", "dec", "mov", "add", "sub", "neg", "mul", "div", "mod", "shl", "shr", "lnot", "land", "lor", "select"}
    | {"lt", "le", "eq", "ne", "gt", "ge", "load", "length", "branch"}
)
_VOID = frozenset({"expect", "store"})
_ARRAY_RESULT = frozenset({"new_array", "enc_array"})


@dataclass(frozen=True, slots=True)
class CFunction:
    """A translated function: its C body, its parameters (name, is_list) and the ALU op of each site."""

    name: str
    body: str
    params: tuple[tuple[str, bool], ...]
    sites: tuple[str, ...]


def _fail(message: str) -> EncodedUsageError:
    return EncodedUsageError(None, f"C backend: {message}")


def _lit(value: object) -> str:
    if type(value) is bool:
        return "1" if value else "0"
    if type(value) is not int or not -(1 << 63) < value < 1 << 63:
        raise _fail("constant outside the signed 64-bit word")
    return f"INT64_C({value})"


class _Translator:
    def __init__(self, fn: ast.FunctionDef) -> None:
        self.fn = fn
        self.params = [a.arg for a in fn.args.args]
        self.sites: list[str] = []
        self.lines: list[str] = []
        self.indent = 1
        self._n = 0
        self.list_params: dict[str, int] = {}  # parameter name -> position, for list parameters
        self.in_alias: dict[str, int] = {}  # ``_e_in_x`` -> position
        self.arrays: set[str] = set()
        self.ints: set[str] = set()
        self._types()

    # -- typing -------------------------------------------------------------------------------------------------
    def _types(self) -> None:
        assigns = [n for n in ast.walk(self.fn) if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)]
        for n in assigns:
            v = n.value
            if _is_rt(v, "enc_array") and isinstance(v.args[0], ast.Name) and v.args[0].id in self.params:
                self.list_params[v.args[0].id] = self.params.index(v.args[0].id)
        for n in assigns:
            t, v = n.targets[0].id, n.value  # type: ignore[union-attr]
            if isinstance(v, ast.Name) and v.id in self.list_params and t.startswith("_e_in_"):
                self.in_alias[t] = self.list_params[v.id]
        self.arrays = set(self.list_params)
        changed = True
        while changed:
            changed = False
            for n in assigns:
                t, v = n.targets[0].id, n.value  # type: ignore[union-attr]
                is_arr = (isinstance(v, ast.Call) and _rt_name(v) in _ARRAY_RESULT) or (
                    isinstance(v, ast.Name) and v.id in self.arrays and t not in self.in_alias
                )
                if is_arr and t not in self.arrays:
                    self.arrays.add(t)
                    changed = True
        for n in ast.walk(self.fn):
            stored = isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
            if stored and n.id not in self.arrays and n.id not in self.in_alias:  # type: ignore[attr-defined]
                self.ints.add(n.id)  # type: ignore[attr-defined]
        self.ints -= set(self.list_params)

    # -- emission -----------------------------------------------------------------------------------------------
    def emit(self, line: str) -> None:
        self.lines.append("    " * self.indent + line)

    def tmp(self) -> str:
        self._n += 1
        return f"c_{self._n}"

    def var(self, name: str) -> str:
        return f"v_{name}"

    def site(self, op: str) -> int:
        self.sites.append(op)
        return len(self.sites) - 1

    # -- expressions: flatten to an atom ------------------------------------------------------------------------
    def expr(self, node: ast.expr) -> str:
        if isinstance(node, ast.Constant):
            return _lit(node.value)
        if isinstance(node, ast.Name):
            if node.id in self.arrays or node.id in self.ints:
                return self.var(node.id)
            raise _fail(f"unknown name {node.id!r}")
        if isinstance(node, ast.NamedExpr):
            value = self.expr(node.value)
            target = node.target.id
            self.emit(f"{self.var(target)} = {value};")
            return self.var(target)
        if isinstance(node, ast.IfExp):
            r = self.tmp()
            self.emit(f"int64_t {r};")
            test = self.expr(node.test)
            self.emit(f"if ({test}) {{")
            self.indent += 1
            self.emit(f"{r} = {self.expr(node.body)};")
            self.indent -= 1
            self.emit("} else {")
            self.indent += 1
            self.emit(f"{r} = {self.expr(node.orelse)};")
            self.indent -= 1
            self.emit("}")
            return r
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
            # ``_RT.expect(...) or value``: expect returns None, so the value is the result.
            *first, last = node.values
            for v in first:
                if not _is_rt(v, "expect"):
                    raise _fail("'or' is only supported after an expect() check")
                self.call(v)
            return self.expr(last)
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id == "bool" and len(node.args) == 1:
                return f"({self.expr(node.args[0])} != 0)"
            return self.call(node)
        raise _fail(f"unsupported expression {type(node).__name__}")

    def call(self, node: ast.expr) -> str:
        op = _rt_name(node)
        if op is None or not isinstance(node, ast.Call):
            raise _fail("unsupported call")
        if op in ("enc_array", "dec_array"):
            raise _fail(f"{op} outside an assignment or return")
        if op not in _RESULT_WORD and op not in _VOID and op != "new_array":
            raise _fail(f"unsupported ALU operation {op!r}")
        args = [self.expr(a) for a in node.args]
        site = self.site(op)
        text = f"E_{op}(cx, {site}, {', '.join(args)})"
        if op in _VOID:
            self.emit(f"{text};")
            return "0"
        r = self.tmp()
        ctype = "earr *" if op == "new_array" else ("int " if op == "branch" else "int64_t ")
        self.emit(f"{ctype}{r} = {text};")
        return r

    # -- statements ---------------------------------------------------------------------------------------------
    def block(self, body: list[ast.stmt]) -> None:
        for s in body:
            self.stmt(s)

    def stmt(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Assign):
            self.assign(node)
        elif isinstance(node, ast.Expr):
            self.expr(node.value)
        elif isinstance(node, ast.If):
            test = self.expr(node.test)
            self.emit(f"if ({test}) {{")
            self.nested(node.body)
            self.emit("} else {")
            self.nested(node.orelse)
            self.emit("}")
        elif isinstance(node, ast.While):
            if not (isinstance(node.test, ast.Constant) and node.test.value is True) or node.orelse:
                raise _fail("only 'while True' loops are emitted by the compiler")
            self.emit("for (;;) {")
            self.nested(node.body)
            self.emit("}")
        elif isinstance(node, ast.Break):
            self.emit("break;")
        elif isinstance(node, ast.Continue):
            self.emit("continue;")
        elif isinstance(node, ast.Pass):
            self.emit(";")
        elif isinstance(node, ast.Return):
            self.return_(node)
        else:
            raise _fail(f"unsupported statement {type(node).__name__}")

    def nested(self, body: list[ast.stmt]) -> None:
        self.indent += 1
        self.block(body)
        self.indent -= 1

    def assign(self, node: ast.Assign) -> None:
        target, value = node.targets[0], node.value
        if isinstance(target, ast.Subscript):  # ``_e_in_x[:] = _RT.dec_array(arr)``: the write-back
            name = target.value.id if isinstance(target.value, ast.Name) else ""
            if name not in self.in_alias or not _is_rt(value, "dec_array"):
                raise _fail("unsupported subscript assignment")
            arr = self.expr(value.args[0])  # type: ignore[attr-defined]
            pos = self.in_alias[name]
            self.emit(f"cx_writeback(cx, {arr}, arrs[{pos}], {pos}, {self.site('dec_array')});")
            return
        if not isinstance(target, ast.Name):
            raise _fail("unsupported assignment target")
        name = target.id
        if name in self.in_alias:
            return  # ``_e_in_x = x``: the caller's list is ``arrs[pos]``
        if _is_rt(value, "enc_array"):
            param = value.args[0].id  # type: ignore[attr-defined]
            sig = _lit(value.args[1].value)  # type: ignore[attr-defined]
            pos = self.list_params[param]
            site = self.site("enc_array")
            self.emit(f"{self.var(name)} = alu_enc_array(cx, arrs[{pos}], lens[{pos}], {sig}, {site});")
            return
        if name == "_e_r" and isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
            self.emit(f"rk = 2; {self.var(name)} = {self.expr(value)};")  # bool(...)
            return
        if name == "_e_r":
            self.emit(f"rk = 1; {self.var(name)} = {self.expr(value)};")
            return
        self.emit(f"{self.var(name)} = {self.expr(value)};")

    def return_(self, node: ast.Return) -> None:
        v = node.value
        if v is None or (isinstance(v, ast.Constant) and v.value is None):
            self.emit("cx->ret_kind = 0; return;")
        elif _is_rt(v, "dec_array"):
            arr = self.expr(v.args[0])  # type: ignore[attr-defined]
            self.emit(f"cx_return_array(cx, {arr}, {self.site('dec_array')}); return;")
        elif isinstance(v, ast.Name) and v.id == "_e_r":
            self.emit(f"cx->ret_kind = rk; cx->ret_val = {self.var('_e_r')}; return;")
        else:
            self.emit(f"cx->ret_kind = 1; cx->ret_val = {self.expr(v)}; return;")

    def translate(self) -> CFunction:
        self.lines = []
        self.indent = 1
        for name in sorted(self.ints):
            pos = self.params.index(name) if name in self.params else None
            init = f"ints[{pos}]" if pos is not None else "0"
            self.emit(f"int64_t {self.var(name)} = {init};")
        for name in sorted(self.arrays):
            self.emit(f"earr *{self.var(name)} = 0;")
        self.emit("int64_t rk = 1;")
        self.emit("(void)ints; (void)arrs; (void)lens; (void)rk;")
        self.block(self.fn.body)
        body = "\n".join(self.lines)
        params = tuple((p, p in self.list_params) for p in self.params)
        return CFunction(self.fn.name, body, params, tuple(self.sites))


def _rt_name(node: ast.expr) -> str | None:
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "_RT"
        and not node.keywords
    ):
        return node.func.attr
    return None


def _is_rt(node: ast.expr, op: str) -> bool:
    return _rt_name(node) == op


def translate(module: ast.Module) -> CFunction:
    """The C body of the one function in ``module`` (the ALU-call form from ``compile_function``)."""
    fns = [n for n in module.body if isinstance(n, ast.FunctionDef)]
    if len(fns) != 1:
        raise _fail("expected exactly one function")
    return _Translator(fns[0]).translate()
