"""Differential test: our DCAP verifier against dcap-qvl (Phala's Rust verifier, PyPI), used only as an oracle.

Both must agree on every vector: the final TCB status and advisories when it verifies, and failure otherwise.
dcap-qvl is stricter by default about debug TDs (a policy matter for us: we verify and flag ``debug``).
"""

from __future__ import annotations

import dcap_qvl
import pytest

from custodes.errors import EvidenceError
from custodes.evidence.sgx import verify_sgx_quote
from custodes.evidence.tdx import verify_tdx_quote
from vectors.vectorlib import DCAP_CASES, DcapCase, load_vector


@pytest.mark.parametrize("case", DCAP_CASES, ids=lambda c: f"{c.set_path}/{c.quote_file}")
def test_agrees_with_dcap_qvl(case: DcapCase) -> None:
    collateral = dcap_qvl.QuoteCollateralV3.from_json(load_vector(f"{case.set_path}/collateral.json").decode())
    fn = verify_sgx_quote if case.tee == "sgx" else verify_tdx_quote
    try:
        oracle = dcap_qvl.verify(case.quote, collateral, int(case.now.timestamp()))
    except ValueError as exc:
        if "Debug mode" in str(exc):
            assert fn(case.quote, case.collateral, now=case.now).debug is True
            return
        with pytest.raises(EvidenceError):
            fn(case.quote, case.collateral, now=case.now)
        return
    ours = fn(case.quote, case.collateral, now=case.now)
    assert ours.tcb.status == oracle.status
    assert list(ours.tcb.advisories) == list(oracle.advisory_ids)
