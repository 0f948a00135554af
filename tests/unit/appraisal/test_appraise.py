"""Appraisal is a pure function of (claims, policy, service, now): a table of named cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from custodes.appraisal import appraise
from custodes.evidence.claims import Claims, TcbStatus
from custodes.policy import load_policy

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
M_NEW, M_OLD = "aa" * 48, "bb" * 48
KEY = "sha256:" + "cd" * 32

POLICY = f"""
name: t/appraise
keys: {{owner: "{KEY}"}}
access: {{update: {{signers: [owner]}}}}
security:
  allow_simulated: true
  tcb: {{accept: [UpToDate, SWHardeningNeeded], grace: 7d}}
services:
  - name: api
    measurements:
      - {{tee: simulated, measurement: "{M_NEW}"}}
      - {{tee: simulated, measurement: "{M_OLD}", deprecated: {{since: 2026-11-20T12:00:00Z, advisory: CVE-1}}}}
    command: [app]
"""


def claims(measurement: str = M_NEW, *, status: str = "UpToDate", superseded: datetime | None = None,
           debug: bool = False, simulated: bool = True) -> Claims:
    return Claims(tee="simulated", measurements={"measurement": measurement}, debug=debug, report_data=bytes(64),
                  platform_id="p1", tcb=TcbStatus(status, NOW - timedelta(days=100), superseded, ("CVE-9",)),
                  simulated=simulated)


@pytest.fixture(scope="module")
def policy():  # type: ignore[no-untyped-def]
    return load_policy(POLICY)


CASES = {
    "up-to-date": (claims(), "api", True, None),
    "accepted-status": (claims(status="SWHardeningNeeded", superseded=NOW - timedelta(days=30)), "api", True, None),
    "unknown-service": (claims(), "nope", False, "SERVICE_UNKNOWN"),
    "debug": (claims(debug=True), "api", False, "DEBUG_NOT_ALLOWED"),
    "wrong-measurement": (claims("cc" * 48), "api", False, "MEASUREMENT_MISMATCH"),
    "deprecated-in-grace": (claims(M_OLD), "api", True, None),
    "out-of-date-in-grace": (claims(status="OutOfDate", superseded=NOW - timedelta(days=6)), "api", True, None),
    "out-of-date-past-grace": (claims(status="OutOfDate", superseded=NOW - timedelta(days=7)), "api", False,
                               "TCB_STATUS_NOT_ACCEPTED"),
    "out-of-date-without-date": (claims(status="OutOfDate"), "api", False, "TCB_STATUS_NOT_ACCEPTED"),
    "revoked": (claims(status="Revoked", superseded=NOW), "api", False, "TCB_REVOKED"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_appraisal_table(policy, case: str) -> None:  # type: ignore[no-untyped-def]
    evidence, service, accepted, reason = CASES[case]
    verdict = appraise(evidence, policy, service, NOW)
    assert verdict.accepted is accepted
    assert verdict.reasons == ((reason,) if reason else ())


def test_deadline_is_the_earliest_of_platform_and_measurement(policy) -> None:  # type: ignore[no-untyped-def]
    verdict = appraise(claims(M_OLD, status="OutOfDate", superseded=NOW - timedelta(days=1)), policy, "api", NOW)
    assert verdict.measurement_deadline == datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert verdict.platform_deadline == NOW + timedelta(days=6)
    assert verdict.deadline == verdict.measurement_deadline


def test_deprecated_measurement_is_refused_exactly_at_its_deadline(policy) -> None:  # type: ignore[no-untyped-def]
    at = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert appraise(claims(M_OLD), policy, "api", at - timedelta(seconds=1)).accepted
    assert appraise(claims(M_OLD), policy, "api", at).reasons == ("MEASUREMENT_DEPRECATED",)


def test_simulated_claims_always_carry_a_warning(policy) -> None:  # type: ignore[no-untyped-def]
    assert any("SIMULATED" in w for w in appraise(claims(), policy, "api", NOW).warnings)


def test_naive_time_is_refused(policy) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        appraise(claims(), policy, "api", NOW.replace(tzinfo=None))
