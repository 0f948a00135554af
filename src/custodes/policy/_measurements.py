"""Reference values a service's evidence may match: one model per TEE, chosen by ``tee``.

A service lists several measurements side by side (old and new versions during a rolling update); evidence is
accepted if it matches any one that is not past its deprecation deadline. Field names follow
:mod:`custodes.evidence.claims`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from custodes.policy._types import U8, U16, U53, NonEmptyText, UtcTimestamp, hex_digits, invalid

__all__ = ["Deprecated", "Measurement", "SevSnpMeasurement", "SgxMeasurement", "SimulatedMeasurement", "TdxMeasurement"]

_FROZEN = ConfigDict(frozen=True, extra="forbid")

Hex16 = Annotated[str, hex_digits(16)]
Hex64 = Annotated[str, hex_digits(64)]
Hex96 = Annotated[str, hex_digits(96)]


class Deprecated(BaseModel):
    """The owner marked this measurement as vulnerable at ``since``: its deadline is ``since`` + ``tcb.grace``."""

    model_config = _FROZEN
    since: UtcTimestamp
    advisory: NonEmptyText


class _Base(BaseModel):
    model_config = _FROZEN
    deprecated: Deprecated | None = None


class SimulatedMeasurement(_Base):
    """The development-only simulated TEE: SHA-384 of the workload (``custodes measure``)."""

    tee: Literal["simulated"]
    measurement: Hex96


class SgxMeasurement(_Base):
    """An SGX enclave: by MRENCLAVE, or by MRSIGNER with product id and minimum SVN."""

    tee: Literal["sgx-dcap"]
    mrenclave: Hex64 | None = None
    mrsigner: Hex64 | None = None
    isv_prod_id: U16 | None = None
    min_isv_svn: U16 = 0

    @model_validator(mode="after")
    def _identity(self) -> SgxMeasurement:
        if self.mrenclave is None and self.mrsigner is None:
            invalid("sgx-dcap measurement needs mrenclave or mrsigner")
        if self.mrenclave is None and self.isv_prod_id is None:
            invalid("sgx-dcap measurement with mrsigner but no mrenclave needs isv_prod_id")
        return self


class TdxMeasurement(_Base):
    """A TDX trust domain: MRTD, RTMR0.. matched by position, optionally MRSEAM and TD attributes."""

    tee: Literal["tdx"]
    mrtd: Hex96
    rtmr: Annotated[tuple[Hex96, ...], Field(max_length=4)] = ()
    mrseam: Hex96 | None = None
    td_attributes: Hex16 | None = None


class SnpMinTcb(BaseModel):
    """The oldest SEV-SNP platform TCB (REPORTED_TCB security patch levels) the owner accepts.

    AMD publishes no signed TCB status for SNP (unlike Intel's TCB info), so the policy states the floor.
    """

    model_config = _FROZEN
    bootloader: U8
    tee: U8
    snp: U8
    microcode: U8


class SevSnpMeasurement(_Base):
    """An SEV-SNP guest: launch measurement, optionally host data, ID key digest and guest policy, and the
    minimum platform TCB (required for a service to accept SNP evidence: appraisal refuses SNP without it)."""

    tee: Literal["sev-snp"]
    measurement: Hex96
    host_data: Hex64 | None = None
    id_key_digest: Hex96 | None = None
    policy: U53 | None = None
    min_tcb: SnpMinTcb | None = None


Measurement = Annotated[
    SimulatedMeasurement | SgxMeasurement | TdxMeasurement | SevSnpMeasurement, Field(discriminator="tee")
]
