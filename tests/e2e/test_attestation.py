"""End to end: a real CAS process over TLS, a policy with every secret kind, simulated workloads."""

from __future__ import annotations

import base64
import ipaddress
import textwrap

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from _support import CasProcess, Owner, Workload
from custodes.ledger.keys import public_pem
from custodes.policy import load_policy


def full_policy(owner: Owner, bob: Owner, measurement: str, predecessor: str | None = None, extra_env: str = "") -> str:
    return textwrap.dedent(
        f"""\
        name: e2e/every-kind
        predecessor: {predecessor or "~"}
        keys:
          owner: "{owner.fingerprint}"
          bob: "{bob.fingerprint}"
        access:
          read: [owner]
          update: {{signers: [owner, bob], threshold: 1}}
        security:
          allow_simulated: true
        services:
          - name: api
            measurements:
              - {{tee: simulated, measurement: "{measurement}"}}
            command: [python3, app.py, --password, "$$custodes::password$$", --token-hex, "$$custodes::token:hex$$"]
            environment:
              PASSWORD_B64: "$$custodes::password:base64$$"
              TOKEN_B64: "$$custodes::token:base64$$"
              EXPLICIT: "$$custodes::explicit$$"{extra_env}
            files:
              - {{path: /run/secrets/signing.pem, mode: "0600", content: "$$custodes::signing$$"}}
              - {{path: /run/secrets/signing.pub, mode: "0644", content: "$$custodes::signing:public$$"}}
              - {{path: /run/secrets/ed.pem, mode: "0600", content: "$$custodes::ed:key$$"}}
              - {{path: /run/secrets/p384.pem, mode: "0600", content: "$$custodes::p384$$"}}
              - {{path: /run/secrets/rsa.pem, mode: "0600", content: "$$custodes::rsa$$"}}
              - {{path: /run/secrets/root.crt, mode: "0644", content: "$$custodes::root_ca:crt$$"}}
              - {{path: /run/secrets/tls.crt, mode: "0644", content: "$$custodes::tls:crt$$"}}
              - {{path: /run/secrets/tls.key, mode: "0600", content: "$$custodes::tls:key$$"}}
              - {{path: /run/secrets/chain.pem, mode: "0644", content: "$$custodes::tls:chain$$"}}
              - {{path: /etc/app/app.ini, mode: "0640", content: "password=$$custodes::password$$\\n"}}
            cwd: /srv/app
        secrets:
          - {{name: password, kind: ascii, size: 20}}
          - {{name: token, kind: binary, size: 16}}
          - {{name: signing, kind: private-key, algorithm: ec-p256}}
          - {{name: ed, kind: private-key, algorithm: ed25519}}
          - {{name: p384, kind: private-key, algorithm: ec-p384}}
          - {{name: rsa, kind: private-key, algorithm: rsa-3072}}
          - {{name: root_ca, kind: x509-ca, common_name: "e2e root"}}
          - {{name: issuing_ca, kind: x509-ca, common_name: "e2e issuing", issuer: root_ca}}
          - {{name: tls, kind: x509, issuer: issuing_ca, common_name: api.e2e.example,
              dns: [api.e2e.example], ip: [127.0.0.1], usage: [server, client]}}
          - {{name: explicit, kind: explicit, value: not-so-secret}}
        """
    )


def _files(config):
    return {f.path: f for f in config.files}


@pytest.fixture(scope="module")
def people() -> tuple[Owner, Owner]:
    return Owner("owner"), Owner("bob")


