"""AN, ANB and ANBD codes over emulated fixed-width words.

A functional value ``x`` (a signed ``kbits`` integer) is stored as the signed ``nbits`` two's-complement code word
``c = A*x + B + D``:

* **AN**: ``B = D = 0``. Detects corrupted words and faulty arithmetic (an error survives only if it is a multiple
  of A).
* **ANB**: ``B`` is a static signature per variable, fixed when the program is encoded. Exchanged operands and
  exchanged operators produce a wrong signature.
* **ANBD**: ``D`` is the version of a memory cell, bumped on every store. A lost store leaves a stale version.

A word is valid iff ``(c - B - D) mod A == 0`` (on the *signed* interpretation) and ``(c - B - D) / A`` lies in
``[-2**(kbits-1), 2**(kbits-1) - 1]``. Signatures and versions lie in ``[0, A)``; the constructor checks that
``A * 2**(kbits-1) + SIGNATURE_SPAN * A < 2**(nbits-1)``, so no valid word and no sum of two signatures can overflow.

The default, ``Code()``, is ANBD with the super A 58659 (Hoffmann et al.), 32-bit functional values and 64-bit code
words; products of two code words are formed in a 128-bit intermediate. ``A`` must be odd: an even A leaves the high
bits unprotected, and an odd A is invertible modulo ``2**nbits``, which gives :meth:`Code.fast_decode`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from custodes.encoded.errors import EncodedRangeError, EncodedUsageError, FaultDetectedError

__all__ = ["DEFAULT_A", "SIGNATURE_SPAN", "SUPER_AS", "Code", "Scheme", "wrap"]

#: The five 16-bit super As of Hoffmann et al. (SQJ 2016, footnote 2); 58659 is dOSEK's ``A0``.
SUPER_AS: tuple[int, ...] = (58659, 59665, 63157, 63859, 63877)
DEFAULT_A = 58659
#: Headroom reserved above ``A * max_value``, in multiples of A, for signatures, versions and their sums.
SIGNATURE_SPAN = 8


class Scheme(enum.Enum):
    """Which parts of ``A*x + B + D`` a code uses."""

    AN = "AN"
    ANB = "ANB"
    ANBD = "ANBD"


def wrap(value: int, nbits: int) -> int:
    """``value`` reduced to a signed ``nbits`` two's-complement word, as a register would hold it."""
    half = 1 << (nbits - 1)
    return ((value + half) & ((1 << nbits) - 1)) - half


@dataclass(frozen=True, slots=True)
class Code:
    """Parameters of one code. Immutable; validated at construction.

    Args:
        A: the odd constant, ``3 <= A``.
        kbits: width of the signed functional values (``2..32``).
        nbits: width of the code words (``8..64``).
        scheme: AN, ANB or ANBD.
    """

    A: int = DEFAULT_A
    kbits: int = 32
    nbits: int = 64
    scheme: Scheme = Scheme.ANBD
    min_value: int = field(init=False)
    max_value: int = field(init=False)
    a_inverse: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.A, int) or self.A < 3 or self.A % 2 == 0:
            raise EncodedUsageError(None, "A must be an odd integer >= 3")
        if not 2 <= self.kbits <= 32 or not 8 <= self.nbits <= 64:
            raise EncodedUsageError(None, "kbits must be in 2..32 and nbits in 8..64")
        if not isinstance(self.scheme, Scheme):
            raise EncodedUsageError(None, "scheme must be a Scheme")
        if self.A * (1 << (self.kbits - 1)) + SIGNATURE_SPAN * self.A >= 1 << (self.nbits - 1):
            raise EncodedUsageError(None, "A * 2**(kbits-1) plus the signature headroom must fit a signed n-bit word")
        object.__setattr__(self, "min_value", -(1 << (self.kbits - 1)))
        object.__setattr__(self, "max_value", (1 << (self.kbits - 1)) - 1)
        object.__setattr__(self, "a_inverse", pow(self.A, -1, 1 << self.nbits))

    @classmethod
    def an(cls, A: int = DEFAULT_A, kbits: int = 32, nbits: int = 64) -> Code:
        """Plain AN code (no signatures, no versions)."""
        return cls(A, kbits, nbits, Scheme.AN)

    @classmethod
    def anb(cls, A: int = DEFAULT_A, kbits: int = 32, nbits: int = 64) -> Code:
        """ANB code: static signatures."""
        return cls(A, kbits, nbits, Scheme.ANB)

    @classmethod
    def anbd(cls, A: int = DEFAULT_A, kbits: int = 32, nbits: int = 64) -> Code:
        """ANBD code: static signatures and per-cell versions."""
        return cls(A, kbits, nbits, Scheme.ANBD)

    @property
    def signed(self) -> bool:
        """True if the code carries signatures (ANB, ANBD)."""
        return self.scheme is not Scheme.AN

    @property
    def versioned(self) -> bool:
        """True if memory cells carry versions (ANBD)."""
        return self.scheme is Scheme.ANBD

    def _sig(self, b: int, d: int) -> int:
        if not 0 <= b < self.A or not 0 <= d < self.A:
            raise EncodedUsageError(None, "signature and version must lie in [0, A)")
        if (b and not self.signed) or (d and not self.versioned):
            raise EncodedUsageError(None, f"{self.scheme.value} code has no {'signature' if b else 'version'}")
        return b + d

    def wrap(self, value: int) -> int:
        """``value`` as a signed ``nbits`` word."""
        return wrap(value, self.nbits)

    def encode(self, x: int, b: int = 0, d: int = 0) -> int:
        """The code word of ``x``. Raises :class:`EncodedRangeError` if ``x`` is not an in-range int."""
        if not isinstance(x, int) or not self.min_value <= x <= self.max_value:
            raise EncodedRangeError(None, f"value is not an integer in [{self.min_value}, {self.max_value}]")
        return self.A * x + self._sig(b, d)

    def check(self, c: int, b: int = 0, d: int = 0) -> None:
        """Raise :class:`FaultDetectedError` unless ``c`` is a valid word for signature ``b`` and version ``d``."""
        self.decode(c, b, d)

    def decode(self, c: int, b: int = 0, d: int = 0) -> int:
        """Check ``c``, then return its functional value."""
        s = self._sig(b, d)
        if not isinstance(c, int) or not -(1 << (self.nbits - 1)) <= c < 1 << (self.nbits - 1):
            raise FaultDetectedError("WORD", "decode")
        x, r = divmod(c - s, self.A)
        if r:
            raise FaultDetectedError("RESIDUE", "decode")
        if not self.min_value <= x <= self.max_value:
            raise FaultDetectedError("RANGE", "decode")
        return x

    def fast_decode(self, c: int, b: int = 0, d: int = 0) -> int:
        """Division-free decode (Kolditz et al.): ``x = (c - B - D) * A^-1 mod 2**n``, valid iff ``x`` is in range.

        Multiplication by A is a bijection on n-bit words, and ``A*x`` never wraps for in-range ``x``, so this
        accepts exactly the words :meth:`decode` accepts.
        """
        s = self._sig(b, d)
        if not isinstance(c, int) or not -(1 << (self.nbits - 1)) <= c < 1 << (self.nbits - 1):
            raise FaultDetectedError("WORD", "fast_decode")
        x = self.wrap((c - s) * self.a_inverse)
        if not self.min_value <= x <= self.max_value:
            raise FaultDetectedError("RESIDUE", "fast_decode")
        return x
