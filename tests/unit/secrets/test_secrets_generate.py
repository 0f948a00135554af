"""Generation of every secret kind, X.509 profiles, and the store encoding."""

from __future__ import annotations

import base64
import json
import pickle
import string
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.errors import CustodesError
from custodes.policy import (
    AsciiSecret,
    BinarySecret,
    ExplicitSecret,
    PrivateKeySecret,
    X509CaSecret,
    X509Secret,
)
from custodes.secrets import FORMATS, SecretMaterial, generate_secret

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def ca(name: str = "ca", **kw: object) -> X509CaSecret:
    return X509CaSecret(kind="x509-ca", name=name, common_name=f"{name} CA", **kw)  # type: ignore[arg-type]


def leaf(**kw: object) -> X509Secret:
    fields = {"kind": "x509", "name": "tls", "issuer": "ca", "dns": ("svc.example",), **kw}
    return X509Secret(**fields)  # type: ignore[arg-type]


def ext(cert: x509.Certificate, kind: type) -> x509.Extension:
    return cert.extensions.get_extension_for_class(kind)


def test_ascii_uses_only_the_alphabet_and_the_size() -> None:
    spec = AsciiSecret(kind="ascii", name="pin", size=200, alphabet="0123456789")
    value = generate_secret(spec, issuer=None, now=NOW).format(None)
    assert len(value) == 200
    assert set(value) <= set(string.digits)
    assert len(set(value)) > 5  # 200 draws from 10 symbols: all-but-5 missing has probability < 1e-40


def test_binary_is_random_and_sized() -> None:
    spec = BinarySecret(kind="binary", name="k", size=48)
    first = generate_secret(spec, issuer=None, now=NOW)
    second = generate_secret(spec, issuer=None, now=NOW)
    assert len(first.secret_value()) == 48
    assert first != second


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [("ec-p256", ec.EllipticCurvePrivateKey), ("ec-p384", ec.EllipticCurvePrivateKey),
     ("ed25519", ed25519.Ed25519PrivateKey), ("rsa-3072", rsa.RSAPrivateKey)],
)
def test_private_key_algorithms(algorithm: str, expected: type) -> None:
    spec = PrivateKeySecret(kind="private-key", name="k", algorithm=algorithm)  # type: ignore[arg-type]
    material = generate_secret(spec, issuer=None, now=NOW)
    key = material.private_key()
    assert isinstance(key, expected)
    if isinstance(key, rsa.RSAPrivateKey):
        assert key.key_size == 3072
    if algorithm == "ec-p384":
        assert key.curve.key_size == 384  # type: ignore[union-attr]
    assert material.not_after is None


