"""Intel TDX (quote v4, v5 with TD report 1.0 or 1.5): verified quote -> :class:`Claims` (``tee="tdx"``).

The TCB evaluation covers the platform (SGX components, PCESVN, TEE_TCB_SVN), the TDX module identity and the
TD quoting enclave. A debug TD verifies with ``Claims.debug`` set. For TD 1.5 bodies, MRSERVICETD and
TEE_TCB_SVN2 are reported in ``details`` for appraisal (e.g. refusing TDs bound to a migration TD).
"""

from __future__ import annotations

from datetime import datetime

from custodes.evidence._bundles import DcapCollateral
from custodes.evidence._dcap_quote import TdReportBody
from custodes.evidence.claims import Claims
from custodes.evidence.dcap import DcapVerifier
from custodes.evidence.sgx import dcap_details, tcb_status

__all__ = ["verify_tdx_quote"]


def verify_tdx_quote(quote: bytes, collateral: DcapCollateral, *, now: datetime) -> Claims:
    """Verify a TDX quote against Intel collateral at ``now``.

    Args:
        quote: the quote bytes (zero padding after the quote is tolerated).
        collateral: the TDX DCAP collateral for the platform's FMSPC.
        now: the verification time, timezone-aware.

    Returns:
        Claims with ``mrtd``, ``rtmr0``..``rtmr3``, ``mrseam``, ``mrsignerseam``, ``td_attributes``, ``xfam``.

    Raises:
        EvidenceError, CollateralError: with the codes listed in ``docs/evidence.md``.
    """
    result = DcapVerifier.intel().verify(quote, collateral, now=now, tee="tdx")
    body = result.quote.body
    if not isinstance(body, TdReportBody):  # the verifier checked the TEE type; keep the type checker honest
        raise TypeError("TDX quote without a TD body")
    measurements: dict[str, str | int] = {
        "mrtd": body.mrtd.hex(),
        "mrseam": body.mrseam.hex(),
        "mrsignerseam": body.mrsignerseam.hex(),
        "td_attributes": body.td_attributes.hex(),
        "xfam": body.xfam.hex(),
    }
    for i, rtmr in enumerate(body.rtmrs):
        measurements[f"rtmr{i}"] = rtmr.hex()
    details = dcap_details(result) | {
        "tee_tcb_svn": body.tee_tcb_svn.hex(),
        "seam_attributes": body.seam_attributes.hex(),
        "mrconfigid": body.mrconfigid.hex(),
        "mrowner": body.mrowner.hex(),
        "mrownerconfig": body.mrownerconfig.hex(),
        "td_report_version": "1.5" if body.tee_tcb_svn2 is not None else "1.0",
        "tdx_module_id": result.module_id,
        "tdx_module_tcb_status": result.module_level.status if result.module_level else None,
    }
    if body.tee_tcb_svn2 is not None and body.mrservicetd is not None:
        details |= {"tee_tcb_svn2": body.tee_tcb_svn2.hex(), "mrservicetd": body.mrservicetd.hex()}
    return Claims(
        tee="tdx",
        measurements=measurements,
        debug=body.debug,
        report_data=body.report_data,
        platform_id=f"{result.pck.fmspc.hex()}:{result.pck.ppid.hex()}",
        tcb=tcb_status(result),
        collateral_issued_at=result.issued_at,
        collateral_next_update=result.next_update,
        details=details,
    )
