"""The attestation wire contract shared by the CAS and the workload runtime (DESIGN.md §4). Pure.

1. ``POST /v1/attest/challenge {policy, service}`` returns ``{nonce}``: 32 random bytes, single-use, short-lived.
2. The runtime makes an ephemeral HPKE key pair and binds it into its evidence::

       report_data = SHA-512(b"custodes/attest/v1" || nonce || runtime_public_key)

3. ``POST /v1/attest {policy, service, nonce, evidence: {type, data, aux}, public_key}``. On acceptance the CAS
   seals the rendered config to ``public_key`` with HPKE (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256),
   HKDF-SHA256, AES-256-GCM) and ``info = b"custodes/config/v1\\n" || nonce``, so a sealed config opens only with
   the key that the evidence bound, and only for that challenge.

All binary fields travel as unpadded base64url.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from custodes.errors import CustodesError

__all__ = [
    "ATTEST_DOMAIN",
    "NONCE_BYTES",
    "PUBLIC_KEY_BYTES",
    "RuntimeKey",
    "b64d",
    "b64e",
    "open_config",
    "report_data_for",
    "seal_config",
]

ATTEST_DOMAIN = b"custodes/attest/v1"
CONFIG_INFO = b"custodes/config/v1\n"
NONCE_BYTES = 32
PUBLIC_KEY_BYTES = 32  # an X25519 public key
SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)
SUITE_NAME = "DHKEM-X25519-HKDF-SHA256/HKDF-SHA256/AES-256-GCM"


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64d(text: str, *, field: str = "value", max_len: int = 1 << 20) -> bytes:
    """Decode unpadded (or padded) base64url; a bad value is a client error, never a crash."""
    if not isinstance(text, str) or len(text) > max_len * 4 // 3 + 4:
        raise CustodesError("REQUEST_INVALID", f"{field} is not base64url or too long")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise CustodesError("REQUEST_INVALID", f"{field} is not base64url") from None


def report_data_for(nonce: bytes, public_key: bytes) -> bytes:
    """The 64 bytes a workload must bind into its evidence."""
    return hashlib.sha512(ATTEST_DOMAIN + nonce + public_key).digest()


@dataclass(frozen=True)
class RuntimeKey:
    """The workload's ephemeral HPKE key pair. Its private half never leaves the process."""

    _private: x25519.X25519PrivateKey

    @classmethod
    def generate(cls) -> RuntimeKey:
        return cls(x25519.X25519PrivateKey.generate())

    @property
    def public_bytes(self) -> bytes:
        return self._private.public_key().public_bytes_raw()

    def __repr__(self) -> str:
        return "RuntimeKey(<private>)"

    def open(self, sealed: bytes, nonce: bytes) -> dict[str, Any]:
        return open_config(self._private, nonce, sealed)


def seal_config(public_key: bytes, nonce: bytes, payload: dict[str, Any] | bytes) -> bytes:
    """HPKE-seal the config payload (a JSON object, or its encoding) to the runtime's key, bound to the nonce."""
    try:
        pub = x25519.X25519PublicKey.from_public_bytes(public_key)
    except ValueError:
        raise CustodesError("REQUEST_INVALID", "public_key is not a 32-byte X25519 key") from None
    if not isinstance(payload, bytes):
        payload = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    try:
        return SUITE.encrypt(payload, pub, info=CONFIG_INFO + nonce)
    except ValueError:  # the exchange gives the all-zero secret: a low-order point, which no real key pair has
        raise CustodesError("REQUEST_INVALID", "public_key is a low-order X25519 point") from None


def open_config(private_key: x25519.X25519PrivateKey, nonce: bytes, sealed: bytes) -> dict[str, Any]:
    try:
        data = SUITE.decrypt(sealed, private_key, info=CONFIG_INFO + nonce)
    except (InvalidTag, ValueError):
        raise CustodesError("CONFIG_UNSEAL_FAILED", "the sealed config does not open with this key and nonce") from None
    payload = json.loads(data)
    if not isinstance(payload, dict):
        raise CustodesError("CONFIG_UNSEAL_FAILED", "the sealed config is not a JSON object")
    return payload
