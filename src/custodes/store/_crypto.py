"""Key derivation and the store's cryptographic checks.

One 32-byte root secret yields, by HKDF-SHA256 with distinct ``info`` strings, three independent values: the
AES-256-GCM data key, the HMAC-SHA256 key of the head, and a key-check value. The key-check value is stored in the
head so that a wrong key is told apart from tampering; being an independent HKDF output, it reveals nothing about
the other two keys.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from custodes.store._codec import HASH_LEN, lp, u64
from custodes.store.errors import StoreKeyInvalidError, StoreTamperedError

__all__ = [
    "GENESIS_DIGEST",
    "NONCE_LEN",
    "ROOT_KEY_LEN",
    "StoreKeys",
    "chain_digest",
    "index_root",
    "sha256",
]

ROOT_KEY_LEN = 32
NONCE_LEN = 12
_TAG_LEN = 16
_SALT = b"custodes/store/v1"
GENESIS_DIGEST = hashlib.sha256(b"custodes/store/v1/genesis").digest()


def sha256(data: bytes) -> bytes:
    """SHA-256 of ``data``."""
    return hashlib.sha256(data).digest()


def _derive(root_key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=info).derive(root_key)


def chain_digest(prev: bytes, epoch: int, ver: int, body: bytes) -> bytes:
    """``digest_v = SHA-256(digest_{v-1} | epoch | v | SHA-256(body))`` (fixed-width fields, domain-separated)."""
    return sha256(b"custodes/store/v1/chain" + prev + u64(epoch) + u64(ver) + sha256(body))


def index_root(bucket_hashes: tuple[bytes, ...]) -> bytes:
    """The root that pins every bucket: SHA-256 over the concatenated bucket-blob hashes."""
    return sha256(b"custodes/store/v1/root" + b"".join(bucket_hashes))


class StoreKeys:
    """The keys derived from the storage root secret. Its repr is redacted; it never leaves the process."""

    __slots__ = ("_aead", "_mac_key", "kcv")

    def __init__(self, root_key: bytes) -> None:
        if not isinstance(root_key, bytes) or len(root_key) != ROOT_KEY_LEN:
            raise StoreKeyInvalidError(message=f"the storage root key must be {ROOT_KEY_LEN} bytes")
        self._aead = AESGCM(_derive(root_key, b"custodes/store/v1/data-key"))
        self._mac_key = _derive(root_key, b"custodes/store/v1/head-mac-key")
        self.kcv = _derive(root_key, b"custodes/store/v1/key-check-value")

    def __repr__(self) -> str:
        return "StoreKeys(<redacted>)"

    def seal(self, plaintext: bytes, ad: bytes) -> bytes:
        """AES-256-GCM with a fresh random 96-bit nonce; returns ``nonce | ciphertext | tag``."""
        nonce = os.urandom(NONCE_LEN)
        return nonce + self._aead.encrypt(nonce, plaintext, ad)

    def open(self, blob: bytes, ad: bytes, what: str) -> bytes:
        """Decrypt and authenticate a :meth:`seal` output; any failure is STORE_TAMPERED."""
        if len(blob) < NONCE_LEN + _TAG_LEN:
            raise StoreTamperedError(message=f"{what}: ciphertext too short")
        try:
            return self._aead.decrypt(blob[:NONCE_LEN], blob[NONCE_LEN:], ad)
        except InvalidTag as e:
            raise StoreTamperedError(message=f"{what}: authentication failed") from e

    def head_mac(self, epoch: int, ver: int, digest: bytes, root: bytes, kcv: bytes) -> bytes:
        """HMAC-SHA256 over the head row's fields (length-prefixed)."""
        msg = lp(b"custodes/store/v1/head", u64(epoch), u64(ver), digest, root, kcv)
        return hmac.new(self._mac_key, msg, hashlib.sha256).digest()

    def check_head_mac(self, *, epoch: int, ver: int, digest: bytes, root: bytes, kcv: bytes, mac: bytes) -> None:
        """Raise STORE_TAMPERED unless ``mac`` is the head MAC of the fields (constant-time compare)."""
        expected = self.head_mac(epoch, ver, digest, root, kcv)
        if len(mac) != HASH_LEN or not hmac.compare_digest(expected, mac):
            raise StoreTamperedError(message="head MAC does not verify")

    def kcv_matches(self, kcv: bytes) -> bool:
        """Whether a stored key-check value belongs to this key."""
        return hmac.compare_digest(self.kcv, kcv)
