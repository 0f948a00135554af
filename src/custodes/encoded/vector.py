"""Encoded arrays over numpy int64 lanes, for bulk computation.

Word model: functional values of ``kbits <= 16`` bits in int64 lanes (dOSEK's parameters: a 16-bit super A on
16-bit data). ``A**2 * 2**(2*kbits - 2) < 2**63``, so the homomorphic product ``(A*x)(A*y) = A**2*x*y`` is exact in
int64, and the division by A is an exact multiplication by ``A^-1 mod 2**64`` (numpy int64 arithmetic wraps like
hardware). Checks use the same inverse: ``(c - B) * A^-1 mod 2**64`` must lie in the functional range.

Semantics match the scalar ALU (floor division and modulo as in Python, ``ZeroDivisionError``, overflow errors),
with one knob, ``check``, placed as in the scalar ALU (``ops.py``):

* ``"deferred"`` (default; ``"lazy"`` is an alias): the additive operations (``add sub neg shl sum``, the operands
  of ``where``) neither check their operands nor their result: an error ``e`` propagates unchanged (``±e``,
  ``2**n * e``) to the next operation that could mask it, which checks its operands: ``mul`` and ``matmul`` (a
  factor could cancel ``e`` modulo A), ``floordiv mod shr``, comparisons, the condition of ``where``, logic,
  ``check`` and ``decode``. A functional overflow of an additive result is reported by that check
  (``FAULT_DETECTED``/``RANGE``), before the value leaves the encoded domain.
* ``"eager"``: every operation checks its operands and the range of its result, like ``checks="every-op"``.

The check sees the exact functional value ``t`` of a lane as long as ``|t| < 2**63``: int64 lanes compute modulo
``2**64``, and a value beyond that would wrap back into range and pass (``-32768 << 50`` is ``0`` mod ``2**64``).
So every unchecked (deferred) result carries a bound on its magnitude (``EncodedVector.bound``). An additive
operation whose result could exceed ``MAGNITUDE_LIMIT`` first checks the operands that grew beyond the range, as a
masking operation would: a chain of unchecked additions is checked before it could wrap (a doubling chain after
about 45 doublings), and an overflow in it is reported there as ``FAULT_DETECTED``, as by any deferred check.

A shift by a count ``n >= kbits`` is computed as one by ``kbits``, which gives the same functional result (``x << n``
is out of range unless ``x`` is 0, ``x >> n`` is ``-1`` or ``0``) and keeps ``2**n * x`` and the divisor
``A * 2**n`` far inside int64 (``VectorOps.shift``, also used by ``vfused``).

Division and comparisons work on the code words themselves: ``floor(A*x / (A*y)) = floor(x / y)`` and the
remainder ``A*x - q*A*y = A*(x mod y)`` is already encoded (a divisor given as a 0-d vector, i.e. an encoded
constant, takes numpy's fast path for division by a scalar); a comparison is decided by the difference of the
words, whose check in deferred mode replaces the two operand checks.

An :class:`EncodedVector`'s signature travels with the object (dynamic signatures), which is weaker than the static
signatures of ``@encoded`` against exchanged operands: see docs/encoded.md.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt

from custodes.encoded import _cmatmul as cm
from custodes.encoded import _cvector as cv
from custodes.encoded._sig import OP_SALT
from custodes.encoded._vkernels import CHUNK, Checker, Loop
from custodes.encoded.code import Code, Scheme, wrap
from custodes.encoded.errors import EncodedOverflowError, EncodedRangeError, EncodedUsageError, FaultDetectedError

__all__ = ["MAGNITUDE_LIMIT", "EncodedVector", "VectorOps"]

Int64Array = npt.NDArray[np.int64]
#: Largest magnitude an unchecked result's functional value may reach: far from ``2**63``, where a lane would wrap.
MAGNITUDE_LIMIT = 1 << 62


@dataclass(frozen=True, slots=True)
class EncodedVector:
    """Code words (a read-only int64 array of any shape) with their signature.

    ``bound``: a bound on the magnitude of the functional values of an unchecked (deferred) result, which may lie
    outside the functional range; ``None`` (the default) means within the range.
    """

    words: Int64Array
    sig: int
    bound: int | None = None

    def __repr__(self) -> str:
        return f"EncodedVector(shape={self.words.shape}, sig={self.sig})"


def _vec(words: Int64Array, sig: int, bound: int | None = None) -> EncodedVector:
    words = np.asarray(words, dtype=np.int64)
    words.flags.writeable = False
    return EncodedVector(words, sig, bound)


class VectorOps:
    """Checked vector operations for one :class:`Code` (default: ANB, A=58659, 16-bit values, int64 lanes).

    ``backend="c"`` runs the element-wise operations (``add sub mul floordiv mod shr compare where decode``) as
    compiled loops (``_cvector.py``), and ``matmul`` as one loop that checks while it multiplies (``_cmatmul.py``),
    with the same semantics and exceptions; it needs a C compiler.
    """

    def __init__(
        self,
        code: Code | None = None,
        check: Literal["deferred", "eager", "lazy"] = "deferred",
        backend: Literal["numpy", "c"] = "numpy",
    ) -> None:
        code = code or Code(kbits=16, scheme=Scheme.ANB)
        if code.nbits != 64 or code.A**2 * (1 << (2 * code.kbits - 2)) >= 1 << 63:
            raise EncodedUsageError(None, "vector codes need nbits=64 and A**2 * 2**(2*kbits-2) < 2**63")
        if check not in ("deferred", "eager", "lazy"):
            raise EncodedUsageError(None, "check must be 'deferred' (alias 'lazy') or 'eager'")
        self.code = code
        self.eager = check == "eager"
        self.check_mode = "eager" if self.eager else "deferred"
        self._A = np.int64(code.A)
        self._inv_int = wrap(code.a_inverse, 64)
        self._inv = np.int64(self._inv_int)
        self._span = code.max_value - code.min_value
        self._range = max(-code.min_value, code.max_value)  # the magnitude bound of a checked value
        self._s = 1 if code.signed else 0
        self.backend = backend
        self._c = cv.for_backend(backend)  # None for numpy; EncodedUsageError if C is asked for and unavailable

    def _sig(self, sig: int) -> int:
        if not 0 <= sig < self.code.A or (sig and not self.code.signed):
            raise EncodedUsageError(None, "signature must lie in [0, A) and needs ANB or ANBD")
        return sig

    # -- checks: ``(c - B) * A^-1 mod 2**64`` must land in the functional range -------------------------------------
    def _in(self, words: Int64Array, sig: int, low: int, span: int) -> bool:
        """``(words - sig) * A^-1 - low`` lies in ``[0, span]`` (as unsigned) for every word.

        Runs in cache-sized chunks into one reused buffer, and stops at the first bad chunk.
        """
        checker, flat = Checker.make(self._inv_int, sig, low, span), words.reshape(-1)
        buf = np.empty(max(min(flat.size, CHUNK), 1), dtype=np.int64)
        with np.errstate(over="ignore"):
            return all(checker.ok(flat[i : i + CHUNK], buf) for i in range(0, flat.size, CHUNK))

    def _ok(self, words: Int64Array, sig: int) -> bool:
        return self._in(words, sig, self.code.min_value, self._span)

    def _checker(self, sig: int, low: int | None = None, span: int | None = None) -> Checker:
        low = self.code.min_value if low is None else low
        return Checker.make(self._inv_int, sig, low, self._span if span is None else span)

    def _need(self, v: EncodedVector, where: str) -> None:
        """The operand check of an operation that could mask an error (both modes)."""
        if not self._ok(v.words, v.sig):
            raise FaultDetectedError("RESIDUE", where)

    def _operands(self, where: str, *vs: EncodedVector) -> None:
        """Operand checks of an additive operation: eager mode only (deferred: the error propagates)."""
        if self.eager:
            for v in vs:
                self._need(v, where)

    def _result(self, words: Int64Array | np.int64, sig: int, where: str, bound: int | None = None) -> EncodedVector:
        arr = np.asarray(words, dtype=np.int64)
        if self.eager and not self._ok(arr, sig):
            raise EncodedOverflowError(None, f"result of {where} outside the functional range")
        return _vec(arr, sig, None if self.eager else bound)

    # -- magnitude bounds of unchecked results (see the module docstring) -----------------------------------------
    def _bound(self, v: EncodedVector) -> int:
        return self._range if v.bound is None else v.bound

    def grown(self, combine: Any, bounds: tuple[int | None, ...]) -> tuple[int | None, tuple[int, ...]]:
        """Deferred mode: the bound of an additive result from its operands' bounds (``combine``; None: within the
        range), and the operands to check first because the result could otherwise exceed ``MAGNITUDE_LIMIT``.

        The one place of this decision: ``vfused`` makes it on traced symbols, so both forms check the same operands.
        """
        bs = [self._range if b is None else b for b in bounds]
        bound: int = combine(*bs)
        check: tuple[int, ...] = ()
        if bound > MAGNITUDE_LIMIT:
            check = tuple(i for i, b in enumerate(bs) if b > self._range)
            bound = combine(*(self._range if i in check else b for i, b in enumerate(bs)))
            if bound > MAGNITUDE_LIMIT:  # not reachable for the shapes numpy can hold; fail closed all the same
                raise EncodedUsageError(None, "an additive result could leave the int64 lane")
        return (bound if bound > self._range else None), check

    def _grown(self, where: str, combine: Any, *vs: EncodedVector) -> int | None:
        """The bound of an additive result (None in eager mode: checked); checks the operands :meth:`grown` names."""
        if self.eager:
            return None
        bound, check = self.grown(combine, tuple(v.bound for v in vs))
        for i in check:
            self._need(vs[i], where)
        return bound

    def shift(self, n: int) -> int:
        """A constant shift count, as computed: ``n >= kbits`` gives the functional result of ``kbits``.

        Raises ``ValueError`` for a negative count (as Python's ``<<``), ``TypeError`` for a non-integer.
        """
        n = operator.index(n)
        if n < 0:
            raise ValueError("negative shift count")
        return min(n, self.code.kbits)

    def _scalar(self, v: EncodedVector, where: str) -> int | None:
        """The checked value of a 0-d vector (an encoded constant), else None."""
        if v.words.ndim:
            return None
        self._need(v, where)
        return (int(v.words) - v.sig) // self.code.A

    # -- boundary -------------------------------------------------------------------------------------------------
    def encode(self, values: npt.ArrayLike, sig: int = 0) -> EncodedVector:
        """Encode integers (an array, or a scalar as a 0-d vector); raises :class:`EncodedRangeError` if any is out
        of range or not an integer."""
        arr = np.asarray(values)
        if arr.dtype.kind not in "iu":
            raise EncodedRangeError(None, "values must be an integer array")
        if arr.size and (arr.min() < self.code.min_value or arr.max() > self.code.max_value):
            raise EncodedRangeError(None, f"values outside [{self.code.min_value}, {self.code.max_value}]")
        return _vec(np.asarray(arr.astype(np.int64) * self._A + np.int64(self._sig(sig))), sig)

    def check(self, v: EncodedVector) -> None:
        """Raise :class:`FaultDetectedError` unless every word is valid."""
        self._need(v, "check")

    def decode(self, v: EncodedVector) -> Int64Array:
        """Check, then return the functional values (one memory pass: multiply by A^-1, min/max test, shift)."""
        if self._c is not None:
            return cv.decode(self, v.words, v.sig)
        chk = self._checker(v.sig)

        def body(parts: list[Int64Array], o: Int64Array, _loop: Loop, _m: int) -> None:
            if not chk.ok(parts[0], o):  # o now holds c * A^-1
                raise FaultDetectedError("RESIDUE", "decode")
            chk.values(o)

        with np.errstate(over="ignore"):
            return Loop(v.words).run(body)

    # -- additive operations (deferred: unchecked, errors propagate) ----------------------------------------------
    def _additive(self, op: Any, x: EncodedVector, y: EncodedVector, k: int, sig: int, where: str) -> EncodedVector:
        """``op(x, y) + k`` in one pass; eager mode checks operands and result in the same pass."""
        bound = self._grown(where, operator.add, x, y)
        if self._c is not None:
            words = cv.additive(self, op is np.subtract, x.words, x.sig, y.words, y.sig, k, sig, where)
            return _vec(words, sig, bound)
        cx, cy, cr = self._checker(x.sig), self._checker(y.sig), self._checker(sig)
        eager = self.eager

        def body(parts: list[Int64Array], o: Int64Array, loop: Loop, _m: int) -> None:
            xs, ys = parts
            if eager and not (cx.ok(xs, loop.buf) and cy.ok(ys, loop.buf)):
                raise FaultDetectedError("RESIDUE", where)
            op(xs, ys, out=o)
            o += np.int64(k)
            if eager and not cr.ok(o, loop.buf):
                raise EncodedOverflowError(None, f"result of {where} outside the functional range")

        with np.errstate(over="ignore"):
            return _vec(Loop(x.words, y.words).run(body), sig, bound)

    def add(self, x: EncodedVector, y: EncodedVector, sig: int = 0) -> EncodedVector:
        """``x + y``."""
        return self._additive(np.add, x, y, self._sig(sig) - x.sig - y.sig, sig, "add")

    def sub(self, x: EncodedVector, y: EncodedVector, sig: int = 0) -> EncodedVector:
        """``x - y``."""
        return self._additive(np.subtract, x, y, self._sig(sig) - x.sig + y.sig, sig, "sub")

    def neg(self, x: EncodedVector, sig: int = 0) -> EncodedVector:
        """``-x``."""
        self._operands("neg", x)
        bound = self._grown("neg", lambda b: b, x)
        return self._result(np.int64(self._sig(sig) + x.sig) - x.words, sig, "neg", bound)

    def sum(self, x: EncodedVector, sig: int = 0) -> EncodedVector:
        """Sum of all elements (a 0-d vector)."""
        self._operands("sum", x)
        bound = self._grown("sum", lambda b: b * max(x.words.size, 1), x)
        with np.errstate(over="ignore"):
            words = np.sum(x.words - np.int64(x.sig)) + np.int64(self._sig(sig))
        return self._result(words, sig, "sum", bound)

    def shl(self, x: EncodedVector, n: int, sig: int = 0) -> EncodedVector:
        """``x << n`` for a constant ``n >= 0`` (multiplication by ``2**n``; see :meth:`shift` for large ``n``)."""
        n = self.shift(n)
        self._operands("shl", x)
        bound = self._grown("shl", lambda b: b << n, x)
        with np.errstate(over="ignore"):
            words = (x.words - np.int64(x.sig)) * np.int64(1 << n) + np.int64(self._sig(sig))
        return self._result(words, sig, "shl", bound)

    # -- operations that could mask an error: operands checked in both modes --------------------------------------
    def mul(self, x: EncodedVector, y: EncodedVector, sig: int = 0) -> EncodedVector:
        """``x * y`` as ``(A*x)(A*y) * A^-1``: exact in wrapping int64. An encoded constant (0-d) multiplies the
        word directly: ``A*x * c = A*(x*c)``. Operands are checked in both modes, in the same pass."""
        c = self._scalar(y, "mul")
        if c is None and (c := self._scalar(x, "mul")) is not None:
            x, y = y, x  # the constant goes right
        sig = self._sig(sig)
        cx, cy, cr = self._checker(x.sig), self._checker(y.sig), self._checker(sig)
        eager, bx = self.eager, np.int64(x.sig)
        shift = np.int64(wrap(sig - x.sig * (c or 0), 64))
        # checked factors: |x*y| <= range**2 (deferred leaves the product unchecked; vfused assumes the same bound)
        bound = None if eager else self._range * self._range
        if self._c is not None:
            return _vec(cv.mul(self, x.words, x.sig, y.words, y.sig, c, sig, int(shift)), sig, bound)

        def body(parts: list[Int64Array], o: Int64Array, loop: Loop, m: int) -> None:
            xs, ys = parts
            w = loop.buf2[:m]
            if not cx.ok(xs, loop.buf) or (c is None and not cy.ok(ys, w)):
                raise FaultDetectedError("RESIDUE", "mul")
            if c is not None:
                np.multiply(xs, np.int64(c), out=o)
                o += shift
            else:  # the check left y * A^-1 in w: decode it in place, then (A*x) * y = A*x*y, no division
                cy.values(w)
                np.subtract(xs, bx, out=o)
                o *= w
                o += np.int64(sig)
            if eager and not cr.ok(o, loop.buf):
                raise EncodedOverflowError(None, "result of mul outside the functional range")

        with np.errstate(over="ignore"):
            return _vec(Loop(x.words, y.words).run(body), sig, bound)

    def matmul(self, x: EncodedVector, y: EncodedVector, sig: int = 0) -> EncodedVector:
        """Matrix product; int64 sums wrap, which is exact because the true result fits. ``backend="c"`` checks
        the operand words inside the product's loop (``_cmatmul.py``) for 1-D and 2-D operands."""
        inner = x.words.shape[-1] if x.words.ndim else 1
        bound = self._range * self._range * max(inner, 1)  # checked factors; the sums must not wrap, in any mode
        if bound > MAGNITUDE_LIMIT:
            raise EncodedUsageError(None, "matmul: the inner dimension is too large for exact int64 sums")
        bound = None if self.eager else bound
        if self._c is not None and 0 <= sig < self.code.A and (sig == 0 or self.code.signed):
            words = cm.matmul(self, x.words, x.sig, y.words, y.sig, sig)
            if words is not None:
                return _vec(words, sig, bound)
        self._need(x, "matmul")
        self._need(y, "matmul")
        with np.errstate(over="ignore"):
            words = ((x.words - np.int64(x.sig)) @ (y.words - np.int64(y.sig))) * self._inv + np.int64(self._sig(sig))
        return self._result(words, sig, "matmul", bound)

    def _divmod(self, x: EncodedVector, y: EncodedVector | int, sig: int, mod: bool, where: str) -> EncodedVector:
        """``q = floor(A*x / (A*y))``, verified by multiplying back (the remainder ``A*x - q*A*y`` must lie in
        ``[0, A*y)``); the result is ``A*q + sig`` or the remainder, which is already ``A*(x mod y)``, ``+ sig``.

        ``y`` is a vector, or a plain int divisor fixed by the program (``shr``). A constant divisor takes numpy's
        division by a scalar. Operands are checked in the same pass.
        """
        sig = self._sig(sig)
        c = y if isinstance(y, int) else self._scalar(y, where)
        if c == 0:
            raise ZeroDivisionError(f"encoded integer {where} by zero")
        yv = cast(EncodedVector, y) if c is None else None
        if self._c is not None:
            ywords = yv.words if yv is not None else None
            return _vec(cv.divmod_(self, x.words, x.sig, ywords, yv.sig if yv else 0, c, sig, mod, where), sig)
        cx = self._checker(x.sig)
        cy = self._checker(yv.sig) if yv is not None else None
        bx, by, A, kmax = np.int64(x.sig), np.int64(yv.sig if yv is not None else 0), self._A, self.code.max_value
        w_const = None if c is None else c * self.code.A

        def body(parts: list[Int64Array], o: Int64Array, loop: Loop, m: int) -> None:
            xs, ys = parts[0], parts[-1]
            if not cx.ok(xs, loop.buf) or (cy is not None and not cy.ok(ys, loop.buf)):
                raise FaultDetectedError("RESIDUE", where)
            u, q, r = loop.buf3[:m], loop.buf2[:m], loop.buf[:m]
            np.subtract(xs, bx, out=u)
            if w_const is not None:
                np.floor_divide(u, np.int64(w_const), out=q)
                np.multiply(q, np.int64(w_const), out=r)
                np.subtract(u, r, out=r)
                test = r if w_const > 0 else np.negative(r, out=o)  # o is free until the result is written
                ok = bool(test.view(np.uint64).max() < abs(w_const))
                overflow = c == -1 and not mod and bool(q.max() > kmax)
            else:
                w = np.subtract(ys, by, out=o)  # o is scratch until the result is written
                positive = bool(w.min() > 0)
                if not positive and bool(np.any(w == 0)):
                    raise ZeroDivisionError(f"encoded integer {where} by zero")
                # The divider: float64 division is exact here (|A*x|, |A*y| < 2**53, and x/y is an integer or at
                # least 1/|y| away from one), and several times faster than int64 division; the multiply-back
                # check below verifies the quotient in the integer code domain whatever computed it.
                f = np.divide(u, w, out=loop.fbuf[:m])
                np.floor(f, out=f)
                np.copyto(q, f, casting="unsafe")
                np.multiply(q, w, out=r)
                np.subtract(u, r, out=r)
                if positive:  # 0 <= r < w, as unsigned: a negative r is huge
                    ok = bool(np.all(r.view(np.uint64) < w.view(np.uint64)))
                else:
                    ok = bool(np.all(np.where(w > 0, (r >= 0) & (r < w), (r <= 0) & (r > w))))
                overflow = not mod and not positive and bool(q.max() > kmax)
            if not ok:  # the remainder is not in [0, y): the divider computed a wrong quotient
                raise FaultDetectedError("VERIFY", where)
            if overflow:  # min // -1 is the only quotient out of range
                raise EncodedOverflowError(None, f"result of {where} outside the functional range")
            if mod:
                np.add(r, np.int64(sig), out=o)
            else:
                np.multiply(q, A, out=o)
                o += np.int64(sig)

        operands = [x.words] if yv is None else [x.words, yv.words]
        with np.errstate(over="ignore"):
            return _vec(Loop(*operands).run(body), sig)

    def floordiv(self, x: EncodedVector, y: EncodedVector, sig: int = 0) -> EncodedVector:
        """Python ``//`` on the code words."""
        return self._divmod(x, y, sig, False, "div")

    def mod(self, x: EncodedVector, y: EncodedVector, sig: int = 0) -> EncodedVector:
        """Python ``%`` (the sign of the divisor)."""
        return self._divmod(x, y, sig, True, "mod")

    def shr(self, x: EncodedVector, n: int, sig: int = 0) -> EncodedVector:
        """Arithmetic ``x >> n`` for a constant ``n >= 0`` (floor division by ``2**n``; the divisor ``A * 2**n``
        stays far inside int64, see :meth:`shift`: a count ``>= kbits`` gives ``-1`` or ``0``, as in Python)."""
        return self._divmod(x, 1 << self.shift(n), sig, False, "shr")

    # -- comparisons and logic: encoded booleans ------------------------------------------------------------------
    def _bool(self, values: npt.NDArray[np.bool_], sig: int) -> EncodedVector:
        sig = self._sig(sig)
        return _vec(np.asarray(np.where(values, np.int64(self.code.A + sig), np.int64(sig))), sig)

    def compare(self, op: str, x: EncodedVector, y: EncodedVector, sig: int = 0) -> EncodedVector:
        """``op`` in ``lt le eq ne gt ge``; returns encoded booleans (0/1), decided on ``c_x - c_y``."""
        fn: Any = _CMP.get(op)
        if fn is None or op not in OP_SALT:
            raise EncodedUsageError(None, f"unknown comparison {op!r}")
        sig = self._sig(sig)
        off = x.sig - y.sig  # d - off = A*(x - y)
        if self._c is not None:
            return _vec(cv.compare(self, cv.CMP_CODES[op], x.words, x.sig, y.words, y.sig, sig, op), sig)
        cx, cy, cd = self._checker(x.sig), self._checker(y.sig), self._checker(off, -self._span, 2 * self._span)
        eager, A = self.eager, self._A

        def body(parts: list[Int64Array], o: Int64Array, loop: Loop, m: int) -> None:
            xs, ys = parts
            if eager and not (cx.ok(xs, loop.buf) and cy.ok(ys, loop.buf)):
                raise FaultDetectedError("RESIDUE", op)
            d = np.subtract(xs, ys, out=loop.buf2[:m])
            if not eager and not cd.ok(d, loop.buf):
                raise FaultDetectedError("RESIDUE", op)
            mask = fn(d, np.int64(off), out=loop.mask[:m])
            np.multiply(mask, A, out=o)
            o += np.int64(sig)

        with np.errstate(over="ignore"):
            return _vec(Loop(x.words, y.words).run(body), sig)

    def _truth(self, c: EncodedVector, where: str) -> npt.NDArray[np.bool_]:
        if not self._in(c.words, c.sig, 0, 1):  # exactly A*0 + B or A*1 + B
            raise FaultDetectedError("RESIDUE", where)
        return np.asarray(c.words != np.int64(c.sig))

    def land(self, x: EncodedVector, y: EncodedVector, sig: int = 0) -> EncodedVector:
        """Logical and of encoded booleans."""
        return self._bool(self._truth(x, "land") & self._truth(y, "land"), sig)

    def lor(self, x: EncodedVector, y: EncodedVector, sig: int = 0) -> EncodedVector:
        """Logical or of encoded booleans."""
        return self._bool(self._truth(x, "lor") | self._truth(y, "lor"), sig)

    def lnot(self, x: EncodedVector, sig: int = 0) -> EncodedVector:
        """Logical not of encoded booleans."""
        return self._bool(~self._truth(x, "lnot"), sig)

    def where(self, c: EncodedVector, x: EncodedVector, y: EncodedVector, sig: int = 0) -> EncodedVector:
        """Element-wise ``x if c else y`` (conditional select). The condition is always checked; the operands in
        eager mode (deferred: the selected word's error propagates to the result)."""
        sig = self._sig(sig)
        bound = self._grown("where", max, x, y)
        if self._c is not None:
            return _vec(cv.where(self, c.words, c.sig, x.words, x.sig, y.words, y.sig, sig), sig, bound)
        ct, cx, cy = self._checker(c.sig, 0, 1), self._checker(x.sig), self._checker(y.sig)
        eager, bc, kx, ky = self.eager, np.int64(c.sig), np.int64(sig - x.sig), np.int64(sig - y.sig)

        def body(parts: list[Int64Array], o: Int64Array, loop: Loop, m: int) -> None:
            cs, xs, ys = parts
            if not ct.ok(cs, loop.buf):  # exactly A*0 + B or A*1 + B
                raise FaultDetectedError("RESIDUE", "where")
            if eager and not (cx.ok(xs, loop.buf) and cy.ok(ys, loop.buf)):
                raise FaultDetectedError("RESIDUE", "where")
            mask = np.not_equal(cs, bc, out=loop.mask[:m])
            np.add(ys, ky, out=o)
            np.copyto(o, np.add(xs, kx, out=loop.buf2[:m]), where=mask)

        with np.errstate(over="ignore"):
            return _vec(Loop(c.words, x.words, y.words).run(body), sig, bound)


_CMP = {
    "lt": np.less,
    "le": np.less_equal,
    "eq": np.equal,
    "ne": np.not_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
}
