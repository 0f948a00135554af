"""A small thread-safe LRU cache for results of expensive, *pure* checks, keyed by a content hash.

Only facts that depend on the bytes alone are cached (a chain's signatures are valid, a CRL is signed by its CA,
a TCB info is signed by the TCB signing key). Anything that depends on time (validity windows, ``nextUpdate``)
is re-checked on every verification against the caller's ``now``. Failures are never cached.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["LruCache"]

V = TypeVar("V")


class LruCache(Generic[V]):
    """Maps a digest to a verified value; evicts the least recently used entry beyond ``maxsize``."""

    def __init__(self, maxsize: int = 256) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be positive")
        self._maxsize = maxsize
        self._data: OrderedDict[bytes, V] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(self, key: bytes, compute: Callable[[], V]) -> V:
        """Return the cached value for ``key`` or compute, store and return it. Exceptions propagate uncached."""
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        value = compute()
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._maxsize:
                self._data.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
