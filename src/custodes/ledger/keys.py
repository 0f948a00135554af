"""Signing keys of people and tools (policy owners, board members): ``custodes key new``.

Keys are Ed25519 by default (ECDSA P-256 is accepted too). A key is referred to in a policy by its public PEM or by
its fingerprint ``sha256:<hex of SHA-256(DER SubjectPublicKeyInfo)>``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from custodes.errors import CustodesError
from custodes.ledger.note import PrivateKey, PublicKey

__all__ = [
    "fingerprint",
    "generate_key",
    "load_private_key",
    "load_public_key",
    "public_pem",
    "split_public_pems",
    "write_key_pair",
]


def generate_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def public_pem(key: PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def fingerprint(key: PublicKey) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def split_public_pems(text: str) -> list[str]:
    """Split a bundle of concatenated public key PEMs (a NOTE.pub file, the Custodes-Keys header)."""
    end = "-----END PUBLIC KEY-----"
    return [part.strip() + "\n" + end + "\n" for part in text.split(end) if part.strip()]


def load_public_key(pem: str | bytes) -> PublicKey:
    """Load an Ed25519 or P-256 public key from PEM. Raises :class:`CustodesError` ``KEY_INVALID``."""
    try:
        key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    except ValueError:
        raise CustodesError("KEY_INVALID", "not a PEM public key") from None
    except UnsupportedAlgorithm:  # a well-formed key of an algorithm or curve cryptography does not know
        raise CustodesError("KEY_INVALID", "keys must be Ed25519 or ECDSA P-256") from None
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise CustodesError("KEY_INVALID", "keys must be Ed25519 or ECDSA P-256")


def load_private_key(path: Path) -> PrivateKey:
    """Load a private key file written by :func:`write_key_pair`."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        raise CustodesError("KEY_INVALID", f"cannot load a private key from {path}") from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise CustodesError("KEY_INVALID", "keys must be Ed25519 or ECDSA P-256")


def write_key_pair(directory: Path, name: str) -> tuple[Path, Path]:
    """Create ``NAME.key`` (0600, never overwritten) and ``NAME.pub`` in ``directory``."""
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise CustodesError("KEY_NAME_INVALID", "key names use letters, digits, '-', '_' and '.' only")
    directory.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    private_path, public_path = directory / f"{name}.key", directory / f"{name}.pub"
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CustodesError("KEY_EXISTS", f"{private_path} exists; refusing to overwrite a key") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public_path.write_text(public_pem(key.public_key()))
    return private_path, public_path
