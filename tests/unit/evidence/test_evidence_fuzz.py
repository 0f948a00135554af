"""Random mutations of real quotes and reports (bit flips, truncation, length-field edits, byte replacement)
never raise anything but EvidenceError/CollateralError, and never verify."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custodes.errors import CollateralError, EvidenceError
from custodes.evidence._dcap_quote import DcapQuote
from custodes.evidence._snp_report import SnpReport
from custodes.evidence.collateral import SnpCollateral
from custodes.evidence.sgx import verify_sgx_quote
from custodes.evidence.snp import verify_snp_report
from custodes.evidence.tdx import verify_tdx_quote
from vectors.vectorlib import SGX, SNP_CASES, TDX_V4, TDX_V5, DcapCase, load_vector

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DCAP = {"sgx": SGX, "tdx4": TDX_V4, "tdx5": TDX_V5}
_QUOTES = {name: case.quote for name, case in DCAP.items()}
_COLLATERAL = {name: case.collateral for name, case in DCAP.items()}


def _mutate(data: bytes, draw, padding: int = 0) -> bytes:
    """One random mutation. Truncation stays inside the evidence proper: cutting zero padding is no change."""
    kind = draw(st.sampled_from(["flip", "truncate", "length", "replace", "extend"]))
    out = bytearray(data)
    if kind == "flip":
        i = draw(st.integers(0, len(out) - 1))
        out[i] ^= 1 << draw(st.integers(0, 7))
    elif kind == "truncate":
        del out[draw(st.integers(0, len(out) - padding - 1)) :]
    elif kind == "length":
        # the length fields a DCAP parser trusts: v5 body size, signature data, auth data, cert data sizes
        offset = draw(st.sampled_from([50, 432, 636, 702, 1160, 1164, 1222, 1224, 1226, 1230]))
        if offset + 4 <= len(out):
            struct.pack_into("<I", out, offset, draw(st.integers(0, 2**32 - 1)))
        else:
            out[-1] ^= 0xFF
    elif kind == "replace":
        i = draw(st.integers(0, len(out) - 1))
        chunk = draw(st.binary(min_size=1, max_size=16))
        if bytes(out[i : i + len(chunk)]) == chunk:
            chunk = bytes(b ^ 0xFF for b in chunk)
        out[i : i + len(chunk)] = chunk
    else:
        out += draw(st.binary(min_size=1, max_size=8).filter(any))
    if bytes(out) == data:
        out[0] ^= 0x80
    return bytes(out)


def _verify_dcap(case: DcapCase, name: str, data: bytes) -> None:
    fn = verify_sgx_quote if case.tee == "sgx" else verify_tdx_quote
    fn(data, _COLLATERAL[name], now=case.now)


@pytest.mark.parametrize("name", list(DCAP))
@FUZZ
@given(data=st.data())
def test_mutated_quotes_never_verify(name: str, data) -> None:
    padding = DcapQuote.from_bytes(_QUOTES[name]).trailing_bytes
    mutated = _mutate(_QUOTES[name], data.draw, padding)
    with pytest.raises((EvidenceError, CollateralError)):
        _verify_dcap(DCAP[name], name, mutated)


@FUZZ
@given(blob=st.binary(max_size=6000))
def test_quote_parser_on_arbitrary_bytes(blob: bytes) -> None:
    with contextlib.suppress(EvidenceError):
        DcapQuote.from_bytes(blob)


_SNP = SNP_CASES[1]
_SNP_REPORT = load_vector(f"{_SNP[0]}/{_SNP[1]}")
_SNP_COLLATERAL = SnpCollateral(load_vector(f"{_SNP[0]}/{_SNP[2]}"))


@FUZZ
@given(data=st.data())
def test_mutated_snp_reports_never_verify(data) -> None:
    mutated = _mutate(_SNP_REPORT, data.draw)
    with pytest.raises((EvidenceError, CollateralError)):
        verify_snp_report(mutated, _SNP_COLLATERAL, now=_SNP[3])


@FUZZ
@given(blob=st.binary(min_size=0, max_size=1300))
def test_snp_parser_on_arbitrary_bytes(blob: bytes) -> None:
    with contextlib.suppress(EvidenceError):
        SnpReport.from_bytes(blob)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_mutated_vcek_never_verifies(data) -> None:
    der = _SNP_COLLATERAL.leaf
    mutated = _mutate(der, data.draw)
    with pytest.raises((EvidenceError, CollateralError)):
        verify_snp_report(_SNP_REPORT, SnpCollateral(mutated), now=_SNP[3])
