"""A minimal, strict DER reader for the few vendor structures ``cryptography`` does not decode.

Used for the Intel SGX PCK extension (a SEQUENCE of (OID, value) pairs), AMD's VCEK/VLEK extensions, and AMD
leaf certificates with serial number 0, which ``cryptography`` is deprecating (we parse those ourselves so that a
stricter ``cryptography`` release cannot break SNP verification). Only definite lengths are accepted (DER).
Every malformation raises :class:`DerError`, a ``ValueError``; callers turn it into their own error code.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "TAG_BITSTRING",
    "TAG_BOOLEAN",
    "TAG_ENUMERATED",
    "TAG_IA5STRING",
    "TAG_INTEGER",
    "TAG_OCTETSTRING",
    "TAG_OID",
    "TAG_SEQUENCE",
    "DerError",
    "Tlv",
    "decode_oid",
    "read_all",
    "read_one",
]

TAG_BOOLEAN = 0x01
TAG_INTEGER = 0x02
TAG_BITSTRING = 0x03
TAG_OCTETSTRING = 0x04
TAG_OID = 0x06
TAG_ENUMERATED = 0x0A
TAG_IA5STRING = 0x16
TAG_SEQUENCE = 0x30

_MAX_DEPTH_LEN_BYTES = 4


class DerError(ValueError):
    """Malformed DER."""


@dataclass(frozen=True, slots=True)
class Tlv:
    """One decoded element: its tag, its content bytes and its full encoding."""

    tag: int
    value: bytes
    raw: bytes

    def children(self) -> list[Tlv]:
        """The elements inside a constructed value (SEQUENCE, SET, context tags)."""
        if not self.tag & 0x20:
            raise DerError("not a constructed element")
        return read_all(self.value)

    def as_int(self) -> int:
        """An INTEGER or ENUMERATED value (two's complement, big-endian)."""
        if self.tag not in (TAG_INTEGER, TAG_ENUMERATED) or not self.value:
            raise DerError("not an integer")
        return int.from_bytes(self.value, "big", signed=True)

    def as_bool(self) -> bool:
        if self.tag != TAG_BOOLEAN or len(self.value) != 1:
            raise DerError("not a boolean")
        return self.value != b"\x00"

    def expect(self, tag: int) -> Tlv:
        """Return self if the tag matches, else raise."""
        if self.tag != tag:
            raise DerError(f"expected tag 0x{tag:02x}, got 0x{self.tag:02x}")
        return self


def read_one(data: bytes, offset: int = 0) -> tuple[Tlv, int]:
    """Decode the element at ``offset``; return it and the offset just past it."""
    end = len(data)
    if offset + 2 > end:
        raise DerError("truncated header")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DerError("multi-byte tags are not supported")
    first = data[offset + 1]
    pos = offset + 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > _MAX_DEPTH_LEN_BYTES:
            raise DerError("indefinite or oversized length")
        if pos + n > end:
            raise DerError("truncated length")
        length = int.from_bytes(data[pos : pos + n], "big")
        if length < 0x80 or data[pos] == 0:
            raise DerError("non-minimal length")
        pos += n
    if pos + length > end:
        raise DerError("truncated value")
    return Tlv(tag, bytes(data[pos : pos + length]), bytes(data[offset : pos + length])), pos + length


def read_all(data: bytes) -> list[Tlv]:
    """Decode a concatenation of elements that must fill ``data`` exactly."""
    out: list[Tlv] = []
    pos = 0
    while pos < len(data):
        tlv, pos = read_one(data, pos)
        out.append(tlv)
    return out


def decode_oid(value: bytes) -> str:
    """The dotted form of an OBJECT IDENTIFIER's content bytes."""
    if not value or value[-1] & 0x80:
        raise DerError("bad OID")
    arcs: list[int] = []
    acc = 0
    for byte in value:
        if acc == 0 and byte == 0x80:
            raise DerError("non-minimal OID arc")
        acc = (acc << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(acc)
            acc = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in head + arcs[1:])
