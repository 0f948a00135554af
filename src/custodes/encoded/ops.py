"""The encoded ALU: checked operations on code words with static signatures.

Every operation takes code words together with the signatures the *program* expects them to carry (constants fixed
at transform time, never read from the data), checks each operand, computes, and returns the result with the raw
signature of ``_sig.signature_of`` plus a constant ``k`` chosen by the caller. Operands are checked before use, so a
corrupted word is caught at its first use, and with valid operands no intermediate exceeds ``2*nbits`` bits
(products) or ``nbits`` bits (results): the emulated words never need a silent wrap.

The unencoded baseline with the same interface is :class:`~custodes.encoded.baseline.PlainOps`.
"""

from __future__ import annotations

from collections.abc import Iterable

from custodes.encoded._sig import OP_SALT
from custodes.encoded.code import Code
from custodes.encoded.errors import EncodedOverflowError, FaultDetectedError
from custodes.encoded.memory import EncodedArray

__all__ = ["EncodedOps"]

_S = OP_SALT


class EncodedOps:
    """Checked encoded operations for one :class:`Code`. Raises :class:`FaultDetectedError` on a bad word."""

    __slots__ = ("A", "_hi", "_lo", "_s", "code", "word_bits")

    def __init__(self, code: Code) -> None:
        self.code = code
        self.A = code.A
        self.word_bits = code.nbits
        self._lo = code.A * code.min_value
        self._hi = code.A * code.max_value
        self._s = 1 if code.signed else 0

    def __repr__(self) -> str:
        return f"EncodedOps({self.code!r})"

    # -- checks ---------------------------------------------------------------------------------------------------
    def _fault(self, c: int, b: int, where: str) -> FaultDetectedError:
        reason = "RESIDUE" if (c - b) % self.A else "RANGE"
        return FaultDetectedError(reason, where)

    def _overflow(self, where: str) -> EncodedOverflowError:
        return EncodedOverflowError(None, f"result of {where} outside [{self.code.min_value}, {self.code.max_value}]")

    def chk(self, c: int, b: int) -> int:
        """Check ``c`` against signature ``b`` and return it."""
        u = c - b
        if u % self.A or not self._lo <= u <= self._hi:
            raise self._fault(c, b, "check")
        return c

    def enc(self, x: int, b: int) -> int:
        """Encode an input value (the trust boundary: raises :class:`EncodedRangeError` if out of range)."""
        if type(x) is int and self._lo <= self.A * x <= self._hi and 0 <= b < self.A and (self._s or not b):
            return self.A * x + b * self._s
        return self.code.encode(x, b)

    def dec(self, c: int, b: int) -> int:
        """Check and decode an output value."""
        self.chk(c, b)
        return (c - b) // self.A

    # -- arithmetic -----------------------------------------------------------------------------------------------
    def mov(self, x: int, bx: int, k: int) -> int:
        """Copy with re-signature: ``x + k``."""
        u = x - bx
        if u % self.A or not self._lo <= u <= self._hi:
            raise self._fault(x, bx, "mov")
        return x + k

    def add(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        """Encoded ``x + y``; raw signature ``bx + by``."""
        A, lo, hi = self.A, self._lo, self._hi
        u, w = x - bx, y - by
        if u % A or w % A or not (lo <= u <= hi and lo <= w <= hi):
            raise self._fault(x, bx, "add") if (u % A or not lo <= u <= hi) else self._fault(y, by, "add")
        if not lo <= u + w <= hi:
            raise self._overflow("add")
        return x + y + k

    def sub(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        """Encoded ``x - y``; raw signature ``bx - by``."""
        A, lo, hi = self.A, self._lo, self._hi
        u, w = x - bx, y - by
        if u % A or w % A or not (lo <= u <= hi and lo <= w <= hi):
            raise self._fault(x, bx, "sub") if (u % A or not lo <= u <= hi) else self._fault(y, by, "sub")
        if not lo <= u - w <= hi:
            raise self._overflow("sub")
        return x - y + k

    def neg(self, x: int, bx: int, k: int) -> int:
        """Encoded ``-x``; raw signature ``-bx``."""
        u = x - bx
        if u % self.A or not self._lo <= u <= self._hi:
            raise self._fault(x, bx, "neg")
        if not self._lo <= -u <= self._hi:
            raise self._overflow("neg")
        return -x + k

    def mul(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        """Encoded ``x * y``: ``(A*x)(A*y) / A`` in a 2n-bit intermediate; raw signature ``bx*by mod A``."""
        A, lo, hi = self.A, self._lo, self._hi
        u, w = x - bx, y - by
        if u % A or w % A or not (lo <= u <= hi and lo <= w <= hi):
            raise self._fault(x, bx, "mul") if (u % A or not lo <= u <= hi) else self._fault(y, by, "mul")
        z = (u * w) // A
        if not lo <= z <= hi:
            raise self._overflow("mul")
        return z + (bx * by) % A * self._s + k

    def _divmod(self, x: int, bx: int, y: int, by: int, where: str) -> tuple[int, int]:
        A, lo, hi = self.A, self._lo, self._hi
        u, w = x - bx, y - by
        if u % A or w % A or not (lo <= u <= hi and lo <= w <= hi):
            raise self._fault(x, bx, where) if (u % A or not lo <= u <= hi) else self._fault(y, by, where)
        xv, yv = u // A, w // A
        q = xv // yv  # ZeroDivisionError for y == 0, as in Python
        r = xv - q * yv
        # Multiply-back check in the code domain: catches a wrong quotient or remainder from the divider.
        if A * q * yv + A * r != u or not (0 <= r < yv if yv > 0 else yv < r <= 0):
            raise FaultDetectedError("VERIFY", where)
        return q, r

    def div(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        """Encoded floor division (Python ``//``); raw signature ``bx + 2by + salt``."""
        q, _ = self._divmod(x, bx, y, by, "div")
        if not self.code.min_value <= q <= self.code.max_value:
            raise self._overflow("div")
        return self.A * q + (bx + 2 * by + _S["div"]) % self.A * self._s + k

    def mod(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        """Encoded Python ``%``; raw signature ``2bx + by + salt``."""
        _, r = self._divmod(x, bx, y, by, "mod")
        return self.A * r + (2 * bx + by + _S["mod"]) % self.A * self._s + k

    def shl(self, x: int, bx: int, n: int, k: int) -> int:
        """Encoded ``x << n`` for a constant ``n >= 0``: multiplication by ``2**n`` is homomorphic."""
        u = x - bx
        if u % self.A or not self._lo <= u <= self._hi:
            raise self._fault(x, bx, "shl")
        z = u << n
        if not self._lo <= z <= self._hi:
            raise self._overflow("shl")
        return z + (bx + _S["shl"]) % self.A * self._s + k

    def shr(self, x: int, bx: int, n: int, k: int) -> int:
        """Encoded arithmetic ``x >> n`` for a constant ``n >= 0`` (floor division by ``2**n``)."""
        A = self.A
        u = x - bx
        if u % A or not self._lo <= u <= self._hi:
            raise self._fault(x, bx, "shr")
        xv = u // A
        q = xv >> n
        if not 0 <= xv - (q << n) < (1 << n):
            raise FaultDetectedError("VERIFY", "shr")
        return A * q + (bx + _S["shr"]) % A * self._s + k

    # -- comparisons and logic: results are encoded booleans A*v + b, v in {0, 1} --------------------------------
    def lt(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        """Encoded ``x < y`` (A > 0 preserves order)."""
        A, lo, hi = self.A, self._lo, self._hi
        u, w = x - bx, y - by
        if u % A or w % A or not (lo <= u <= hi and lo <= w <= hi):
            raise self._fault(x, bx, "lt") if (u % A or not lo <= u <= hi) else self._fault(y, by, "lt")
        return (A if u < w else 0) + (bx + 2 * by + _S["lt"]) % A * self._s + k

    def le(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        """Encoded ``x <= y``."""
        A, lo, hi = self.A, self._lo, self._hi
        u, w = x - bx, y - by
        if u % A or w % A or not (lo <= u <= hi and lo <= w <= hi):
            raise self._fault(x, bx, "le") if (u % A or not lo <= u <= hi) else self._fault(y, by, "le")
        return (A if u <= w else 0) + (bx + 2 * by + _S["le"]) % A * self._s + k

    def eq(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        """Encoded ``x == y``."""
        A, lo, hi = self.A, self._lo, self._hi
        u, w = x - bx, y - by
        if u % A or w % A or not (lo <= u <= hi and lo <= w <= hi):
            raise self._fault(x, bx, "eq") if (u % A or not lo <= u <= hi) else self._fault(y, by, "eq")
        return (A if u == w else 0) + (bx + 2 * by + _S["eq"]) % A * self._s + k

    def ne(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        """Encoded ``x != y``."""
        A, lo, hi = self.A, self._lo, self._hi
        u, w = x - bx, y - by
        if u % A or w % A or not (lo <= u <= hi and lo <= w <= hi):
            raise self._fault(x, bx, "ne") if (u % A or not lo <= u <= hi) else self._fault(y, by, "ne")
        return (A if u != w else 0) + (bx + 2 * by + _S["ne"]) % A * self._s + k

    def gt(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        """Encoded ``x > y``."""
        A, lo, hi = self.A, self._lo, self._hi
        u, w = x - bx, y - by
        if u % A or w % A or not (lo <= u <= hi and lo <= w <= hi):
            raise self._fault(x, bx, "gt") if (u % A or not lo <= u <= hi) else self._fault(y, by, "gt")
        return (A if u > w else 0) + (bx + 2 * by + _S["gt"]) % A * self._s + k

    def ge(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        """Encoded ``x >= y``."""
        A, lo, hi = self.A, self._lo, self._hi
        u, w = x - bx, y - by
        if u % A or w % A or not (lo <= u <= hi and lo <= w <= hi):
            raise self._fault(x, bx, "ge") if (u % A or not lo <= u <= hi) else self._fault(y, by, "ge")
        return (A if u >= w else 0) + (bx + 2 * by + _S["ge"]) % A * self._s + k

    def _bools(self, x: int, bx: int, y: int, by: int, where: str) -> tuple[int, int]:
        u, w = x - bx, y - by
        if u not in (0, self.A) or w not in (0, self.A):
            raise FaultDetectedError("RESIDUE", where)
        return u, w

    def land(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        """Encoded logical and of two encoded booleans: ``(A*a)(A*b)/A``."""
        u, w = self._bools(x, bx, y, by, "land")
        return (u * w) // self.A + (bx + 2 * by + _S["land"]) % self.A * self._s + k

    def lor(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        """Encoded logical or: ``a + b - a*b``."""
        u, w = self._bools(x, bx, y, by, "lor")
        return u + w - (u * w) // self.A + (bx + 2 * by + _S["lor"]) % self.A * self._s + k

    def lnot(self, x: int, bx: int, k: int) -> int:
        """Encoded logical not of an encoded boolean: ``A - a``."""
        u, _ = self._bools(x, bx, bx, bx, "lnot")
        return self.A - u + (bx + _S["lnot"]) % self.A * self._s + k

    def select(self, c: int, bc: int, x: int, bx: int, y: int, by: int, bz: int) -> int:
        """Branch-free ``x if c else y`` (both operands evaluated and checked); result signature ``bz``."""
        cu, _ = self._bools(c, bc, c, bc, "select")
        A, lo, hi = self.A, self._lo, self._hi
        u, w = x - bx, y - by
        if u % A or w % A or not (lo <= u <= hi and lo <= w <= hi):
            raise self._fault(x, bx, "select") if (u % A or not lo <= u <= hi) else self._fault(y, by, "select")
        return w + (cu // A) * (u - w) + bz

    # -- control flow ---------------------------------------------------------------------------------------------
    def branch(self, c: int, bc: int) -> bool:
        """Decide a branch on an encoded boolean; any other word is a fault."""
        if c == self.A + bc:
            return True
        if c == bc:
            return False
        raise FaultDetectedError("RESIDUE", "branch")

    def expect(self, c: int, bc: int, v: int) -> None:
        """First statement of each branch arm: the condition must encode the arm's value ``v``."""
        if c != self.A * v + bc:
            raise FaultDetectedError("CONTROL_FLOW", "branch")

    # -- memory ---------------------------------------------------------------------------------------------------
    def _index(self, arr: EncodedArray, i: int, bi: int, where: str) -> int:
        u = i - bi
        if u % self.A or not self._lo <= u <= self._hi:
            raise self._fault(i, bi, where)
        n = len(arr.words)
        iv = u // self.A
        if iv < 0:
            iv += n
        if not 0 <= iv < n:
            raise IndexError("encoded array index out of range")
        return iv

    def load(self, arr: EncodedArray, i: int, bi: int, bout: int) -> int:
        """Checked load of ``arr[i]``, version checked under ANBD; result signature ``bout``."""
        A, lo, hi = self.A, self._lo, self._hi
        u = i - bi
        if u % A or not lo <= u <= hi:
            raise self._fault(i, bi, "load")
        words = arr.words
        iv = u // A
        if iv < 0:
            iv += len(words)
        if not 0 <= iv < len(words):
            raise IndexError("encoded array index out of range")
        w = words[iv] - arr.sig - arr.versions[iv]
        if w % A or not lo <= w <= hi:
            return arr.load_word(iv, bout)  # raises with the precise reason (VERSION or RESIDUE)
        return w + bout

    def store(self, arr: EncodedArray, i: int, bi: int, v: int, bv: int) -> None:
        """Checked store of ``v`` into ``arr[i]`` (bumps the version under ANBD)."""
        iv = self._index(arr, i, bi, "store")
        u = v - bv
        if u % self.A or not self._lo <= u <= self._hi:
            raise self._fault(v, bv, "store")
        arr.store_word(iv, v, bv)

    def new_array(self, n: int, bn: int, fill: int, sig: int) -> EncodedArray:
        """``[fill] * n`` as an encoded array with signature ``sig``."""
        u = n - bn
        if u % self.A or not self._lo <= u <= self._hi:
            raise self._fault(n, bn, "new_array")
        return EncodedArray.filled(self.code, fill, u // self.A, sig)

    def length(self, arr: EncodedArray, bout: int) -> int:
        """Encoded ``len(arr)``."""
        return self.A * len(arr.words) + bout

    def enc_array(self, values: Iterable[int], sig: int) -> EncodedArray:
        """Encode an input list."""
        return EncodedArray(self.code, values, sig)

    def dec_array(self, arr: EncodedArray) -> list[int]:
        """Check and decode an output array."""
        return arr.to_list()
