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
    """The valid-word test for one signature and value interval, with its constants folded."""

    inv: np.int64
    off: np.int64
    top: np.uint64

    @classmethod
    def make(cls, inv: int, sig: int, low: int, span: int) -> Checker:
        """``(c - sig) * inv - low`` must lie in ``[0, span]``."""
        return cls(np.int64(wrap(inv, 64)), np.int64(wrap(-sig * inv - low, 64)), np.uint64(span))

    def ok(self, part: Int64Array | np.int64, buf: Int64Array) -> bool:
        """Test one chunk (or a 0-d word), using ``buf`` as scratch."""
        scratch = buf[: np.size(part)].reshape(np.shape(part))
        np.multiply(part, self.inv, out=scratch)
        scratch += self.off
        return bool(scratch.view(np.uint64).max() <= self.top)


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
