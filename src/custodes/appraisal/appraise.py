"""Appraisal: verified :class:`Claims` + policy + time → :class:`Verdict`. Pure: no I/O, no clock.

Verification said the evidence is genuine; appraisal decides whether it is acceptable *for this service, now*.
The deadline model of DESIGN.md §6:

* platform deadline: a TCB status outside ``security.tcb.accept`` is tolerated until the level's
  ``superseded_at + grace``; a ``Revoked`` platform, or one with no supersession date, gets no grace at all;
* measurement deadline: a measurement marked ``deprecated`` at ``since`` is accepted until ``since + grace``;
* a lease never outlives ``min(now + ttl, platform deadline, measurement deadline)``.

Every rejection reason is a stable code (the HTTP API returns them as ``reasons``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from custodes.clock import require_utc, rfc3339
from custodes.evidence.claims import Claims

__all__ = ["REASONS", "Verdict", "appraise", "measurement_matches"]

#: Every reason code :func:`appraise` can give, with its meaning (documented in docs/api.md).
REASONS = {
    "SERVICE_UNKNOWN": "the policy has no service of that name",
    "SIMULATED_NOT_ALLOWED": "simulated evidence, and the policy does not set security.allow_simulated",
    "DEBUG_NOT_ALLOWED": "the TEE runs in debug mode, and the policy does not set security.allow_debug",
    "MEASUREMENT_MISMATCH": "no measurement of the service matches the evidence",
    "MEASUREMENT_DEPRECATED": "the matching measurement was deprecated and its grace period is over",
    "TCB_REVOKED": "the platform's TCB level is revoked",
    "TCB_STATUS_NOT_ACCEPTED": "the platform's TCB status is not accepted and its grace period is over",
    "TCB_NOT_EVALUATED": "SEV-SNP evidence, and the matching measurement names no min_tcb (AMD has no TCB status)",
    "TCB_BELOW_MINIMUM": "the SEV-SNP platform's reported TCB is below the policy's min_tcb",
}
_SNP_TCB_PARTS = ("bootloader", "tee", "snp", "microcode")


def _snp_entries_met(claims: Claims, matches: Sequence[Any]) -> tuple[list[Any], tuple[str, str] | None]:
    """SEV-SNP has no vendor TCB status: an entry's ``min_tcb`` is its floor, and an entry without one, or whose floor
    the reported TCB does not meet, does not count as a match. Returns the entries that do, or the refusal.

    Filtering (rather than asking whether *any* floor is met) matters when one measurement is listed twice: an old
    entry with a low floor, deprecated, and a new entry with a raised floor. Evidence at the old TCB meets only the
    deprecated entry, so it gets that entry's deadline, not the new entry's open-ended acceptance."""
    floored = [entry for entry in matches if entry.min_tcb is not None]
    if not floored:
        return [], (
            "TCB_NOT_EVALUATED",
            "the matching SEV-SNP measurement names no min_tcb, so the platform cannot be judged",
        )
    reported = claims.details.get("reported_tcb")
    if not isinstance(reported, dict):
        return [], ("TCB_NOT_EVALUATED", "the SEV-SNP claims carry no reported TCB")
    met = [e for e in floored if all(int(reported.get(k, -1)) >= getattr(e.min_tcb, k) for k in _SNP_TCB_PARTS)]
    if met:
        return met, None
    shown = ", ".join(f"{k}={reported.get(k)}" for k in _SNP_TCB_PARTS)
    return [], ("TCB_BELOW_MINIMUM", f"reported TCB ({shown}) is below the policy's min_tcb")


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of appraisal. ``deadline`` bounds every lease issued on this verdict."""

    accepted: bool
    reasons: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()
    deadline: datetime | None = None
    platform_deadline: datetime | None = None
    measurement_deadline: datetime | None = None
    warnings: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        def ts(value: datetime | None) -> str | None:
            return rfc3339(value) if value else None

        return {
            "accepted": self.accepted,
            "reasons": list(self.reasons),
            "messages": list(self.messages),
            "deadline": ts(self.deadline),
            "platform_deadline": ts(self.platform_deadline),
            "measurement_deadline": ts(self.measurement_deadline),
            "warnings": list(self.warnings),
        }


def _eq_hex(expected: str | None, actual: object) -> bool:
    return expected is None or (isinstance(actual, str) and expected.lower() == actual.lower())


