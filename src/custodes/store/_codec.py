"""Canonical byte encodings of the store: associated data, buckets and write-log bodies.

Every multi-part encoding is length-prefixed or fixed-width, so two different tuples never encode to the same
bytes (``"ab" | "c"`` differs from ``"a" | "bc"``). Parsers are strict: they accept exactly what the encoders
produce (sorted, unique, canonical) and raise :class:`StoreCorruptError` on anything else, never a bare
``IndexError`` or ``UnicodeDecodeError``.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from custodes.store.errors import StoreCorruptError

__all__ = [
    "BUCKET_COUNT",
    "HASH_LEN",
    "MAX_NAME_BYTES",
    "BucketEntry",
    "TxnBody",
    "bucket_ad",
    "bucket_of",
    "decode_body",
    "decode_bucket",
    "encode_body",
    "encode_bucket",
    "log_ad",
    "lp",
    "record_ad",
    "u64",
]

BUCKET_COUNT = 256
HASH_LEN = 32
MAX_NAME_BYTES = 1024

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_BODY_MAGIC = b"custodes/store/txn/v1"
_BUCKET_MAGIC = b"custodes/store/bucket/v1"


def u64(n: int) -> bytes:
    """A non-negative integer as 8 big-endian bytes."""
    return _U64.pack(n)


def lp(*parts: bytes) -> bytes:
    """Concatenate parts, each prefixed by its 4-byte big-endian length (unambiguous framing)."""
    return b"".join(_U32.pack(len(p)) + p for p in parts)


def record_ad(name: bytes, epoch: int, ver: int) -> bytes:
    """Associated data of a record ciphertext: ``"rec" | name | epoch | ver``."""
    return lp(b"rec", name, u64(epoch), u64(ver))


def bucket_ad(bucket_id: int) -> bytes:
    """Associated data of a bucket blob: ``"bkt" | id`` (freshness comes from the MAC'd root, not the AD)."""
    return lp(b"bkt", u64(bucket_id))


def log_ad(epoch: int, ver: int) -> bytes:
    """Associated data of a write-log body: ``"log" | epoch | ver``."""
    return lp(b"log", u64(epoch), u64(ver))


def bucket_of(name: bytes) -> int:
    """The bucket a name lives in: the first byte of SHA-256(name)."""
    return hashlib.sha256(name).digest()[0]


@dataclass(frozen=True, slots=True)
class BucketEntry:
    """What the index pins for one record: the version that wrote it and the hash of its ciphertext."""

    epoch: int
    ver: int
    ct_hash: bytes


@dataclass(frozen=True, slots=True)
class TxnBody:
    """The canonical description of one commit, as kept (encrypted) in the write log."""

    epoch: int
    ver: int
    puts: tuple[tuple[bytes, bytes], ...]  # (name, sha256(ct)), sorted by name
    deletes: tuple[bytes, ...]  # sorted


class _Reader:
    """A bounds-checked cursor over bytes; every shortfall is a StoreCorruptError."""

    def __init__(self, data: bytes, what: str) -> None:
        self._data = data
        self._pos = 0
        self._what = what

    def fail(self, why: str) -> StoreCorruptError:
        return StoreCorruptError(message=f"malformed {self._what}: {why}")

    def take(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise self.fail("truncated")
        out = self._data[self._pos : end]
        self._pos = end
        return out

    def u32(self) -> int:
        return int(_U32.unpack(self.take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self.take(8))[0])

    def name(self) -> bytes:
        n = self.u32()
        if n == 0 or n > MAX_NAME_BYTES:
            raise self.fail("name length out of range")
        raw = self.take(n)
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise self.fail("name is not UTF-8") from e
        return raw

    def count(self, min_item: int) -> int:
        n = self.u32()
        if n * min_item > len(self._data) - self._pos:
            raise self.fail("count exceeds data")
        return n

    def expect(self, magic: bytes) -> None:
        if self.take(len(magic)) != magic:
            raise self.fail("bad magic")

    def end(self) -> None:
        if self._pos != len(self._data):
            raise self.fail("trailing bytes")


def _strictly_sorted(names: Iterable[bytes]) -> bool:
    prev: bytes | None = None
    for n in names:
        if prev is not None and n <= prev:
            return False
        prev = n
    return True


def encode_bucket(entries: Mapping[bytes, BucketEntry]) -> bytes:
    """Serialise one bucket: entries sorted by name, each ``name, epoch, ver, sha256(ct)``."""
    out = [_BUCKET_MAGIC, _U32.pack(len(entries))]
    for name in sorted(entries):
        e = entries[name]
        out += [_U32.pack(len(name)), name, _U64.pack(e.epoch), _U64.pack(e.ver), e.ct_hash]
    return b"".join(out)


def decode_bucket(data: bytes) -> dict[bytes, BucketEntry]:
    """Parse a bucket written by :func:`encode_bucket`; anything else raises StoreCorruptError."""
    r = _Reader(data, "bucket")
    r.expect(_BUCKET_MAGIC)
    n = r.count(4 + 1 + 8 + 8 + HASH_LEN)
    out: dict[bytes, BucketEntry] = {}
    for _ in range(n):
        name = r.name()
        out[name] = BucketEntry(epoch=r.u64(), ver=r.u64(), ct_hash=r.take(HASH_LEN))
    r.end()
    if len(out) != n or not _strictly_sorted(out):
        raise r.fail("names not sorted and unique")
    return out


def encode_body(body: TxnBody) -> bytes:
    """Serialise a commit description."""
    out = [_BODY_MAGIC, _U64.pack(body.epoch), _U64.pack(body.ver), _U32.pack(len(body.puts))]
    for name, ct_hash in body.puts:
        out += [_U32.pack(len(name)), name, ct_hash]
    out.append(_U32.pack(len(body.deletes)))
    for name in body.deletes:
        out += [_U32.pack(len(name)), name]
    return b"".join(out)


def decode_body(data: bytes) -> TxnBody:
    """Parse a commit description written by :func:`encode_body`; anything else raises StoreCorruptError."""
    r = _Reader(data, "log body")
    r.expect(_BODY_MAGIC)
    epoch, ver = r.u64(), r.u64()
    puts = tuple((r.name(), r.take(HASH_LEN)) for _ in range(r.count(4 + 1 + HASH_LEN)))
    deletes = tuple(r.name() for _ in range(r.count(4 + 1)))
    r.end()
    if not _strictly_sorted(n for n, _ in puts) or not _strictly_sorted(deletes):
        raise r.fail("names not sorted and unique")
    if {n for n, _ in puts} & set(deletes):
        raise r.fail("a name is both put and deleted")
    return TxnBody(epoch=epoch, ver=ver, puts=puts, deletes=deletes)
