"""One test per attack on real-hardware evidence verification; each asserts the exact refusal code.

Attacks are derived from the shared vectors (read where they lie). Those that need a signature no real vendor
key would give us (revoked PCKs, edited QE identities, debug enclaves) use the forge in ``vectors/vectorlib.py``:
a throw-away PKI trusted only by a test verifier.
"""

from __future__ import annotations

import base64
import json
import struct
import warnings
from dataclasses import replace
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from custodes.errors import CollateralError, CustodesError, EvidenceError
from custodes.evidence._dcap_quote import DcapQuote
from custodes.evidence._x509 import load_pem_chain
from custodes.evidence.collateral import SnpCollateral
from custodes.evidence.sgx import verify_sgx_quote
from custodes.evidence.snp import verify_snp_report
from custodes.evidence.tdx import verify_tdx_quote
from vectors.vectorlib import SGX, SNP_CASES, TDX_V4, TDX_V5, DcapCase, forge_for, load_vector, rebuild_quote


def flip(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[offset] ^= mask
    return bytes(out)


def verify(case: DcapCase, quote: bytes | None = None, collateral=None, now=None):
    fn = verify_sgx_quote if case.tee == "sgx" else verify_tdx_quote
    return fn(quote if quote is not None else case.quote, collateral or case.collateral, now=now or case.now)


def code_of(fn) -> str:
    with pytest.raises(CustodesError) as err:
        fn()
    assert isinstance(err.value, (EvidenceError, CollateralError))
    return err.value.code


# -- DCAP: signatures -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", [SGX, TDX_V4, TDX_V5], ids=["sgx-v3", "tdx-v4", "tdx-v5"])
def test_quote_signature_flipped(case: DcapCase) -> None:
    q = DcapQuote.from_bytes(case.quote)
    bad = rebuild_quote(q, signature=flip(q.signature, 5))
    assert code_of(lambda: verify(case, bad)) == "QUOTE_SIGNATURE_INVALID"


@pytest.mark.parametrize("case", [SGX, TDX_V4, TDX_V5], ids=["sgx-v3", "tdx-v4", "tdx-v5"])
def test_report_body_edited(case: DcapCase) -> None:
    q = DcapQuote.from_bytes(case.quote)
    bad = rebuild_quote(q, signed_region=flip(q.signed_region, len(q.signed_region) - 70))
    assert code_of(lambda: verify(case, bad)) == "QUOTE_SIGNATURE_INVALID"


@pytest.mark.parametrize("case", [SGX, TDX_V4], ids=["sgx-v3", "tdx-v4"])
def test_qe_report_signature_flipped(case: DcapCase) -> None:
    q = DcapQuote.from_bytes(case.quote)
    bad = rebuild_quote(q, qe_report_signature=flip(q.qe.qe_report_signature, 40))
    assert code_of(lambda: verify(case, bad)) == "QE_REPORT_SIGNATURE_INVALID"


def test_attestation_key_swapped() -> None:
    q = DcapQuote.from_bytes(SGX.quote)
    other = DcapQuote.from_bytes(TDX_V4.quote)
    bad = rebuild_quote(q, attestation_key=other.attestation_key)
    assert code_of(lambda: verify(SGX, bad)) == "QE_REPORT_DATA_MISMATCH"


def test_qe_auth_data_edited() -> None:
    q = DcapQuote.from_bytes(SGX.quote)
    bad = rebuild_quote(q, qe_auth_data=q.qe.qe_auth_data + b"\x00")
    assert code_of(lambda: verify(SGX, bad)) == "QE_REPORT_DATA_MISMATCH"


def test_tcb_info_signature_flipped() -> None:
    col = replace(SGX.collateral, tcb_info_signature=flip(SGX.collateral.tcb_info_signature, 3))
    assert code_of(lambda: verify(SGX, collateral=col)) == "TCB_INFO_SIGNATURE_INVALID"


def test_tcb_info_status_edited() -> None:
    col = SGX.collateral
    col = replace(col, tcb_info=col.tcb_info.replace("ConfigurationAndSWHardeningNeeded", "UpToDate"))
    assert code_of(lambda: verify(SGX, collateral=col)) == "TCB_INFO_SIGNATURE_INVALID"


def test_qe_identity_signature_flipped() -> None:
    col = replace(TDX_V4.collateral, qe_identity_signature=flip(TDX_V4.collateral.qe_identity_signature, 60))
    assert code_of(lambda: verify(TDX_V4, collateral=col)) == "QE_IDENTITY_SIGNATURE_INVALID"


def test_root_crl_signature_flipped() -> None:
    col = replace(SGX.collateral, root_ca_crl=flip(SGX.collateral.root_ca_crl, len(SGX.collateral.root_ca_crl) - 5))
    assert code_of(lambda: verify(SGX, collateral=col)) == "CRL_SIGNATURE_INVALID"


def test_pck_crl_signature_flipped() -> None:
    col = replace(TDX_V4.collateral, pck_crl=flip(TDX_V4.collateral.pck_crl, len(TDX_V4.collateral.pck_crl) - 5))
    assert code_of(lambda: verify(TDX_V4, collateral=col)) == "CRL_SIGNATURE_INVALID"


# -- DCAP: chains and roots -----------------------------------------------------------------------------------
def test_pck_chain_under_wrong_root() -> None:
    pki, q = forge_for(SGX)
    assert code_of(lambda: verify(SGX, pki.forge_quote(q))) == "PCK_CHAIN_INVALID"


def test_pck_chain_broken_by_foreign_intermediate() -> None:
    q = DcapQuote.from_bytes(SGX.quote)
    leaf, _ca, root = load_pem_chain(q.qe.pck_chain_pem)
    _, other_ca, _ = load_pem_chain(DcapQuote.from_bytes(TDX_V4.quote).qe.pck_chain_pem)
    pem = b"".join(c.public_bytes(Encoding.PEM) for c in (leaf, other_ca, root))
    assert code_of(lambda: verify(SGX, rebuild_quote(q, pck_chain_pem=pem))) == "PCK_CHAIN_INVALID"


def test_collateral_signed_under_wrong_root() -> None:
    pki, _q = forge_for(SGX)
    col = pki.collateral(SGX.collateral, now=SGX.now)
    assert code_of(lambda: verify(SGX, collateral=col)) == "CRL_SIGNATURE_INVALID"


def test_forged_evidence_verifies_under_its_own_test_root() -> None:
    """The forge itself is sound: without an attack, a test-root verifier accepts it (so the attacks below
    fail for the reason they name, not for a harness bug)."""
    pki, q = forge_for(SGX)
    col = pki.collateral(SGX.collateral, now=SGX.now)
    result = pki.verifier.verify(pki.forge_quote(q), col, now=SGX.now, tee="sgx")
    assert result.status == "ConfigurationAndSWHardeningNeeded"


def test_revoked_pck_leaf() -> None:
    pki, q = forge_for(SGX)
    col = pki.collateral(SGX.collateral, now=SGX.now, revoked_pck=[pki.leaf.serial_number])
    assert code_of(lambda: pki.verifier.verify(pki.forge_quote(q), col, now=SGX.now, tee="sgx")) == "PCK_REVOKED"


def test_revoked_pck_ca() -> None:
    pki, q = forge_for(TDX_V4)
    col = pki.collateral(TDX_V4.collateral, now=TDX_V4.now, revoked_by_root=[pki.ca.serial_number])
    assert code_of(lambda: pki.verifier.verify(pki.forge_quote(q), col, now=TDX_V4.now, tee="tdx")) == "PCK_REVOKED"


def test_revoked_tcb_signer() -> None:
    pki, q = forge_for(SGX)
    col = pki.collateral(SGX.collateral, now=SGX.now, revoked_by_root=[pki.signer.serial_number])
    forged = pki.forge_quote(q)
    assert code_of(lambda: pki.verifier.verify(forged, col, now=SGX.now, tee="sgx")) == "COLLATERAL_REVOKED"


# -- DCAP: time -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", [SGX, TDX_V4], ids=["sgx", "tdx"])
def test_collateral_expired(case: DcapCase) -> None:
    later = case.collateral
    assert code_of(lambda: verify(case, collateral=later, now=case.now + timedelta(days=40))) == "COLLATERAL_EXPIRED"


def test_collateral_not_yet_valid() -> None:
    assert code_of(lambda: verify(SGX, now=SGX.now - timedelta(days=30))) == "COLLATERAL_NOT_YET_VALID"


# -- DCAP: identities and TCB ---------------------------------------------------------------------------------
def test_qe_identity_mismatch() -> None:
    pki, q = forge_for(SGX)
    obj = json.loads(SGX.collateral.qe_identity)
    obj["mrsigner"] = "00" * 32
    col = pki.collateral(SGX.collateral, now=SGX.now, qe_identity=json.dumps(obj))
    forged = pki.forge_quote(q)
    assert code_of(lambda: pki.verifier.verify(forged, col, now=SGX.now, tee="sgx")) == "QE_IDENTITY_MISMATCH"


def test_tdx_module_signer_mismatch() -> None:
    pki, q = forge_for(TDX_V4)
    text = TDX_V4.collateral.tcb_info
    obj = json.loads(text)
    for module in obj["tdxModuleIdentities"]:
        module["mrsigner"] = "11" * 48
    col = pki.collateral(TDX_V4.collateral, now=TDX_V4.now, tcb_info=json.dumps(obj))
    forged = pki.forge_quote(q)
    assert code_of(lambda: pki.verifier.verify(forged, col, now=TDX_V4.now, tee="tdx")) == "TDX_MODULE_MISMATCH"


def test_revoked_tcb_level_is_reported_not_raised() -> None:
    pki, q = forge_for(SGX)
    obj = json.loads(SGX.collateral.tcb_info)
    for level in obj["tcbLevels"]:
        level["tcbStatus"] = "Revoked"
    col = pki.collateral(SGX.collateral, now=SGX.now, tcb_info=json.dumps(obj))
    assert pki.verifier.verify(pki.forge_quote(q), col, now=SGX.now, tee="sgx").status == "Revoked"


def test_debug_enclave_verifies_with_debug_flag() -> None:
    pki, q = forge_for(SGX)
    body = bytearray(q.body.raw)
    body[48] |= 0x02  # ATTRIBUTES.DEBUG
    result = pki.verifier.verify(
        pki.forge_quote(q, body=bytes(body)), pki.collateral(SGX.collateral, now=SGX.now), now=SGX.now, tee="sgx"
    )
    assert result.quote.body.debug is True


def test_collateral_for_another_fmspc() -> None:
    other = DcapCase("tdx/trustee-tdx-v4-00a06d", "quote.bin", "tdx", TDX_V4.now)
    bad_pair = TDX_V4.collateral
    assert code_of(lambda: verify(other, collateral=bad_pair, now=TDX_V4.now)) == "COLLATERAL_MISMATCH"


def test_collateral_for_another_pck_ca() -> None:
    assert code_of(lambda: verify(TDX_V4, collateral=SGX.collateral, now=SGX.now)) == "CRL_ISSUER_MISMATCH"


# -- DCAP: structure ------------------------------------------------------------------------------------------
def test_truncated_quote() -> None:
    assert code_of(lambda: verify(SGX, SGX.quote[:-1])) == "QUOTE_TRUNCATED"


def test_extended_quote_with_data() -> None:
    assert code_of(lambda: verify(SGX, SGX.quote + b"extra")) == "QUOTE_TRAILING_DATA"


def test_extended_quote_with_zero_padding_still_verifies() -> None:
    assert verify(SGX, SGX.quote + bytes(100)).details["trailing_bytes"] == 100


def test_wrong_tee_for_the_verifier() -> None:
    tdx_as_sgx = code_of(lambda: verify_sgx_quote(TDX_V4.quote, TDX_V4.collateral, now=TDX_V4.now))
    assert tdx_as_sgx == "QUOTE_TEE_TYPE_MISMATCH"
    assert code_of(lambda: verify_tdx_quote(SGX.quote, SGX.collateral, now=SGX.now)) == "QUOTE_TEE_TYPE_MISMATCH"


def test_v5_body_type_mismatch() -> None:
    data = bytearray(TDX_V5.quote)
    struct.pack_into("<H", data, 48, 1)  # claims an SGX body
    assert code_of(lambda: verify(TDX_V5, bytes(data))) == "QUOTE_BODY_TYPE_UNSUPPORTED"


def test_v5_unknown_body_type() -> None:
    data = bytearray(TDX_V5.quote)
    struct.pack_into("<H", data, 48, 9)
    assert code_of(lambda: verify(TDX_V5, bytes(data))) == "QUOTE_BODY_TYPE_UNSUPPORTED"


def test_unsupported_quote_version() -> None:
    data = bytearray(SGX.quote)
    struct.pack_into("<H", data, 0, 2)
    assert code_of(lambda: verify(SGX, bytes(data))) == "QUOTE_VERSION_UNSUPPORTED"


def test_foreign_qe_vendor() -> None:
    assert code_of(lambda: verify(SGX, flip(SGX.quote, 12))) == "QUOTE_QE_VENDOR_UNKNOWN"


# -- SEV-SNP --------------------------------------------------------------------------------------------------
def snp(index: int, report: bytes | None = None, collateral: SnpCollateral | None = None, now=None):
    set_path, report_file, leaf_file, fixed_now = SNP_CASES[index]
    raw = load_vector(f"{set_path}/{leaf_file}")
    col = collateral or (SnpCollateral.from_pem(raw) if leaf_file.endswith(".pem") else SnpCollateral(raw))
    data = report if report is not None else load_vector(f"{set_path}/{report_file}")
    return verify_snp_report(data, col, now=now or fixed_now)


def snp_report(index: int) -> bytes:
    return load_vector(f"{SNP_CASES[index][0]}/{SNP_CASES[index][1]}")


def test_snp_signature_flipped() -> None:
    assert code_of(lambda: snp(1, flip(snp_report(1), 0x2A0))) == "SNP_SIGNATURE_INVALID"


def test_snp_measurement_edited() -> None:
    assert code_of(lambda: snp(1, flip(snp_report(1), 0x90))) == "SNP_SIGNATURE_INVALID"


def test_snp_other_chips_vcek() -> None:
    other = SnpCollateral(load_vector("snp/virtee-milan-v2/vcek.der"))
    assert code_of(lambda: snp(2, collateral=other)) == "SNP_SIGNATURE_INVALID"


def test_snp_vcek_signature_broken() -> None:
    der = load_vector("snp/virtee-milan-v2/vcek.der")
    assert code_of(lambda: snp(1, collateral=SnpCollateral(flip(der, len(der) - 3)))) == "SNP_CHAIN_INVALID"


def test_snp_chain_from_another_product() -> None:
    certs = x509.load_pem_x509_certificates(load_vector("common/amd/ask_ark_genoa.pem"))
    genoa = [c.public_bytes(Encoding.DER) for c in certs]
    col = SnpCollateral(load_vector("snp/virtee-milan-v2/vcek.der"), tuple(genoa))
    assert code_of(lambda: snp(1, collateral=col)) == "SNP_CHAIN_INVALID"


@pytest.mark.parametrize("name", ["test-vcek-invalid-legacy.der", "test-vcek-invalid-new.der"])
def test_snp_synthetic_vcek_not_signed_by_amd(name: str) -> None:
    col = SnpCollateral(load_vector(f"snp/trustee-milan-v2/parse_only/{name}"))
    assert code_of(lambda: snp(2, collateral=col)) == "SNP_CHAIN_INVALID"


def test_snp_vlek_expired() -> None:
    assert code_of(lambda: snp(3, now=SNP_CASES[3][3] + timedelta(days=365))) == "SNP_CERT_EXPIRED"


def test_snp_signing_key_type_mismatch() -> None:
    data = bytearray(snp_report(3))
    data[0x48] &= ~0x1C  # KEY_INFO.SIGNING_KEY := VCEK, but the certificate is a VLEK
    assert code_of(lambda: snp(3, bytes(data))) == "SNP_KEY_INFO_INVALID"


def test_snp_debug_policy_verifies_with_debug_flag() -> None:
    assert snp(0).debug is True
    assert snp(1).debug is False


def test_snp_truncated_and_extended() -> None:
    assert code_of(lambda: snp(1, snp_report(1)[:-1])) == "SNP_REPORT_TRUNCATED"
    assert code_of(lambda: snp(1, snp_report(1) + b"x")) == "SNP_REPORT_TRAILING_DATA"
    assert code_of(lambda: snp(1, flip(snp_report(1), 0x400))) == "SNP_REPORT_MALFORMED"


def test_snp_unsupported_version() -> None:
    data = bytearray(snp_report(1))
    struct.pack_into("<I", data, 0, 1)
    assert code_of(lambda: snp(1, bytes(data))) == "SNP_VERSION_UNSUPPORTED"


def test_snp_serial_zero_leaf_never_reaches_cryptography(monkeypatch: pytest.MonkeyPatch) -> None:
    """AMD leaves have serial 0: we parse them ourselves, so a stricter cryptography cannot break SNP, and no
    deprecation warning leaks."""
    real = x509.load_der_x509_certificate

    def strict(data: bytes, *args, **kwargs):
        cert = real(data, *args, **kwargs)
        if cert.serial_number <= 0:
            raise ValueError("serial number must be positive")
        return cert

    monkeypatch.setattr(x509, "load_der_x509_certificate", strict)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert snp(1).tee == "sev-snp"
        assert snp(4).tee == "sev-snp"


def _pem_edit(quote: bytes, edit: str) -> bytes:
    """Edits of the quote's (unsigned) PCK chain PEM that leave the certificates themselves unchanged."""
    end = quote.rfind(b"-----END CERTIFICATE-----") + len(b"-----END CERTIFICATE-----")
    raw = bytearray(quote)
    if edit == "newline-to-nul":
        raw[end] = 0
    elif edit == "nul-to-newline":
        raw[end + 1] = ord("\n")
    else:  # a base64 character whose changed bits are padding: the same DER decodes from both
        alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        pad = quote.rfind(b"=\n-----END CERTIFICATE-----")
        assert pad > 0, "the vector's last certificate needs base64 padding for this case"
        last = pad - 2 if quote[pad - 1] == ord("=") else pad - 1
        unused = 0b1111 if quote[pad - 1] == ord("=") else 0b11  # '==' leaves 4 spare bits, '=' leaves 2
        index = alphabet.index(quote[last])
        raw[last] = alphabet[(index & ~unused) | ((index + 1) & unused)]
        assert base64.b64decode(bytes(raw[pad - 3 : pad + 1])) == base64.b64decode(quote[pad - 3 : pad + 1])
    return bytes(raw)


@pytest.mark.parametrize("edit", ["newline-to-nul", "nul-to-newline", "base64-padding-bits"])
def test_pck_chain_pem_is_byte_exact(edit: str) -> None:
    """Found by the fuzz test: a quote whose cert data differs only in PEM formatting must not verify."""
    mutated = _pem_edit(SGX.quote, edit)
    assert mutated != SGX.quote
    with pytest.raises(EvidenceError) as info:
        verify_sgx_quote(mutated, SGX.collateral, now=SGX.now)
    assert info.value.code == "PCK_CHAIN_INVALID"
