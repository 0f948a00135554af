"""Generate secret material from a policy's secret spec.

Randomness comes only from :mod:`secrets` (``os.urandom``); keys and certificates come from ``cryptography``.
Time is an argument: certificate validity is computed from ``now``, never from the host clock.
"""

from __future__ import annotations

import secrets as _random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from custodes.clock import require_utc
from custodes.errors import CustodesError
from custodes.secrets._material import PrivateKey, SecretMaterial
from custodes.secrets._secret import Secret
from custodes.secrets._x509 import issue_certificate

if TYPE_CHECKING:
    from custodes.policy import SecretSpec

__all__ = ["generate_private_key", "generate_secret"]


def generate_private_key(algorithm: str) -> PrivateKey:
    """A fresh private key: ``ec-p256``, ``ec-p384``, ``ed25519`` or ``rsa-3072``."""
    if algorithm == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "rsa-3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise CustodesError("SECRET_SPEC_INVALID", f"unknown key algorithm {algorithm!r}")


def _pkcs8(key: PrivateKey) -> Secret:
    return Secret(
        key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def generate_secret(spec: SecretSpec, *, issuer: SecretMaterial | None, now: datetime) -> SecretMaterial:
    """Generate fresh material for one secret.

    Args:
        spec: the secret's spec from a validated policy.
        issuer: the issuer's material for ``x509`` and issued ``x509-ca`` secrets; ``None`` otherwise.
        now: the current time, aware UTC (certificate validity starts 5 minutes before it).

    Raises:
        CustodesError: ``SECRET_ISSUER_INVALID`` when ``issuer`` does not fit the spec or has expired.
    """
    now = require_utc(now)
    kind = spec.kind
    wants_issuer = kind == "x509" or (kind == "x509-ca" and spec.issuer is not None)
    if (issuer is not None) != wants_issuer:
        state = "needs" if wants_issuer else "takes no"
        raise CustodesError("SECRET_ISSUER_INVALID", f"secret {spec.name!r} {state} issuer material")
    if issuer is not None and issuer.kind != "x509-ca":
        raise CustodesError("SECRET_ISSUER_INVALID", f"issuer of {spec.name!r} is not x509-ca material")

    if kind == "ascii":
        text = "".join(_random.choice(spec.alphabet) for _ in range(spec.size))  # unbiased: randbelow
        return SecretMaterial(kind, value=Secret(text.encode("ascii")))
    if kind == "binary":
        return SecretMaterial(kind, value=Secret(_random.token_bytes(spec.size)))
    if kind == "explicit":
        return SecretMaterial(kind, value=Secret(spec.decoded()))
    key = generate_private_key(spec.algorithm)
    if kind == "private-key":
        return SecretMaterial(kind, key=_pkcs8(key))
    valid_for: timedelta = spec.valid_for
    if kind == "x509-ca":
        cert = issue_certificate(
            key, common_name=spec.common_name, issuer=issuer, now=now, valid_for=valid_for, ca=True, name=spec.name
        )
    else:
        cert = issue_certificate(
            key,
            common_name=spec.common_name or (spec.dns or spec.ip)[0],
            issuer=issuer,
            now=now,
            valid_for=valid_for,
            ca=False,
            name=spec.name,
            dns=spec.dns,
            ip=spec.ip,
            usage=spec.usage,
        )
    chain = [cert.public_bytes(serialization.Encoding.DER), *(issuer.chain if issuer is not None else ())]
    return SecretMaterial(kind, key=_pkcs8(key), chain=chain)
