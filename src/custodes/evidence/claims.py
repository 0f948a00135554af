"""The verified claims that every evidence verifier yields, whatever the TEE.

Verification (is this evidence cryptographically genuine?) produces :class:`Claims`. Appraisal (is it acceptable
for this policy, now?) consumes them. A ``Claims`` object only ever exists for evidence that verified.

Measurement keys by TEE (hex strings are lower case; integers are ints):

=========== ==========================================================================================
tee         measurement keys
=========== ==========================================================================================
simulated   ``measurement`` (SHA-384 hex)
sgx-dcap    ``mrenclave``, ``mrsigner`` (32-byte hex), ``isv_prod_id``, ``isv_svn`` (int)
tdx         ``mrtd``, ``rtmr0``..``rtmr3``, ``mrseam``, ``mrsignerseam`` (48-byte hex), ``td_attributes``,
            ``xfam`` (8-byte hex)
sev-snp     ``measurement`` (48-byte hex), ``host_data`` (32-byte hex), ``id_key_digest`` (48-byte hex),
            ``policy`` (int), ``vmpl`` (int)
=========== ==========================================================================================
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from custodes.clock import rfc3339

__all__ = ["TCB_STATUSES", "Claims", "TcbStatus", "TeeType"]

TeeType = Literal["simulated", "sgx-dcap", "tdx", "sev-snp"]

#: TCB statuses with Intel's semantics (the simulated vendor uses the same names).
TCB_STATUSES = (
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "Revoked",
)


@dataclass(frozen=True, slots=True)
class TcbStatus:
    """The platform's TCB standing according to signed vendor collateral.

    Attributes:
        status: one of :data:`TCB_STATUSES`.
        tcb_date: the ``tcbDate`` of the matched TCB level.
        superseded_at: when this level stopped being the newest one: the ``tcbDate`` of the next higher level,
            or ``None`` if the matched level is the newest. The CVE deadline model counts D days from here.
        advisories: advisory IDs (e.g. ``INTEL-SA-00615``, ``CVE-2026-0001``) the vendor lists for the level.
    """

    status: str
    tcb_date: datetime | None = None
    superseded_at: datetime | None = None
    advisories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.status not in TCB_STATUSES:
            raise ValueError(f"unknown TCB status {self.status!r}")


@dataclass(frozen=True, slots=True)
class Claims:
    """What verified evidence says about a workload and its platform.

    Attributes:
        tee: the evidence type.
        measurements: the workload's identity, keys as in the module docstring. Read-only.
        debug: the TEE runs in debug mode (its memory is readable by the host).
        report_data: the 64 bytes the workload bound into the evidence.
        platform_id: a stable identifier of the CPU package (PPID/FMSPC, SNP chip id, simulated platform id).
        tcb: the TCB status from collateral.
        collateral_issued_at: the newest signed issue date among the collateral used (a floor for the clock).
        collateral_next_update: the earliest ``nextUpdate`` among the collateral used.
        simulated: True for the development-only simulated TEE; never true for hardware evidence.
        details: further verifier-specific, non-secret facts (e.g. FMSPC, TCB components), for display only.
    """

    tee: TeeType
    measurements: Mapping[str, str | int]
    debug: bool
    report_data: bytes
    platform_id: str
    tcb: TcbStatus
    collateral_issued_at: datetime | None = None
    collateral_next_update: datetime | None = None
    simulated: bool = False
    details: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.report_data) != 64:
            raise ValueError("report_data must be 64 bytes")
        object.__setattr__(self, "measurements", types.MappingProxyType(dict(self.measurements)))
        object.__setattr__(self, "details", types.MappingProxyType(dict(self.details)))

    def to_json(self) -> dict[str, object]:
        """A JSON-ready view (used by ``custodes evidence verify --json`` and by verdicts)."""

        def ts(value: datetime | None) -> str | None:
            return rfc3339(value) if value else None

        return {
            "tee": self.tee,
            "simulated": self.simulated,
            "measurements": dict(self.measurements),
            "debug": self.debug,
            "report_data": self.report_data.hex(),
            "platform_id": self.platform_id,
            "tcb": {
                "status": self.tcb.status,
                "tcb_date": ts(self.tcb.tcb_date),
                "superseded_at": ts(self.tcb.superseded_at),
                "advisories": list(self.tcb.advisories),
            },
            "collateral_issued_at": ts(self.collateral_issued_at),
            "collateral_next_update": ts(self.collateral_next_update),
            "details": dict(self.details),
        }
