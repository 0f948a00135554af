"""Statement half of the ``@encoded`` compiler: assignments, if, while, for over range, return."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from custodes.encoded._compiler import _BINOPS, _PREFIX, _call, _is_list_mult, _load, _store

if TYPE_CHECKING:
    from custodes.encoded._compiler import _Compiler

__all__ = ["compile_body"]


def _assign(name: str, value: ast.expr) -> ast.Assign:
    return ast.Assign(targets=[_store(name)], value=value)


def _expr_stmt(value: ast.expr) -> ast.Expr:
    return ast.Expr(value=value)


class _Statements:
    def __init__(self, comp: _Compiler) -> None:
        self.c = comp
        self.loops: list[str] = []
        params = [a.arg for a in [*comp.fn.args.posonlyargs, *comp.fn.args.args] if a.arg in comp.arrays]
        self.written_params = _written(comp.fn, comp.arrays, params)

    def writebacks(self) -> list[ast.stmt]:
        """Decode, check and copy back the array parameters the function may have stored into.

        An array parameter that no store can reach (through any alias) still holds the caller's values: copying
        it back would change nothing, so it is skipped. Its words are checked where they are loaded.
        """
        out: list[ast.stmt] = []
        for name in self.written_params:
            target = ast.Subscript(value=_load(f"{_PREFIX}in_{name}"), slice=ast.Slice(), ctx=ast.Store())
            out.append(ast.Assign(targets=[target], value=self.c.op("dec_array", _load(f"{_PREFIX}arr_{name}"))))
        return out

    def store(self, arr: ast.Name, idx: ast.expr, bi: int, value: ast.expr, bv: int) -> list[ast.stmt]:
        """A checked store: the ALU call, or its inline statements in the production form."""
        if self.c.low is not None:
            return self.c.low.store(arr.id, idx, bi, value, bv)
        return [_expr_stmt(_call("store", arr, idx, bi, value, bv))]

    def hoist(self, name: str) -> list[ast.stmt]:
        """Production form: refresh the locals that hold array ``name``'s attributes after it is (re)assigned."""
        return self.c.low.hoist(name) if self.c.low is not None else []

    def block(self, nodes: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for node in nodes:
            out.extend(self.stmt(node))
        return out or [ast.Pass()]

    def stmt(self, node: ast.stmt) -> list[ast.stmt]:
        c = self.c
        if isinstance(node, ast.Assign):
            if len(node.targets) != 1:
                raise c.err(node, "chained assignment is not supported")
            return self.assign(node.targets[0], node.value, node)
        if isinstance(node, ast.AnnAssign):
            if node.value is None:
                raise c.err(node, "a bare annotation is not supported")
            return self.assign(node.target, node.value, node)
        if isinstance(node, ast.AugAssign):
            return self.augassign(node)
        if isinstance(node, ast.If):
            pre, cw, bc = self.condition(node.test)
            return [*pre, self.branch(cw, bc, self.block(node.body), self.block(node.orelse) if node.orelse else [])]
        if isinstance(node, ast.While):
            return self.while_(node)
        if isinstance(node, ast.For):
            return self.for_(node)
        if isinstance(node, ast.Return):
            return self.return_(node)
        if isinstance(node, ast.Pass):
            return [ast.Pass()]
        if isinstance(node, ast.Break):
            if not self.loops:
                raise c.err(node, "'break' outside a loop")
            return [ast.Break()]
        if isinstance(node, ast.Continue):
            if not self.loops or self.loops[-1] != "while":
                raise c.err(node, "'continue' is supported in while loops only")
            return [ast.Continue()]
        if isinstance(node, ast.Expr):
            raise c.err(node, "an expression statement has no effect on encoded state; assign or return it")
        raise c.err(node, f"unsupported statement {type(node).__name__}")

    def condition(self, test: ast.expr) -> tuple[list[ast.stmt], str, int]:
        """Evaluate a branch condition into a fresh name; returns (statements, name, signature)."""
        code, bc = self.c.cond(test)
        name = self.c.tmp()
        return [_assign(name, code)], name, bc

    def branch(self, cw: str, bc: int, then: list[ast.stmt], orelse: list[ast.stmt]) -> ast.If:
        """``if`` on the condition word ``cw``; each arm first re-checks it (a wrong branch is detected)."""
        return ast.If(
            test=self.c.op("branch", _load(cw), bc),
            body=[_expr_stmt(self.c.op("expect", _load(cw), bc, 1)), *then],
            orelse=[_expr_stmt(self.c.op("expect", _load(cw), bc, 0)), *orelse],
        )

    def assign(self, target: ast.expr, value: ast.expr, node: ast.stmt) -> list[ast.stmt]:
        c = self.c
        if isinstance(target, ast.Name):
            name = target.id
            if name in c.arrays:
                if _is_list_mult(value):
                    fill = value.left.elts[0]  # type: ignore[attr-defined]
                    if not (isinstance(fill, ast.Constant) and type(fill.value) is int):
                        raise c.err(value, "an array literal must be [int_constant] * length")
                    c.lit(fill.value, 0, fill)  # range check of the fill value
                    n, bn, _ = c.expr(value.right)  # type: ignore[attr-defined]
                    return [_assign(name, self.c.op("new_array", n, bn, fill.value, c.sigs[name])), *self.hoist(name)]
                if isinstance(value, ast.Name) and value.id in c.arrays:
                    return [_assign(name, _load(value.id)), *self.hoist(name)]
                raise c.err(node, f"array variable {name!r} can only be assigned an array")
            if _is_list_mult(value) or (isinstance(value, ast.Name) and value.id in c.arrays):
                raise c.err(node, f"{name!r} is used as an integer elsewhere")
            code, _, _ = c.expr(value, c.sigs[name])
            return [_assign(name, code)]
        if isinstance(target, ast.Subscript):
            arr, idx, bi = c.subscript(target)
            v, bv, _ = c.expr(value)
            return self.store(arr, idx, bi, v, bv)
        if isinstance(target, ast.Tuple):
            if not isinstance(value, ast.Tuple) or len(value.elts) != len(target.elts):
                raise c.err(node, "tuple assignment needs a tuple of the same length on the right")
            out: list[ast.stmt] = []
            temps: list[tuple[str, int]] = []
            for elt in value.elts:
                t = c.tmp()
                code, b, _ = c.expr(elt)
                out.append(_assign(t, code))
                temps.append((t, b))
            for tgt, (t, b) in zip(target.elts, temps, strict=True):
                if isinstance(tgt, ast.Name) and tgt.id not in c.arrays:
                    out.append(_assign(tgt.id, self.c.op("mov", _load(t), b, c.k("mov", b, 0, c.sigs[tgt.id]))))
                elif isinstance(tgt, ast.Subscript):
                    arr, idx, bi = c.subscript(tgt)
                    out.extend(self.store(arr, idx, bi, _load(t), b))
                else:
                    raise c.err(tgt, "tuple targets must be integer variables or array elements")
            return out
        raise c.err(target, f"unsupported assignment target {type(target).__name__}")

    def augassign(self, node: ast.AugAssign) -> list[ast.stmt]:
        c = self.c
        if isinstance(node.target, ast.Name):
            load = ast.copy_location(ast.Name(node.target.id, ast.Load()), node.target)
            binop = ast.copy_location(ast.BinOp(left=load, op=node.op, right=node.value), node)
            return self.assign(node.target, binop, node)
        if not isinstance(node.target, ast.Subscript):
            raise c.err(node, "unsupported augmented assignment target")
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise c.err(node, f"unsupported operator {type(node.op).__name__}")
        arr, idx, bi = c.subscript(node.target)
        t = c.tmp()
        bl, bz = c.fresh(), c.fresh()
        current = self.c.op("load", arr, _load(t), bi, bl)
        if op in ("shl", "shr"):
            n = node.value
            if not (isinstance(n, ast.Constant) and type(n.value) is int and 0 <= n.value < 32):
                raise c.err(node.value, "shifts need a constant amount in 0..31")
            result = self.c.op(op, current, bl, n.value, c.k(op, bl, 0, bz))
        else:
            y, by, _ = c.expr(node.value)
            result = self.c.op(op, current, bl, y, by, c.k(op, bl, by, bz))
        return [_assign(t, idx), *self.store(_load(arr.id), _load(t), bi, result, bz)]

    def while_(self, node: ast.While) -> list[ast.stmt]:
        if node.orelse:
            raise self.c.err(node, "while ... else is not supported")
        pre, cw, bc = self.condition(node.test)
        self.loops.append("while")
        body = self.block(node.body)
        self.loops.pop()
        return [ast.While(test=ast.Constant(True), body=[*pre, self.branch(cw, bc, body, [ast.Break()])], orelse=[])]

    def for_(self, node: ast.For) -> list[ast.stmt]:
        c = self.c
        it = node.iter
        if node.orelse:
            raise c.err(node, "for ... else is not supported")
        if not isinstance(node.target, ast.Name) or node.target.id in c.arrays:
            raise c.err(node.target, "the loop variable must be a single integer variable")
        if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range"):
            raise c.err(it, "for loops must iterate over range(...)")
        if it.keywords or not 1 <= len(it.args) <= 3:
            raise c.err(it, "range() takes 1 to 3 positional arguments")
        start: ast.expr = it.args[0] if len(it.args) > 1 else ast.copy_location(ast.Constant(0), it)
        stop = it.args[1] if len(it.args) > 1 else it.args[0]
        step = _const_int(it.args[2]) if len(it.args) == 3 else 1
        if not step:
            raise c.err(it, "range() step must be a non-zero integer constant")
        i, end, cw = c.tmp(), c.tmp(), c.tmp()
        # The hidden counter carries the loop variable's signature, so the per-iteration copy is a plain move.
        bi, bend, bs, bc = c.sigs[node.target.id], c.fresh(), c.fresh(), c.fresh()
        cmp = "lt" if step > 0 else "gt"
        stop_code, _, _ = c.expr(stop, bend)
        start_code, _, _ = c.expr(start, bi)
        cond = self.c.op(cmp, _load(i), bi, _load(end), bend, c.k(cmp, bi, bend, bc))
        name = node.target.id
        increment = _assign(i, self.c.op("add", _load(i), bi, c.lit(step, bs, it), bs, c.k("add", bi, bs, bi)))
        self.loops.append("for")
        body = [_assign(name, _load(i)), *self.block(node.body)]
        self.loops.pop()
        if abs(step) == 1:
            # ``i < stop`` and ``stop`` in range: ``i + 1`` is in range too, so the increment may run before the test.
            loop = ast.While(
                test=ast.Constant(True),
                body=[_assign(cw, cond), self.branch(cw, bc, [*body, increment], [ast.Break()])],
                orelse=[],
            )
            return [_assign(end, stop_code), _assign(i, start_code), loop]
        # A larger step could take the counter past the functional range after the last iteration, which Python's
        # range never computes: the loop continues iff ``i + step`` is before ``stop``, tested before the increment
        # as ``i < lim`` (``i > lim``), ``lim = stop - step`` clamped to the range; the increment runs only then.
        lim, cw2, blim, bc2 = c.tmp(), c.tmp(), c.fresh(), c.fresh()
        cont = self.c.op(cmp, _load(i), bi, _load(lim), blim, c.k(cmp, bi, blim, bc2))
        inner = ast.While(
            test=ast.Constant(True),
            body=[*body, _assign(cw2, cont), self.branch(cw2, bc2, [increment], [ast.Break()])],
            orelse=[],
        )
        enter = [_assign(lim, self.limit(end, bend, step, blim, stop, it)), inner]
        return [_assign(end, stop_code), _assign(i, start_code), _assign(cw, cond), self.branch(cw, bc, enter, [])]

    def limit(self, end: str, bend: int, step: int, blim: int, stop: ast.expr, node: ast.AST) -> ast.expr:
        """``max(stop, min + step) - step`` (``min(stop, max + step) - step`` for a negative step), in range."""
        c = self.c
        edge = c.t.kmin + step if step > 0 else c.t.kmax + step
        known = _literal(stop)
        if known is not None:  # folded at transform time
            bound = max(known, edge) if step > 0 else min(known, edge)
            return c.lit(bound - step, blim, node)
        be, bcmp, bm, bs = c.fresh(), c.fresh(), c.fresh(), c.fresh()
        op = "ge" if step > 0 else "le"
        test = c.op(op, _load(end), bend, c.lit(edge, be, node), be, c.k(op, bend, be, bcmp))
        clamped = c.op("select", test, bcmp, _load(end), bend, c.lit(edge, be, node), be, bm)
        return c.op("sub", clamped, bm, c.lit(step, bs, node), bs, c.k("sub", bm, bs, blim))

    def return_(self, node: ast.Return) -> list[ast.stmt]:
        c = self.c
        if node.value is None:
            return [*self.writebacks(), ast.Return(value=ast.Constant(None))]
        if isinstance(node.value, ast.Name) and node.value.id in c.arrays:
            return [*self.writebacks(), ast.Return(value=self.c.op("dec_array", _load(node.value.id)))]
        code, b, ty = c.expr(node.value)
        result: ast.expr = self.c.op("dec", code, b)
        if ty == "bool":
            result = ast.Call(func=_load("bool"), args=[result], keywords=[])
        r = f"{_PREFIX}r"
        return [_assign(r, result), *self.writebacks(), ast.Return(value=_load(r))]


def _written(fn: ast.FunctionDef, arrays: set[str], params: list[str]) -> list[str]:
    """The array parameters that a subscript store may reach, through the aliases ``x = y`` between arrays."""
    parent = {a: a for a in arrays}

    def find(a: str) -> str:
        while parent[a] != a:
            a = parent[a]
        return a

    for n in ast.walk(fn):
        if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name):
            t, v = n.targets[0].id, n.value
            if t in parent and isinstance(v, ast.Name) and v.id in parent:
                parent[find(t)] = find(v.id)
    stored: set[str] = set()
    for n in ast.walk(fn):
        if isinstance(n, ast.Subscript) and isinstance(n.ctx, ast.Store):
            if not (isinstance(n.value, ast.Name) and n.value.id in parent):
                return list(params)  # not an array variable (the compiler refuses it): stay conservative
            stored.add(find(n.value.id))
    return [p for p in params if find(p) in stored]


