"""The simulated TEE: evidence format, verification, TCB info semantics, and a hypothesis fuzz of the parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.utils import CryptographyDeprecationWarning
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from _support import make_sim
from custodes.clock import utcnow
from custodes.errors import CollateralError, EvidenceError
from custodes.evidence.simulated import (
    SimTcbLevel,
    SimVerifier,
    make_evidence,
    parse_evidence,
    sign_tcb_info,
    verify_tcb_info,
)
from custodes.evidence.simvendor import SimVendor, load_sim_verifier

MEASUREMENT = bytes(range(48))
REPORT = bytes(range(64))


@pytest.fixture(scope="module")
def vendor(tmp_path_factory: pytest.TempPathFactory) -> SimVendor:
    return make_sim(tmp_path_factory.mktemp("sim"), platforms=2, tcb_level=2)


@pytest.fixture(scope="module")
def evidence(vendor: SimVendor) -> bytes:
    return vendor.platforms()[0].evidence(measurement=MEASUREMENT, report_data=REPORT)


def test_genuine_evidence_verifies_to_simulated_claims(vendor: SimVendor, evidence: bytes) -> None:
    claims = load_sim_verifier(vendor.path).verify(evidence, now=utcnow())
    assert claims.tee == "simulated" and claims.simulated is True
    assert claims.measurements["measurement"] == MEASUREMENT.hex()
    assert claims.report_data == REPORT
    assert claims.debug is False
    assert claims.platform_id == vendor.platforms()[0].platform_id
    assert claims.tcb.status == "UpToDate" and claims.tcb.superseded_at is None


def test_debug_flag_is_reported_not_refused(vendor: SimVendor) -> None:
    data = vendor.platforms()[0].evidence(measurement=MEASUREMENT, report_data=REPORT, debug=True)
    assert load_sim_verifier(vendor.path).verify(data, now=utcnow()).debug is True


def test_publishing_a_new_level_makes_old_platforms_out_of_date_since_its_tcb_date(tmp_path: Path) -> None:
    vendor = make_sim(tmp_path / "sim", platforms=1, tcb_level=2)
    fixed = utcnow() - timedelta(days=3)
    vendor.publish(level=3, now=utcnow(), tcb_date=fixed, advisories=("CVE-2026-7",))
    data = vendor.platforms()[0].evidence(measurement=MEASUREMENT, report_data=REPORT)
    claims = load_sim_verifier(vendor.path).verify(data, now=utcnow())
    assert claims.tcb.status == "OutOfDate"
    assert claims.tcb.superseded_at == fixed.replace(microsecond=0)
    assert claims.tcb.advisories == ("CVE-2026-7",)
    vendor.upgrade_platform(vendor.platforms()[0].platform_id, tcb_level=3, now=utcnow())
    patched = vendor.platforms()[0].evidence(measurement=MEASUREMENT, report_data=REPORT)
    assert load_sim_verifier(vendor.path).verify(patched, now=utcnow()).tcb.status == "UpToDate"


def test_older_tcb_info_is_refused_as_rollback(tmp_path: Path) -> None:
    vendor = make_sim(tmp_path / "sim", platforms=1)
    old = load_sim_verifier(vendor.path)
    vendor.publish(level=3, now=utcnow())
    new = load_sim_verifier(vendor.path)
    with pytest.raises(CollateralError) as info:
        new.with_tcb_info(old.tcb_info)
    assert info.value.code == "COLLATERAL_ROLLBACK"


def test_expired_tcb_info_is_refused(vendor: SimVendor, evidence: bytes) -> None:
    with pytest.raises(CollateralError) as info:
        load_sim_verifier(vendor.path).verify(evidence, now=utcnow() + timedelta(days=31))
    assert info.value.code == "COLLATERAL_EXPIRED"


def test_tcb_info_with_a_forged_signature_is_refused(vendor: SimVendor, tmp_path: Path) -> None:
    other = make_sim(tmp_path / "other", platforms=1)
    document = (other.path / "vendor" / "tcb-info.json").read_bytes()
    with pytest.raises(CollateralError) as info:
        verify_tcb_info(document, load_sim_verifier(vendor.path)._vendor)
    assert info.value.code == "COLLATERAL_SIGNATURE_INVALID"


def test_trailing_bytes_are_refused(evidence: bytes) -> None:
    with pytest.raises(EvidenceError) as info:
        parse_evidence(evidence + b"\x00")
    assert info.value.code == "SIM_EVIDENCE_MALFORMED"


@pytest.mark.parametrize("cut", [0, 4, 100, 250, -1])
def test_truncated_evidence_is_refused(evidence: bytes, cut: int) -> None:
    with pytest.raises(EvidenceError) as info:
        parse_evidence(evidence[:cut])
    assert info.value.code == "SIM_EVIDENCE_MALFORMED"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2048))
def test_random_bytes_never_raise_anything_but_evidence_errors(vendor: SimVendor, data: bytes) -> None:
    verifier: SimVerifier = load_sim_verifier(vendor.path)
    with pytest.raises((EvidenceError, CollateralError)):
        verifier.verify(data, now=utcnow())


def test_platform_certificate_with_a_negative_serial_is_malformed(vendor: SimVendor) -> None:
    """RFC 5280 wants positive serials; cryptography still parses others with a warning, so the verifier refuses
    them itself, before it checks the vendor's signature."""
    platform = vendor.platforms()[0]
    cert_der, platform_key, attestation_key, endorsement = platform._keys
    serial = x509.load_der_x509_certificate(cert_der).serial_number
    content = serial.to_bytes((serial.bit_length() + 8) // 8, "big")  # DER INTEGER content, with a leading 0
    encoded = bytes([0x02, len(content)]) + content
    assert cert_der.count(encoded) == 1
    negative = cert_der.replace(encoded, bytes([0x02, len(content), 0x80]) + content[1:])
    forged = make_evidence(
        platform_cert_der=negative,
        platform_key=platform_key,
        attestation_key=attestation_key,
        measurement=MEASUREMENT,
        report_data=REPORT,
        ak_endorsement=endorsement,
    )
    with pytest.warns(CryptographyDeprecationWarning), pytest.raises(EvidenceError) as err:
        load_sim_verifier(vendor.path).verify(forged, now=utcnow())
    assert err.value.code == "SIM_EVIDENCE_MALFORMED"


@pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")  # refused: see the test above
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edits=st.lists(st.tuples(st.integers(min_value=0, max_value=4000), st.integers(1, 255)), min_size=1, max_size=4),
    cut=st.one_of(st.none(), st.integers(min_value=0, max_value=4000)),
)
def test_mutated_evidence_never_verifies(vendor: SimVendor, evidence: bytes, edits, cut) -> None:  # type: ignore[no-untyped-def]
    raw = bytearray(evidence)
    for offset, xor in edits:
        raw[offset % len(raw)] ^= xor
    if cut is not None:
        raw = raw[: cut % (len(raw) + 1)]
    assume(bytes(raw) != evidence)
    verifier = load_sim_verifier(vendor.path)
    with pytest.raises((EvidenceError, CollateralError)):
        verifier.verify(bytes(raw), now=utcnow())


@pytest.mark.parametrize("year", [1, 999, 2026, 9998])
def test_tcb_info_dates_of_any_year_survive_their_own_round_trip(year: int) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    when = datetime(year, 3, 4, 5, 6, 7, tzinfo=UTC)
    document = sign_tcb_info(key, levels=[SimTcbLevel(1, when, "UpToDate")], issue_date=when,
                             next_update=when + timedelta(days=1), evaluation_number=1)
    info = verify_tcb_info(document, key.public_key())
    assert (info.issue_date, info.levels[0].tcb_date) == (when, when)
