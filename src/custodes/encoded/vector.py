"""Encoded arrays over numpy int64 lanes, for bulk computation.

Word model: functional values of ``kbits <= 16`` bits in int64 lanes (dOSEK's parameters: a 16-bit super A on
16-bit data). ``A**2 * 2**(2*kbits - 2) < 2**63``, so the homomorphic product ``(A*x)(A*y) = A**2*x*y`` is exact in
int64, and the division by A is an exact multiplication by ``A^-1 mod 2**64`` (numpy int64 arithmetic wraps like
hardware). Checks use the same inverse: ``(c - B) * A^-1 mod 2**64`` must lie in the functional range.

Semantics match the scalar ALU (floor division and modulo as in Python, ``ZeroDivisionError``, overflow errors),
with one knob, ``check``:

* ``"eager"`` (default): every operation checks its operands and the range of its result, like the scalar ALU.
* ``"lazy"``: ``add``, ``sub``, ``neg``, ``shl``, ``mul``, ``matmul`` and ``sum`` skip the operand checks; a
  corrupted word propagates as ``±e``, ``2**n * e`` or ``e * y`` and is caught by the next check (any non-linear
  op, ``check`` or ``decode``). A functional overflow is then reported by that check (``FAULT_DETECTED``/``RANGE``).
  Residual risk: ``e * y`` vanishes modulo a composite A for some in-range ``y`` (docs/encoded.md, "Limits").

An :class:`EncodedVector`'s signature travels with the object (dynamic signatures), which is weaker than the static
signatures of ``@encoded`` against exchanged operands: see docs/encoded.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from custodes.encoded._sig import OP_SALT
from custodes.encoded.code import Code, Scheme, wrap
from custodes.encoded.errors import EncodedOverflowError, EncodedRangeError, EncodedUsageError, FaultDetectedError

__all__ = ["EncodedVector", "VectorOps"]

Int64Array = npt.NDArray[np.int64]
#: Elements per chunk of a check: 512 KiB of int64, so that the check's second pass reads from cache.
_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class EncodedVector:
    """Code words (a read-only int64 array of any shape) with their signature."""

    words: Int64Array
    sig: int

    def __repr__(self) -> str:
        return f"EncodedVector(shape={self.words.shape}, sig={self.sig})"


def _vec(words: Int64Array, sig: int) -> EncodedVector:
    words.flags.writeable = False
    return EncodedVector(words, sig)


class VectorOps:
    """Checked vector operations for one :class:`Code` (default: ANB, A=58659, 16-bit values, int64 lanes)."""

    def __init__(self, code: Code | None = None, check: Literal["eager", "lazy"] = "eager") -> None:
        code = code or Code(kbits=16, scheme=Scheme.ANB)
        if code.nbits != 64 or code.A**2 * (1 << (2 * code.kbits - 2)) >= 1 << 63:
            raise EncodedUsageError(None, "vector codes need nbits=64 and A**2 * 2**(2*kbits-2) < 2**63")
        if check not in ("eager", "lazy"):
            raise EncodedUsageError(None, "check must be 'eager' or 'lazy'")
        self.code = code
        self.eager = check == "eager"
        self._A = np.int64(code.A)
        self._inv = np.int64(wrap(code.a_inverse, 64))
        self._min = np.int64(code.min_value)
        self._span = np.uint64(code.max_value - code.min_value)
        self._s = 1 if code.signed else 0

    def _sig(self, sig: int) -> int:
        if not 0 <= sig < self.code.A or (sig and not self.code.signed):
            raise EncodedUsageError(None, "signature must lie in [0, A) and needs ANB or ANBD")
        return sig

    def _values(self, words: Int64Array, sig: int) -> tuple[Int64Array, bool]:
        """``(c - B) * A^-1`` shifted by ``-min``: valid words land in ``[0, max - min]`` as unsigned (3 passes)."""
        with np.errstate(over="ignore"):
            t = np.multiply(words, self._inv)
            t += np.int64(wrap(-sig * int(self._inv) - int(self._min), 64))
            ok = t.size == 0 or bool(t.view(np.uint64).max() <= self._span)
            t += self._min
        return t, ok

    def _ok(self, words: Int64Array, sig: int) -> bool:
        """The check of :meth:`_values` without the decoded result, in cache-sized chunks (2 passes in cache)."""
        flat = words.reshape(-1)
        n = flat.size
        if n <= _CHUNK:
            return self._values(words, sig)[1]
        off = np.int64(wrap(-sig * int(self._inv) - int(self._min), 64))
        buf = np.empty(_CHUNK, dtype=np.int64)
        with np.errstate(over="ignore"):
            for start in range(0, n, _CHUNK):
                part = flat[start : start + _CHUNK]
                out = buf[: part.size]
                np.multiply(part, self._inv, out=out)
                out += off
                if out.view(np.uint64).max() > self._span:
                    return False
        return True

    def _decoded(self, v: EncodedVector, where: str) -> Int64Array:
        d, ok = self._values(v.words, v.sig)
        if not ok:
            raise FaultDetectedError("RESIDUE", where)
        return d

    def _result(self, words: Int64Array, sig: int, where: str) -> EncodedVector:
        if self.eager and not self._ok(words, sig):
            raise EncodedOverflowError(None, f"result of {where} outside the functional range")
        return _vec(words, sig)

    # -- boundary -------------------------------------------------------------------------------------------------
    def encode(self, values: npt.ArrayLike, sig: int = 0) -> EncodedVector:
        """Encode integers; raises :class:`EncodedRangeError` if any is out of range or not an integer."""
        arr = np.asarray(values)
        if arr.dtype.kind not in "iu":
            raise EncodedRangeError(None, "values must be an integer array")
        if arr.size and (arr.min() < self.code.min_value or arr.max() > self.code.max_value):
            raise EncodedRangeError(None, f"values outside [{self.code.min_value}, {self.code.max_value}]")
        return _vec(arr.astype(np.int64) * self._A + np.int64(self._sig(sig)), sig)

    def check(self, v: EncodedVector) -> None:
        """Raise :class:`FaultDetectedError` unless every word is valid."""
        self._checked(v, "check")

    def decode(self, v: EncodedVector) -> Int64Array:
        """Check, then return the functional values."""
        return self._decoded(v, "decode")

    # -- arithmetic -----------------------------------------------------------------------------------------------
    def _checked(self, v: EncodedVector, where: str) -> None:
        if not self._ok(v.words, v.sig):
            raise FaultDetectedError("RESIDUE", where)

    def _operands(self, x: EncodedVector, y: EncodedVector, where: str) -> None:
        if self.eager:
            self._checked(x, where)
            self._checked(y, where)

    def add(self, x: EncodedVector, y: EncodedVector, sig: int = 0) -> EncodedVector:
        """``x + y``."""
        self._operands(x, y, "add")
        words = np.add(x.words, y.words)
        words += np.int64(self._sig(sig) - x.sig - y.sig)
        return self._result(words, sig, "add")

    def sub(self, x: EncodedVector, y: EncodedVector, sig: int = 0) -> EncodedVector:
        """``x - y``."""
        self._operands(x, y, "sub")
        words = np.subtract(x.words, y.words)
        words += np.int64(self._sig(sig) - x.sig + y.sig)
        return self._result(words, sig, "sub")

    def neg(self, x: EncodedVector, sig: int = 0) -> EncodedVector:
        """``-x``."""
        if self.eager:
            self._checked(x, "neg")
        return self._result(np.int64(self._sig(sig) + x.sig) - x.words, sig, "neg")

    def mul(self, x: EncodedVector, y: EncodedVector, sig: int = 0) -> EncodedVector:
        """``x * y`` as ``(A*x)(A*y) * A^-1``: exact in wrapping int64."""
        self._operands(x, y, "mul")
        with np.errstate(over="ignore"):
            words = np.subtract(x.words, np.int64(x.sig))
            words *= y.words - np.int64(y.sig)
            words *= self._inv
            words += np.int64(self._sig(sig))
        return self._result(words, sig, "mul")

    def matmul(self, x: EncodedVector, y: EncodedVector, sig: int = 0) -> EncodedVector:
        """Matrix product; int64 sums wrap, which is exact because the true result fits."""
        self._operands(x, y, "matmul")
        with np.errstate(over="ignore"):
            words = ((x.words - np.int64(x.sig)) @ (y.words - np.int64(y.sig))) * self._inv + np.int64(self._sig(sig))
        return self._result(words, sig, "matmul")

    def sum(self, x: EncodedVector, sig: int = 0) -> EncodedVector:
        """Sum of all elements (a 0-d vector)."""
        if self.eager:
            self._checked(x, "sum")
        words = np.asarray(np.sum(x.words - np.int64(x.sig)) + np.int64(self._sig(sig)), dtype=np.int64)
        return self._result(words, sig, "sum")

    def shl(self, x: EncodedVector, n: int, sig: int = 0) -> EncodedVector:
        """``x << n`` for a constant ``n`` (multiplication by ``2**n``)."""
        if self.eager:
            self._checked(x, "shl")
        return self._result((x.words - np.int64(x.sig)) * np.int64(1 << n) + np.int64(self._sig(sig)), sig, "shl")

    def _encode_result(self, values: Int64Array, sig: int, where: str) -> EncodedVector:
        if np.any(values < self.code.min_value) or np.any(values > self.code.max_value):
            raise EncodedOverflowError(None, f"result of {where} outside the functional range")
        return _vec(values * self._A + np.int64(self._sig(sig)), sig)

    def floordiv(self, x: EncodedVector, y: EncodedVector, sig: int = 0) -> EncodedVector:
        """Python ``//`` (decode, divide, verify by multiplying back, re-encode)."""
        dx, dy = self._decoded(x, "div"), self._decoded(y, "div")
        if np.any(dy == 0):
            raise ZeroDivisionError("encoded integer division by zero")
        q, r = np.divmod(dx, dy)
        if not np.array_equal(q * dy + r, dx):
            raise FaultDetectedError("VERIFY", "div")
        return self._encode_result(q, sig, "div")

    def mod(self, x: EncodedVector, y: EncodedVector, sig: int = 0) -> EncodedVector:
        """Python ``%`` (the result has the sign of the divisor)."""
        dx, dy = self._decoded(x, "mod"), self._decoded(y, "mod")
        if np.any(dy == 0):
            raise ZeroDivisionError("encoded integer modulo by zero")
        q, r = np.divmod(dx, dy)
        if not np.array_equal(q * dy + r, dx):
            raise FaultDetectedError("VERIFY", "mod")
        return self._encode_result(r, sig, "mod")

    def shr(self, x: EncodedVector, n: int, sig: int = 0) -> EncodedVector:
        """Arithmetic ``x >> n`` for a constant ``n``."""
        return self._encode_result(self._decoded(x, "shr") >> n, sig, "shr")

    # -- comparisons and logic: encoded booleans ------------------------------------------------------------------
    def _bool(self, values: npt.NDArray[np.bool_], sig: int) -> EncodedVector:
        return _vec(values.astype(np.int64) * self._A + np.int64(self._sig(sig)), sig)

    def compare(self, op: str, x: EncodedVector, y: EncodedVector, sig: int = 0) -> EncodedVector:
        """``op`` in ``lt le eq ne gt ge``; returns encoded booleans (0/1)."""
        fn: Any = {"lt": np.less, "le": np.less_equal, "eq": np.equal, "ne": np.not_equal, "gt": np.greater}.get(
            op, np.greater_equal if op == "ge" else None
        )
        if fn is None or op not in OP_SALT:
            raise EncodedUsageError(None, f"unknown comparison {op!r}")
        return self._bool(fn(self._decoded(x, op), self._decoded(y, op)), sig)

    def _truth(self, c: EncodedVector, where: str) -> npt.NDArray[np.bool_]:
        u = c.words - np.int64(c.sig)
        if not bool(np.all((u == 0) | (u == self._A))):
            raise FaultDetectedError("RESIDUE", where)
        return u == self._A

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
        """Element-wise ``x if c else y`` (conditional select); operands are checked."""
        t = self._truth(c, "where")
        self._checked(x, "where")
        self._checked(y, "where")
        u = np.where(t, x.words - np.int64(x.sig), y.words - np.int64(y.sig))
        return _vec(u + np.int64(self._sig(sig)), sig)
