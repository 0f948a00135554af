"""SEV-SNP appraisal when an operator raises ``min_tcb`` after an AMD bulletin (a pure appraisal attack).

The natural policy edit lists the measurement twice: the old entry, with the old floor, marked ``deprecated``, and a
new entry with the raised floor. A platform left at the old TCB meets only the deprecated entry's floor, so it must
get that entry's deadline and then be refused; it must not ride on the new entry's open-ended acceptance.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from custodes.appraisal import appraise
from custodes.evidence.claims import Claims, TcbStatus
from custodes.policy import load_policy

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
DEPRECATED_SINCE = datetime(2026, 11, 1, tzinfo=UTC)
M = "aa" * 48
KEY = "sha256:" + "cd" * 32


def policy_text(old_entry: str) -> str:
    return f"""
name: t/snp-floor
keys: {{owner: "{KEY}"}}
access: {{update: {{signers: [owner]}}}}
security:
  tcb: {{accept: [UpToDate], grace: 7d}}
services:
  - name: api
    measurements:
      - {old_entry}
      - {{tee: sev-snp, measurement: "{M}", min_tcb: {{bootloader: 9, tee: 9, snp: 9, microcode: 9}}}}
    command: [app]
"""


RAISED = policy_text(
    f'{{tee: sev-snp, measurement: "{M}", min_tcb: {{bootloader: 1, tee: 1, snp: 1, microcode: 1}}, '
    f"deprecated: {{since: {DEPRECATED_SINCE.isoformat().replace('+00:00', 'Z')}, advisory: AMD-SB-1}}}}"
)
UNFLOORED = policy_text(f'{{tee: sev-snp, measurement: "{M}"}}')


def snp_claims(level: int) -> Claims:
    tcb = {"bootloader": level, "tee": level, "snp": level, "microcode": level}
    return Claims(tee="sev-snp", measurements={"measurement": M}, debug=False, report_data=bytes(64),
                  platform_id="chip", tcb=TcbStatus("UpToDate"), details={"reported_tcb": tcb})


@pytest.fixture(scope="module")
def raised():  # type: ignore[no-untyped-def]
    return load_policy(RAISED)


def test_platform_left_at_the_old_tcb_is_refused_after_the_deprecation_deadline(raised) -> None:  # type: ignore[no-untyped-def]
    verdict = appraise(snp_claims(1), raised, "api", NOW)
    assert not verdict.accepted
    assert verdict.reasons == ("MEASUREMENT_DEPRECATED",)


def test_platform_left_at_the_old_tcb_is_bounded_by_the_deadline_within_grace(raised) -> None:  # type: ignore[no-untyped-def]
    within = DEPRECATED_SINCE + timedelta(days=3)
    verdict = appraise(snp_claims(1), raised, "api", within)
    assert verdict.accepted
    assert verdict.deadline == DEPRECATED_SINCE + timedelta(days=7)


def test_patched_platform_meets_the_raised_floor_with_no_deadline(raised) -> None:  # type: ignore[no-untyped-def]
    verdict = appraise(snp_claims(9), raised, "api", NOW)
    assert verdict.accepted
    assert verdict.deadline is None


def test_platform_below_every_floor_is_refused(raised) -> None:  # type: ignore[no-untyped-def]
    assert appraise(snp_claims(0), raised, "api", NOW).reasons == ("TCB_BELOW_MINIMUM",)


def test_an_entry_without_min_tcb_does_not_admit_a_platform_below_the_other_entrys_floor() -> None:
    verdict = appraise(snp_claims(1), load_policy(UNFLOORED), "api", NOW)
    assert verdict.reasons == ("TCB_BELOW_MINIMUM",)
