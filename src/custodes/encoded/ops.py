"""The encoded ALU: checked operations on code words with static signatures.

Every operation takes code words together with the signatures the *program* expects them to carry (constants fixed
at transform time, never read from the data), computes, and returns the result with the raw signature of
``_sig.signature_of`` plus a constant ``k`` chosen by the caller. Where operands are checked depends on ``checks``:

* ``"every-op"``: every operation checks every operand (residue and range) before use.
* ``"deferred"`` (the default): the operations that *propagate* an error unchanged (``add sub neg mov shl`` and the
  operands of ``select``: ``(x + e) + y = (x + y) + e``) skip their operand checks; they check only the range of
  their result (functional overflow), computed on wrapping 64-bit registers as hardware would. Every operation that
  could *mask* an error or that leaves the encoded domain checks its operands: ``mul`` (a factor ``≡ 0 mod A``
  would cancel ``e``), ``div mod shr``, comparisons (on the difference ``c_x - c_y`` they decide on, which carries
  any operand error), logic, branches, loads, stores, ``dec`` and ``chk``. An error therefore survives until its
  first such consumer, where residue and signature are checked as in ``every-op``.
  ``mul`` checks operand residues; its result range check subsumes the operand range checks, because a non-zero
  factor cannot bring an out-of-range value back into range (docs/encoded.md, "Where checks happen").

Deferred additive results are computed as the C backend computes them, in a 64-bit register (``REGISTER_BITS``),
whatever the code's ``nbits``: an n-bit word (``n <= 64``) is that register's value, sign-extended. Valid operands
never wrap there (``|A*x| + B < 2**(n-1)``), so the range check sees the true result: a functional overflow is an
overflow, never a wrapped word that passes (``2 << 31`` in 32-bit words is ``A * 2**32``, which wraps to 0). A shift
is range-checked on the exact product (``u * 2**n`` can exceed any register).

When a check fails, the method diagnoses it the every-op way (the faulty operand first, then overflow), so the
reason codes are the same in both modes.

The unencoded baseline with the same interface is :class:`~custodes.encoded.baseline.PlainOps`.
"""

from __future__ import annotations

from collections.abc import Iterable

from custodes.encoded._sig import OP_SALT
from custodes.encoded.code import Code, wrap
from custodes.encoded.errors import EncodedOverflowError, EncodedUsageError, FaultDetectedError
from custodes.encoded.memory import EncodedArray

__all__ = ["CHECKS", "DEFAULT_CHECKS", "REGISTER_BITS", "EncodedOps"]

_S = OP_SALT
#: Where operands are checked: at every operation, or deferred to the operations that could mask an error.
CHECKS = ("deferred", "every-op")
DEFAULT_CHECKS = "deferred"
#: Width of the register deferred additive operations compute in (the C backend's int64), for every ``nbits``.
REGISTER_BITS = 64


