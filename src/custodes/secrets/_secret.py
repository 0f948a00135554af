"""The :class:`Secret` value type: bytes that refuse to show up in output by accident.

A secret is revealed only through an explicit :meth:`Secret.reveal` call, so a stray ``print``, ``repr``, f-string,
log line, pickle or ``json.dumps`` never carries the value. Equality runs in constant time.
"""

from __future__ import annotations

import hmac
from typing import Any, NoReturn

__all__ = ["Secret"]

_REDACTED = "Secret(***)"


class Secret:
    """Immutable secret bytes with a redacted ``repr``/``str``.

    Args:
        value: the secret bytes (copied).
    """

    __slots__ = ("_value",)

    def __init__(self, value: bytes | bytearray | memoryview) -> None:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError("Secret takes bytes")
        object.__setattr__(self, "_value", bytes(value))

    def reveal(self) -> bytes:
        """The secret bytes. Call this only where the value must leave custodes' control."""
        return self._value  # type: ignore[no-any-return]

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return _REDACTED

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return _REDACTED

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value, other._value)

    # Equal secrets must hash equal, but a hash of the value would leak information: secrets are unhashable.
    __hash__ = None  # type: ignore[assignment]

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("Secret is not picklable: serialise material explicitly into an encrypted store")

    def __getstate__(self) -> NoReturn:
        raise TypeError("Secret is not picklable")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Secret:
        return self
