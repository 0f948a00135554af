"""Issue CA and leaf certificates with the extensions RFC 5280 path validation expects.

CA certificates: BasicConstraints(ca=True) and KeyUsage(keyCertSign, cRLSign), both critical, plus SKI/AKI.
Leaves: BasicConstraints(ca=False), KeyUsage(digitalSignature), SANs, EKU per usage, SKI/AKI.
Validity: ``now - 5 min`` (clock skew) to ``now + valid_for``, clamped to the issuer's ``not_after``.
"""

from __future__ import annotations

import ipaddress
import secrets as _random
from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from custodes.errors import CustodesError
from custodes.secrets._material import PrivateKey, SecretMaterial

__all__ = ["issue_certificate"]

CLOCK_SKEW = timedelta(minutes=5)
_EKU = {"server": ExtendedKeyUsageOID.SERVER_AUTH, "client": ExtendedKeyUsageOID.CLIENT_AUTH}


def _hash_for(signer: PrivateKey) -> hashes.HashAlgorithm | None:
    if isinstance(signer, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(signer, ec.EllipticCurvePrivateKey) and signer.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def issue_certificate(
    key: PrivateKey,
    *,
    common_name: str,
    issuer: SecretMaterial | None,
    now: datetime,
    valid_for: timedelta,
    ca: bool,
    name: str,
    dns: Sequence[str] = (),
    ip: Sequence[str] = (),
    usage: Sequence[str] = ("server",),
) -> x509.Certificate:
    """Sign a certificate for ``key``: self-signed when ``issuer`` is ``None``.

    Raises:
        CustodesError: ``SECRET_ISSUER_INVALID`` when the issuer's certificate has expired at ``now``.
    """
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    not_after = now + valid_for
    public = key.public_key()
    ski = x509.SubjectKeyIdentifier.from_public_key(public)
    if issuer is None:
        signer: PrivateKey = key
        issuer_name = subject
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    else:
        issuer_cert = issuer.certificate
        if issuer_cert is None:
            raise CustodesError("SECRET_ISSUER_INVALID", f"issuer of {name!r} has no certificate")
        if issuer_cert.not_valid_after_utc <= now:
            raise CustodesError("SECRET_ISSUER_INVALID", f"issuer certificate of {name!r} has expired")
        signer = issuer.private_key()
        issuer_name = issuer_cert.subject
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key())  # type: ignore[arg-type]
        not_after = min(not_after, issuer_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public)
        .serial_number(_random.randbits(128) | 1)
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(ski, critical=False)
        .add_extension(aki, critical=False)
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        builder = builder.add_extension(_key_usage(cert_sign=True, encipher=False), critical=True)
    else:
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip]
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        builder = builder.add_extension(
            _key_usage(cert_sign=False, encipher=isinstance(key, rsa.RSAPrivateKey)), critical=True
        )
        builder = builder.add_extension(x509.ExtendedKeyUsage([_EKU[u] for u in usage]), critical=False)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(signer, _hash_for(signer))  # type: ignore[arg-type]


def _key_usage(*, cert_sign: bool, encipher: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=encipher,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
