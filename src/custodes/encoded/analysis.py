"""Computed detection guarantees of AN codes: which bit flips can turn a code word into another code word.

Flipping bits ``i1..iw`` of a word changes its value by ``D = sum(s_j * 2**i_j)`` with signs ``s_j = ±1`` (``+`` for a
0 that becomes 1). The flipped word can only be valid if ``D ≡ 0 (mod A)`` (the signature part is unchanged), so if
no signed combination of ``w`` powers of two below ``2**nbits`` is divisible by A, *every* flip of ``w`` bits is
detected, whatever the word. :func:`undetected_weights` checks this by enumeration (numpy, residues mod A), and
:func:`realize_flip` finds an actual pair of code words at a given distance, which shows a bound is tight.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["exhaustive_flip_check", "realize_flip", "undetected_weights"]


def _sign_matrix(w: int) -> np.ndarray:
    # The first sign is fixed to +1: D and -D are the same condition.
    rows = [(1, *s) for s in itertools.product((1, -1), repeat=w - 1)]
    return np.array(rows, dtype=np.int64)


def _combos(nbits: int, w: int) -> np.ndarray:
    return np.array(list(itertools.combinations(range(nbits), w)), dtype=np.int64)


def undetected_weights(A: int, nbits: int, max_weight: int) -> list[int]:
    """The flip weights ``w <= max_weight`` for which some signed sum of ``w`` distinct powers ``2**i``
    (``i < nbits``) is divisible by ``A``. An empty list means every flip of up to ``max_weight`` bits is detected.
    """
    residues = np.array([pow(2, i, A) for i in range(nbits)], dtype=np.int64)
    found = []
    for w in range(1, max_weight + 1):
        signs = _sign_matrix(w)
        combos = _combos(nbits, w)
        for chunk in np.array_split(combos, max(1, len(combos) // 50_000)):
            sums = residues[chunk] @ signs.T
            if np.any(sums % A == 0):
                found.append(w)
                break
    return found


def realize_flip(A: int, kbits: int, nbits: int, weight: int) -> tuple[int, int] | None:
    """Two valid unsigned words ``A*x`` and ``A*y`` (``0 <= x, y < 2**kbits``) that differ in exactly ``weight``
    bits, or None if there are none. Searches the signed sums of :func:`undetected_weights`.
    """
    x = np.arange(1 << kbits, dtype=np.int64)
    words = A * x
    for combo in itertools.combinations(range(nbits), weight):
        for signs in itertools.product((1, -1), repeat=weight):
            d = sum(s << i for s, i in zip(signs, combo, strict=True))
            if d % A:
                continue
            ok = (x + d // A >= 0) & (x + d // A < (1 << kbits))
            for s, i in zip(signs, combo, strict=True):
                ok &= ((words >> i) & 1) == (0 if s > 0 else 1)
            hits = np.flatnonzero(ok)
            if hits.size:
                c = int(words[hits[0]])
                return c, c + d
    return None


def exhaustive_flip_check(A: int, kbits: int, nbits: int, weight: int) -> int:
    """Flip every ``weight``-bit pattern of every code word ``A*x`` of the signed ``kbits`` range (signed
    ``nbits`` words) and count the results that are valid code words of another value. 0 means all detected.
    """
    half = 1 << (kbits - 1)
    x = np.arange(-half, half, dtype=np.int64)
    mask = (1 << nbits) - 1
    words = (A * x) & mask
    undetected = 0
    for combo in itertools.combinations(range(nbits), weight):
        pattern = sum(1 << i for i in combo)
        flipped = words ^ pattern
        signed = np.where(flipped >= 1 << (nbits - 1), flipped - (1 << nbits), flipped)
        valid = (signed % A == 0) & (signed // A >= -half) & (signed // A < half)
        undetected += int(np.count_nonzero(valid))
    return undetected
