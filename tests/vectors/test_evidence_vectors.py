"""Every shared test vector verifies with its expected values at its fixed ``now``; expected failures fail
with the expected code. Vectors are read where they lie (``../shared/testvectors``)."""

from __future__ import annotations

import pytest

from custodes.errors import EvidenceError
from custodes.evidence.collateral import SnpCollateral
from custodes.evidence.sgx import verify_sgx_quote
from custodes.evidence.snp import verify_snp_report
from custodes.evidence.tdx import verify_tdx_quote
from vectors.vectorlib import DCAP_CASES, SNP_CASES, DcapCase, expected, load_vector, ts

_ERRORS = {"no matching tcb level": "TCB_LEVEL_NOT_FOUND"}
_TDX_KEYS = ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "mrseam", "mrsignerseam", "td_attributes", "xfam")


def _verify(case: DcapCase):
    fn = verify_sgx_quote if case.tee == "sgx" else verify_tdx_quote
    return fn(case.quote, case.collateral, now=case.now)


@pytest.mark.parametrize("case", [c for c in DCAP_CASES if c.expected["verifies"]], ids=lambda c: c.quote_file)
def test_dcap_vector_verifies_with_expected_claims(case: DcapCase) -> None:
    exp = case.expected
    claims = _verify(case)
    body = exp["report_body"]
    assert claims.tcb.status == exp["final_tcb_status"]
    assert list(claims.tcb.advisories) == exp["advisory_ids"]
    assert claims.tcb.tcb_date == ts(exp["platform_tcb_level"]["tcbDate"])
    assert claims.collateral_issued_at == ts(exp["validity_window"]["not_before"])
    assert claims.collateral_next_update == ts(exp["validity_window"]["not_after"])
    assert claims.report_data.hex() == body["report_data"]
    assert claims.details["fmspc"] == exp["pck"]["fmspc"]
    assert claims.details["platform_tcb_status"] == exp["platform_tcb_status"]
    assert claims.details["qe_tcb_status"] == exp["qe_tcb_status"]
    assert claims.platform_id == f"{exp['pck']['fmspc']}:{exp['pck']['ppid']}"
    if case.tee == "sgx":
        assert claims.tee == "sgx-dcap"
        assert claims.measurements == {
            "mrenclave": body["mrenclave"],
            "mrsigner": body["mrsigner"],
            "isv_prod_id": body["isv_prod_id"],
            "isv_svn": body["isv_svn"],
        }
        assert claims.debug is bool(bytes.fromhex(body["attributes"])[0] & 2)
    else:
        assert claims.tee == "tdx"
        assert {k: claims.measurements[k] for k in _TDX_KEYS} == {
            k: body[k] for k in _TDX_KEYS
        }
        assert claims.debug is bool(bytes.fromhex(body["td_attributes"])[0] & 1)
        assert claims.details["tdx_module_tcb_status"] == exp.get("tdx_module_identity", {}).get("tcbStatus")


def test_trustee_tdx_platform_out_of_date_since_next_recovery() -> None:
    claims = _verify(DCAP_CASES[3])
    assert claims.tcb.status == "OutOfDate"
    assert claims.tcb.superseded_at == ts("2024-03-13T00:00:00Z")


def test_debug_td_verifies_and_is_flagged() -> None:
    claims = _verify(DCAP_CASES[4])
    assert claims.debug is True
    assert claims.tcb.status == "UpToDate"


@pytest.mark.parametrize("case", [c for c in DCAP_CASES if not c.expected["verifies"]], ids=lambda c: c.quote_file)
def test_dcap_vector_expected_failure(case: DcapCase) -> None:
    with pytest.raises(EvidenceError) as err:
        _verify(case)
    assert err.value.code == _ERRORS[case.expected["error"]]


def test_spr_e4_full_buffer_refused_for_nonzero_trailing_bytes() -> None:
    case = DCAP_CASES[5]
    data = load_vector(f"{case.set_path}/{case.quote_file}")
    with pytest.raises(EvidenceError) as err:
        verify_tdx_quote(data, case.collateral, now=case.now)
    assert err.value.code == "QUOTE_TRAILING_DATA"


def _snp_collateral(set_path: str, leaf_file: str) -> SnpCollateral:
    raw = load_vector(f"{set_path}/{leaf_file}")
    return SnpCollateral.from_pem(raw) if leaf_file.endswith(".pem") else SnpCollateral(raw)


@pytest.mark.parametrize("case", SNP_CASES, ids=lambda c: f"{c[0]}/{c[1]}")
def test_snp_vector_verifies_with_expected_claims(case) -> None:
    set_path, report_file, leaf_file, now = case
    exp = expected(set_path)[report_file]
    claims = verify_snp_report(load_vector(f"{set_path}/{report_file}"), _snp_collateral(set_path, leaf_file), now=now)
    assert claims.tee == "sev-snp"
    assert claims.measurements == {
        "measurement": exp["measurement"],
        "host_data": exp["host_data"],
        "id_key_digest": exp["id_key_digest"],
        "policy": int(exp["policy"], 16),
        "vmpl": exp["vmpl"],
    }
    assert claims.report_data.hex() == exp["report_data"]
    assert claims.debug is ("DEBUG allowed" in exp["policy_decoded"]["flags"])
    assert claims.details["signing_key"] == exp["signing_key"]
    assert claims.details["report_version"] == exp["version"]
    reported = {k: v for k, v in exp["reported_tcb"].items() if k != "raw"}
    assert claims.details["reported_tcb"] == reported
    if exp["vcek_hwid_matches_chip_id"]:
        assert claims.platform_id == exp["chip_id"]
    else:
        assert claims.platform_id.startswith("vlek:")
