"""Secrets across policy updates: kept while their definition is kept, generated anew when it changes, and a leaf
certificate reissued when its CA is (a real CAS process)."""

from __future__ import annotations

import textwrap

from cryptography import x509

from _support import CasProcess, Owner, Workload, put_policy

NAME = "e2e/secret-lifecycle"


def policy(owner: Owner, measurement: str, *, ca_name: str, password_size: int = 24,
           predecessor: str | None = None) -> str:
    return textwrap.dedent(
        f"""\
        name: {NAME}
        predecessor: {predecessor or "~"}
        keys: {{owner: "{owner.fingerprint}"}}
        access: {{read: [owner], update: {{signers: [owner]}}}}
        security: {{allow_simulated: true}}
        services:
          - name: app
            measurements: [{{tee: simulated, measurement: "{measurement}"}}]
            command: [python3, app.py, "$$custodes::password$$"]
            files:
              - {{path: /run/ca.pem, content: "$$custodes::ca$$"}}
              - {{path: /run/leaf.pem, content: "$$custodes::leaf$$"}}
        secrets:
          - {{name: password, kind: ascii, size: {password_size}}}
          - {{name: ca, kind: x509-ca, common_name: "{ca_name}"}}
          - {{name: leaf, kind: x509, issuer: ca, dns: [app.example]}}
        """
    )


def served(cas: CasProcess, workload: Workload) -> tuple[str, x509.Certificate, x509.Certificate]:
    with cas.client() as client:
        attestation = client.attest(NAME, "app", workload.provider())
    files = {f.path: f.content for f in attestation.rendered().files}
    ca = x509.load_pem_x509_certificate(files["/run/ca.pem"])
    leaf = x509.load_pem_x509_certificate(files["/run/leaf.pem"])
    return attestation.config["command"][2], ca, leaf


def test_secrets_follow_their_definition_and_a_leaf_follows_its_ca(
    cas: CasProcess, owner: Owner, workload: Workload
) -> None:
    m = workload.measurement
    with cas.client() as client:
        v1 = put_policy(client, policy(owner, m, ca_name="clinic CA"), owner)
    password1, ca1, leaf1 = served(cas, workload)
    leaf1.verify_directly_issued_by(ca1)

    # An update that changes only the CA's definition: the password is kept, the CA is new, the leaf follows it.
    with cas.client() as client:
        v2 = put_policy(client, policy(owner, m, ca_name="clinic CA 2026", predecessor=v1), owner, create=False)
    password2, ca2, leaf2 = served(cas, workload)
    assert password2 == password1
    assert ca2.public_key() != ca1.public_key()
    leaf2.verify_directly_issued_by(ca2)
    assert leaf2.serial_number != leaf1.serial_number

    # An update that changes only the password's definition: a new password; the CA and leaf are kept.
    with cas.client() as client:
        put_policy(client, policy(owner, m, ca_name="clinic CA 2026", password_size=32, predecessor=v2), owner,
                   create=False)
    password3, ca3, leaf3 = served(cas, workload)
    assert len(password3) == 32
    assert (ca3, leaf3) == (ca2, leaf2)
