"""The compiled backend of ``@encoded``: the same encoded program as C99, built once, called through ``ctypes``.

:func:`c_program` translates the ALU-call form of a function (the form campaigns inject into: same signatures,
same correction constants, same deferred check placement) to C (``_cgen.py``), prepends the C ALU (``_calu.py``),
compiles it into the private cache (``_cbuild.py``) and returns a :class:`CKernel`. Calling a ``CKernel``
validates and encodes the arguments exactly as the Python form does, runs the C function, writes list arguments
back as the Python form does, and turns an error status into the same exception the Python form raises
(:class:`FaultDetectedError` with the same ``reason`` and ``where``, :class:`EncodedOverflowError`,
``ZeroDivisionError``, ``IndexError``).

The production build of an encoded kernel is also a CPython extension (``_cext.py``): :attr:`CKernel.entry` is its
``METH_FASTCALL`` function, which does the argument checks, the list encoding and write-back and the result
decoding in C, and hands every unusual argument to the checked Python path (``_slow_call``, the ctypes call). The
instrumented and the plain builds are loaded with ``ctypes`` only.

``inject=True`` builds the instrumented variant (``-DCUSTODES_INJECT``); :meth:`CKernel.run_injected` runs it with
one :class:`~custodes.encoded.faults.FaultSpec`, counting dynamic events the way the Python injector does.
"""

from __future__ import annotations

import ctypes
import hashlib
import threading
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from custodes.encoded._calu import OPS, REASONS, STATUS, WHERE, alu_header, runtime
from custodes.encoded._cbuild import CompilerUnavailable, build, build_extension
from custodes.encoded._cext import PREAMBLE, extension_source, module_name
from custodes.encoded._cgen import CFunction
from custodes.encoded._chooks import wrappers
from custodes.encoded.code import Code, wrap
from custodes.encoded.errors import (
    EncodedOverflowError,
    EncodedRangeError,
    EncodedUsageError,
    FaultDetectedError,
)
from custodes.encoded.faults import CampaignCrash, CampaignTimeout, FaultModel, FaultSpec, eligible

__all__ = ["CKernel", "CRun", "CompilerUnavailable", "c_program", "program_source"]

_I64 = ctypes.c_int64
_P64 = ctypes.POINTER(_I64)


class _Ctx(ctypes.Structure):
    _fields_ = [
        *((n, _I64) for n in ("status", "reason", "where", "site", "ret_kind", "ret_val", "ret_len", "wb_done")),
        ("ret_words", _P64),
        *((n, _I64) for n in ("model", "event", "slot", "value", "alt", "fired")),
        ("mask", ctypes.c_uint64),
        *((n, _I64) for n in ("budget", "steps", "seen", "trace_cap", "trace_len")),
        ("trace", ctypes.POINTER(ctypes.c_int32)),
        ("elig", ctypes.POINTER(ctypes.c_int8)),
        ("jb", ctypes.c_void_p),
        ("allocs", ctypes.c_void_p),
    ]


