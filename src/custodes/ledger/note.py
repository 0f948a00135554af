"""C2SP signed notes (c2sp.org/signed-note): one text, any number of signatures.

custodes uses them for proposals and approvals (DESIGN.md §4, docs/trust-design.md §7): a k-of-n approval is one
file with k signature lines. Format::

    <text, UTF-8, ending in "\\n">
    <blank line>
    — <key name> <base64(key_id[4] || signature)>\\n      (one line per signature; "—" is U+2014)

``key_id = SHA-256(name || 0x0A || sig_type || public_key)[:4]``. Signature types used here: ``0x01`` Ed25519
over the text (public key = 32 raw bytes), ``0x02`` ECDSA P-256/SHA-256 over the text (public key = DER SPKI,
signature = DER). Verifiers ignore signatures by unknown keys, reject a note in which a known key's signature fails,
and reject a note that no known key signed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from custodes.errors import CustodesError

__all__ = ["NoteError", "NoteKey", "SignedNote", "add_signature", "parse_note", "verify_note"]

SIG_ED25519 = 0x01
SIG_ECDSA = 0x02
_DASH = "\u2014 "
MAX_NOTE_BYTES = 1 << 20
MAX_SIGNATURES = 64

PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


class NoteError(CustodesError):
    """A signed note is malformed or its signatures do not verify."""

    code = "NOTE_INVALID"


@dataclass(frozen=True, slots=True)
class NoteKey:
    """A named verification key."""

    name: str
    public_key: PublicKey

    def __post_init__(self) -> None:
        if not self.name or any(c.isspace() or c == "+" for c in self.name):
            raise ValueError("key names are non-empty and contain no spaces or '+'")
        if isinstance(self.public_key, ec.EllipticCurvePublicKey) and not isinstance(
            self.public_key.curve, ec.SECP256R1
        ):
            raise ValueError("ECDSA note keys must be P-256")

    @property
    def sig_type(self) -> int:
        return SIG_ED25519 if isinstance(self.public_key, ed25519.Ed25519PublicKey) else SIG_ECDSA

    @property
    def key_bytes(self) -> bytes:
        if isinstance(self.public_key, ed25519.Ed25519PublicKey):
            return self.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return self.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def key_id(self) -> bytes:
        return hashlib.sha256(self.name.encode() + b"\n" + bytes([self.sig_type]) + self.key_bytes).digest()[:4]

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            if isinstance(self.public_key, ed25519.Ed25519PublicKey):
                self.public_key.verify(signature, message)
            else:
                self.public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True)
class SignedNote:
    """A parsed note: its text and its (name, key_id, signature) lines, not yet verified."""

    text: str
    signatures: tuple[tuple[str, bytes, bytes], ...]

    def render(self) -> str:
        lines = [f"{_DASH}{name} {base64.b64encode(kid + sig).decode()}\n" for name, kid, sig in self.signatures]
        return self.text + "\n" + "".join(lines)


def parse_note(data: str | bytes) -> SignedNote:
    """Parse a signed note. Raises :class:`NoteError` (``NOTE_MALFORMED``)."""
    if isinstance(data, bytes):
        if len(data) > MAX_NOTE_BYTES:
            raise NoteError("NOTE_MALFORMED", "note is too large")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("NOTE_MALFORMED", "note is not UTF-8") from None
    if len(data) > MAX_NOTE_BYTES:
        raise NoteError("NOTE_MALFORMED", "note is too large")
    if any(ord(c) < 0x20 and c != "\n" for c in data) or "\x7f" in data:
        raise NoteError("NOTE_MALFORMED", "note contains control characters")
    split = data.rfind("\n\n")
    if split < 0 or not data.endswith("\n"):
        raise NoteError("NOTE_MALFORMED", "note has no signature block")
    text, block = data[: split + 1], data[split + 2 :]
    signatures = []
    for line in block[:-1].split("\n"):
        if not line.startswith(_DASH):
            raise NoteError("NOTE_MALFORMED", "malformed signature line")
        parts = line[len(_DASH) :].split(" ")
        if len(parts) != 2 or not parts[0]:
            raise NoteError("NOTE_MALFORMED", "malformed signature line")
        try:
            raw = base64.b64decode(parts[1], validate=True)
        except binascii.Error:
            raise NoteError("NOTE_MALFORMED", "signature is not base64") from None
        if len(raw) < 5:
            raise NoteError("NOTE_MALFORMED", "signature too short")
        signatures.append((parts[0], raw[:4], raw[4:]))
    if not signatures or len(signatures) > MAX_SIGNATURES:
        raise NoteError("NOTE_MALFORMED", f"a note carries 1..{MAX_SIGNATURES} signatures")
    return SignedNote(text, tuple(signatures))


def sign_text(text: str, name: str, private_key: PrivateKey) -> tuple[str, bytes, bytes]:
    """One signature line for ``text`` by ``private_key`` under key name ``name``."""
    if not text.endswith("\n") or "\n\n" in text:
        raise ValueError("note text must end in a newline and contain no blank line")
    key = NoteKey(name, private_key.public_key())
    message = text.encode()
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        sig = private_key.sign(message)
    else:
        sig = private_key.sign(message, ec.ECDSA(hashes.SHA256()))
    return (name, key.key_id, sig)


def add_signature(note: SignedNote | str, name: str, private_key: PrivateKey) -> SignedNote:
    """Sign a note's text (a plain text starts a new note) and append the line."""
    if isinstance(note, str):
        return SignedNote(note, (sign_text(note, name, private_key),))
    line = sign_text(note.text, name, private_key)
    kept = tuple(s for s in note.signatures if (s[0], s[1]) != (line[0], line[1]))
    return SignedNote(note.text, (*kept, line))


def verify_note(note: SignedNote, keys: Iterable[NoteKey]) -> list[str]:
    """Verify the note against known keys. Returns the names of the known keys that signed it, one per distinct
    public key: a key known under two names (or a name signing twice) counts once, under the first name it signed as.

    Raises :class:`NoteError`: ``NOTE_SIGNATURE_INVALID`` if a known key's signature fails,
    ``NOTE_UNSIGNED`` if no known key signed it.
    """
    known = {(k.name, k.key_id): k for k in keys}
    message = note.text.encode()
    signers: list[str] = []
    counted: set[tuple[int, bytes]] = set()  # (sig_type, key_bytes): the public key itself, whatever its name
    for name, kid, sig in note.signatures:
        key = known.get((name, kid))
        if key is None:
            continue
        if not key.verify(sig, message):
            raise NoteError("NOTE_SIGNATURE_INVALID", f"the signature by key {name!r} does not verify")
        identity = (key.sig_type, key.key_bytes)
        if name not in signers and identity not in counted:
            signers.append(name)
            counted.add(identity)
    if not signers:
        raise NoteError("NOTE_UNSIGNED", "the note carries no signature by a known key")
    return signers


def note_fields(text: str, header: str, names: Sequence[str]) -> dict[str, str]:
    """Parse a ``header`` line followed by exactly the ``name value`` lines in ``names``, in order."""
    lines = text.rstrip("\n").split("\n")
    if lines[0] != header or len(lines) != len(names) + 1:
        raise NoteError("NOTE_MALFORMED", f"expected a {header} note with fields {', '.join(names)}")
    fields: dict[str, str] = {}
    for line, name in zip(lines[1:], names, strict=True):
        key, _, value = line.partition(" ")
        if key != name or not value:
            raise NoteError("NOTE_MALFORMED", f"expected field {name!r} in the {header} note")
        fields[key] = value
    return fields
