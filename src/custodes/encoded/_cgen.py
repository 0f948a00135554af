"""Translate the ALU-call form of an ``@encoded`` function (``fn.source()``) to a C99 function body.

The input is the module the Python compiler already built (same signatures, same correction constants, same
check placement); only its shape changes. Every expression is flattened into statements in Python's left-to-right
evaluation order (C leaves the order of call arguments unspecified, and the injector counts dynamic events in
order), every ``_RT.<op>(...)`` becomes ``E_<op>(cx, <site>, ...)`` with a static site number, and each
conditional expression becomes an ``if`` on the encoded branch decision. Anything outside the subset the Python
compiler emits is refused with :class:`EncodedUsageError` (fail closed: no partial translation).

C has no unbound locals, so a definite-assignment pass (:class:`_Assigned`) finds every read of a local that some
path reaches before any assignment (``if x > 0: y = 7`` then ``return y``). Such a local carries a flag (an array:
its null pointer), and the read fails with status ``UNBOUND``, which the wrapper raises as ``UnboundLocalError`` at
the point where Python raises it. Reads that are assigned on every path cost nothing.
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
    #: The locals that may be read unassigned; status ``UNBOUND`` carries the index of one in ``where``.
    unbound: tuple[str, ...] = ()


def _fail(message: str) -> EncodedUsageError:
    return EncodedUsageError(None, f"C backend: {message}")


def _lit(value: object) -> str:
    if type(value) is bool:
        return "1" if value else "0"
    if type(value) is not int or not -(1 << 63) < value < 1 << 63:
        raise _fail("constant outside the signed 64-bit word")
    return f"INT64_C({value})"


class _Assigned:
    """Definite assignment over the ALU-call form: the ``Name`` reads some path reaches before any assignment.

    Sound for the structured code the compiler emits: the assigned set only grows along a path, so a loop head sees
    the set at loop entry, a join the intersection of its incoming paths, and the code after ``while True`` the
    intersection over its ``break`` statements. Only the first operand of ``or`` is sure to run.
    """

    def __init__(self, fn: ast.FunctionDef) -> None:
        self.maybe: set[int] = set()  # id() of the Name nodes whose read may find the local unassigned
        self.names: list[str] = []  # their locals, in order of first appearance
        self._breaks: list[list[set[str]]] = []
        self.block(fn.body, {a.arg for a in fn.args.args})

    def expr(self, node: ast.expr, da: set[str]) -> set[str]:
        if isinstance(node, ast.Name):
            if node.id not in da:
                self.maybe.add(id(node))
                if node.id not in self.names:
                    self.names.append(node.id)
            return da
        if isinstance(node, ast.NamedExpr):
            return self.expr(node.value, da) | {node.target.id}
        if isinstance(node, ast.IfExp):
            da = self.expr(node.test, da)
            return self.expr(node.body, da) & self.expr(node.orelse, da)
        if isinstance(node, ast.BoolOp):
            first = self.expr(node.values[0], da)
            later = first
            for v in node.values[1:]:
                later = self.expr(v, later)
            return first
        if isinstance(node, ast.Call):
            for a in node.args:  # the callee is ``_RT.<op>`` or ``bool``, never a local
                da = self.expr(a, da)
            return da
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                da = self.expr(child, da)
        return da

    def block(self, body: list[ast.stmt], da: set[str]) -> tuple[set[str], bool]:
        """The set after ``body`` and whether control always leaves it (return, break, continue)."""
        for node in body:
            da, left = self.stmt(node, da)
            if left:
                return da, True
        return da, False

    def stmt(self, node: ast.stmt, da: set[str]) -> tuple[set[str], bool]:
        if isinstance(node, ast.Assign):
            da = self.expr(node.value, da)
            for t in node.targets:
                da = da | {t.id} if isinstance(t, ast.Name) else self.expr(t, da)
            return da, False
        if isinstance(node, ast.Expr):
            return self.expr(node.value, da), False
        if isinstance(node, ast.If):
            da = self.expr(node.test, da)
            (a, left_a), (b, left_b) = self.block(node.body, da), self.block(node.orelse, da)
            if left_a and left_b:
                return da, True
            return (b if left_a else a if left_b else a & b), False
        if isinstance(node, ast.While):
            self._breaks.append([])
            self.block(node.body, da)  # the head sees the entry set: later iterations only add to it
            exits = self._breaks.pop()
            if not exits:  # ``while True`` without a break: what follows is unreachable
                return da, True
            out = exits[0]
            for e in exits[1:]:
                out = out & e
            return out, False
        if isinstance(node, ast.Break):
            self._breaks[-1].append(da)
            return da, True
        if isinstance(node, ast.Continue):
            return da, True
        if isinstance(node, ast.Return):
            if node.value is not None:
                self.expr(node.value, da)
            return da, True
        return da, False


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
        self.enc_arrays: list[tuple[int, str]] = []  # (position, variable) of each encoded list parameter so far
        self._types()
        assigned = _Assigned(fn)
        self.maybe_unbound = assigned.maybe
        self.unbound = tuple(n for n in assigned.names if n in self.ints or n in self.arrays)
        if len(assigned.names) != len(self.unbound):
            raise _fail("a read of a name that is neither a local nor an array")

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

    def assigned(self, name: str) -> None:
        """After an assignment of an int local that may be read unassigned: set its flag."""
        if name in self.unbound and name not in self.arrays:
            self.emit(f"d_{name} = 1;")

    def read(self, node: ast.Name) -> str:
        """A local's value; a read that may find it unassigned first tests its flag (Python: UnboundLocalError)."""
        if id(node) in self.maybe_unbound:
            flag = f"!{self.var(node.id)}" if node.id in self.arrays else f"!d_{node.id}"
            self.emit(f"if ({flag}) cx_fail(cx, ST_UNBOUND, 0, {self.unbound.index(node.id)}, -1);")
        return self.var(node.id)

    def site(self, op: str) -> int:
        self.sites.append(op)
        return len(self.sites) - 1

    # -- expressions: flatten to an atom ------------------------------------------------------------------------
    def expr(self, node: ast.expr) -> str:
        if isinstance(node, ast.Constant):
            return _lit(node.value)
        if isinstance(node, ast.Name):
            if node.id in self.arrays or node.id in self.ints:
                return self.read(node)
            raise _fail(f"unknown name {node.id!r}")
        if isinstance(node, ast.NamedExpr):
            value = self.expr(node.value)
            target = node.target.id
            self.emit(f"{self.var(target)} = {value};")
            self.assigned(target)
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
            test = self.alias_test(node.test) or self.expr(node.test)
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

    def alias_test(self, test: ast.expr) -> str | None:
        """``q is _e_in_p`` (the prologue's test for one list passed twice): the same caller buffer."""
        if not (
            isinstance(test, ast.Compare)
            and len(test.ops) == 1
            and isinstance(test.ops[0], ast.Is)
            and isinstance(test.left, ast.Name)
            and test.left.id in self.list_params
            and isinstance(test.comparators[0], ast.Name)
            and test.comparators[0].id in self.in_alias
        ):
            return None
        i, j = self.list_params[test.left.id], self.in_alias[test.comparators[0].id]
        return f"(arrs[{i}] == arrs[{j}] && lens[{i}] == lens[{j}])"

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
            self.assigned(name)
            return
        if name == "_e_r":
            self.emit(f"rk = 1; {self.var(name)} = {self.expr(value)};")
            self.assigned(name)
            return
        self.emit(f"{self.var(name)} = {self.expr(value)};")
        self.assigned(name)

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
        for name in self.unbound:
            if name not in self.arrays:
                self.emit(f"int d_{name} = 0;")
        self.emit("int64_t rk = 1;")
        self.emit("(void)ints; (void)arrs; (void)lens; (void)rk;")
        self.block(self.fn.body)
        body = "\n".join(self.lines)
        params = tuple((p, p in self.list_params) for p in self.params)
        return CFunction(self.fn.name, body, params, tuple(self.sites), self.unbound)


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
