"""Attacks on the simulated verifier's caches: a cached success must never vouch for different bytes.

The verifier remembers a platform's endorsement of its attestation key after one successful check (as a DCAP
verifier may remember a PCK-signed QE report). These tests warm that cache with genuine evidence first, then
present evidence that reuses the genuine, public parts with an attacker's key.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from _support import make_sim
from custodes.clock import utcnow
from custodes.errors import EvidenceError
from custodes.evidence.simulated import SimVerifier, make_evidence, parse_evidence
from custodes.evidence.simvendor import load_sim_verifier

MEASUREMENT = bytes(48)


@pytest.fixture
def warmed(tmp_path: Path) -> tuple[SimVerifier, bytes]:
    """A verifier that has already accepted one genuine evidence document (its caches are warm)."""
    vendor = make_sim(tmp_path / "sim", platforms=1)
    genuine = vendor.platforms()[0].evidence(measurement=MEASUREMENT, report_data=os.urandom(64))
    verifier = load_sim_verifier(tmp_path / "sim")
    verifier.verify(genuine, now=utcnow())
    return verifier, genuine


def test_attacker_key_with_the_cached_genuine_endorsement_is_refused(warmed: tuple[SimVerifier, bytes]) -> None:
    verifier, genuine = warmed
    ev = parse_evidence(genuine)
    attacker = ec.generate_private_key(ec.SECP256R1())
    forged = make_evidence(
        platform_cert_der=ev.platform_cert_der,
        platform_key=attacker,  # unused: the genuine endorsement is passed in
        attestation_key=attacker,
        measurement=MEASUREMENT,
        report_data=os.urandom(64),
        ak_endorsement=ev.ak_endorsement,
    )
    with pytest.raises(EvidenceError) as err:
        verifier.verify(forged, now=utcnow())
    assert err.value.code == "SIM_SIGNATURE_INVALID"


def test_genuine_key_and_endorsement_with_an_attacker_signature_is_refused(
    warmed: tuple[SimVerifier, bytes],
) -> None:
    verifier, genuine = warmed
    raw = bytearray(genuine)
    raw[-1] ^= 0x01  # the endorsement check is a cache hit; the evidence signature is not cacheable
    with pytest.raises(EvidenceError) as err:
        verifier.verify(bytes(raw), now=utcnow())
    assert err.value.code == "SIM_SIGNATURE_INVALID"


def test_a_refused_endorsement_is_refused_again(warmed: tuple[SimVerifier, bytes]) -> None:
    verifier, genuine = warmed
    ev = parse_evidence(genuine)
    offset = genuine.index(ev.ak_endorsement)
    raw = bytearray(genuine)
    raw[offset] ^= 0x80
    for _ in range(2):  # failures are never cached as successes
        with pytest.raises(EvidenceError) as err:
            verifier.verify(bytes(raw), now=utcnow())
        assert err.value.code == "SIM_SIGNATURE_INVALID"