def _literal(node: ast.expr) -> int | None:
    """The value of an int literal (``-`` literal included), else None."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        v = _literal(node.operand)
        return None if v is None else -v
    return None


def _const_int(node: ast.expr) -> int:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_const_int(node.operand)
    return 0


def _shared_or_encoded(comp: _Compiler, name: str, earlier: list[str]) -> ast.stmt:
    """``_e_arr_<name>``: the encoded array of an earlier list parameter if the caller passed the same list object
    for both (plain Python sees one list: a store through one parameter is read through the other), else a new one.

    One list gives one ``EncodedArray``, as an alias ``q = p`` inside the function does; each write-back of it
    writes the same values into the same list.
    """
    stmt: ast.stmt = _assign(f"{_PREFIX}arr_{name}", comp.op("enc_array", _load(name), comp.sigs[name]))
    for other in reversed(earlier):
        test = ast.Compare(left=_load(name), ops=[ast.Is()], comparators=[_load(f"{_PREFIX}in_{other}")])
        stmt = ast.If(test=test, body=[_assign(f"{_PREFIX}arr_{name}", _load(f"{_PREFIX}arr_{other}"))], orelse=[stmt])
    return stmt


def compile_body(comp: _Compiler) -> ast.Module:
    """The complete encoded function: encode the inputs, the body, decode the outputs."""
    fn = comp.fn
    s = _Statements(comp)
    prologue: list[ast.stmt] = []
    params = [a.arg for a in [*fn.args.posonlyargs, *fn.args.args]]
    lists: list[str] = []
    for name in params:
        if name in comp.arrays:
            prologue.append(_assign(f"{_PREFIX}in_{name}", _load(name)))
            prologue.append(_shared_or_encoded(comp, name, lists))
            lists.append(name)
            prologue.append(_assign(name, _load(f"{_PREFIX}arr_{name}")))
            prologue.extend(s.hoist(name))
        else:
            prologue.append(_assign(name, comp.op("enc", _load(name), comp.sigs[name])))
    body = list(fn.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    for node in ast.walk(fn):
        if node is not fn and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            raise comp.err(node, "nested functions and classes are not supported")
    statements = s.block(body)
    epilogue = [*s.writebacks(), ast.Return(value=ast.Constant(None))]
    arguments = ast.arguments(
        posonlyargs=[], args=[ast.arg(arg=p) for p in params], kwonlyargs=[], kw_defaults=[], defaults=[]
    )
    extra = {"type_params": []} if "type_params" in ast.FunctionDef._fields else {}
    new = ast.FunctionDef(
        name=fn.name,
        args=arguments,
        body=[*prologue, *statements, *epilogue],
        decorator_list=[],
        returns=None,
        **extra,
    )
    module = ast.Module(body=[new], type_ignores=[])
    return ast.fix_missing_locations(module)