def test_workload_receives_exactly_what_the_policy_renders(cas: CasProcess, workload: Workload, people) -> None:
    owner, bob = people
    text = full_policy(owner, bob, workload.measurement)
    with cas.client() as client:
        created = client.put_policy(
            text,
            name="e2e/every-kind",
            policy_hash=_hash(text),
            predecessor=None,
            signers=[("owner", owner.key)],
            create=True,
        )
        assert any("explicit" in w for w in created["warnings"])
        first = client.attest("e2e/every-kind", "api", workload.provider())
        second = client.attest("e2e/every-kind", "api", workload.provider())

    config = first.rendered()
    password = config.command[3]
    token_hex = config.command[5]
    assert config.command[:3] == ("python3", "app.py", "--password")
    assert config.command[4] == "--token-hex"
    assert len(password) == 20
    assert password.isalnum()
    assert len(bytes.fromhex(token_hex)) == 16
    assert config.environment["PASSWORD_B64"] == base64.b64encode(password.encode()).decode()
    assert base64.b64decode(config.environment["TOKEN_B64"]) == bytes.fromhex(token_hex)
    assert config.environment["EXPLICIT"] == "not-so-secret"
    assert set(config.environment) == {"PASSWORD_B64", "TOKEN_B64", "EXPLICIT"}
    assert config.cwd == "/srv/app"

    files = _files(config)
    assert {p: f.mode for p, f in files.items()} == {
        "/run/secrets/signing.pem": 0o600,
        "/run/secrets/signing.pub": 0o644,
        "/run/secrets/ed.pem": 0o600,
        "/run/secrets/p384.pem": 0o600,
        "/run/secrets/rsa.pem": 0o600,
        "/run/secrets/root.crt": 0o644,
        "/run/secrets/tls.crt": 0o644,
        "/run/secrets/tls.key": 0o600,
        "/run/secrets/chain.pem": 0o644,
        "/etc/app/app.ini": 0o640,
    }
    assert files["/etc/app/app.ini"].content == f"password={password}\n".encode()
    signing = serialization.load_pem_private_key(files["/run/secrets/signing.pem"].content, None)
    assert public_pem(signing.public_key()).encode() == files["/run/secrets/signing.pub"].content
    assert serialization.load_pem_private_key(files["/run/secrets/rsa.pem"].content, None).key_size == 3072

    root = x509.load_pem_x509_certificate(files["/run/secrets/root.crt"].content)
    leaf = x509.load_pem_x509_certificate(files["/run/secrets/tls.crt"].content)
    chain = x509.load_pem_x509_certificates(files["/run/secrets/chain.pem"].content)
    assert chain[0] == leaf
    assert chain[-1] == root
    assert len(chain) == 3
    leaf.verify_directly_issued_by(chain[1])
    chain[1].verify_directly_issued_by(root)
    tls_key = serialization.load_pem_private_key(files["/run/secrets/tls.key"].content, None)
    assert public_pem(tls_key.public_key()) == public_pem(leaf.public_key())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["api.e2e.example"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}

    # A second instance sees identical secrets.
    assert second.rendered() == config
    # The EAR token is signed by the CAS and names the policy version.
    claims = jwt.decode(first.attestation_token, options={"verify_signature": False})
    assert claims["submods"]["workload"]["ear.appraisal-policy-id"] == f"e2e/every-kind@{first.policy_version}"
    assert claims["submods"]["workload"]["ear.status"] == "warning"  # simulated evidence is never "affirming"

    # After an update that keeps the secrets (a new env var, signed by the other signer), they are unchanged.
    updated = full_policy(
        owner,
        bob,
        workload.measurement,
        predecessor=first.policy_version,
        extra_env="\n" + " " * 14 + 'EXTRA: "$$custodes::password:hex$$"',
    )
    with cas.client() as client:
        client.put_policy(
            updated,
            name="e2e/every-kind",
            policy_hash=_hash(updated),
            predecessor=first.policy_version,
            signers=[("bob", bob.key)],
            create=False,
        )
        third = client.attest("e2e/every-kind", "api", workload.provider())
    assert third.policy_version != first.policy_version
    after = third.rendered()
    assert after.command == config.command
    assert after.files == config.files
    assert after.environment["EXTRA"] == password.encode().hex()


def test_policy_show_returns_the_stored_policy_to_a_reader(cas: CasProcess, workload: Workload, people) -> None:
    owner, bob = people
    text = full_policy(owner, bob, workload.measurement).replace("e2e/every-kind", "e2e/show")
    with cas.client() as client:
        client.put_policy(text, name="e2e/show", policy_hash=_hash(text), predecessor=None,
                          signers=[("owner", owner.key)], create=True)
        shown = client.read_policy("e2e/show", "owner", owner.key)
    assert shown["name"] == "e2e/show"
    assert shown["policy"] == text
    assert shown["hash"] == _hash(text)


def _hash(text: str) -> str:
    return load_policy(text).hash


def test_a_cas_trusting_a_simulated_vendor_says_so_at_start_and_in_every_verdict(
    cas: CasProcess, workload: Workload, people
) -> None:
    owner, bob = people
    assert any("SIMULATED evidence is ACCEPTED" in line for line in cas.stderr_lines)
    text = full_policy(owner, bob, workload.measurement).replace("e2e/every-kind", "e2e/loud")
    with cas.client() as client:
        client.put_policy(text, name="e2e/loud", policy_hash=_hash(text), predecessor=None,
                          signers=[("owner", owner.key)], create=True)
        result = client.attest("e2e/loud", "api", workload.provider())
    assert any("SIMULATED" in warning for warning in result.verdict["warnings"])