class EncodedOps:
    """Checked encoded operations for one :class:`Code`. Raises :class:`FaultDetectedError` on a bad word."""

    __slots__ = ("A", "_every", "_hi", "_lo", "_s", "checks", "code", "word_bits")

    def __init__(self, code: Code, checks: str = DEFAULT_CHECKS) -> None:
        if checks not in CHECKS:
            raise EncodedUsageError(None, f"checks must be one of {', '.join(CHECKS)}")
        self.code = code
        self.checks = checks
        self._every = checks == "every-op"
        self.A = code.A
        self.word_bits = code.nbits
        self._lo = code.A * code.min_value
        self._hi = code.A * code.max_value
        self._s = 1 if code.signed else 0

    def __repr__(self) -> str:
        return f"EncodedOps({self.code!r}, checks={self.checks!r})"

    # -- checks ---------------------------------------------------------------------------------------------------
    def _fault(self, c: int, b: int, where: str) -> FaultDetectedError:
        reason = "RESIDUE" if (c - b) % self.A else "RANGE"
        return FaultDetectedError(reason, where)

    def _overflow(self, where: str) -> EncodedOverflowError:
        return EncodedOverflowError(None, f"result of {where} outside [{self.code.min_value}, {self.code.max_value}]")

    def _operand(self, c: int, b: int, where: str) -> None:
        u = c - b
        if u % self.A or not self._lo <= u <= self._hi:
            raise self._fault(c, b, where)

    def _propagated(self, z: int, off: int, where: str, *operands: tuple[int, int]) -> int:
        """Deferred mode: the result ``z`` of an additive op (raw signature ``off``) must be in range.

        On failure the operands are diagnosed first, so a corrupted operand is reported as a fault, not overflow.
        """
        if not self._lo <= z - off <= self._hi:
            for c, b in operands:
                self._operand(c, b, where)
            raise self._overflow(where)
        return z

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
        """Copy with re-signature: ``x + k`` (deferred: unchecked, the error propagates)."""
        if not self._every:
            return x + k
        u = x - bx
        if u % self.A or not self._lo <= u <= self._hi:
            raise self._fault(x, bx, "mov")
        return x + k

    def add(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        """Encoded ``x + y``; raw signature ``bx + by``."""
        if not self._every:
            return self._propagated(wrap(x + y, REGISTER_BITS), bx + by, "add", (x, bx), (y, by)) + k
        A, lo, hi = self.A, self._lo, self._hi
        u, w = x - bx, y - by
        if u % A or w % A or not (lo <= u <= hi and lo <= w <= hi):
            raise self._fault(x, bx, "add") if (u % A or not lo <= u <= hi) else self._fault(y, by, "add")
        if not lo <= u + w <= hi:
            raise self._overflow("add")
        return x + y + k

    def sub(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        """Encoded ``x - y``; raw signature ``bx - by``."""
        if not self._every:
            return self._propagated(wrap(x - y, REGISTER_BITS), bx - by, "sub", (x, bx), (y, by)) + k
        A, lo, hi = self.A, self._lo, self._hi
        u, w = x - bx, y - by
        if u % A or w % A or not (lo <= u <= hi and lo <= w <= hi):
            raise self._fault(x, bx, "sub") if (u % A or not lo <= u <= hi) else self._fault(y, by, "sub")
        if not lo <= u - w <= hi:
            raise self._overflow("sub")
        return x - y + k

    def neg(self, x: int, bx: int, k: int) -> int:
        """Encoded ``-x``; raw signature ``-bx``."""
        if not self._every:
            return self._propagated(wrap(-x, REGISTER_BITS), -bx, "neg", (x, bx)) + k
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
        if u % A or w % A or (self._every and not (lo <= u <= hi and lo <= w <= hi)):
            raise self._fault(x, bx, "mul") if (u % A or not lo <= u <= hi) else self._fault(y, by, "mul")
        z = (u * w) // A
        if not lo <= z <= hi:
            self._operand(x, bx, "mul")  # deferred: an out-of-range factor is a fault, not an overflow
            self._operand(y, by, "mul")
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
        if not self._every:  # the exact product: a shifted word can leave any register, and must not wrap back
            z = self._propagated((x - bx) << n, 0, "shl", (x, bx))
            return z + (bx + _S["shl"]) % self.A * self._s + k
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
    def _diff(self, x: int, bx: int, y: int, by: int, where: str) -> int:
        """The checked difference ``u - w`` of two operands (A > 0 preserves order, so it decides every comparison).

        Every-op: both operands are checked. Deferred: the difference itself is checked. A comparison depends
        on the operands only through their difference, into which an operand error ``e`` propagates unchanged: an
        error that survives in the difference changes it by ``e``, and ``e`` not ``≡ 0 mod A`` is detected. The
        difference is a 64-bit register value (``REGISTER_BITS``), in which two valid words never wrap.
        """
        A, lo, hi = self.A, self._lo, self._hi
        if self._every:
            u, w = x - bx, y - by
            if u % A or w % A or not (lo <= u <= hi and lo <= w <= hi):
                raise self._fault(x, bx, where) if (u % A or not lo <= u <= hi) else self._fault(y, by, where)
            return u - w
        d = wrap(x - y, REGISTER_BITS) - (bx - by)
        if d % A or not lo - hi <= d <= hi - lo:
            self._operand(x, bx, where)
            self._operand(y, by, where)
            raise FaultDetectedError("RESIDUE", where)  # only reachable through a wrapped difference
        return d

    def lt(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        """Encoded ``x < y``."""
        d = self._diff(x, bx, y, by, "lt")
        return (self.A if d < 0 else 0) + (bx + 2 * by + _S["lt"]) % self.A * self._s + k

    def le(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        """Encoded ``x <= y``."""
        d = self._diff(x, bx, y, by, "le")
        return (self.A if d <= 0 else 0) + (bx + 2 * by + _S["le"]) % self.A * self._s + k

    def eq(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        """Encoded ``x == y``."""
        d = self._diff(x, bx, y, by, "eq")
        return (self.A if d == 0 else 0) + (bx + 2 * by + _S["eq"]) % self.A * self._s + k

    def ne(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        """Encoded ``x != y``."""
        d = self._diff(x, bx, y, by, "ne")
        return (self.A if d != 0 else 0) + (bx + 2 * by + _S["ne"]) % self.A * self._s + k

    def gt(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        """Encoded ``x > y``."""
        d = self._diff(x, bx, y, by, "gt")
        return (self.A if d > 0 else 0) + (bx + 2 * by + _S["gt"]) % self.A * self._s + k

    def ge(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        """Encoded ``x >= y``."""
        d = self._diff(x, bx, y, by, "ge")
        return (self.A if d >= 0 else 0) + (bx + 2 * by + _S["ge"]) % self.A * self._s + k

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
        """Branch-free ``x if c else y``: the condition is checked; both operands are evaluated, and checked in every-op
        mode (deferred: the selected operand's error propagates). Result signature ``bz``."""
        cu, _ = self._bools(c, bc, c, bc, "select")
        A, lo, hi = self.A, self._lo, self._hi
        u, w = x - bx, y - by
        if not self._every:  # deferred: the selected operand's error propagates to the result
            return (u if cu else w) + bz
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
