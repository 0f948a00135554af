"""Compiled element-wise kernels behind ``VectorOps(backend="c")``: one C loop per encoded operation.

Each kernel reads its operands once and does the arithmetic and the checks of the numpy form (``vector.py``) in
the same loop, over registers. Checks are the numpy form's ``Checker`` test written as one unsigned comparison:
``c * A^-1 - (sig * A^-1 + low)`` (mod ``2**64``) must be at most ``span``. Work is done in chunks of ``CHUNK``
elements, like the numpy form, and a chunk's failures are reported in the numpy form's order (operand fault, then
division by zero, then a failed multiply-back, then overflow), so both forms raise the same exception on the same
input. The library does not depend on the code: constants are arguments, so it is compiled once.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

import numpy as np
import numpy.typing as npt

from custodes.encoded._cbuild import CompilerUnavailable, build
from custodes.encoded._vkernels import CHUNK
from custodes.encoded.code import wrap
from custodes.encoded.errors import EncodedOverflowError, EncodedUsageError, FaultDetectedError

__all__ = [
    "CMP_CODES",
    "CChecker", "CVectorLib", "additive", "compare", "decode", "divmod_", "library", "mul", "where",
]

Int64Array = npt.NDArray[np.int64]
CMP_CODES = {"lt": 0, "le": 1, "eq": 2, "ne": 3, "gt": 4, "ge": 5}

_SOURCE = r"""
#include <stdint.h>
#define CHUNK_ @CHUNK@
typedef struct { uint64_t inv, base, span, dec; } chk_t;
#define OK(c, w) ((uint64_t)(w) * (c)->inv - (c)->base <= (c)->span)
#define BEGIN for (int64_t s = 0; s < n; s += CHUNK_) { int64_t e = s + CHUNK_ < n ? s + CHUNK_ : n; \
    uint64_t bad = 0, ovf = 0, zero = 0, ver = 0; (void)zero; (void)ver; for (int64_t i = s; i < e; i++) {
#define END } if (bad) return 1; if (zero) return 3; if (ver) return 4; if (ovf) return 2; } return 0;
#define X x[i * sx]
#define Y y[i * sy]

int cv_additive(const int64_t *x, int64_t sx, const int64_t *y, int64_t sy, int64_t *o, int64_t n, int64_t k,
                int64_t sub, const chk_t *cx, const chk_t *cy, const chk_t *cr, int64_t eager) {
    if (!eager) {  /* deferred: no checks, the error propagates */
        if (sub) { for (int64_t i = 0; i < n; i++) o[i] = (int64_t)((uint64_t)X - (uint64_t)Y + (uint64_t)k); }
        else { for (int64_t i = 0; i < n; i++) o[i] = (int64_t)((uint64_t)X + (uint64_t)Y + (uint64_t)k); }
        return 0;
    }
    BEGIN
        int64_t a = X, b = Y;
        bad |= !OK(cx, a) | !OK(cy, b);
        int64_t r = (int64_t)((sub ? (uint64_t)a - (uint64_t)b : (uint64_t)a + (uint64_t)b) + (uint64_t)k);
        ovf |= !OK(cr, r);
        o[i] = r;
    END
}

int cv_mul(const int64_t *x, int64_t sx, const int64_t *y, int64_t sy, int64_t *o, int64_t n, int64_t bx,
           int64_t sig, const chk_t *cx, const chk_t *cy, const chk_t *cr, int64_t eager) {
    BEGIN
        int64_t a = X, b = Y;
        uint64_t ty = (uint64_t)b * cy->inv;
        bad |= !OK(cx, a) | (ty - cy->base > cy->span);
        int64_t r = (int64_t)(((uint64_t)a - (uint64_t)bx) * (ty + cy->dec) + (uint64_t)sig);
        ovf |= eager & !OK(cr, r);
        o[i] = r;
    END
}

int cv_mulc(const int64_t *x, int64_t sx, int64_t *o, int64_t n, int64_t c, int64_t shift,
            const chk_t *cx, const chk_t *cr, int64_t eager) {
    BEGIN
        int64_t a = X;
        bad |= !OK(cx, a);
        int64_t r = (int64_t)((uint64_t)a * (uint64_t)c + (uint64_t)shift);
        ovf |= eager & !OK(cr, r);
        o[i] = r;
    END
}

int cv_divmod(const int64_t *x, int64_t sx, const int64_t *y, int64_t sy, int64_t *o, int64_t n, int64_t bx,
              int64_t by, int64_t A, int64_t sig, int64_t mod, int64_t kmax, const chk_t *cx, const chk_t *cy) {
    BEGIN
        int64_t a = X, b = Y;
        bad |= !OK(cx, a) | !OK(cy, b);
        int64_t u = a - bx, w = b - by;
        zero |= (w == 0);
        int64_t ws = w ? w : 1;
        /* exact: |u|, |w| < 2^53 and u/w is an integer or at least 1/|w| from one; verified below (VERIFY) */
        int64_t q = (int64_t)((double)u / (double)ws), r = u - q * ws;
        int64_t adj = (r != 0) & ((r < 0) != (ws < 0));   /* truncation to floor, branch-free */
        q -= adj; r += adj * ws;
        ver |= (w != 0) & (ws > 0 ? (uint64_t)r >= (uint64_t)ws : (uint64_t)-r >= (uint64_t)-ws);
        ovf |= !mod & (q > kmax);
        o[i] = mod ? r + sig : q * A + sig;
    END
}

int cv_divc(const int64_t *x, int64_t sx, int64_t *o, int64_t n, int64_t bx, int64_t wc, int64_t A, int64_t sig,
            int64_t mod, int64_t kmax, int64_t c, const chk_t *cx) {
    const double rc = 1.0 / (double)wc;
    BEGIN
        int64_t a = X;
        bad |= !OK(cx, a);
        int64_t u = a - bx;
        /* estimate within 1 (the reciprocal of the constant is hoisted), then moved to the floor quotient */
        int64_t q = (int64_t)((double)u * rc), r = u - q * wc;
        int64_t lo = wc > 0 ? r < 0 : r > 0; q -= lo; r += lo * wc;
        int64_t hi = wc > 0 ? r >= wc : r <= wc; q += hi; r -= hi * wc;
        ver |= wc > 0 ? (uint64_t)r >= (uint64_t)wc : (uint64_t)-r >= (uint64_t)-wc;
        ovf |= (c == -1) & !mod & (q > kmax);
        o[i] = mod ? r + sig : q * A + sig;
    END
}

#define CMPLOOP(TEST) BEGIN \
        int64_t a = X, b = Y; \
        int64_t d = (int64_t)((uint64_t)a - (uint64_t)b); \
        bad |= eager ? (!OK(cx, a) | !OK(cy, b)) : !OK(cd, d); \
        o[i] = (TEST) ? A + sig : sig; \
    END
int cv_compare(const int64_t *x, int64_t sx, const int64_t *y, int64_t sy, int64_t *o, int64_t n, int64_t op,
               int64_t off, int64_t A, int64_t sig, const chk_t *cx, const chk_t *cy, const chk_t *cd, int64_t eager) {
    switch (op) {
    case 0: CMPLOOP(d < off)
    case 1: CMPLOOP(d <= off)
    case 2: CMPLOOP(d == off)
    case 3: CMPLOOP(d != off)
    case 4: CMPLOOP(d > off)
    default: CMPLOOP(d >= off)
    }
}

int cv_where(const int64_t *z, int64_t sz, const int64_t *x, int64_t sx, const int64_t *y, int64_t sy, int64_t *o,
             int64_t n, int64_t bc, int64_t kx, int64_t ky, const chk_t *ct, const chk_t *cx, const chk_t *cy,
             int64_t eager) {
    BEGIN
        int64_t c = z[i * sz], a = X, b = Y;
        bad |= !OK(ct, c) | (eager & (!OK(cx, a) | !OK(cy, b)));
        o[i] = c != bc ? (int64_t)((uint64_t)a + (uint64_t)kx) : (int64_t)((uint64_t)b + (uint64_t)ky);
    END
}

int cv_decode(const int64_t *x, int64_t sx, int64_t *o, int64_t n, const chk_t *cx) {
    BEGIN
        uint64_t t = (uint64_t)X * cx->inv;
        bad |= t - cx->base > cx->span;
        o[i] = (int64_t)(t + cx->dec);
    END
}
"""


class CChecker(ctypes.Structure):
    """The valid-word test of one signature and interval (``chk_t``)."""

    _fields_ = [("inv", ctypes.c_uint64), ("base", ctypes.c_uint64), ("span", ctypes.c_uint64), ("dec", ctypes.c_uint64)]  # noqa: E501

    @classmethod
    def make(cls, inv: int, sig: int, low: int, span: int) -> CChecker:
        """``(c - sig) * inv - low`` must lie in ``[0, span]`` (unsigned); ``dec`` turns ``c * inv`` into the value."""
        m = (1 << 64) - 1
        return cls(inv & m, (sig * inv + low) & m, span & m, (-sig * inv) & m)


class CVectorLib:
    """The loaded kernels, with argument types set."""

    def __init__(self) -> None:
        lib = build(_SOURCE.replace("@CHUNK@", str(CHUNK)))
        p, i64, chk = ctypes.c_void_p, ctypes.c_int64, ctypes.POINTER(CChecker)
        spec: dict[str, list[Any]] = {
            "cv_additive": [p, i64, p, i64, p, i64, i64, i64, chk, chk, chk, i64],
            "cv_mul": [p, i64, p, i64, p, i64, i64, i64, chk, chk, chk, i64],
            "cv_mulc": [p, i64, p, i64, i64, i64, chk, chk, i64],
            "cv_divmod": [p, i64, p, i64, p, i64, i64, i64, i64, i64, i64, i64, chk, chk],
            "cv_divc": [p, i64, p, i64, i64, i64, i64, i64, i64, i64, i64, chk],
            "cv_compare": [p, i64, p, i64, p, i64, i64, i64, i64, i64, chk, chk, chk, i64],
            "cv_where": [p, i64, p, i64, p, i64, p, i64, i64, i64, i64, chk, chk, chk, i64],
            "cv_decode": [p, i64, p, i64, chk],
        }
        for name, types in spec.items():
            fn = getattr(lib, name)
            fn.argtypes = types
            fn.restype = ctypes.c_int
            setattr(self, name, fn)


_LIB: CVectorLib | None = None
_LOCK = threading.Lock()


def library() -> CVectorLib:
    """The kernels, compiled on first use (cached on disk). Raises ``CompilerUnavailable``."""
    global _LIB  # noqa: PLW0603 - one library per process
    with _LOCK:
        if _LIB is None:
            _LIB = CVectorLib()
        return _LIB


def for_backend(backend: str) -> CVectorLib | None:
    """The kernels for ``VectorOps(backend=...)``: None for ``numpy``; a clear error if C is unavailable."""
    if backend not in ("numpy", "c"):
        raise EncodedUsageError(None, "backend must be 'numpy' or 'c'")
    if backend == "numpy":
        return None
    try:
        return library()
    except CompilerUnavailable as e:
        raise EncodedUsageError(None, f"backend='c' is unavailable: {e}") from e


def operands(*words: Int64Array) -> tuple[tuple[int, ...], list[tuple[Int64Array, int]]]:
    """The result shape, and each operand as (contiguous array, stride 0 for a 0-d constant or 1)."""
    shaped = [w for w in words if w.ndim]
    if len({w.shape for w in shaped}) > 1:
        expanded = iter(np.broadcast_arrays(*shaped))
        words = tuple(next(expanded) if w.ndim else w for w in words)
        shaped = [w for w in words if w.ndim]
    shape: tuple[int, ...] = shaped[0].shape if shaped else ()
    out = [(np.ascontiguousarray(w, dtype=np.int64), 1 if w.ndim else 0) for w in words]
    return shape, out


def raise_status(status: int, where: str) -> None:
    """Turn a kernel status into the numpy form's exception."""
    if status == 1:
        raise FaultDetectedError("RESIDUE", where)
    if status == 3:
        raise ZeroDivisionError(f"encoded integer {where} by zero")
    if status == 4:
        raise FaultDetectedError("VERIFY", where)
    if status == 2:
        raise EncodedOverflowError(None, f"result of {where} outside the functional range")
    if status:
        raise FaultDetectedError("RESIDUE", where)  # fail closed on an unknown status


def ptr(a: Int64Array) -> int:
    """The data address of a contiguous array."""
    return int(a.ctypes.data)


def word(v: int) -> int:
    """``v`` as a signed 64-bit argument. A value outside int64 is refused, never wrapped (a wrapped divisor such as
    ``A * 2**n`` would pass the multiply-back check with a wrong quotient)."""
    if wrap(v, 64) != v:
        raise EncodedUsageError(None, "a constant of the vector operation does not fit a signed 64-bit word")
    return v


def _call(fn: Any, where: str, shape: tuple[int, ...], before: list[Any], after: list[Any]) -> Int64Array:
    """``fn(*before, out, n, *after)``; raises the numpy form's exception for a failed status."""
    n = int(np.prod(shape))
    out = np.empty(n, dtype=np.int64)
    raise_status(fn(*before, ptr(out), n, *after), where)
    return out.reshape(shape)


def _chk(v: Any, sig: int, low: int | None = None, span: int | None = None) -> Any:
    low = v.code.min_value if low is None else low
    return ctypes.byref(CChecker.make(v._inv_int, sig, low, v._span if span is None else span))


def additive(
    v: Any, sub: bool, xw: Int64Array, bx: int, yw: Int64Array, by: int, k: int, sig: int, where: str
) -> Int64Array:
    """``x +/- y + k``; eager mode checks operands and result in the same loop."""
    shape, ((xa, sx), (ya, sy)) = operands(xw, yw)
    args = [_chk(v, bx), _chk(v, by), _chk(v, sig), int(v.eager)]
    return _call(library().cv_additive, where, shape, [ptr(xa), sx, ptr(ya), sy], [word(k), int(sub), *args])


def mul(v: Any, xw: Int64Array, bx: int, yw: Int64Array, by: int, c: int | None, sig: int, shift: int) -> Int64Array:
    """Checked product; ``c`` is the value of a (checked) encoded constant ``y``, or None."""
    lib = library()
    if c is not None:
        shape, ((xa, sx),) = operands(xw)
        after = [word(c), word(shift), _chk(v, bx), _chk(v, sig), int(v.eager)]
        return _call(lib.cv_mulc, "mul", shape, [ptr(xa), sx], after)
    shape, ((xa, sx), (ya, sy)) = operands(xw, yw)
    after = [word(bx), word(sig), _chk(v, bx), _chk(v, by), _chk(v, sig), int(v.eager)]
    return _call(lib.cv_mul, "mul", shape, [ptr(xa), sx, ptr(ya), sy], after)


def divmod_(
    v: Any, xw: Int64Array, bx: int, yw: Int64Array | None, by: int, c: int | None, sig: int, mod: bool, where: str
) -> Int64Array:
    """Floor division or modulo on the code words, verified by multiplying back (as ``VectorOps._divmod``)."""
    lib, A, kmax = library(), v.code.A, v.code.max_value
    if c is not None:
        shape, ((xa, sx),) = operands(xw)
        after = [word(bx), word(c * A), A, word(sig), int(mod), kmax, word(c), _chk(v, bx)]
        return _call(lib.cv_divc, where, shape, [ptr(xa), sx], after)
    if yw is None:
        raise ValueError("a divisor is needed")
    shape, ((xa, sx), (ya, sy)) = operands(xw, yw)
    after = [word(bx), word(by), A, word(sig), int(mod), kmax, _chk(v, bx), _chk(v, by)]
    return _call(lib.cv_divmod, where, shape, [ptr(xa), sx, ptr(ya), sy], after)


def compare(v: Any, op: int, xw: Int64Array, bx: int, yw: Int64Array, by: int, sig: int, where: str) -> Int64Array:
    """Encoded booleans decided on the word difference (deferred: its check replaces both operand checks)."""
    off = bx - by
    shape, ((xa, sx), (ya, sy)) = operands(xw, yw)
    cd = _chk(v, off, -v._span, 2 * v._span)
    after = [op, word(off), v.code.A, word(sig), _chk(v, bx), _chk(v, by), cd, int(v.eager)]
    return _call(library().cv_compare, where, shape, [ptr(xa), sx, ptr(ya), sy], after)


def where(v: Any, cw: Int64Array, bc: int, xw: Int64Array, bx: int, yw: Int64Array, by: int, sig: int) -> Int64Array:
    """Element-wise select; the condition is always checked, the operands in eager mode."""
    shape, ((ca, sc), (xa, sx), (ya, sy)) = operands(cw, xw, yw)
    after = [word(bc), word(sig - bx), word(sig - by), _chk(v, bc, 0, 1), _chk(v, bx), _chk(v, by), int(v.eager)]
    return _call(library().cv_where, "where", shape, [ptr(ca), sc, ptr(xa), sx, ptr(ya), sy], after)


def decode(v: Any, xw: Int64Array, bx: int) -> Int64Array:
    """Check and decode in one loop."""
    shape, ((xa, sx),) = operands(xw)
    return _call(library().cv_decode, "decode", shape, [ptr(xa), sx], [_chk(v, bx)])
