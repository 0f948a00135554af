"""EAR attestation-result tokens (draft-ietf-rats-ear) as compact JWS with EdDSA (RFC 8037).

Built directly rather than through PyJWT's encoder because it runs once per attestation on the CAS's hot path:
the header is constant, so a token is one JSON dump, two base64url encodings and one Ed25519 signature. Any
standard JWT library verifies it (the tests use PyJWT).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric import ed25519

__all__ = ["sign_ear"]


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


_HEADER = _b64(json.dumps({"alg": "EdDSA", "typ": "JWT"}, separators=(",", ":")).encode())


def sign_ear(claims: dict[str, Any], key: ed25519.Ed25519PrivateKey) -> str:
    """Serialise and sign the claims: ``header.payload.signature``."""
    signing_input = _HEADER + b"." + _b64(orjson.dumps(claims))
    return (signing_input + b"." + _b64(key.sign(signing_input))).decode()
