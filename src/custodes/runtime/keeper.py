"""Keeps a lease alive: re-attests at ``renew_after`` (plus jitter), retries with backoff, and reports a loss.

Renewal is a fresh attestation against the lease (DESIGN.md §4). Two outcomes end a lease:

* **refused**: the CAS answered with a refusal code (a deprecated measurement past its deadline, an out-of-date
  platform, a changed policy, ``LEASE_EXPIRED``...). Retrying cannot change an answer, so the loss is immediate.
* **expired**: the lease ran out while every attempt failed transiently (CAS unreachable, overloaded, 5xx, a TLS
  identity that no longer matches the pin). The runtime never extends a lease on its own.

A lease cut short by a CVE deadline (the verdict's ``deadline``) cannot outlive it: renewing it before the deadline
returns a lease that ends at the same instant, ever shorter. So near such an expiry (under ``FINAL_WINDOW_S``) the
keeper stops renewing and makes one *final* attempt just after the expiry, to learn the CAS's answer: normally a
refusal (``MEASUREMENT_DEPRECATED``, a TCB deadline), reported as such. The caller stops the application at the
expiry all the same; the final attempt only names the reason (or renews, if the owner lifted the deadline).

The keeper only reports; what to do about a loss (stop the application) is the caller's decision. A renewal request
may hang (up to the client's timeout per operation, longer than a short lease): with ``watchdog=True`` a second
thread reports the expiry at the local expiry itself, whatever the renewal thread is waiting for. ``custodes run``
does not need it (its main loop enforces the expiry); the Python API's :class:`~custodes.runtime.Session` does.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from custodes.client import Attestation, CasError
from custodes.errors import CustodesError
from custodes.runtime.lease import Backoff, LeaseTimes, is_transient

__all__ = ["FINAL_WINDOW_S", "LeaseKeeper", "LeaseLost"]

FINAL_WINDOW_S = 1.0
_FINAL_DELAY_S = 0.1  # after the local expiry, which is never later than the CAS's


@dataclass(frozen=True, slots=True)
class LeaseLost:
    """Why a lease ended: ``refused`` (with the CAS's refusal code) or ``expired`` (code ``LEASE_EXPIRED``; the
    message names the last transient error)."""

    reason: Literal["refused", "expired"]
    code: str
    message: str


class LeaseKeeper:
    """A daemon thread that renews one lease until :meth:`stop` or until the lease is lost.

    Args:
        attest: performs one attestation that renews the given lease id (it raises :class:`CasError` on refusal).
        times: the current lease, anchored on the monotonic clock.
        on_renewed: called (in the keeper's thread) with each renewal and its new times.
        on_lost: called once (in the keeper's thread, or the watchdog's) when the lease is lost; the keeper then ends.
        watchdog: also report ``expired`` at the lease's local expiry even while a renewal request is in flight (for
            a lease that ends at a CVE deadline the loss is then ``LEASE_EXPIRED``, not the CAS's later refusal).
    """

    def __init__(
        self,
        attest: Callable[[str], Attestation],
        times: LeaseTimes,
        *,
        on_lost: Callable[[LeaseLost], None],
        on_renewed: Callable[[Attestation, LeaseTimes], None] | None = None,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        jitter: float = 0.1,
        watchdog: bool = False,
    ) -> None:
        self._attest = attest
        self._times = times
        self._on_lost = on_lost
        self._on_renewed = on_renewed
        self._backoff = backoff or Backoff()
        self._rng = rng or random.SystemRandom()
        self._jitter = jitter
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._last: CustodesError | None = None  # the last failed attempt's error, for the watchdog's message
        self._thread = threading.Thread(target=self._run, name="custodes-lease", daemon=True)
        self._watchdog = (
            threading.Thread(target=self._watch, name="custodes-lease-watchdog", daemon=True) if watchdog else None
        )
        self.renewals = 0

    @property
    def times(self) -> LeaseTimes:
        with self._lock:
            return self._times

    def start(self) -> LeaseKeeper:
        self._thread.start()
        if self._watchdog is not None:
            self._watchdog.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop renewing. A renewal in flight finishes (bounded by the client's timeout) but is not reported."""
        self._stopped.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _lose(self, lost: LeaseLost) -> None:
        with self._lock:  # two threads may report: only the first does
            if self._stopped.is_set():
                return
            self._stopped.set()
        self._on_lost(lost)

    def _watch(self) -> None:
        """Report the expiry at the local expiry, even while the renewal thread waits for an answer."""
        while True:
            expires_at = self.times.expires_at
            if self._stopped.wait(max(0.0, expires_at - time.monotonic())):
                return
            times = self.times
            if times.expires_at > time.monotonic():
                continue  # renewed meanwhile
            last = self._last
            why = f"last error: {last.code}: {last.message}" if last else "no renewal answered in time"
            what = "reached its deadline" if times.deadline_bound else "expired unrenewed"
            self._lose(LeaseLost("expired", "LEASE_EXPIRED", f"the lease {what} ({why})"))
            return

    def _run(self) -> None:
        times = self.times
        attempt_at = self._schedule(times)
        delays = None
        last: CustodesError | None = None
        while not self._stopped.wait(max(0.0, attempt_at - time.monotonic())):
            now = time.monotonic()
            final = times.deadline_bound and now >= times.expires_at
            if now >= times.expires_at and not (final and last is None):
                why = f"last error: {last.code}: {last.message}" if last else "no renewal was attempted"
                self._lose(LeaseLost("expired", "LEASE_EXPIRED", f"the lease expired unrenewed ({why})"))
                return
            try:
                attestation = self._attest(times.lease_id)
                renewed = LeaseTimes.from_wire(
                    attestation.lease, sent_at=now, deadline=attestation.verdict.get("deadline")
                )
            except CasError as exc:
                if not (is_transient(exc) or exc.code == "CAS_TLS_FAILED"):
                    self._lose(LeaseLost("refused", exc.code, exc.message))
                    return
                last = self._last = exc
            except CustodesError as exc:  # evidence provider hiccup or a malformed lease: retry until expiry
                last = self._last = exc
            else:
                with self._lock:
                    if self._stopped.is_set():  # stopped, or the watchdog reported the expiry meanwhile
                        return
                    self._times = times = renewed
                self.renewals += 1
                last, delays = None, None
                self._last = None
                if self._on_renewed is not None:
                    self._on_renewed(attestation, renewed)
                attempt_at = self._schedule(renewed)
                continue
            if final:
                why = f"{last.code}: {last.message}" if last else "no answer"
                self._lose(LeaseLost("expired", "LEASE_EXPIRED", f"the lease reached its deadline ({why})"))
                return
            delays = delays or self._backoff.delays(self._rng)
            attempt_at = min(time.monotonic() + next(delays), times.expires_at)

    def _schedule(self, times: LeaseTimes) -> float:
        """When to attempt the next renewal (see the module docstring for deadline-bound leases)."""
        attempt = times.first_attempt(self._rng, self._jitter)
        if times.deadline_bound and times.expires_at - attempt < FINAL_WINDOW_S:
            return times.expires_at + _FINAL_DELAY_S
        return attempt
