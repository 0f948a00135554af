"""``custodes evidence verify`` and ``custodes collateral import|show`` against the real vectors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from custodes.cli._evidence import collateral_app, evidence_app
from vectors.vectorlib import VECTORS

runner = CliRunner()
SGX_DIR = VECTORS / "sgx" / "dcap-qvl-sgx-v3"
SGX_AT = "2025-07-04T10:28:44Z"
SGX_ARGS = ["verify", str(SGX_DIR / "quote.bin"), "--collateral", str(SGX_DIR / "collateral.json")]


def test_verify_sgx_prints_claims_and_status() -> None:
    result = runner.invoke(evidence_app, [*SGX_ARGS, "--at", SGX_AT])
    assert result.exit_code == 0, result.output
    assert "tcb status: ConfigurationAndSWHardeningNeeded (INTEL-SA-00289, INTEL-SA-00615)" in result.output
    assert "mrenclave: 33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb" in result.output


def test_verify_json_output() -> None:
    args = ["verify", str(SGX_DIR / "quote.bin"), "--collateral", str(SGX_DIR / "collateral.json"), "--at", SGX_AT]
    result = runner.invoke(evidence_app, [*args, "--json"])
    assert result.exit_code == 0
    claims = json.loads(result.output)["claims"]
    assert claims["tee"] == "sgx-dcap"
    assert claims["tcb"]["advisories"] == ["INTEL-SA-00289", "INTEL-SA-00615"]


def test_verify_failure_is_one_line_with_code() -> None:
    args = ["verify", str(SGX_DIR / "quote.bin"), "--collateral", str(SGX_DIR / "collateral.json")]
    result = runner.invoke(evidence_app, [*args, "--at", "2030-01-01T00:00:00Z"])
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("error: COLLATERAL_EXPIRED: ")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("at", ["yesterday", "2025-07-04T10:28:44", "0001-01-01T00:00:00+01:00"])
def test_a_bad_at_time_is_one_line_with_its_code(at: str) -> None:
    result = runner.invoke(evidence_app, [*SGX_ARGS, "--at", at])
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("error: BAD_TIME: --at: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_verify_tampered_evidence_exits_1(tmp_path: Path) -> None:
    data = bytearray((SGX_DIR / "quote.bin").read_bytes())
    data[100] ^= 1
    bad = tmp_path / "quote.bin"
    bad.write_bytes(bytes(data))
    collateral = str(SGX_DIR / "collateral.json")
    result = runner.invoke(evidence_app, ["verify", str(bad), "--collateral", collateral, "--at", SGX_AT])
    assert result.exit_code == 1
    assert "QUOTE_SIGNATURE_INVALID" in result.stderr


def test_import_show_and_verify_from_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    files = [
        SGX_DIR / "collateral.json",
        VECTORS / "tdx" / "tdx-v5-90c06f-2026" / "collateral.json",
        VECTORS / "snp" / "virtee-milan-v2" / "vcek.der",
        VECTORS / "snp" / "trustee-milan-vlek-v3" / "vlek.der",
        VECTORS / "snp" / "azure-hcl-milan-genoa" / "vcek_genoa.pem",
    ]
    result = runner.invoke(collateral_app, ["import", *map(str, files), "--store", str(store)])
    assert result.exit_code == 0, result.output
    shown = runner.invoke(collateral_app, ["show", "--store", str(store), "--json"])
    kinds = sorted((e["kind"], e.get("fmspc") or e.get("key_type")) for e in json.loads(shown.output))
    assert kinds == [
        ("dcap", "00a067110000"),
        ("dcap", "90c06f000000"),
        ("snp", "vcek"),
        ("snp", "vcek"),
        ("snp", "vlek"),
    ]
    cases = [
        (SGX_DIR / "quote.bin", SGX_AT, "sgx-dcap"),
        (VECTORS / "tdx" / "tdx-v5-90c06f-2026" / "quote_v5_gotdx.bin", "2026-03-05T10:50:03Z", "tdx"),
        (VECTORS / "snp" / "virtee-milan-v2" / "report.bin", "2025-01-01T00:00:00Z", "sev-snp"),
        (VECTORS / "snp" / "trustee-milan-vlek-v3" / "report.bin", "2025-06-01T00:00:00Z", "sev-snp"),
        (VECTORS / "snp" / "azure-hcl-milan-genoa" / "report_genoa.bin", "2025-06-01T00:00:00Z", "sev-snp"),
    ]
    for evidence, at, tee in cases:
        out = runner.invoke(evidence_app, ["verify", str(evidence), "--collateral", str(store), "--at", at, "--json"])
        assert out.exit_code == 0, (evidence, out.stderr)
        assert json.loads(out.output)["claims"]["tee"] == tee


def test_import_refuses_forged_collateral(tmp_path: Path) -> None:
    obj = json.loads((SGX_DIR / "collateral.json").read_text())
    obj["tcb_info"] = obj["tcb_info"].replace("OutOfDate", "UpToDate")
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(obj))
    result = runner.invoke(collateral_app, ["import", str(forged), "--store", str(tmp_path / "store")])
    assert result.exit_code == 1
    assert "TCB_INFO_SIGNATURE_INVALID" in result.stderr
    assert not list((tmp_path / "store").rglob("*.json"))


def test_store_lookup_without_matching_collateral(tmp_path: Path) -> None:
    store = tmp_path / "store"
    runner.invoke(collateral_app, ["import", str(SGX_DIR / "collateral.json"), "--store", str(store)])
    tdx = VECTORS / "tdx" / "tdx-v5-90c06f-2026" / "quote_v5_gotdx.bin"
    args = ["verify", str(tdx), "--collateral", str(store), "--at", "2026-03-05T10:50:03Z"]
    result = runner.invoke(evidence_app, args)
    assert result.exit_code == 1
    assert "COLLATERAL_NOT_FOUND" in result.stderr
