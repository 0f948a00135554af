"""Compiled matrix product behind ``VectorOps(backend="c").matmul``: operand checks inside the product's loop.

The numpy form checks ``x`` (one pass), checks ``y`` (one pass) and then multiplies (a third pass over ``x``). For
a matrix-vector product the checks are as much work as the product, so here each word of ``x`` is loaded once,
checked and multiplied-accumulated in the same loop. The check's product ``t = c * A^-1`` is reused: ``t - B*A^-1``
is ``x``'s decoded value, which stays in a register and multiplies the *encoded* ``y`` word ``A*y`` (never
decoded, never stored decoded), so the sum is already ``A * sum(x*y)`` and the result word is ``sum + sig``: the
same word, modulo ``2**64``, as the numpy form's ``((x - B_x) @ (y - B_y)) * A^-1 + sig``. ``y`` (``k x p``,
reused by every row) is checked in one pass before the product; an error that hits a ``y`` word after that check
propagates into the result (``+ x*e``), as in the numpy form, and is caught by the next check.

The barrier: one ``asm volatile`` with a ``"memory"`` clobber per row of ``x`` (an ``asm`` per element would stop
vectorisation), as in the fused loops (``vfused.py``); the check constants are run-time arguments, so no check
condition can be folded. Exceptions are the numpy form's: an invalid operand word anywhere is
``FaultDetectedError("RESIDUE", "matmul")`` (it has priority over the result range of eager mode).
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

import numpy as np
import numpy.typing as npt

from custodes.encoded._cbuild import NATIVE, CompilerUnavailable, build
from custodes.encoded._cvector import CChecker, ptr, raise_status, word
from custodes.encoded.errors import EncodedUsageError

__all__ = ["SOURCE", "matmul"]

Int64Array = npt.NDArray[np.int64]

SOURCE = r"""
#include <stdint.h>
typedef struct { uint64_t inv, base, span, dec; } chk_t;
#define BAD(w, c) ((uint64_t)(w) * (c)->inv - (c)->base > (c)->span)

/* o (m x p) = x (m x k) @ y (k x p) on code words; returns 1 (an invalid operand word), 2 (eager: a result word
   out of range) or 0. x is read once: load, check, multiply-accumulate. */
int cm_matmul(const int64_t *restrict x, const int64_t *restrict y, int64_t *restrict o, int64_t m, int64_t k,
              int64_t p, int64_t by, int64_t sig, const chk_t *cx, const chk_t *cy, const chk_t *cr, int64_t eager) {
    const uint64_t xinv = cx->inv, xbase = cx->base, xspan = cx->span, xdec = cx->dec;
    const uint64_t ub = (uint64_t)by, us = (uint64_t)sig;
    uint64_t bad = 0, ovf = 0;
    __asm__ volatile("" : : "r"(y) : "memory");
    for (int64_t l = 0; l < k * p; l++) bad |= BAD(y[l], cy);
    if (bad) return 1;
    for (int64_t i = 0; i < m; i++) {
        const int64_t *restrict xr = x + i * k;
        int64_t *restrict orow = o + i * p;
        /* per row: every word below is loaded after this point and its value is unknown to the compiler */
        __asm__ volatile("" : : "r"(xr), "r"(y) : "memory");
        if (p == 1) {  /* matrix-vector: one dot product per row, vectorised as two reductions */
            uint64_t acc = 0;
            for (int64_t l = 0; l < k; l++) {
                uint64_t t = (uint64_t)xr[l] * xinv;
                bad |= t - xbase > xspan;
                acc += (t + xdec) * ((uint64_t)y[l] - ub);
            }
            orow[0] = (int64_t)(acc + us);
        } else {  /* i-l-j order: the row of o accumulates in cache, vectorised over j */
            uint64_t *restrict acc = (uint64_t *)orow;
            for (int64_t j = 0; j < p; j++) acc[j] = 0;
            for (int64_t l = 0; l < k; l++) {
                uint64_t t = (uint64_t)xr[l] * xinv;
                bad |= t - xbase > xspan;
                uint64_t xv = t + xdec;
                const int64_t *restrict yr = y + l * p;
                for (int64_t j = 0; j < p; j++) acc[j] += xv * ((uint64_t)yr[j] - ub);
            }
            for (int64_t j = 0; j < p; j++) acc[j] += us;
        }
        if (bad) return 1;  /* fail at the first bad row: no result is returned */
        if (eager) { for (int64_t j = 0; j < p; j++) ovf |= BAD(orow[j], cr); }
    }
    return ovf ? 2 : 0;
}
"""

_FLAGS: tuple[str, ...] = ("-O3", NATIVE)
_FN: Any = None
_LOCK = threading.Lock()


def _function() -> Any:
    """The compiled kernel (cached on disk; ``-march=native``, so the cache key names the CPU)."""
    global _FN  # noqa: PLW0603 - one kernel per process
    with _LOCK:
        if _FN is None:
            try:
                lib = build(SOURCE, _FLAGS)
            except CompilerUnavailable as e:
                raise EncodedUsageError(None, f"backend='c' is unavailable: {e}") from e
            fn = lib.cm_matmul
            p, i64, chk = ctypes.c_void_p, ctypes.c_int64, ctypes.POINTER(CChecker)
            fn.argtypes = [p, p, p, i64, i64, i64, i64, i64, chk, chk, chk, i64]
            fn.restype = ctypes.c_int
            _FN = fn
        return _FN


def _chk(v: Any, sig: int) -> Any:
    return ctypes.byref(CChecker.make(v._inv_int, sig, v.code.min_value, v._span))


def matmul(v: Any, xw: Int64Array, bx: int, yw: Int64Array, by: int, sig: int) -> Int64Array | None:
    """``x @ y`` for 1-D and 2-D operands (numpy's shape rules); None for other shapes or mismatched inner
    dimensions, which the caller leaves to the numpy form (its operand checks, then numpy's ``ValueError``)."""
    if xw.ndim not in (1, 2) or yw.ndim not in (1, 2):
        return None
    x2 = np.ascontiguousarray(xw.reshape(1, -1) if xw.ndim == 1 else xw, dtype=np.int64)
    y2 = np.ascontiguousarray(yw.reshape(-1, 1) if yw.ndim == 1 else yw, dtype=np.int64)
    (m, k), (k2, p) = x2.shape, y2.shape
    if k != k2:
        return None
    out = np.empty((m, p), dtype=np.int64)
    status = _function()(
        ptr(x2), ptr(y2), ptr(out), m, k, p, word(by), word(sig), _chk(v, bx), _chk(v, by), _chk(v, sig), int(v.eager)
    )
    raise_status(status, "matmul")
    shape = (m,) * (xw.ndim == 2) + (p,) * (yw.ndim == 2)
    return out.reshape(shape)
