"""``@encoded``: turn a plain integer Python function into its encoded form.

Supported: integer parameters and ``list[int]``-annotated array parameters; int and bool constants and module-level
int constants (captured at decoration time); ``+ - * // %``, ``<< >>`` by a constant, unary ``-``; one comparison
per expression; ``and``/``or``/``not`` on booleans; conditional expressions; ``len``, two-argument ``min``/``max``,
``abs``; array indexing and stores; ``[c] * n`` array creation; assignment (also to tuples), augmented assignment;
``if``/``elif``/``else``, ``while`` (with ``break``/``continue``), ``for`` over ``range`` (``break``); ``return``.
Anything else raises :class:`EncoderError` when the decorator runs, naming file, line and column.

Semantics match the plain function for values in the code's functional range (Python floor division and modulo);
an intermediate outside that range raises :class:`EncodedOverflowError` where Python would grow the int. Array
parameters must be lists; they are encoded on entry and written back, decoded and checked, on return.
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
import threading
from collections.abc import Callable
from typing import Any, overload

from custodes.encoded._compiler import Target, compile_function
from custodes.encoded._lower import runtime_names
from custodes.encoded.baseline import PlainOps
from custodes.encoded.code import Code
from custodes.encoded.errors import EncodedUsageError, EncoderError
from custodes.encoded.ops import DEFAULT_CHECKS, EncodedOps

__all__ = ["BACKENDS", "EncodedFunction", "encoded"]

#: ``python``: the generated Python production form (default). ``c``: the same program compiled to C (cbackend.py).
BACKENDS = ("python", "c")

_BUILTINS = {"bool": bool}


class EncodedFunction:
    """A transformed function. Calling it runs the encoded form; it raises :class:`FaultDetectedError` on a fault.

    Attributes:
        original: the undecorated function.
        code: the code the production form uses.
        checks: where the production form checks operands (``"deferred"`` or ``"every-op"``, see ``ops.py``).
        backend: ``"python"`` or ``"c"`` (the compiled form; needs a C compiler, see docs/encoded.md).
    """

    def __init__(
        self, fn: Callable[..., Any], code: Code, checks: str = DEFAULT_CHECKS, backend: str = "python"
    ) -> None:
        if backend not in BACKENDS:
            raise EncodedUsageError(None, f"backend must be one of {', '.join(BACKENDS)}")
        self.original = fn
        self.code = code
        self.checks = checks
        self.backend = backend
        self.__name__ = fn.__name__
        self.__qualname__ = fn.__qualname__
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn
        self._tree, self._where = _parse(fn)
        self._consts = {k: v for k, v in fn.__globals__.items() if type(v) is int}
        self._lock = threading.Lock()
        self._compiled: dict[Target, Any] = {}
        self._c: dict[tuple[Code | None, bool], Any] = {}
        self._call = self.bind(EncodedOps(code, checks))  # compiles now: unsupported constructs fail at decoration
        if backend == "c":
            self._call = self._c_or_fail()
        # Calls go straight to the compiled function: a per-instance subclass whose __call__ *is* that function
        # (a staticmethod), so no Python frame is added. Behaviour is that of ``__call__`` below.
        cls = type(self)
        self.__class__ = type(cls.__name__, (cls,), {"__call__": staticmethod(self._call), "__slots__": ()})

    def __call__(self, *args: Any) -> Any:
        return self._call(*args)

    def __repr__(self) -> str:
        return f"<encoded function {self.__qualname__} ({self.code.scheme.value}, A={self.code.A})>"

    def _c_or_fail(self) -> Any:
        """The production C kernel, or :class:`EncoderError` naming why it cannot be built (never a fallback)."""
        from custodes.encoded._cbuild import CompilerUnavailable  # noqa: PLC0415 - only for backend="c"

        filename, line_offset, col_offset = self._where
        if self.checks != "deferred":
            raise EncoderError(
                "backend='c' implements checks='deferred' only",
                filename=filename,
                lineno=self._tree.lineno + line_offset,
                col=col_offset + 1,
            )
        try:
            return self.c_kernel(self.code).entry
        except (CompilerUnavailable, EncodedUsageError) as e:
            raise EncoderError(
                f"backend='c' is unavailable: {e}",
                filename=filename,
                lineno=self._tree.lineno + line_offset,
                col=col_offset + 1,
            ) from e

    def c_kernel(self, code: Code | None, *, inject: bool = False) -> Any:
        """The compiled form for ``code`` (``None``: the plain 32-bit baseline), built from the ALU-call form.

        ``inject=True`` gives the instrumented build for fault injection. Built once per process and code; the
        object file is cached on disk. Raises ``CompilerUnavailable`` if no C compiler works.
        """
        from custodes.encoded._cgen import translate  # noqa: PLC0415 - the C backend loads only when used
        from custodes.encoded.cbackend import c_program  # noqa: PLC0415

        key = (code, inject)
        with self._lock:
            kernel = self._c.get(key)
        if kernel is not None:
            return kernel
        ops: EncodedOps | PlainOps = PlainOps() if code is None else EncodedOps(code, "deferred")
        target = self._target(ops, inline=False)
        kernel = c_program(translate(self._module(target)), code, inject=inject)
        with self._lock:
            return self._c.setdefault(key, kernel)

    def c_source(self, code: Code | None = None) -> str:
        """The generated C translation unit (production build) for ``code`` (default: this function's code)."""
        from custodes.encoded._cgen import translate  # noqa: PLC0415
        from custodes.encoded.cbackend import program_source  # noqa: PLC0415

        chosen = code or self.code
        return program_source(translate(self._module(self._target(EncodedOps(chosen), inline=False))), chosen)

    def _target(self, ops: EncodedOps | PlainOps, inline: bool) -> Target:
        if isinstance(ops, PlainOps):
            return Target(A=1, signed=False, kmin=-(1 << 31), kmax=(1 << 31) - 1, plain=True)
        c = ops.code
        inline = inline and type(ops) is EncodedOps
        deferred = inline and ops.checks == "deferred"
        return Target(c.A, c.signed, c.min_value, c.max_value, versioned=c.versioned, inline=inline, deferred=deferred)

    def source(self, ops: EncodedOps | PlainOps | None = None, *, inline: bool = False) -> str:
        """The generated Python source (for review and debugging).

        By default the ALU-call form, where every encoded operation is one ``_RT`` call (the form campaigns inject
        into); ``inline=True`` shows the production form, in which each call is lowered to its inline checks.
        """
        target = self._target(ops or EncodedOps(self.code, self.checks), inline)
        return ast.unparse(self._module(target))

    def _module(self, target: Target) -> ast.Module:
        filename, line_offset, col_offset = self._where
        return compile_function(
            self._tree, target, filename=filename, line_offset=line_offset, col_offset=col_offset, consts=self._consts
        )

    def bind(self, ops: EncodedOps | PlainOps | Any) -> Callable[..., Any]:
        """The function compiled for ``ops``' code and running on ``ops`` (an ALU, the baseline or an injector).

        An :class:`EncodedOps` gets the production (inline) form, with ``ops`` behind every failed check. An object
        that wraps an ALU (the fault injector) exposes it as ``inner`` and gets the ALU-call form, so that every
        operation is an injection point.
        """
        base = getattr(ops, "inner", ops)
        target = self._target(base, inline=base is ops)
        with self._lock:
            compiled = self._compiled.get(target)
            if compiled is None:
                compiled = compile(self._module(target), f"<encoded {self.__qualname__}>", "exec")
                self._compiled[target] = compiled
        namespace: dict[str, Any] = {"_RT": ops, "__builtins__": _BUILTINS, **runtime_names()}
        exec(compiled, namespace)  # noqa: S102 - our own compiled AST, built from the checked function
        fn: Callable[..., Any] = namespace[self._tree.name]
        return functools.wraps(self.original)(fn)


def _parse(fn: Callable[..., Any]) -> tuple[ast.FunctionDef, tuple[str, int, int]]:
    filename = inspect.getsourcefile(fn) or "<unknown>"
    try:
        lines, first = inspect.getsourcelines(fn)
    except (OSError, TypeError) as e:
        raise EncoderError("source of the function is not available", filename=filename, lineno=1, col=1) from e
    raw = "".join(lines)
    source = textwrap.dedent(raw)
    indent = len(raw.splitlines()[0]) - len(source.splitlines()[0])
    tree = ast.parse(source)
    node = tree.body[0]
    if not isinstance(node, ast.FunctionDef):
        raise EncoderError("@encoded applies to plain (non-async) functions", filename=filename, lineno=first, col=1)
    for deco in node.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name != "encoded":
            raise EncoderError(
                "other decorators cannot be combined with @encoded",
                filename=filename,
                lineno=deco.lineno + first - 1,
                col=deco.col_offset + indent + 1,
            )
    return node, (filename, first - 1, indent)


@overload
def encoded(
    fn: Callable[..., Any], *, code: Code | None = None, checks: str = ..., backend: str = ...
) -> EncodedFunction: ...
@overload
def encoded(
    fn: None = None, *, code: Code | None = None, checks: str = ..., backend: str = ...
) -> Callable[[Callable[..., Any]], EncodedFunction]: ...


def encoded(
    fn: Callable[..., Any] | None = None,
    *,
    code: Code | None = None,
    checks: str = DEFAULT_CHECKS,
    backend: str = "python",
) -> EncodedFunction | Callable[[Callable[..., Any]], EncodedFunction]:
    """Decorator: ``@encoded`` or ``@encoded(code=Code.anb(), checks="every-op")`` or ``@encoded(backend="c")``.

    The default code is ``Code()`` (ANBD, A=58659); the default ``checks="deferred"`` checks each value where an
    operation could mask its error (docs/encoded.md, "Where checks happen"). ``backend="c"`` compiles the same
    encoded program to C at decoration time and raises :class:`EncoderError` if that is impossible.
    """
    chosen = code or Code()

    def wrap(f: Callable[..., Any]) -> EncodedFunction:
        return EncodedFunction(f, chosen, checks, backend)

    return wrap(fn) if fn is not None else wrap
