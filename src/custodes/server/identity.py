"""The CAS's own keys: a TLS key with its certificate, and an Ed25519 signing key for attestation results.

The keys are made by the CAS at its first start and kept in its encrypted store, so they never sit in a plain
file. In simulation the TLS certificate is self-signed and written to ``DATA_DIR/cas-cert.pem`` for clients to pin.
(CAS self-attestation, which binds these keys into TEE evidence, is a later issue: DESIGN.md §4 "CAS identity".)
"""

from __future__ import annotations

import ipaddress
import json
import os
import ssl
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from custodes.store import SqliteStore

__all__ = ["CasIdentity", "load_or_create_identity"]

_RECORD = "cas/identity"


@dataclass(frozen=True)
class CasIdentity:
    tls_key: ec.EllipticCurvePrivateKey
    tls_cert_pem: bytes
    signing_key: ed25519.Ed25519PrivateKey

    def __repr__(self) -> str:
        return "CasIdentity(<keys>)"

    def ssl_context(self) -> ssl.SSLContext:
        """A TLS 1.3-only server context. The key touches disk only in a 0600 temp file removed at once."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        pem = self.tls_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd, path = tempfile.mkstemp(prefix="custodes-tls-")
        try:
            os.write(fd, pem + self.tls_cert_pem)
            os.close(fd)
            ctx.load_cert_chain(path)
        finally:
            os.unlink(path)
        return ctx


def _self_signed(key: ec.EllipticCurvePrivateKey, hosts: list[str], now: datetime) -> bytes:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(["localhost", "127.0.0.1", "::1", *hosts]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "custodes CAS")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def load_or_create_identity(store: SqliteStore, data_dir: Path, *, hosts: list[str], now: datetime) -> CasIdentity:
    """Load the identity from the store, or make and store one. Writes ``cas-cert.pem`` for pinning."""
    raw = store.get(_RECORD)
    if raw is None:
        tls_key = ec.generate_private_key(ec.SECP256R1())
        signing_key = ed25519.Ed25519PrivateKey.generate()
        cert_pem = _self_signed(tls_key, hosts, now)
        record = {
            "tls_key": tls_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode(),
            "tls_cert": cert_pem.decode(),
            "signing_key": signing_key.private_bytes_raw().hex(),
        }
        store.commit({_RECORD: json.dumps(record).encode()}, expect={_RECORD: None})
    else:
        record = json.loads(raw)
        loaded = serialization.load_pem_private_key(record["tls_key"].encode(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError("stored TLS key is not an EC key")
        tls_key, cert_pem = loaded, record["tls_cert"].encode()
        signing_key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(record["signing_key"]))
    cert_path = data_dir / "cas-cert.pem"
    if not cert_path.exists() or cert_path.read_bytes() != cert_pem:
        tmp = cert_path.with_suffix(".tmp")
        tmp.write_bytes(cert_pem)
        tmp.replace(cert_path)
    return CasIdentity(tls_key, cert_pem, signing_key)
