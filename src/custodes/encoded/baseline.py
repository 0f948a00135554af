"""The unencoded baseline: :class:`EncodedOps`' interface on plain signed 32-bit words.

Words wrap like hardware registers (two's complement), signatures are ignored and nothing is checked. Campaigns run
the same transformed function on this ALU, so faults hit the same injection points as in the encoded variant.
"""

from __future__ import annotations

from collections.abc import Iterable

from custodes.encoded.code import wrap

__all__ = ["PlainArray", "PlainOps"]


class PlainArray:
    """The baseline's memory: plain signed 32-bit words."""

    __slots__ = ("words",)

    def __init__(self, values: Iterable[int]) -> None:
        self.words = [wrap(v, 32) for v in values]

    def __len__(self) -> int:
        return len(self.words)


def _w(v: int) -> int:
    return ((v + 0x80000000) & 0xFFFFFFFF) - 0x80000000


class PlainOps:
    """Unencoded baseline with :class:`EncodedOps`' interface: 32-bit wrapping words, signatures ignored, no checks."""

    word_bits = 32

    def __repr__(self) -> str:
        return "PlainOps()"

    def chk(self, c: int, b: int) -> int:
        return c

    def enc(self, x: int, b: int) -> int:
        return _w(x)

    def dec(self, c: int, b: int) -> int:
        return c

    def mov(self, x: int, bx: int, k: int) -> int:
        return x

    def add(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        return _w(x + y)

    def sub(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        return _w(x - y)

    def neg(self, x: int, bx: int, k: int) -> int:
        return _w(-x)

    def mul(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        return _w(x * y)

    def div(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        return _w(x // y)

    def mod(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        return _w(x % y)

    def shl(self, x: int, bx: int, n: int, k: int) -> int:
        return _w(x << n)

    def shr(self, x: int, bx: int, n: int, k: int) -> int:
        return x >> n

    def lt(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        return int(x < y)

    def le(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        return int(x <= y)

    def eq(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        return int(x == y)

    def ne(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        return int(x != y)

    def gt(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        return int(x > y)

    def ge(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        return int(x >= y)

    def land(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        return int(bool(x) and bool(y))

    def lor(self, x: int, bx: int, y: int, by: int, k: int) -> int:
        return int(bool(x) or bool(y))

    def lnot(self, x: int, bx: int, k: int) -> int:
        return int(not x)

    def select(self, c: int, bc: int, x: int, bx: int, y: int, by: int, bz: int) -> int:
        return x if c else y

    def branch(self, c: int, bc: int) -> bool:
        return bool(c)

    def expect(self, c: int, bc: int, v: int) -> None:
        return None

    def load(self, arr: PlainArray, i: int, bi: int, bout: int) -> int:
        return arr.words[i]

    def store(self, arr: PlainArray, i: int, bi: int, v: int, bv: int) -> None:
        arr.words[i] = v

    def new_array(self, n: int, bn: int, fill: int, sig: int) -> PlainArray:
        arr = PlainArray(())
        arr.words = [_w(fill)] * max(n, 0)
        return arr

    def length(self, arr: PlainArray, bout: int) -> int:
        return len(arr.words)

    def enc_array(self, values: Iterable[int], sig: int) -> PlainArray:
        return PlainArray(values)

    def dec_array(self, arr: PlainArray) -> list[int]:
        return list(arr.words)
