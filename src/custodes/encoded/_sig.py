"""Signature rules: the signature each raw encoded operation gives its result.

The ALU (``ops.py``) computes these terms at run time from the operand signatures it is handed; the transformer
(``transform.py``) computes the same terms at transform time and adds a constant ``k = B_target - sig`` that moves
the result to its statically assigned signature. Because the op-specific term is computed *inside* the operation,
an executed wrong operator (``-`` for ``+``) yields a result whose signature differs from the one the transformer
expected, and the next check fails. Under plain AN every term is 0, which is why AN cannot see such faults.
"""

from __future__ import annotations

__all__ = ["OP_SALT", "signature_of"]

#: Distinct per-operator salts, so that exchanged operators of one family get distinct result signatures.
OP_SALT: dict[str, int] = {
    "div": 11,
    "mod": 13,
    "lt": 101,
    "le": 211,
    "eq": 307,
    "ne": 401,
    "gt": 503,
    "ge": 601,
    "land": 701,
    "lor": 809,
    "lnot": 907,
    "shl": 1009,
    "shr": 1103,
}


def signature_of(op: str, bx: int, by: int, A: int, signed: bool) -> int:
    """The signature of the raw result of ``op`` on operands with signatures ``bx`` and ``by``."""
    if not signed:
        return 0
    if op == "add":
        return bx + by
    if op == "sub":
        return bx - by
    if op == "neg":
        return -bx
    if op in ("mov", "load"):
        return bx
    if op == "mul":
        return (bx * by) % A
    if op in ("div", "lt", "le", "eq", "ne", "gt", "ge", "land", "lor"):
        return (bx + 2 * by + OP_SALT[op]) % A
    if op == "mod":
        return (2 * bx + by + OP_SALT[op]) % A
    if op in ("lnot", "shl", "shr"):
        return (bx + OP_SALT[op]) % A
    raise KeyError(op)
