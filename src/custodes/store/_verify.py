"""Reading verified state out of untrusted rows.

These functions take a SQLite connection inside an open transaction plus the keys and *trusted* values (a
verified root, a verified head) and either return authenticated data or raise. The chain of trust is the one of
rollback-protection.md §4: head MAC ⇒ bucket hashes vs root ⇒ record hash and version vs bucket ⇒ AEAD with AD.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from custodes.store._codec import (
    BUCKET_COUNT,
    HASH_LEN,
    BucketEntry,
    bucket_ad,
    bucket_of,
    decode_body,
    decode_bucket,
    log_ad,
    record_ad,
)
from custodes.store._crypto import GENESIS_DIGEST, StoreKeys, chain_digest, index_root, sha256
from custodes.store.errors import StoreTamperedError
from custodes.store.head import Head, LogEntry

__all__ = [
    "HeadRow",
    "as_blob",
    "as_int",
    "load_bucket_hashes",
    "load_record",
    "log_start",
    "open_bucket",
    "read_bucket_blob",
    "read_head_row",
    "walk_log",
]


def as_int(value: object, what: str) -> int:
    """An integer column value, or STORE_TAMPERED (bool and negative values are refused too)."""
    if type(value) is not int or value < 0:
        raise StoreTamperedError(message=f"{what} is not a non-negative integer")
    return value


def as_blob(value: object, what: str, length: int | None = None) -> bytes:
    """A BLOB column value (optionally of a fixed length), or STORE_TAMPERED."""
    if not isinstance(value, bytes) or (length is not None and len(value) != length):
        raise StoreTamperedError(message=f"{what} is not a blob of the expected length")
    return value


@dataclass(frozen=True, slots=True)
class HeadRow:
    """The head row as read from disk, type-checked but not yet authenticated."""

    epoch: int
    ver: int
    digest: bytes
    root: bytes
    kcv: bytes
    mac: bytes

    @property
    def head(self) -> Head:
        return Head(epoch=self.epoch, version=self.ver, digest=self.digest)


def read_head_row(conn: sqlite3.Connection) -> HeadRow:
    """Load and type-check the single head row (not yet MAC-checked)."""
    row = conn.execute("SELECT epoch, ver, digest, root, kcv, mac FROM head WHERE id = 1").fetchone()
    if row is None:
        raise StoreTamperedError(message="the head row is missing")
    return HeadRow(
        epoch=as_int(row[0], "head epoch"),
        ver=as_int(row[1], "head version"),
        digest=as_blob(row[2], "head digest", HASH_LEN),
        root=as_blob(row[3], "head root", HASH_LEN),
        kcv=as_blob(row[4], "head key-check value", HASH_LEN),
        mac=as_blob(row[5], "head MAC", HASH_LEN),
    )


def load_bucket_hashes(conn: sqlite3.Connection, root: bytes) -> tuple[bytes, ...]:
    """The 256 bucket hashes, checked against the (already MAC-verified) root."""
    rows = conn.execute("SELECT id, hash FROM buckets ORDER BY id").fetchall()
    if [r[0] for r in rows] != list(range(BUCKET_COUNT)):
        raise StoreTamperedError(message="the bucket table does not hold exactly the expected buckets")
    hashes = tuple(as_blob(r[1], "bucket hash", HASH_LEN) for r in rows)
    if index_root(hashes) != root:
        raise StoreTamperedError(message="the bucket hashes do not match the head's root")
    return hashes


def read_bucket_blob(conn: sqlite3.Connection, bucket_id: int, trusted_hash: bytes) -> bytes:
    """One bucket's blob, checked against the hash that the verified root pins."""
    row = conn.execute("SELECT blob FROM buckets WHERE id = ?", (bucket_id,)).fetchone()
    if row is None:
        raise StoreTamperedError(message=f"bucket {bucket_id} is missing")
    blob = as_blob(row[0], f"bucket {bucket_id}")
    if sha256(blob) != trusted_hash:
        raise StoreTamperedError(message=f"bucket {bucket_id} does not match the head's root")
    return blob


def open_bucket(keys: StoreKeys, bucket_id: int, blob: bytes) -> dict[bytes, BucketEntry]:
    """Decrypt and parse a bucket blob (already checked against its trusted hash)."""
    entries = decode_bucket(keys.open(blob, bucket_ad(bucket_id), f"bucket {bucket_id}"))
    if any(bucket_of(name) != bucket_id for name in entries):
        raise StoreTamperedError(message=f"bucket {bucket_id} holds a name of another bucket")
    return entries


def load_record(conn: sqlite3.Connection, keys: StoreKeys, name: bytes, entry: BucketEntry) -> bytes:
    """A record's plaintext, after checking its row against the bucket entry and decrypting with its AD."""
    row = conn.execute("SELECT epoch, ver, ct FROM records WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise StoreTamperedError(message="an indexed record is missing")
    epoch, ver = as_int(row[0], "record epoch"), as_int(row[1], "record version")
    ct = as_blob(row[2], "record ciphertext")
    if (epoch, ver) != (entry.epoch, entry.ver) or sha256(ct) != entry.ct_hash:
        raise StoreTamperedError(message="a record does not match its index entry (edited, swapped or replayed)")
    return keys.open(ct, record_ad(name, entry.epoch, entry.ver), "record")


def walk_log(
    conn: sqlite3.Connection, keys: StoreKeys, since: int, until: int, start: bytes, *, check_stored: bool
) -> tuple[list[LogEntry], bytes]:
    """Decrypt log entries ``since+1 .. until`` and recompute the hash chain from ``start``.

    Returns the entries and the final digest; the caller compares that with a trusted head digest. With
    ``check_stored``, each row's stored digest must equal the recomputed one (a full audit); without it (checking
    that a newer head extends ours), only the final digest matters, so a foreign history shows up as a fork.
    """
    rows = conn.execute(
        "SELECT ver, epoch, body, digest FROM log WHERE ver > ? AND ver <= ? ORDER BY ver", (since, until)
    )
    prev, expected, out = start, since + 1, []
    for raw_ver, raw_epoch, raw_body, raw_digest in rows:
        ver, epoch = as_int(raw_ver, "log version"), as_int(raw_epoch, "log epoch")
        if ver != expected:
            raise StoreTamperedError(message=f"the write log has a gap before version {ver}")
        body = keys.open(as_blob(raw_body, "log body"), log_ad(epoch, ver), f"log entry {ver}")
        txn = decode_body(body)
        if (txn.epoch, txn.ver) != (epoch, ver):
            raise StoreTamperedError(message=f"log entry {ver} is not at its own position")
        prev = chain_digest(prev, epoch, ver, body)
        if check_stored and as_blob(raw_digest, "log digest", HASH_LEN) != prev:
            raise StoreTamperedError(message=f"log entry {ver} breaks the hash chain")
        out.append(
            LogEntry(
                version=ver,
                epoch=epoch,
                puts=tuple(n.decode() for n, _ in txn.puts),
                deletes=tuple(n.decode() for n in txn.deletes),
                digest=prev,
            )
        )
        expected += 1
    if expected != until + 1:
        raise StoreTamperedError(message="the write log is truncated")
    return out, prev


def log_start(conn: sqlite3.Connection, since: int) -> bytes:
    """The (untrusted) digest to start a chain walk after version ``since``; the walk's end check authenticates it."""
    if since == 0:
        return GENESIS_DIGEST
    row = conn.execute("SELECT digest FROM log WHERE ver = ?", (since,)).fetchone()
    if row is None:
        raise StoreTamperedError(message=f"the write log has no entry {since}")
    return as_blob(row[0], "log digest", HASH_LEN)
