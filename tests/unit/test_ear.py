"""EAR tokens verify with an independent JWT library and carry the claims given."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from custodes.server.ear import sign_ear


def test_ear_token_verifies_with_pyjwt() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    claims = {"eat_profile": "tag:github.com,2023:veraison/ear", "iat": 1, "submods": {"w": {"ear.status": "warning"}}}
    token = sign_ear(claims, key)
    assert jwt.decode(token, key.public_key(), algorithms=["EdDSA"]) == claims


def test_a_changed_ear_token_does_not_verify() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    header, _payload, sig = sign_ear({"iat": 1}, key).split(".")
    forged = ".".join([header, jwt.utils.base64url_encode(b'{"iat":2}').decode(), sig])
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(forged, key.public_key(), algorithms=["EdDSA"])