def test_ca_profile() -> None:
    material = generate_secret(ca(valid_for=timedelta(days=10)), issuer=None, now=NOW)
    cert = material.certificate
    assert cert is not None
    basic = ext(cert, x509.BasicConstraints)
    assert basic.critical
    assert basic.value.ca
    usage = ext(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    assert usage.value.crl_sign
    ski = ext(cert, x509.SubjectKeyIdentifier).value
    assert ski.digest == ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier
    assert cert.not_valid_before_utc == NOW - timedelta(minutes=5)
    assert material.not_after == NOW + timedelta(days=10)
    assert material.chain == (cert.public_bytes(serialization.Encoding.DER),)


def test_leaf_profile_and_verification() -> None:
    root = generate_secret(ca(), issuer=None, now=NOW)
    material = generate_secret(
        leaf(dns=("svc.example",), ip=("10.1.2.3",), usage=("server", "client"), valid_for=timedelta(days=3)),
        issuer=root,
        now=NOW,
    )
    cert = material.certificate
    assert cert is not None
    assert not ext(cert, x509.BasicConstraints).value.ca
    assert ext(cert, x509.BasicConstraints).critical
    eku = set(ext(cert, x509.ExtendedKeyUsage).value)
    assert eku == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    sans = ext(cert, x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["svc.example"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]
    assert cert.serial_number.bit_length() <= 128
    assert material.not_after == NOW + timedelta(days=3)
    assert root.certificate is not None
    verifier = PolicyBuilder().store(Store([root.certificate])).time(NOW).build_server_verifier(
        x509.DNSName("svc.example")
    )
    assert verifier.verify(cert, [])[-1] == root.certificate
    cert.verify_directly_issued_by(root.certificate)
    other_root = generate_secret(ca("other"), issuer=None, now=NOW)
    assert other_root.certificate is not None
    with pytest.raises(VerificationError):
        PolicyBuilder().store(Store([other_root.certificate])).time(NOW).build_server_verifier(
            x509.DNSName("svc.example")
        ).verify(cert, [])


def test_serials_differ() -> None:
    root = generate_secret(ca(), issuer=None, now=NOW)
    serials = {generate_secret(leaf(), issuer=root, now=NOW).certificate.serial_number for _ in range(5)}  # type: ignore[union-attr]
    assert len(serials) == 5


def test_leaf_never_outlives_its_issuer() -> None:
    root = generate_secret(ca(valid_for=timedelta(days=2)), issuer=None, now=NOW)
    material = generate_secret(leaf(valid_for=timedelta(days=90)), issuer=root, now=NOW)
    assert material.not_after == root.not_after == NOW + timedelta(days=2)


def test_expired_or_wrong_issuer_is_refused() -> None:
    root = generate_secret(ca(valid_for=timedelta(days=1)), issuer=None, now=NOW)
    with pytest.raises(CustodesError) as info:
        generate_secret(leaf(), issuer=root, now=NOW + timedelta(days=2))
    assert info.value.code == "SECRET_ISSUER_INVALID"
    key = generate_secret(PrivateKeySecret(kind="private-key", name="k"), issuer=None, now=NOW)
    with pytest.raises(CustodesError):
        generate_secret(leaf(), issuer=key, now=NOW)
    with pytest.raises(CustodesError):
        generate_secret(leaf(), issuer=None, now=NOW)
    with pytest.raises(CustodesError):
        generate_secret(ca(), issuer=root, now=NOW)  # self-signed CA spec takes no issuer


def test_intermediate_ca_chain() -> None:
    root = generate_secret(ca("root", algorithm="ed25519"), issuer=None, now=NOW)
    mid = generate_secret(ca("mid", issuer="root", algorithm="ec-p384"), issuer=root, now=NOW)
    material = generate_secret(leaf(issuer="mid", algorithm="rsa-3072"), issuer=mid, now=NOW)
    certs = x509.load_pem_x509_certificates(material.format("chain").encode())
    assert len(certs) == 3
    certs[0].verify_directly_issued_by(certs[1])
    certs[1].verify_directly_issued_by(certs[2])
    assert ext(certs[0], x509.KeyUsage).value.key_encipherment  # RSA leaves may encipher


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        generate_secret(BinarySecret(kind="binary", name="k"), issuer=None, now=datetime(2026, 1, 1))


def _every_kind() -> list[SecretMaterial]:
    root = generate_secret(ca(), issuer=None, now=NOW)
    return [
        generate_secret(AsciiSecret(kind="ascii", name="a"), issuer=None, now=NOW),
        generate_secret(BinarySecret(kind="binary", name="b"), issuer=None, now=NOW),
        generate_secret(ExplicitSecret(kind="explicit", name="e", value="v\u00e9"), issuer=None, now=NOW),
        generate_secret(PrivateKeySecret(kind="private-key", name="k"), issuer=None, now=NOW),
        root,
        generate_secret(leaf(), issuer=root, now=NOW),
    ]


def test_every_kind_round_trips_through_the_store_encoding() -> None:
    for material in _every_kind():
        data = material.to_bytes()
        again = SecretMaterial.from_bytes(data)
        assert again == material
        assert again.kind == material.kind
        assert again.not_after == material.not_after
        for fmt in FORMATS[material.kind]:
            assert again.format(fmt) == material.format(fmt)


def test_unsupported_format_is_refused() -> None:
    for material in _every_kind():
        with pytest.raises(CustodesError) as info:
            material.format("nope")
        assert info.value.code == "SECRET_FORMAT_UNSUPPORTED"
    binary = SecretMaterial("explicit", value=generate_secret(BinarySecret(kind="binary", name="b"), issuer=None,
                                                              now=NOW).secret_value())
    with pytest.raises(CustodesError, match="not UTF-8"):
        binary.format(None)


def test_material_is_redacted_everywhere() -> None:
    for material in _every_kind():
        text = repr(material) + str(material) + f"{material}"
        assert material.kind in text
        assert "PRIVATE" not in text
        if material.kind in ("ascii", "binary", "explicit"):
            assert material.format("hex") not in text
        with pytest.raises(TypeError):
            pickle.dumps(material)


def test_inconsistent_material_is_refused() -> None:
    root, other = (generate_secret(ca(n), issuer=None, now=NOW) for n in ("a", "b"))
    doc = json.loads(root.to_bytes())
    doc["key"] = json.loads(other.to_bytes())["key"]
    with pytest.raises(CustodesError) as info:
        SecretMaterial.from_bytes(json.dumps(doc).encode())
    assert info.value.code == "SECRET_MATERIAL_INVALID"
    assert "key does not match" in info.value.message
    leaf_doc = json.loads(generate_secret(leaf(), issuer=root, now=NOW).to_bytes())
    leaf_doc["kind"] = "x509-ca"
    with pytest.raises(CustodesError, match="BasicConstraints"):
        SecretMaterial.from_bytes(json.dumps(leaf_doc).encode())


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {"format": "custodes-secret/v1", "kind": "ascii"},
        {"format": "custodes-secret/v1", "kind": "ascii", "value": "!!"},
        {"format": "custodes-secret/v1", "kind": "ascii", "value": "AA==", "extra": 1},
        {"format": "custodes-secret/v1", "kind": "rot13", "value": "AA=="},
        {"format": "custodes-secret/v1", "kind": "private-key", "key": "AAAA"},
        {"format": "custodes-secret/v1", "kind": "x509", "key": "AAAA", "chain": ["AAAA"]},
        {"format": "custodes-secret/v1", "kind": "binary", "value": "AA==", "key": "AA=="},
    ],
)
def test_malformed_material_is_refused(doc: dict[str, object]) -> None:
    with pytest.raises(CustodesError) as info:
        SecretMaterial.from_bytes(json.dumps(doc).encode())
    assert info.value.code == "SECRET_MATERIAL_INVALID"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=200).map(str.encode))
def test_from_bytes_never_raises_anything_else(data: bytes) -> None:
    error = _error_of(data)
    assert error is None or error.code == "SECRET_MATERIAL_INVALID"


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0), st.binary(min_size=1, max_size=8))
def test_corrupted_store_bytes_never_raise_anything_else(offset: int, junk: bytes) -> None:
    data = bytearray(_LEAF_BYTES)
    pos = offset % len(data)
    data[pos : pos + len(junk)] = junk
    error = _error_of(bytes(data))
    if error is not None:
        assert error.code == "SECRET_MATERIAL_INVALID"
        assert base64.b64encode(junk).decode() not in error.message


def _error_of(data: bytes) -> CustodesError | None:
    try:
        SecretMaterial.from_bytes(data)
    except CustodesError as e:
        return e
    return None


_LEAF_BYTES = _every_kind()[-1].to_bytes()