_ENTRY = r"""
#include <string.h>
static void cx_writeback(cx_t *cx, earr *a, int64_t *out, int64_t pos, int64_t site) {
    alu_dec_array(cx, a, out, site);
    cx->wb_done |= INT64_C(1) << pos;
}
static void cx_return_array(cx_t *cx, earr *a, int64_t site) {
    int64_t *tmp = cx_alloc(cx, a->n, site);
    alu_dec_array(cx, a, tmp, site);          /* checked first: nothing escapes before every word passed */
    int64_t *out = malloc((size_t)(a->n > 0 ? a->n : 1) * sizeof(int64_t));   /* owned by the caller */
    if (!out) cx_fail(cx, ST_NOMEM, 0, 0, site);
    memcpy(out, tmp, (size_t)a->n * sizeof(int64_t));
    cx->ret_words = out; cx->ret_len = a->n; cx->ret_kind = 3;
}
void custodes_free(int64_t *p) { free(p); }
static void body(cx_t *cx, const int64_t *ints, int64_t *const *arrs, const int64_t *lens);
int custodes_run(cx_t *cx, const int64_t *ints, int64_t *const *arrs, const int64_t *lens) {
    jmp_buf jb;
    cx->jb = &jb;
    if (setjmp(jb)) { custodes_release(cx); return (int)cx->status; }
    body(cx, ints, arrs, lens);
    custodes_release(cx);
    return 0;
}
/* Benchmark harness: the kernel `iters` times inside C (inputs read through pointers, so nothing folds). */
int custodes_bench(int64_t iters, const int64_t *ints, int64_t *const *pristine, int64_t *const *work,
                   const int64_t *lens, int64_t nparams, int64_t *acc) {
    /* the context lives on the heap: it is modified between setjmp and longjmp, which an automatic object of
       this frame must not be */
    cx_t *cx = calloc(1, sizeof(cx_t));
    jmp_buf jb;
    if (!cx) return ST_NOMEM;
    cx->model = -1; cx->jb = &jb;
    if (setjmp(jb)) { int st = (int)cx->status; custodes_release(cx); free(cx); return st; }
    for (int64_t it = 0; it < iters; it++) {
        for (int64_t p = 0; p < nparams; p++)
            if (pristine[p]) memcpy(work[p], pristine[p], (size_t)lens[p] * sizeof(int64_t));
        cx->ret_kind = 0; cx->ret_len = 0;
        body(cx, ints, work, lens);
        *acc += cx->ret_val + cx->ret_len + (cx->ret_len ? cx->ret_words[0] : 0);
        if (cx->ret_kind == 3) free(cx->ret_words);
        custodes_release(cx);
    }
    free(cx);
    return 0;
}
"""


@dataclass(frozen=True, slots=True)
class CRun:
    """The result of one run of the instrumented build: status name, output and (golden runs) the op trace."""

    status: str
    error: BaseException | None
    result: Any
    trace: tuple[str, ...]


def program_source(cfn: CFunction, code: Code | None) -> str:
    """The complete C translation unit for ``cfn`` under ``code`` (``None``: the plain 32-bit baseline)."""
    if code is None:  # the baseline is ordinary code: no optimisation barriers, the compiler may fold freely
        header = alu_header(1, -(1 << 31), (1 << 31) - 1, False, False, plain=True)
    else:
        header = alu_header(
            code.A, code.min_value, code.max_value, code.signed, code.versioned, plain=False, nbits=code.nbits
        )
    signature = "static void body(cx_t *cx, const int64_t *ints, int64_t *const *arrs, const int64_t *lens)"
    return "\n".join(
        [
            f"/* custodes.encoded C backend: {cfn.name} ({'plain' if code is None else code.scheme.value}) */",
            "#define CUSTODES_PLAIN 1" if code is None else "",
            runtime(),
            header,
            wrappers(),
            _ENTRY,
            *_call_entry(cfn),
            signature + " {",
            cfn.body,
            "}",
            "",
        ]
    )


def _call_entry(cfn: CFunction) -> list[str]:
    """``custodes_call(out, p0, ...)``: the per-call entry with flat arguments (a list is a pointer and a length)."""
    n = max(len(cfn.params), 1)
    params, fill = ["int64_t *out"], []
    for i, (_, is_list) in enumerate(cfn.params):
        if is_list:
            params += [f"int64_t *p{i}", f"int64_t n{i}"]
            fill.append(f"arrs[{i}] = p{i}; lens[{i}] = n{i};")
        else:
            params.append(f"int64_t p{i}")
            fill.append(f"ints[{i}] = p{i};")
    return [
        "static void body(cx_t *cx, const int64_t *ints, int64_t *const *arrs, const int64_t *lens);",
        f"int64_t custodes_call({', '.join(params)}) {{",
        "    cx_t cx;",
        "    memset(&cx, 0, sizeof cx);",
        "    cx.model = -1;",
        f"    int64_t ints[{n}] = {{0}}, lens[{n}] = {{0}};",
        f"    int64_t *arrs[{n}] = {{0}};",
        *("    " + f for f in fill),
        "    int st = custodes_run(&cx, ints, arrs, lens);",
        "    out[0] = st; out[1] = cx.ret_kind; out[2] = cx.reason; out[3] = cx.where; out[4] = cx.wb_done;",
        "    out[5] = (int64_t)(intptr_t)cx.ret_words; out[6] = cx.ret_len; out[7] = cx.site;",
        "    return cx.ret_val;",
        "}",
    ]


