"""Lease timing and retry rules for the workload runtime. Pure: no I/O, no clock reads.

A lease travels as ``{id, expires_at, renew_after}`` in CAS time. The runtime does not trust its wall clock to agree
with the CAS's (time is untrusted, DESIGN.md §2, and clocks drift), so it converts the lease into *durations* and
anchors them on its monotonic clock at the moment it sent the attestation request. The CAS cannot have issued the
lease before that moment, so the local deadline is never later than the CAS's.

The CAS sets ``renew_after`` half-way between its ``now`` and ``expires_at`` (server/cas.py), so the issue time is
``renew_after - (expires_at - renew_after)``. A lease that carries ``issued_at`` uses it instead.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from custodes.client import CasError
from custodes.errors import CustodesError

__all__ = ["Backoff", "LeaseTimes", "is_transient", "parse_stop_grace"]

# Refusals that may clear up by themselves: the CAS is down, overloaded or restarting. Everything else the CAS says
# is an answer, and an answer of "no" stops the application.
_TRANSIENT_CODES = frozenset({"CAS_UNREACHABLE", "NONCE_LIMIT", "CAS_PROTOCOL_ERROR"})


def is_transient(error: CasError) -> bool:
    """Whether retrying may help: unreachable, overloaded (429) or a server error (5xx)."""
    return error.code in _TRANSIENT_CODES or error.status == 429 or error.status >= 500


def _timestamp(value: object, field: str) -> datetime:
    if not isinstance(value, str):
        raise CustodesError("LEASE_INVALID", f"the lease's {field} is missing")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CustodesError("LEASE_INVALID", f"the lease's {field} is not a timestamp") from None
    if parsed.tzinfo is None:
        raise CustodesError("LEASE_INVALID", f"the lease's {field} has no time zone")
    return parsed


@dataclass(frozen=True, slots=True)
class LeaseTimes:
    """A lease on the local monotonic clock (seconds, as ``time.monotonic()``)."""

    lease_id: str
    renew_at: float
    expires_at: float
    deadline_bound: bool = False

    @classmethod
    def from_wire(
        cls, lease: Mapping[str, object], *, sent_at: float, deadline: object = None
    ) -> LeaseTimes:
        """Anchor a wire lease at ``sent_at`` (monotonic time when the attestation request was sent).

        ``deadline`` is the verdict's deadline (a CVE deadline, DESIGN.md §6). A lease that ends at it is
        *deadline-bound*: renewing it can only return a lease that ends at the same instant, until the CAS refuses.

        Raises:
            CustodesError: ``LEASE_INVALID`` for a lease without an id, with unparsable or inconsistent times.
        """
        lease_id = lease.get("id")
        if not isinstance(lease_id, str) or not lease_id:
            raise CustodesError("LEASE_INVALID", "the lease has no id")
        expires = _timestamp(lease.get("expires_at"), "expires_at")
        renew_after = _timestamp(lease.get("renew_after"), "renew_after")
        issued_raw = lease.get("issued_at")
        if issued_raw is not None:
            issued = _timestamp(issued_raw, "issued_at")
        else:
            issued = renew_after - (expires - renew_after)
        if not issued <= renew_after <= expires:
            raise CustodesError("LEASE_INVALID", "the lease's times are out of order")
        bound = deadline is not None and _timestamp(deadline, "deadline") <= expires
        return cls(
            lease_id,
            sent_at + (renew_after - issued).total_seconds(),
            sent_at + (expires - issued).total_seconds(),
            bound,
        )

    def first_attempt(self, rng: random.Random, jitter: float = 0.1) -> float:
        """When to try the first renewal: ``renew_at`` plus a random share (``jitter``) of the remaining window,
        so that many instances started together do not all renew in the same instant."""
        return self.renew_at + rng.uniform(0.0, jitter) * max(0.0, self.expires_at - self.renew_at)


def parse_stop_grace(lease: Mapping[str, object], default: float) -> float:
    """The SIGTERM-to-SIGKILL grace: the lease's ``stop_grace`` (seconds, when the CAS sends it) or ``default``."""
    value = lease.get("stop_grace")
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 3600:
        return float(value)
    return default


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter: attempt *k* waits a random time in ``[0, min(maximum, initial*factor^k)]``
    (never less than ``floor``), so a crowd of runtimes retrying a restarted CAS spreads out."""

    initial: float = 0.25
    factor: float = 2.0
    maximum: float = 5.0
    floor: float = 0.05

    def __post_init__(self) -> None:
        if not (0 < self.floor <= self.initial <= self.maximum and self.factor >= 1):
            raise ValueError("backoff needs 0 < floor <= initial <= maximum and factor >= 1")

    def delays(self, rng: random.Random) -> Iterator[float]:
        """An endless series of delays."""
        ceiling = self.initial
        while True:
            yield max(self.floor, rng.uniform(0.0, ceiling))
            ceiling = min(self.maximum, ceiling * self.factor)
