"""Unit tests for the pieces under the verifiers: DER reader, AMD leaf parsing, TCB status rules, caches."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.evidence import _der
from custodes.evidence._cache import LruCache
from custodes.evidence._tcb_info import converge, superseded_at
from custodes.evidence._x509 import RawCertificate, load_pem_chain
from custodes.evidence.snp import _hwid
from vectors.vectorlib import load_vector


@pytest.mark.parametrize("name", ["test-vcek-invalid-legacy.der", "test-vcek-invalid-new.der"])
def test_hwid_accepts_raw_and_octet_string_encodings(name: str) -> None:
    cert = RawCertificate.from_der(load_vector(f"snp/trustee-milan-v2/parse_only/{name}"))
    assert _hwid(cert.extensions["1.3.6.1.4.1.3704.1.4"]) == bytes(range(64))


def test_raw_certificate_reads_serial_zero_vcek() -> None:
    cert = RawCertificate.from_der(load_vector("snp/virtee-milan-v2/vcek.der"))
    assert cert.not_before == datetime(2023, 4, 3, 19, 23, 43, tzinfo=UTC)
    assert "1.3.6.1.4.1.3704.1.3.8" in cert.extensions


@settings(max_examples=200, deadline=None)
@given(blob=st.binary(max_size=300))
def test_der_reader_raises_only_der_error(blob: bytes) -> None:
    try:
        for tlv in _der.read_all(blob):
            if tlv.tag & 0x20:
                tlv.children()
    except _der.DerError:
        pass


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_mutated_vcek_parse_raises_only_value_error(data) -> None:
    der = bytearray(load_vector("snp/virtee-milan-v2/vcek.der"))
    i = data.draw(st.integers(0, len(der) - 1))
    der[i] ^= 1 << data.draw(st.integers(0, 7))
    with contextlib.suppress(ValueError):
        RawCertificate.from_der(bytes(der))


def test_der_rejects_non_minimal_length() -> None:
    with pytest.raises(_der.DerError):
        _der.read_one(b"\x04\x81\x01\x00")


def test_pem_chain_is_strict() -> None:
    pem = load_vector("common/intel/Intel_SGX_Root_CA.pem")
    assert len(load_pem_chain(pem + b"\x00\x00")) == 1
    with pytest.raises(ValueError):
        load_pem_chain(pem.replace(b"\n", b"\x0b", 3))
    with pytest.raises(ValueError):
        load_pem_chain(pem + b"trailing")


@pytest.mark.parametrize(
    ("platform", "other", "result"),
    [
        ("UpToDate", "OutOfDate", "OutOfDate"),
        ("SWHardeningNeeded", "OutOfDate", "OutOfDate"),
        ("ConfigurationNeeded", "OutOfDate", "OutOfDateConfigurationNeeded"),
        ("ConfigurationAndSWHardeningNeeded", "OutOfDate", "OutOfDateConfigurationNeeded"),
        ("UpToDate", "Revoked", "Revoked"),
        ("SWHardeningNeeded", "UpToDate", "SWHardeningNeeded"),
    ],
)
def test_converge(platform: str, other: str, result: str) -> None:
    assert converge(platform, other) == result


def test_superseded_at_is_the_next_recovery_date() -> None:
    d = [datetime(y, 1, 1, tzinfo=UTC) for y in (2024, 2024, 2023, 2018)]
    assert superseded_at(d, d[3]) == d[2]
    assert superseded_at(d, d[1]) is None


def test_cache_does_not_keep_failures_and_evicts() -> None:
    cache: LruCache[int] = LruCache(2)
    calls = []

    def boom() -> int:
        calls.append(1)
        raise ValueError

    for _ in range(2):
        with pytest.raises(ValueError):
            cache.get_or_compute(b"k", boom)
    assert len(calls) == 2
    for key in (b"a", b"b", b"c"):
        cache.get_or_compute(key, lambda: 1)
    assert len(cache) == 2
