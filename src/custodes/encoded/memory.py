"""Encoded memory: arrays and cells whose words carry a signature and, under ANBD, a version.

A cell holds ``A*x + B_cell + D`` where ``D`` is the cell's version, bumped (mod A) on every store and kept in a
separate version table. A store that never reaches memory (a *lost update*) leaves the old word, whose version no
longer matches the table, so the next load fails with reason ``VERSION``. Under AN and ANB the stale word is still
a valid code word: lost updates are invisible there. The version table is assumed to be updated by a separate
store; a fault that loses both the word and its version is not detected (docs/encoded.md, "Limits").
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import sub

from custodes.encoded.code import Code, Scheme
from custodes.encoded.errors import EncodedUsageError, FaultDetectedError

__all__ = ["EncodedArray", "EncodedCell"]


class EncodedArray:
    """A fixed-length array of encoded words with one static signature ``sig`` and per-element versions.

    Words are never exposed decoded except through :meth:`get` / :meth:`to_list`, which check every word read.
    """

    __slots__ = ("_versioned", "code", "sig", "versions", "words")

    def __init__(self, code: Code, values: Iterable[int], sig: int = 0) -> None:
        if not 0 <= sig < code.A or (sig and code.scheme is Scheme.AN):
            raise EncodedUsageError(None, "array signature must lie in [0, A) and needs ANB or ANBD")
        self.code = code
        self.sig = sig
        self._versioned = code.scheme is Scheme.ANBD
        vals = list(values)
        A, lo, hi = code.A, code.min_value, code.max_value
        # The common case in C-level passes (types, min, max), without a Python-level test per value.
        if not vals or (set(map(type, vals)) == {int} and lo <= min(vals) and max(vals) <= hi):
            self.words: list[int] = [A * v + sig for v in vals]
        else:
            self.words = [code.encode(v, sig) for v in vals]  # raises EncodedRangeError for the first bad value
        self.versions: list[int] = [0] * len(self.words)

    @classmethod
    def filled(cls, code: Code, value: int, n: int, sig: int = 0) -> EncodedArray:
        """``[value] * n``, encoded once."""
        arr = cls(code, [], sig)
        arr.words = [code.encode(value, sig)] * max(n, 0)
        arr.versions = [0] * max(n, 0)
        return arr

    def __len__(self) -> int:
        return len(self.words)

    def __repr__(self) -> str:
        return f"EncodedArray(len={len(self.words)}, scheme={self.code.scheme.value})"

    def load_word(self, index: int, bout: int) -> int:
        """The checked word at ``index``, moved to signature ``bout``."""
        A = self.code.A
        word = self.words[index]
        s = self.sig + self.versions[index]
        u = word - s
        if u % A or not A * self.code.min_value <= u <= A * self.code.max_value:
            stale = self._versioned and (u + 1) % A == 0
            raise FaultDetectedError("VERSION" if stale else "RESIDUE", "load")
        return u + bout

    def store_word(self, index: int, value: int, bvalue: int) -> None:
        """Store a word that the caller has checked against ``bvalue``; bumps the version under ANBD."""
        if self._versioned:
            d = (self.versions[index] + 1) % self.code.A
            self.versions[index] = d
        else:
            d = 0
        self.words[index] = value - bvalue + self.sig + d

    def get(self, index: int) -> int:
        """The decoded value at ``index`` (checked)."""
        return self.code.decode(self.load_word(index, 0))

    def to_list(self) -> list[int]:
        """All values, decoded and checked (the same checks as :meth:`get`, without a call per element).

        ``u == A * ((u - sig) // A) + sig`` holds iff ``(u - sig) % A == 0``, so one list comparison checks every
        residue; ``min``/``max`` check the range.
        """
        A, sig = self.code.A, self.sig
        us = list(map(sub, self.words, self.versions)) if self._versioned else self.words
        values = [(u - sig) // A for u in us]
        if [A * v + sig for v in values] != us or (
            values and (min(values) < self.code.min_value or max(values) > self.code.max_value)
        ):
            for i in range(len(values)):
                self.get(i)  # raises with the precise reason
            raise FaultDetectedError("RESIDUE", "load")  # fail closed: not reached if get() agrees
        return values


class EncodedCell:
    """One ANBD memory cell: ``set`` encodes and stores, ``get`` loads, checks and decodes."""

    __slots__ = ("_array",)

    def __init__(self, code: Code, value: int, sig: int = 0) -> None:
        self._array = EncodedArray(code, [value], sig)

    def __repr__(self) -> str:
        return f"EncodedCell(scheme={self._array.code.scheme.value})"

    @property
    def array(self) -> EncodedArray:
        """The one-element array behind the cell (for the fault injector)."""
        return self._array

    def set(self, value: int) -> None:
        """Encode ``value`` and store it (new version)."""
        code = self._array.code
        self._array.store_word(0, code.encode(value), 0)

    def get(self) -> int:
        """Load, check and decode."""
        return self._array.get(0)
