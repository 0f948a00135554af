"""The single injectable clock.

Host time is untrusted (DESIGN.md §2): the host sets it. :class:`FlooredClock` therefore never returns a time
earlier than the newest *signed* timestamp custodes has seen (for example a collateral issue date), so the clock
cannot be wound back past signed evidence. Pure code never reads the clock: it takes ``now`` as an argument.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "FixedClock", "FlooredClock", "SystemClock", "require_utc", "rfc3339", "utcnow"]


def require_utc(value: datetime) -> datetime:
    """Reject naive datetimes; normalise aware ones to UTC."""
    if value.tzinfo is UTC:  # the common case (utcnow and everything derived from it): nothing to convert
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware (UTC)")
    return value.astimezone(UTC)


def rfc3339(value: datetime) -> str:
    """An aware datetime as RFC 3339 in UTC with a ``Z`` (microseconds when it has them), as the API writes times."""
    return require_utc(value).replace(tzinfo=None).isoformat() + "Z"


def utcnow() -> datetime:
    """The host's wall clock, in UTC. Only shells (server, cli, runtime) call this."""
    return datetime.now(UTC)


class Clock(Protocol):
    """Something that tells the time."""

    def now(self) -> datetime: ...


class SystemClock:
    """The host clock."""

    def now(self) -> datetime:
        return utcnow()


class FixedClock:
    """A clock that stands still until moved (tests, offline verification ``--at``)."""

    def __init__(self, at: datetime) -> None:
        self._at = require_utc(at)

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = require_utc(at)


class FlooredClock:
    """Wraps a clock so that it never goes below the newest signed timestamp observed."""

    def __init__(self, inner: Clock | None = None) -> None:
        self._inner = inner or SystemClock()
        self._floor: datetime | None = None
        self._lock = threading.Lock()

    def observe_signed(self, ts: datetime) -> None:
        """Raise the floor to a timestamp that came with a valid vendor or signer signature."""
        ts = require_utc(ts)
        with self._lock:
            if self._floor is None or ts > self._floor:
                self._floor = ts

    @property
    def floor(self) -> datetime | None:
        return self._floor

    def now(self) -> datetime:
        t = self._inner.now()
        floor = self._floor
        return floor if floor is not None and floor > t else t