def measurement_matches(entry: Any, claims: Claims) -> bool:
    """Does one policy measurement entry describe the workload in ``claims``? Unset fields are not checked;
    the policy loader guarantees each entry pins the identity fields its TEE requires."""
    if entry.tee != claims.tee:
        return False
    m = claims.measurements
    if entry.tee == "simulated":
        return _eq_hex(entry.measurement, m.get("measurement"))
    if entry.tee == "sgx-dcap":
        svn = m.get("isv_svn")
        return (
            _eq_hex(entry.mrenclave, m.get("mrenclave"))
            and _eq_hex(entry.mrsigner, m.get("mrsigner"))
            and (entry.isv_prod_id is None or entry.isv_prod_id == m.get("isv_prod_id"))
            and isinstance(svn, int)
            and svn >= entry.min_isv_svn
        )
    if entry.tee == "tdx":
        rtmrs_ok = all(_eq_hex(value, m.get(f"rtmr{i}")) for i, value in enumerate(entry.rtmr))
        return (
            _eq_hex(entry.mrtd, m.get("mrtd"))
            and rtmrs_ok
            and _eq_hex(entry.mrseam, m.get("mrseam"))
            and _eq_hex(entry.td_attributes, m.get("td_attributes"))
        )
    if entry.tee == "sev-snp":
        return (
            _eq_hex(entry.measurement, m.get("measurement"))
            and _eq_hex(entry.host_data, m.get("host_data"))
            and _eq_hex(entry.id_key_digest, m.get("id_key_digest"))
            and (entry.policy is None or entry.policy == m.get("policy"))
        )
    return False


def _platform_deadline(claims: Claims, accept: Sequence[str], grace: timedelta) -> tuple[datetime | None, bool]:
    """(deadline, acceptable-at-all). ``None`` deadline = no platform bound."""
    status = claims.tcb.status
    if status == "Revoked":
        return None, False
    if status in accept:
        return None, True
    if claims.tcb.superseded_at is None:
        return None, False
    return claims.tcb.superseded_at + grace, True


def _reject(reason: str, message: str, warnings: tuple[str, ...]) -> Verdict:
    return Verdict(False, (reason,), (message,), warnings=warnings)


def appraise(claims: Claims, policy: Any, service_name: str, now: datetime) -> Verdict:
    """Appraise verified claims for one service of a policy at time ``now``.

    Args:
        claims: the output of an evidence verifier.
        policy: a validated :class:`custodes.policy.Policy`.
        service_name: the service the workload asks to be.
        now: the (floored) CAS time.

    Returns:
        A :class:`Verdict`. It never raises for a refusal: refusals are verdicts with reasons.
    """
    now = require_utc(now)
    security = policy.security
    grace: timedelta = security.tcb.grace
    warnings: tuple[str, ...] = ()
    if claims.simulated:
        warnings = ("SIMULATED evidence: this workload runs in no hardware TEE (development only)",)
    service = policy.service(service_name)
    if service is None:
        return _reject("SERVICE_UNKNOWN", f"policy {policy.name} has no service {service_name!r}", warnings)
    if claims.simulated and not security.allow_simulated:
        return _reject("SIMULATED_NOT_ALLOWED", "simulated evidence is not allowed by this policy", warnings)
    if claims.debug and not security.allow_debug:
        return _reject("DEBUG_NOT_ALLOWED", "debug-mode TEEs are not allowed by this policy", warnings)

    matches = [entry for entry in service.measurements if measurement_matches(entry, claims)]
    if not matches:
        return _reject("MEASUREMENT_MISMATCH", f"no measurement of service {service.name} matches", warnings)
    if claims.tee == "sev-snp":
        matches, refusal = _snp_entries_met(claims, matches)
        if refusal is not None:
            return _reject(refusal[0], refusal[1], warnings)
    live = [entry for entry in matches if entry.deprecated is None]
    measurement_deadline = None
    if not live:
        # Only deprecated entries match: the latest deprecation gives the most lenient deadline.
        measurement_deadline = max(require_utc(e.deprecated.since) for e in matches) + grace
        if now >= measurement_deadline:
            advisories = ", ".join(sorted({e.deprecated.advisory for e in matches}))
            return _reject(
                "MEASUREMENT_DEPRECATED",
                f"measurement deprecated ({advisories}); deadline {measurement_deadline.isoformat()} has passed",
                warnings,
            )

    platform_deadline, acceptable = _platform_deadline(claims, security.tcb.accept, grace)
    if not acceptable:
        code = "TCB_REVOKED" if claims.tcb.status == "Revoked" else "TCB_STATUS_NOT_ACCEPTED"
        return _reject(code, f"platform TCB status {claims.tcb.status} is not accepted", warnings)
    if platform_deadline is not None and now >= platform_deadline:
        advisories = ", ".join(claims.tcb.advisories) or "no advisory listed"
        return _reject(
            "TCB_STATUS_NOT_ACCEPTED",
            f"platform TCB status {claims.tcb.status} ({advisories}); deadline "
            f"{platform_deadline.isoformat()} has passed",
            warnings,
        )
    deadlines = [d for d in (platform_deadline, measurement_deadline) if d is not None]
    return Verdict(
        True,
        deadline=min(deadlines) if deadlines else None,
        platform_deadline=platform_deadline,
        measurement_deadline=measurement_deadline,
        warnings=warnings,
    )