class CKernel:
    """A compiled encoded (or plain) function. Call it like the Python form."""

    def __init__(self, cfn: CFunction, code: Code | None, *, inject: bool = False, source: str | None = None) -> None:
        if sum(1 for _, is_list in cfn.params if is_list) and len(cfn.params) > 63:
            raise EncodedUsageError(None, "C backend: at most 63 parameters")
        self.cfn = cfn
        self.code = code
        self.inject = inject
        # ``source``: a complete translation unit for this function (benchmarks/encoded.py builds measurement
        # copies with it); by default the generated program.
        self.source = program_source(cfn, code) if source is None else source
        self._lo, self._hi = (-(1 << 31), (1 << 31) - 1) if code is None else (code.min_value, code.max_value)
        #: The fastest callable with this kernel's semantics: the extension's fast path where one is built.
        self.entry: Any = self
        if code is not None and not inject and source is None:
            name = module_name(hashlib.sha256(f"{self._lo}:{self._hi}\0{self.source}".encode()).hexdigest())
            ext = PREAMBLE + self.source + extension_source(cfn, name, self._lo, self._hi)
            module, path = build_extension(ext, name)
            self._lib = ctypes.CDLL(path)  # the same object (one dlopen handle): run/bench/free by ctypes
            self.entry = module.make(self._slow_call, self._raise_status)
        else:
            self._lib = build(self.source, ("-DCUSTODES_INJECT",) if inject else ())
        self._run = self._lib.custodes_run
        self._run.restype = ctypes.c_int
        self._run.argtypes = [ctypes.POINTER(_Ctx), _P64, ctypes.POINTER(_P64), _P64]
        self._free = self._lib.custodes_free
        self._free.argtypes = [ctypes.c_void_p]
        self._free.restype = None
        self._callf = self._lib.custodes_call
        self._callf.restype = _I64
        types: list[Any] = [ctypes.c_void_p]
        for _, is_list in cfn.params:
            types += [ctypes.c_void_p, _I64] if is_list else [_I64]
        self._callf.argtypes = types
        self._tls = threading.local()
        self._bench = self._lib.custodes_bench
        self._bench.restype = ctypes.c_int
        self._bench.argtypes = [_I64, _P64, ctypes.POINTER(_P64), ctypes.POINTER(_P64), _P64, _I64, _P64]
        self._n = len(cfn.params)
        self._lists = [i for i, (_, is_list) in enumerate(cfn.params) if is_list]
        self._kinds = tuple(is_list for _, is_list in cfn.params)
        self.word_bits = 32 if code is None else code.nbits

    def __repr__(self) -> str:
        kind = "plain" if self.code is None else self.code.scheme.value
        return f"<C kernel {self.cfn.name} ({kind}{', instrumented' if self.inject else ''})>"

    # -- arguments ------------------------------------------------------------------------------------------------
    def _value(self, v: Any) -> int:
        if self.code is None:  # the baseline wraps its inputs like 32-bit registers
            if not isinstance(v, int):
                raise TypeError("plain kernels take integers")
            return wrap(v, 32)
        if not isinstance(v, int) or not self._lo <= v <= self._hi:
            raise EncodedRangeError(None, f"value is not an integer in [{self._lo}, {self._hi}]")
        return int(v)

    def _marshal(self, args: Sequence[Any]) -> tuple[Any, Any, Any, list[Any]]:
        if len(args) != self._n:
            raise TypeError(f"{self.cfn.name}() takes {self._n} positional arguments but {len(args)} were given")
        ints = (_I64 * max(self._n, 1))()
        arrs = (_P64 * max(self._n, 1))()
        lens = (_I64 * max(self._n, 1))()
        keep: list[Any] = []
        for i, a in enumerate(args):
            if i in self._lists:
                same = next((j for j in self._lists if j < i and args[j] is a), None)
                if same is not None:  # one list for two parameters: one buffer, one encoded array (see _slow_call)
                    arrs[i], lens[i] = arrs[same], lens[same]
                    continue
                values = list(self._array(a))
                buf = (_I64 * max(len(values), 1))(*values)
                keep.append(buf)
                arrs[i] = ctypes.cast(buf, _P64)
                lens[i] = len(values)
            else:
                ints[i] = self._value(a)
        return ints, arrs, lens, keep

    # -- results --------------------------------------------------------------------------------------------------
    def _error(self, ctx: _Ctx, status: int) -> BaseException:
        return self._error_fields(status, ctx.reason, ctx.where)

    def _error_fields(self, status: int, reason_no: int, where_no: int) -> BaseException:
        name = STATUS[status] if 0 <= status < len(STATUS) else "CRASH"
        where = WHERE[where_no] if 0 <= where_no < len(WHERE) else "?"
        if name == "FAULT":
            reason = REASONS[reason_no] if 0 < reason_no < len(REASONS) else "RESIDUE"
            return FaultDetectedError(reason, where)
        if name == "OVERFLOW":
            return EncodedOverflowError(None, f"result of {where} outside [{self._lo}, {self._hi}]")
        if name == "ZERODIV":
            return ZeroDivisionError("integer division or modulo by zero")
        if name == "INDEX":
            return IndexError("encoded array index out of range")
        if name == "NOMEM":
            return MemoryError("encoded array allocation failed")
        if name == "TIMEOUT":
            return CampaignTimeout(where)
        if name == "UNBOUND":  # ``where`` is the index of the local read before any assignment
            names = self.cfn.unbound
            local = names[where_no] if 0 <= where_no < len(names) else "?"
            return UnboundLocalError(f"cannot access local variable {local!r} where it is not associated with a value")
        return CampaignCrash("compiled kernel crashed")

    def _finish(self, ctx: _Ctx, status: int, args: Sequence[Any], arrs: Any, lens: Any) -> Any:
        for i in self._lists:  # write-backs that completed, in the order the Python form makes them
            if ctx.wb_done >> i & 1:
                args[i][:] = arrs[i][: lens[i]]
        if status:
            raise self._error(ctx, status)
        kind = ctx.ret_kind
        if kind == 3:
            try:
                return ctx.ret_words[: ctx.ret_len]
            finally:
                self._free(ctypes.cast(ctx.ret_words, ctypes.c_void_p))
        if kind == 1:
            return ctx.ret_val
        if kind == 2:
            return bool(ctx.ret_val)
        return None

    def _array(self, a: Any) -> array[int]:
        """A list argument as an int64 buffer, checked as ``EncodedArray`` checks it (C-level passes if valid)."""
        vals = a if type(a) is list else list(a)
        try:
            buf = array("q", vals)
        except (TypeError, OverflowError):
            buf = None
        if buf is None or (buf and (min(buf) < self._lo or max(buf) > self._hi)):
            return array("q", [self._value(v) for v in vals])  # raises for the first bad value, as Python does
        return buf

    def _out(self) -> tuple[array[int], int]:
        got: tuple[array[int], int] | None = getattr(self._tls, "out", None)
        if got is None:
            buf = array("q", bytes(64))
            got = (buf, buf.buffer_info()[0])
            self._tls.out = got
        return got

    def _raise_status(self, status: int, reason_no: int, where_no: int) -> None:
        """Raise the Python form's exception for an error status (called by the extension's fast path)."""
        raise self._error_fields(status, reason_no, where_no)

    def __call__(self, *args: Any) -> Any:
        entry = self.entry
        return self._slow_call(*args) if entry is self else entry(*args)

    def _slow_call(self, *args: Any) -> Any:
        """The checked call through ctypes: every argument validated and encoded here, errors raised here."""
        if len(args) != self._n:
            raise TypeError(f"{self.cfn.name}() takes {self._n} positional arguments but {len(args)} were given")
        out, addr = self._out()
        lo, hi = self._lo, self._hi
        if not self._lists:
            for a in args:
                if type(a) is not int or not lo <= a <= hi:
                    self._value(a)  # raises as the Python form does (a bool is accepted as an int)
            value = self._callf(addr, *(int(a) for a in args)) if self.code is None else self._callf(addr, *args)
            bufs: dict[int, array[int]] = {}
        else:
            cargs: list[Any] = [addr]
            bufs = {}
            for i, (a, is_list) in enumerate(zip(args, self._kinds, strict=True)):
                if is_list:
                    # The same list object for two parameters: the same buffer, so the kernel shares one encoded
                    # array, as the Python form does (plain Python sees one list).
                    shared = next((b for j, b in bufs.items() if args[j] is a), None)
                    buf = self._array(a) if shared is None else shared
                    bufs[i] = buf
                    cargs += [buf.buffer_info()[0], len(buf)]
                elif type(a) is int and lo <= a <= hi:
                    cargs.append(a)
                else:
                    cargs.append(self._value(a))
            value = self._callf(*cargs)
        status = out[0]
        if out[4]:
            for i, buf in bufs.items():  # write-backs that completed, in the Python form's order
                if out[4] >> i & 1:
                    args[i][:] = buf.tolist()
        if status:
            raise self._error_fields(status, out[2], out[3])
        kind = out[1]
        if kind == 1:
            return value
        if kind == 2:
            return bool(value)
        if kind == 3:
            try:
                return (_I64 * out[6]).from_address(out[5])[:] if out[6] else []
            finally:
                self._free(out[5])
        return None

    # -- fault injection (instrumented build) ---------------------------------------------------------------------
    def run_injected(self, args: Sequence[Any], spec: FaultSpec | None, budget: int, *, record: bool) -> CRun:
        """One run of the instrumented build; list arguments in ``args`` are written back as usual."""
        if not self.inject:
            raise EncodedUsageError(None, "run_injected needs a kernel built with inject=True")
        ints, arrs, lens, _keep = self._marshal(args)
        ctx = _Ctx()
        ctx.model = -1
        ctx.budget = budget
        trace_buf = None
        if record:
            cap = min(budget, 1 << 24)
            trace_buf = (ctypes.c_int32 * cap)()
            ctx.trace, ctx.trace_cap = ctypes.cast(trace_buf, ctypes.POINTER(ctypes.c_int32)), cap
        if spec is not None:
            model = spec.model
            elig = (ctypes.c_int8 * len(OPS))(*(eligible(model, op) for op in OPS))
            ctx.elig = ctypes.cast(elig, ctypes.POINTER(ctypes.c_int8))
            ctx.model = list(FaultModel).index(model)
            ctx.event, ctx.slot = spec.event, spec.slot
            mask = 0
            for b in spec.bits:
                mask |= 1 << b
            ctx.mask = mask & ((1 << 64) - 1)
            ctx.value = wrap(spec.value, self.word_bits)
            if model is FaultModel.FAULTY_OP:
                if spec.alt not in OPS:
                    raise EncodedUsageError(None, "C backend: faulty_op faults need an explicit alternative op")
                ctx.alt = OPS.index(spec.alt)
        status = self._run(ctypes.byref(ctx), ints, arrs, lens)
        trace = tuple(self.cfn.sites[s] for s in trace_buf[: ctx.trace_len]) if trace_buf is not None else ()
        try:
            result = self._finish(ctx, status, args, arrs, lens)
        except Exception as e:  # classified by the caller (detected, crash, timeout)
            return CRun(STATUS[status] if 0 <= status < len(STATUS) else "CRASH", e, None, trace)
        return CRun("OK", None, result, trace)

    # -- benchmark harness ----------------------------------------------------------------------------------------
    def bench(self, args: Sequence[Any], iters: int) -> int:
        """Run the kernel ``iters`` times inside C (list inputs restored before each call); returns a checksum."""
        ints, arrs, lens, keep = self._marshal(args)
        work = (_P64 * max(self._n, 1))()
        for i in self._lists:
            buf = (_I64 * max(lens[i], 1))()
            keep.append(buf)
            work[i] = ctypes.cast(buf, _P64)
        acc = _I64(0)
        status = self._bench(iters, ints, arrs, work, lens, self._n, ctypes.byref(acc))
        if status:
            raise self._error(_Ctx(), status)
        return acc.value


def c_program(cfn: CFunction, code: Code | None, *, inject: bool = False) -> CKernel:
    """Compile ``cfn`` for ``code`` (``None``: the plain baseline). Raises :class:`CompilerUnavailable`."""
    return CKernel(cfn, code, inject=inject)
