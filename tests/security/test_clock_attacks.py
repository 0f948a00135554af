"""The host winds its wall clock back to stretch what custodes bounds in time: a nonce's life, and a CVE deadline.

The CAS's time may not go back while it runs (custodes.clock.FlooredClock): after a rewind it carries on from the
latest time it returned, at the monotonic clock's rate, in every worker. In-process CASes (tests/_inprocess.py),
because a test must not set the machine's clock.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from _inprocess import InProcessCas
from custodes.clock import utcnow
from custodes.server.errors import ApiError


def refused(call) -> ApiError:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiError) as info:
        call()
    return info.value


def test_an_expired_nonce_stays_expired_when_the_host_winds_its_clock_back(tmp_path: Path) -> None:
    cas = InProcessCas(tmp_path)
    nonce = cas.challenge()  # expires at t0 + 60 s
    cas.set_wall(cas.t0 + timedelta(seconds=120), elapsed=timedelta(seconds=120))
    cas.challenge()  # the CAS has now seen t0 + 120 s
    cas.set_wall(cas.t0 + timedelta(seconds=10), elapsed=timedelta(seconds=1))
    assert refused(lambda: cas.attest(nonce=nonce)).code == "NONCE_EXPIRED"


def test_another_worker_does_not_go_back_before_what_the_first_saw(tmp_path: Path) -> None:
    first = InProcessCas(tmp_path)
    second = first.sibling()  # a second worker: same tables, its own clock, which never sees the step forward
    nonce = first.challenge()
    first.set_wall(first.t0 + timedelta(seconds=120), elapsed=timedelta(seconds=1))  # a step forward...
    first.challenge()  # ...that only the first worker sees
    first.set_wall(first.t0 + timedelta(seconds=2), elapsed=timedelta(seconds=1))  # and back
    assert refused(lambda: second.attest(nonce=nonce)).code == "NONCE_EXPIRED"


def test_a_measurement_past_its_deprecation_deadline_stays_refused_after_a_rewind(tmp_path: Path) -> None:
    since = (utcnow() - timedelta(days=6)).strftime("%Y-%m-%dT%H:%M:%SZ")  # grace 7d: deadline about t0 + 1 day
    cas = InProcessCas(tmp_path, deprecated=f"{{since: {since}, advisory: CVE-2026-0003}}")
    assert cas.attest()["verdict"]["accepted"]  # within the grace
    cas.set_wall(cas.t0 + timedelta(days=2), elapsed=timedelta(days=2))
    assert refused(cas.attest).code == "MEASUREMENT_DEPRECATED"
    cas.set_wall(cas.t0, elapsed=timedelta(seconds=5))  # the host winds the clock back before the deadline
    assert refused(cas.attest).code == "MEASUREMENT_DEPRECATED"
