"""Rendering: every secret kind in every format, the sealed JSON form, and redaction."""

from __future__ import annotations

import base64
import ipaddress
import pickle
import re
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.verification import PolicyBuilder, Store
from policy_fixtures import MINIMAL, NOW, make_materials

from custodes.errors import PolicyError
from custodes.policy import Policy, RenderedConfig, RenderedFile, load_policy, render_service
from custodes.secrets import SecretMaterial


@pytest.fixture(scope="module")
def api(full_policy: Policy, full_materials: dict[str, SecretMaterial]) -> RenderedConfig:
    return render_service(full_policy, "api", full_materials)


def files(config: RenderedConfig) -> dict[str, str]:
    return {f.path: f.content.decode() for f in config.files}


def test_ascii_default_hex_base64(api: RenderedConfig, full_materials: dict[str, SecretMaterial]) -> None:
    password = full_materials["db_password"].secret_value().reveal().decode()
    assert re.fullmatch(r"[A-Za-z0-9]{32}", password)
    assert api.command == ("python3", "app.py", "--db-password", password)
    assert api.environment["DB_URL"] == f"postgresql://app:{password}@db/app"
    assert bytes.fromhex(api.environment["DB_PASSWORD_HEX"]).decode() == password
    assert base64.b64decode(api.environment["DB_PASSWORD_B64"]).decode() == password
    assert files(api)["/etc/app/config.ini"] == f"[db]\npassword = {password}\n"


def test_binary_default_is_hex(api: RenderedConfig) -> None:
    raw = bytes.fromhex(api.environment["SESSION_KEY"])
    assert len(raw) == 32
    assert api.environment["SESSION_KEY_HEX"] == raw.hex()
    assert base64.b64decode(api.environment["SESSION_KEY_B64"]) == raw


def test_explicit_values(api: RenderedConfig) -> None:
    assert api.environment["LICENSE"] == "ACME-1234-5678"
    assert bytes.fromhex(api.environment["LICENSE_HEX"]) == b"ACME-1234-5678"
    assert base64.b64decode(api.environment["LICENSE_B64"]) == b"ACME-1234-5678"
    assert base64.b64decode(api.environment["WRAPPING_KEY_B64"]) == bytes.fromhex("00ff10aa")


def test_private_key_formats(api: RenderedConfig) -> None:
    out = files(api)
    key = serialization.load_pem_private_key(out["/run/secrets/signing.key"].encode(), password=None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    assert out["/run/secrets/signing.pem"] == out["/run/secrets/signing2.key"] == out["/run/secrets/signing.key"]
    assert out["/run/secrets/signing.key"].startswith("-----BEGIN PRIVATE KEY-----")
    public = serialization.load_pem_public_key(out["/run/secrets/signing.pub"].encode())
    assert public == key.public_key()


def test_certificate_formats_and_chain_verify(api: RenderedConfig) -> None:
    out = files(api)
    leaf = x509.load_pem_x509_certificate(out["/run/secrets/tls.crt"].encode())
    assert out["/run/secrets/tls.pem"] == out["/run/secrets/tls2.crt"] == out["/run/secrets/tls.crt"]
    key = serialization.load_pem_private_key(out["/run/secrets/tls.key"].encode(), password=None)
    assert key.public_key() == leaf.public_key()
    assert serialization.load_pem_public_key(out["/run/secrets/tls.pub"].encode()) == leaf.public_key()
    chain = x509.load_pem_x509_certificates(out["/run/secrets/tls-chain.pem"].encode())
    root = x509.load_pem_x509_certificate(out["/etc/app/ca.crt"].encode())
    assert [c.subject.rfc4514_string() for c in chain] == [
        "CN=api.clinic.example",
        "CN=clinic issuing CA",
        "CN=clinic root CA",
    ]
    assert chain[0] == leaf
    assert chain[-1] == root
    assert x509.load_pem_x509_certificates(out["/etc/app/ca-chain.pem"].encode()) == chain[1:]
    assert isinstance(
        serialization.load_pem_private_key(out["/etc/app/ca.key"].encode(), password=None), ec.EllipticCurvePrivateKey
    )
    builder = PolicyBuilder().store(Store([root])).time(NOW + timedelta(hours=1))
    for name in (x509.DNSName("api.clinic.example"), x509.DNSName("x.api.clinic.example"),
                 x509.IPAddress(ipaddress.ip_address("fd00::1"))):
        verified = builder.build_server_verifier(name).verify(leaf, chain[1:2])
        assert verified[-1] == root


def test_worker_gets_a_client_certificate(full_policy: Policy, full_materials: dict[str, SecretMaterial]) -> None:
    worker = render_service(full_policy, "worker", full_materials)
    cert = x509.load_pem_x509_certificate(worker.environment["CLIENT_CERT"].encode())
    root = full_materials["ca"].certificate
    assert root is not None
    verified = PolicyBuilder().store(Store([root])).time(NOW).build_client_verifier().verify(cert, [])
    assert verified.chain[-1] == root
    assert worker.files == ()
    assert worker.cwd is None


def test_render_needs_only_the_service_secrets(full_policy: Policy) -> None:
    materials = make_materials(full_policy, ["ca", "worker_cert"])
    assert render_service(full_policy, "worker", materials).command == ("python3", "worker.py")


def test_missing_or_mismatched_material_is_refused(full_materials: dict[str, SecretMaterial]) -> None:
    policy = load_policy(MINIMAL)
    with pytest.raises(PolicyError) as info:
        render_service(policy, "api", {})
    assert info.value.code == "SECRET_MISSING"
    with pytest.raises(PolicyError) as info:
        render_service(policy, "api", {"pw": full_materials["session_key"]})
    assert info.value.code == "SECRET_MISSING"
    with pytest.raises(PolicyError) as info:
        render_service(policy, "db", {})
    assert info.value.code == "SERVICE_NOT_FOUND"


def test_json_round_trip(api: RenderedConfig) -> None:
    data = api.to_json_bytes()
    again = RenderedConfig.from_json_bytes(data)
    assert again == api
    assert again.to_json_bytes() == data
    assert again.environment["LICENSE"] == "ACME-1234-5678"


@pytest.mark.parametrize(
    "data",
    [b"", b"[]", b"{}", b'{"format": "custodes-config/v1"}', b"\xff", b"[" * 100000],
    ids=["empty", "list", "object", "fields missing", "not utf-8", "deep"],
)
def test_malformed_json_is_refused(data: bytes) -> None:
    with pytest.raises(PolicyError) as info:
        RenderedConfig.from_json_bytes(data)
    assert info.value.code == "CONFIG_INVALID"


def test_tampered_field_is_refused(api: RenderedConfig) -> None:
    data = api.to_json_bytes().replace(b'"mode":384', b'"mode":"384"', 1)
    with pytest.raises(PolicyError):
        RenderedConfig.from_json_bytes(data)


def test_rendered_config_is_redacted(api: RenderedConfig, full_materials: dict[str, SecretMaterial]) -> None:
    password = full_materials["db_password"].secret_value().reveal().decode()
    for text in (repr(api), str(api), f"{api}", repr(api.files[0]), str(RenderedFile("/a", 0o600, b"s3cret"))):
        assert password not in text
        assert "s3cret" not in text
        assert "PRIVATE KEY" not in text
    with pytest.raises(TypeError):
        pickle.dumps(api)
