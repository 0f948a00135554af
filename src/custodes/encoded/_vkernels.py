"""Chunked loops behind :class:`~custodes.encoded.vector.VectorOps`: one memory pass per operation.

An encoded vector operation is several numpy passes (checks, signature shifts, the product and its division by A).
Over 10**6 int64 lanes each pass streams 8 MB through memory. These loops run all passes of one operation on one
cache-sized chunk at a time: the operands are read from memory once, the result is written once, and every other
pass (including the operand and result checks) works on data in cache. A check fails the whole operation at the
first bad chunk, before any result is returned.

``Checker`` holds the constants of the test ``(c - B) * A^-1 - low`` in ``[0, span]`` (unsigned, mod ``2**64``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from custodes.encoded.code import wrap

__all__ = ["CHUNK", "Checker", "Loop"]

Int64Array = npt.NDArray[np.int64]
#: Elements per chunk: 256 KiB of int64, so that a chunk, its operands and three scratch buffers stay in cache.
CHUNK = 1 << 15


@dataclass(frozen=True, slots=True)
class Checker:
    """The valid-word test for one signature and value interval, with its constants folded.

    A word is valid iff ``t = c * A^-1 (mod 2**64)`` equals ``sig * A^-1 + x`` for an ``x`` in ``[low, low +
    span]``. When that set of ``t`` is a contiguous signed interval ``[lo, hi]`` (it does not straddle the int64
    sign boundary: almost always), the test is one multiplication and two read-only reductions (``min``, ``max``),
    and ``t - sig * A^-1`` is the decoded value. Otherwise it is the unsigned test ``t + off <= top``.
    """

    inv: np.int64
    off: np.int64
    top: np.uint64
    lo: np.int64
    hi: np.int64
    interval: bool
    dec: np.int64  # -sig * A^-1: t + dec is the decoded value of a valid word

    @classmethod
    def make(cls, inv: int, sig: int, low: int, span: int) -> Checker:
        """``(c - sig) * inv - low`` must lie in ``[0, span]``."""
        lo = wrap(sig * inv + low, 64)
        interval = lo + span < 1 << 63
        hi = lo + span if interval else 0
        off, dec = np.int64(wrap(-sig * inv - low, 64)), np.int64(wrap(-sig * inv, 64))
        return cls(np.int64(wrap(inv, 64)), off, np.uint64(span), np.int64(lo), np.int64(hi), interval, dec)

    def ok(self, part: Int64Array | np.int64, buf: Int64Array) -> bool:
        """Test one chunk (or a 0-d word), using ``buf`` as scratch; ``buf`` then holds ``c * A^-1``."""
        scratch = buf[: np.size(part)].reshape(np.shape(part))
        np.multiply(part, self.inv, out=scratch)
        if self.interval:
            return bool(scratch.min() >= self.lo) and bool(scratch.max() <= self.hi)
        scratch += self.off
        ok = bool(scratch.view(np.uint64).max() <= self.top)
        scratch -= self.off
        return ok

    def values(self, t: Int64Array) -> None:
        """After a passed :meth:`ok`: turn ``t = c * A^-1`` (in place) into the decoded values ``x``."""
        t += self.dec


class Loop:
    """Chunked evaluation over operands of one shape (0-d operands stay 0-d: constants broadcast per chunk)."""

    def __init__(self, *operands: Int64Array) -> None:
        shaped = [w for w in operands if w.ndim]
        if len({w.shape for w in shaped}) > 1:  # general broadcasting: expand (copies only in this rare case)
            expanded = iter(np.broadcast_arrays(*shaped))
            operands = tuple(next(expanded) if w.ndim else w for w in operands)
            shaped = [w for w in operands if w.ndim]
        self.shape: tuple[int, ...] = shaped[0].shape if shaped else ()
        self.n = int(np.prod(self.shape))
        self.flat = [w.reshape(-1) if w.ndim else w for w in operands]
        size = max(min(self.n, CHUNK), 1)
        self.buf, self.buf2, self.buf3 = (np.empty(size, dtype=np.int64) for _ in range(3))
        self.mask = np.empty(size, dtype=np.bool_)
        self.fbuf = np.empty(size, dtype=np.float64)

    def run(self, body: Callable[[list[Int64Array], Int64Array, Loop, int], None]) -> Int64Array:
        """Call ``body(parts, out_chunk, self, size)`` per chunk; ``body`` raises to stop. Returns the result."""
        res = np.empty(self.n, dtype=np.int64)
        for start in range(0, self.n, CHUNK):
            stop = min(start + CHUNK, self.n)
            parts = [w[start:stop] if w.ndim else w for w in self.flat]
            body(parts, res[start:stop], self, stop - start)
        return res.reshape(self.shape)
