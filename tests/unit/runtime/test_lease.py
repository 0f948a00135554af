"""Lease timing (anchored on the monotonic clock), backoff, transient-error classification, and the keeper."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.client import Attestation, CasError
from custodes.errors import CustodesError
from custodes.runtime.keeper import LeaseKeeper, LeaseLost
from custodes.runtime.lease import Backoff, LeaseTimes, is_transient, parse_stop_grace

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ts(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def wire(ttl: float, *, lease_id: str = "L1", issued: datetime = T0) -> dict[str, str]:
    expires = issued + timedelta(seconds=ttl)
    return {"id": lease_id, "expires_at": ts(expires), "renew_after": ts(issued + timedelta(seconds=ttl / 2))}


def test_lease_is_anchored_at_the_send_time_not_the_wall_clock() -> None:
    # The CAS's wall clock is a year ahead of ours: irrelevant, only durations count.
    times = LeaseTimes.from_wire(wire(60, issued=T0 + timedelta(days=365)), sent_at=1000.0)
    assert times == LeaseTimes("L1", 1030.0, 1060.0, False)


def test_issued_at_is_used_when_the_cas_sends_it() -> None:
    lease = {"id": "L", "issued_at": ts(T0), "renew_after": ts(T0 + timedelta(seconds=10)),
             "expires_at": ts(T0 + timedelta(seconds=40))}
    assert LeaseTimes.from_wire(lease, sent_at=0.0) == LeaseTimes("L", 10.0, 40.0, False)


def test_deadline_bound_lease() -> None:
    lease = wire(10)
    assert LeaseTimes.from_wire(lease, sent_at=0, deadline=lease["expires_at"]).deadline_bound
    later = ts(T0 + timedelta(days=1))
    assert not LeaseTimes.from_wire(lease, sent_at=0, deadline=later).deadline_bound


@pytest.mark.parametrize(
    ("lease", "what"),
    [
        ({}, "no id"),
        ({"id": "L", "expires_at": "soon", "renew_after": ts(T0)}, "not a timestamp"),
        ({"id": "L", "expires_at": "2026-01-01T00:00:00", "renew_after": ts(T0)}, "no time zone"),
        ({"id": "L", "expires_at": ts(T0), "renew_after": ts(T0 + timedelta(seconds=5))}, "out of order"),
        ({"id": "L", "issued_at": ts(T0 + timedelta(seconds=9)), "expires_at": ts(T0 + timedelta(seconds=10)),
          "renew_after": ts(T0 + timedelta(seconds=5))}, "out of order"),
    ],
)
def test_malformed_leases_are_refused(lease: dict[str, str], what: str) -> None:
    with pytest.raises(CustodesError) as err:
        LeaseTimes.from_wire(lease, sent_at=0.0)
    assert err.value.code == "LEASE_INVALID" and what in err.value.message


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["id", "expires_at", "renew_after", "issued_at"]),
                       st.one_of(st.text(max_size=40), st.integers(), st.none(), st.datetimes().map(str))))
def test_any_lease_document_parses_or_raises_lease_invalid(lease: dict[str, object]) -> None:
    try:
        times = LeaseTimes.from_wire(lease, sent_at=0.0)
    except CustodesError as exc:
        code = exc.code
    else:
        code = None
        assert 0.0 <= times.renew_at <= times.expires_at
    assert code in (None, "LEASE_INVALID")


def test_first_attempt_has_jitter_within_the_window() -> None:
    times = LeaseTimes("L", 10.0, 20.0)
    rng = random.Random(7)
    attempts = [times.first_attempt(rng) for _ in range(200)]
    assert all(10.0 <= a <= 11.0 for a in attempts) and len(set(attempts)) > 100


def test_backoff_grows_to_its_maximum_and_never_goes_below_the_floor() -> None:
    delays = Backoff(initial=0.5, factor=2, maximum=4, floor=0.1).delays(random.Random(1))
    values = [next(delays) for _ in range(200)]
    assert all(0.1 <= v <= 4 for v in values)
    assert max(values[10:]) > 2  # it did grow past the initial ceiling
    with pytest.raises(ValueError):
        Backoff(initial=0.0)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (CasError("CAS_UNREACHABLE", "down"), True),
        (CasError("NONCE_LIMIT", "busy", status=429), True),
        (CasError("INTERNAL", "oops", status=503), True),
        (CasError("MEASUREMENT_DEPRECATED", "no", status=403), False),
        (CasError("POLICY_NOT_FOUND", "no", status=404), False),
        (CasError("CAS_TLS_FAILED", "pin"), False),
    ],
)
def test_transient_errors(error: CasError, transient: bool) -> None:
    assert is_transient(error) is transient


def test_stop_grace_from_the_lease_or_default() -> None:
    assert parse_stop_grace({"stop_grace": 3}, 10.0) == 3.0
    assert parse_stop_grace({}, 10.0) == 10.0
    assert parse_stop_grace({"stop_grace": "3"}, 10.0) == 10.0
    assert parse_stop_grace({"stop_grace": True}, 10.0) == 10.0


# ---------------------------------------------------------------------------------------------------- the keeper


def attestation(ttl: float, lease_id: str = "L1", deadline: str | None = None) -> Attestation:
    lease = wire(ttl, lease_id=lease_id)
    return Attestation({}, lease, "v", {"deadline": deadline}, "token")


class ScriptedCas:
    """Answers renewals from a script: an Attestation, or an exception to raise."""

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    def __call__(self, lease_id: str) -> Attestation:
        self.calls.append(lease_id)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[return-value]


def keep(cas: ScriptedCas, times: LeaseTimes) -> tuple[LeaseKeeper, list[LeaseLost], threading.Event]:
    lost: list[LeaseLost] = []
    done = threading.Event()

    def on_lost(event: LeaseLost) -> None:
        lost.append(event)
        done.set()

    keeper = LeaseKeeper(cas, times, on_lost=on_lost, backoff=Backoff(initial=0.05, maximum=0.1, floor=0.01),
                         rng=random.Random(3)).start()
    return keeper, lost, done


def now_times(ttl: float, lease_id: str = "L1") -> LeaseTimes:
    import time  # noqa: PLC0415

    now = time.monotonic()
    return LeaseTimes(lease_id, now + ttl / 2, now + ttl)


def test_keeper_renews_repeatedly() -> None:
    cas = ScriptedCas(attestation(0.2))
    keeper, lost, _ = keep(cas, now_times(0.2))
    deadline = threading.Event()
    while keeper.renewals < 3 and not deadline.wait(0.02):
        pass
    keeper.stop(1)
    assert keeper.renewals >= 3 and lost == [] and set(cas.calls) == {"L1"}


def test_keeper_reports_a_refusal_at_once() -> None:
    cas = ScriptedCas(CasError("MEASUREMENT_DEPRECATED", "deprecated", status=403))
    _, lost, done = keep(cas, now_times(0.2))
    assert done.wait(10)
    assert lost == [LeaseLost("refused", "MEASUREMENT_DEPRECATED", "deprecated")]
    assert len(cas.calls) == 1


def test_keeper_retries_transient_errors_then_reports_expiry() -> None:
    cas = ScriptedCas(CasError("CAS_UNREACHABLE", "down"))
    _, lost, done = keep(cas, now_times(0.4))
    assert done.wait(10)
    assert lost[0].reason == "expired" and lost[0].code == "LEASE_EXPIRED"
    assert "CAS_UNREACHABLE" in lost[0].message
    assert len(cas.calls) >= 2  # retried with backoff before giving up


def test_keeper_recovers_after_a_transient_error() -> None:
    cas = ScriptedCas(CasError("CAS_UNREACHABLE", "down"), attestation(0.2))
    keeper, lost, _ = keep(cas, now_times(0.4))
    wait = threading.Event()
    while keeper.renewals < 2 and not wait.wait(0.02):
        pass
    keeper.stop(1)
    assert keeper.renewals >= 2 and lost == []


def test_keeper_makes_a_final_attempt_after_a_deadline_bound_expiry() -> None:
    """Near a CVE deadline the keeper does not renew ever shorter leases; it asks once after the expiry and
    reports the CAS's refusal code."""
    import time  # noqa: PLC0415

    now = time.monotonic()
    cas = ScriptedCas(CasError("MEASUREMENT_DEPRECATED", "past the deadline", status=403))
    _, lost, done = keep(cas, LeaseTimes("L1", now + 0.1, now + 0.2, deadline_bound=True))
    assert done.wait(10)
    assert lost[0].reason == "refused" and lost[0].code == "MEASUREMENT_DEPRECATED"
    assert len(cas.calls) == 1


def test_keeper_watchdog_reports_the_expiry_while_a_renewal_hangs() -> None:
    """The renewal request hangs (the CAS stopped answering): with the watchdog the loss is reported at the local
    expiry, not when the request gives up; the late answer is then ignored."""
    import time  # noqa: PLC0415

    release = threading.Event()
    answered = threading.Event()

    def hanging(lease_id: str) -> Attestation:
        release.wait(5)
        answered.set()
        return attestation(10.0)

    lost: list[tuple[float, LeaseLost]] = []
    times = now_times(0.4)
    keeper = LeaseKeeper(hanging, times, on_lost=lambda e: lost.append((time.monotonic(), e)),
                         rng=random.Random(3), watchdog=True).start()
    try:
        threading.Event().wait(1.5)
        assert len(lost) == 1 and lost[0][0] - times.expires_at < 0.5  # the request would have hung for 5 s
        assert lost[0][1].reason == "expired" and lost[0][1].code == "LEASE_EXPIRED"
        assert "no renewal answered in time" in lost[0][1].message
    finally:
        release.set()
    assert answered.wait(5)
    keeper.stop(1)
    assert keeper.renewals == 0 and len(lost) == 1  # a late answer does not revive a lost lease
