"""The single injectable clock.

Host time is untrusted (DESIGN.md §2): the host sets it. :class:`FlooredClock` therefore never returns a time
earlier than the newest *signed* timestamp custodes has seen (for example a collateral issue date), so the clock
cannot be wound back past signed evidence; and, while the process runs, never earlier than a time it has already
returned plus the time elapsed since on the monotonic clock, so winding the wall clock back does not stretch a
nonce's, a lease's or a deadline's lifetime. Pure code never reads the clock: it takes ``now`` as an argument.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
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
    """Wraps a clock so that it never goes below the newest signed timestamp observed, nor back in time.

    The second bound is the *lead*: the largest ``wall − monotonic`` seen. ``now()`` returns at least
    ``monotonic + lead`` (less 10 µs of reading jitter), so after the host winds its wall clock back the time keeps
    advancing at the monotonic clock's rate from the latest time returned, and a step forward is kept (things
    expire early: fail closed).
    ``monotonic`` defaults to :func:`time.monotonic` for the system clock (system-wide, so worker processes can share
    the lead); for another inner clock without one, the bound is a plain high-water mark.
    """

    def __init__(self, inner: Clock | None = None, *, monotonic: Callable[[], float] | None = None) -> None:
        self._inner = inner or SystemClock()
        self._monotonic = monotonic if monotonic is not None else (time.monotonic if inner is None else _still)
        self._floor: datetime | None = None
        self._lead = -math.inf
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

    @property
    def lead(self) -> float:
        """The largest ``wall − monotonic`` seen (seconds): with :meth:`raise_lead`, how workers share the bound."""
        return self._lead

    def raise_lead(self, lead: float) -> None:
        """Take up a lead another process has seen (they share one monotonic clock)."""
        self._lead = max(self._lead, lead)

    def now(self) -> datetime:
        t = self._inner.now()
        mono = self._monotonic()
        lead = t.timestamp() - mono
        if lead > self._lead:
            self._lead = lead
        elif lead < self._lead - _WOBBLE_S:  # the wall clock went back: carry on from the latest time returned
            t = datetime.fromtimestamp(mono + self._lead, UTC)
        floor = self._floor
        return floor if floor is not None and floor > t else t


#: How far ``wall − monotonic`` moves between two readings without any clock change (the wall time is rounded to the
#: microsecond, the two clocks are read one after the other): not taken for a step back.
_WOBBLE_S = 1e-5


def _still() -> float:
    """A monotonic clock that stands still, for inner clocks that have none (tests): a high-water mark."""
    return 0.0
