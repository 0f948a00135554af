"""Intel SGX DCAP (quote v3, or v4 with an SGX body): verified quote -> :class:`Claims` (``tee="sgx-dcap"``).

Debug enclaves verify (``Claims.debug`` is set; appraisal refuses them unless the policy allows debug), and a
poor TCB status is reported in ``Claims.tcb``, never raised: verification only answers "is this genuine?".
"""

from __future__ import annotations

from datetime import datetime

from custodes.evidence._bundles import DcapCollateral
from custodes.evidence._dcap_quote import SgxReportBody
from custodes.evidence.claims import Claims, TcbStatus
from custodes.evidence.dcap import DcapResult, DcapVerifier

__all__ = ["dcap_details", "verify_sgx_quote"]


def dcap_details(result: DcapResult) -> dict[str, object]:
    """Non-secret facts shared by SGX and TDX claims (for display and diagnostics)."""
    pck = result.pck
    return {
        "quote_version": result.quote.version,
        "fmspc": pck.fmspc.hex(),
        "pce_id": pck.pce_id.hex(),
        "ppid": pck.ppid.hex(),
        "pck_ca": pck.ca,
        "pcesvn": pck.pcesvn,
        "tcb_components": list(pck.comp_svns),
        "platform_tcb_status": result.platform_level.status,
        "qe_tcb_status": result.qe_level.status,
        "qe_isv_svn": result.quote.qe.qe_report.isv_svn,
        "tcb_evaluation_data_number": result.tcb_evaluation_data_number,
        "trailing_bytes": result.quote.trailing_bytes,
    }


def tcb_status(result: DcapResult) -> TcbStatus:
    return TcbStatus(
        status=result.status,
        tcb_date=result.platform_level.tcb_date,
        superseded_at=result.superseded_at,
        advisories=result.advisories,
    )


def verify_sgx_quote(quote: bytes, collateral: DcapCollateral, *, now: datetime) -> Claims:
    """Verify an SGX DCAP quote against Intel collateral at ``now``.

    Args:
        quote: the quote bytes (zero padding after the quote is tolerated).
        collateral: the DCAP collateral for the platform's FMSPC (see :class:`CollateralStore`).
        now: the verification time, timezone-aware.

    Returns:
        Claims with ``mrenclave``, ``mrsigner``, ``isv_prod_id``, ``isv_svn``.

    Raises:
        EvidenceError, CollateralError: with the codes listed in ``docs/evidence.md``.
    """
    result = DcapVerifier.intel().verify(quote, collateral, now=now, tee="sgx")
    body = result.quote.body
    if not isinstance(body, SgxReportBody):  # the verifier checked the TEE type; keep the type checker honest
        raise TypeError("SGX quote without an SGX body")
    details = dcap_details(result) | {
        "attributes": body.attributes.hex(),
        "miscselect": body.raw[16:20].hex(),
        "cpusvn": body.cpusvn.hex(),
        "config_id": body.config_id.hex(),
        "config_svn": body.config_svn,
        "isv_ext_prod_id": body.isv_ext_prod_id.hex(),
        "isv_family_id": body.isv_family_id.hex(),
    }
    return Claims(
        tee="sgx-dcap",
        measurements={
            "mrenclave": body.mrenclave.hex(),
            "mrsigner": body.mrsigner.hex(),
            "isv_prod_id": body.isv_prod_id,
            "isv_svn": body.isv_svn,
        },
        debug=body.debug,
        report_data=body.report_data,
        platform_id=f"{result.pck.fmspc.hex()}:{result.pck.ppid.hex()}",
        tcb=tcb_status(result),
        collateral_issued_at=result.issued_at,
        collateral_next_update=result.next_update,
        details=details,
    )
