"""Mode A, the embedded store: encrypted, MAC'd, rollback-detecting records in one SQLite file.

Layout and checks follow rollback-protection.md §4. Every record is AES-256-GCM encrypted with associated data
``"rec" | name | epoch | ver``; 256 encrypted buckets index ``(name, epoch, ver, sha256(ct))``; a MAC'd head row
pins the buckets (``root``) and a hash-chained write log (``digest``). Each commit is one ``BEGIN IMMEDIATE``
transaction in WAL mode with ``synchronous=FULL``, so :meth:`SqliteStore.commit` returns only for durable state.

The process remembers the newest head it wrote or verified (``reg``). A stored head older than ``reg`` is a
rollback, one at the same version with other contents (or a newer one whose log does not extend ``reg``) is a fork;
both fail closed, and stay failed until the store is reopened. After a restart ``reg`` is gone: a rollback of the
whole file across a restart is **not** detected (see docs/state.md).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, TracebackType

from custodes.errors import StoreError
from custodes.store import _schema
from custodes.store._codec import (
    BUCKET_COUNT,
    MAX_NAME_BYTES,
    BucketEntry,
    TxnBody,
    bucket_ad,
    bucket_of,
    encode_body,
    encode_bucket,
    log_ad,
    record_ad,
)
from custodes.store._crypto import GENESIS_DIGEST, StoreKeys, chain_digest, index_root, sha256
from custodes.store._validate import MAX_VALUE_BYTES, check_name, check_value
from custodes.store._verify import (
    HeadRow,
    as_blob,
    as_int,
    load_bucket_hashes,
    load_record,
    log_start,
    open_bucket,
    read_bucket_blob,
    read_head_row,
    walk_log,
)
from custodes.store.errors import (
    StoreClosedError,
    StoreConflictError,
    StoreForkError,
    StoreKeyInvalidError,
    StoreRollbackError,
    StoreTamperedError,
)
from custodes.store.head import Head, LogEntry

__all__ = ["MAX_NAME_BYTES", "MAX_VALUE_BYTES", "SqliteStore"]

@dataclass(frozen=True, slots=True)
class _View:
    """A head this process verified or wrote, with the bucket hashes its root pins (trusted, in memory)."""

    row: HeadRow
    bucket_hashes: tuple[bytes, ...]


class SqliteStore:
    """The embedded state store. Thread-safe: one connection, every operation under one lock."""

    def __init__(self, conn: sqlite3.Connection, keys: StoreKeys, *, created: bool) -> None:
        """Private: use :meth:`open`."""
        self._conn: sqlite3.Connection | None = conn
        self._keys = keys
        self._lock = threading.RLock()
        self._view: _View | None = None
        self._poison: StoreError | None = None
        self._parsed: dict[int, tuple[bytes, Mapping[bytes, BucketEntry]]] = {}  # bucket id -> (blob hash, entries)
        self.created = created
        """True if :meth:`open` created a new, empty store (the CAS may refuse that when it expected state)."""

    def __repr__(self) -> str:
        return f"SqliteStore(head={self._view.row.head if self._view else None!r})"

    # -- opening and closing -------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, root_key: bytes) -> SqliteStore:
        """Open the store at ``path``, creating it if absent, and verify its head under ``root_key``.

        Raises:
            StoreKeyInvalidError: ``root_key`` is not 32 bytes or is not this database's key.
            StoreCorruptError: the file is not a custodes store.
            StoreTamperedError: the head or bucket index does not verify.
        """
        keys = StoreKeys(root_key)
        path = Path(path)
        conn = _schema.connect(path)
        try:
            created = cls._ensure_schema(conn, keys)
            if created:
                _schema.fsync_dir(path.resolve().parent)
            store = cls(conn, keys, created=created)
            with store._txn(write=False) as c:
                _schema.check_schema(c)
                store._verify_head(c, at_open=True)
        except (sqlite3.Error, UnicodeDecodeError) as e:
            conn.close()
            raise _schema.map_sqlite_error(e) from e
        except BaseException:
            conn.close()
            raise
        return store

    @staticmethod
    def _ensure_schema(conn: sqlite3.Connection, keys: StoreKeys) -> bool:
        """Create the schema and the genesis head in one transaction if the database is empty."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            if not _schema.is_empty(conn):
                conn.execute("ROLLBACK")
                return False
            for sql in _schema.SCHEMA.values():
                conn.execute(sql)
            conn.execute("INSERT INTO meta(k, v) VALUES ('format', ?)", (_schema.FORMAT,))
            hashes = []
            for b in range(BUCKET_COUNT):
                blob = keys.seal(encode_bucket({}), bucket_ad(b))
                hashes.append(sha256(blob))
                conn.execute("INSERT INTO buckets(id, hash, blob) VALUES (?, ?, ?)", (b, hashes[-1], blob))
            root = index_root(tuple(hashes))
            mac = keys.head_mac(1, 0, GENESIS_DIGEST, root, keys.kcv)
            conn.execute(
                "INSERT INTO head(id, epoch, ver, digest, root, kcv, mac) VALUES (1, 1, 0, ?, ?, ?, ?)",
                (GENESIS_DIGEST, root, keys.kcv, mac),
            )
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return True

    def close(self) -> None:
        """Close the connection (idempotent). Later calls raise STORE_CLOSED."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- transactions and head verification ----------------------------------------------------------------

    @contextlib.contextmanager
    def _txn(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        """Hold the lock and one SQLite transaction; a write body must COMMIT itself, anything else rolls back."""
        with self._lock:
            if self._poison is not None:
                raise type(self._poison)(message=self._poison.message, reasons=self._poison.reasons)
            conn = self._conn
            if conn is None:
                raise StoreClosedError(message="the store is closed")
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield conn
            except (sqlite3.Error, UnicodeDecodeError) as e:
                raise _schema.map_sqlite_error(e) from e
            finally:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")

    def _fail(self, err: StoreError) -> StoreError:
        """Remember a rollback or fork: the store refuses everything until it is reopened."""
        self._poison = err
        return err

    def _verify_head(self, conn: sqlite3.Connection, *, at_open: bool = False, full: bool = False) -> _View:
        """Verify the stored head against the key, its MAC and ``reg``; return the trusted view of it."""
        row = read_head_row(conn)
        cached = self._view
        if cached is not None and row == cached.row and not full:
            return cached
        if not self._keys.kcv_matches(row.kcv):
            if at_open:
                raise StoreKeyInvalidError(message="the storage key is not the key of this database")
            raise StoreTamperedError(message="the head's key-check value changed")
        self._keys.check_head_mac(
            epoch=row.epoch, ver=row.ver, digest=row.digest, root=row.root, kcv=row.kcv, mac=row.mac
        )
        if cached is not None:
            reg = cached.row
            if row.head.older_than(reg.head):
                raise self._fail(StoreRollbackError(message=f"stored head {row.ver} is older than {reg.ver}"))
            if (row.epoch, row.ver) == (reg.epoch, reg.ver):
                if (row.digest, row.root) != (reg.digest, reg.root):
                    raise self._fail(StoreForkError(message=f"two different heads at version {row.ver}"))
            else:
                _, end = walk_log(conn, self._keys, reg.ver, row.ver, reg.digest, check_stored=False)
                if end != row.digest:
                    raise self._fail(StoreForkError(message=f"head {row.ver} does not extend head {reg.ver}"))
        view = _View(row=row, bucket_hashes=load_bucket_hashes(conn, row.root))
        self._view = view
        return view

    def _bucket(
        self, conn: sqlite3.Connection, view: _View, bucket_id: int, *, fresh: bool = False
    ) -> Mapping[bytes, BucketEntry]:
        """A verified bucket (read-only). The blob on disk is always read and hashed against the trusted root;
        only the decrypt-and-parse step is skipped when an identical blob (same hash) was parsed before."""
        trusted = view.bucket_hashes[bucket_id]
        blob = read_bucket_blob(conn, bucket_id, trusted)
        cached = self._parsed.get(bucket_id)
        if cached is not None and cached[0] == trusted and not fresh:
            return cached[1]
        entries = MappingProxyType(open_bucket(self._keys, bucket_id, blob))
        self._parsed[bucket_id] = (trusted, entries)
        return entries

    def _buckets(
        self, conn: sqlite3.Connection, view: _View, names: Iterable[bytes]
    ) -> dict[int, Mapping[bytes, BucketEntry]]:
        """The verified buckets that hold ``names``, each loaded once."""
        return {b: self._bucket(conn, view, b) for b in sorted({bucket_of(n) for n in names})}

    # -- reads ---------------------------------------------------------------------------------------------

    @property
    def head(self) -> Head:
        """The current head, verified against the disk and ``reg``."""
        with self._txn(write=False) as conn:
            return self._verify_head(conn).row.head

    def get(self, name: str) -> bytes | None:
        """The verified plaintext of ``name``, or None if the verified index has no such record."""
        return self.get_many([name])[name]

    def get_many(self, names: Sequence[str]) -> dict[str, bytes | None]:
        """Several records read in one transaction (one consistent version)."""
        raw = {n: check_name(n) for n in names}
        with self._txn(write=False) as conn:
            view = self._verify_head(conn)
            buckets = self._buckets(conn, view, raw.values())
            return {
                n: None if (e := buckets[bucket_of(r)].get(r)) is None else load_record(conn, self._keys, r, e)
                for n, r in raw.items()
            }

    def version_of(self, name: str) -> int | None:
        """The version that last wrote ``name`` (from the verified index), or None if absent."""
        raw = check_name(name)
        with self._txn(write=False) as conn:
            entry = self._bucket(conn, self._verify_head(conn), bucket_of(raw)).get(raw)
            return None if entry is None else entry.ver

    def names(self, prefix: str = "") -> list[str]:
        """All record names starting with ``prefix``, sorted, read from the verified buckets."""
        if not isinstance(prefix, str):
            raise TypeError("prefix is a str")
        with self._txn(write=False) as conn:
            view = self._verify_head(conn)
            found = [n.decode() for b in range(BUCKET_COUNT) for n in self._bucket(conn, view, b)]
        return sorted(n for n in found if n.startswith(prefix))

    def log(self, since: int = 0) -> list[LogEntry]:
        """The verified write log after version ``since``: which names each commit put and deleted."""
        if type(since) is not int or since < 0:
            raise ValueError("since is a non-negative int")
        with self._txn(write=False) as conn:
            head = self._verify_head(conn).row
            if since >= head.ver:
                return []
            entries, end = walk_log(conn, self._keys, since, head.ver, log_start(conn, since), check_stored=True)
            if end != head.digest:
                raise StoreTamperedError(message="the write log does not hash to the head's digest")
            return entries

    def verify_all(self) -> None:
        """Full integrity scan: head, every bucket, every record (decrypted), and the whole log chain.

        Raises the same errors as reads; also finds records the index does not list and log entries past the head.
        """
        with self._txn(write=False) as conn:
            _schema.check_schema(conn)
            view = self._verify_head(conn, full=True)
            index: dict[bytes, BucketEntry] = {}
            for (b, h, blob), trusted in zip(
                conn.execute("SELECT id, hash, blob FROM buckets ORDER BY id"), view.bucket_hashes, strict=True
            ):
                if as_blob(h, "bucket hash") != trusted or sha256(as_blob(blob, "bucket")) != trusted:
                    raise StoreTamperedError(message=f"bucket {b} does not match the head's root")
                index.update(self._bucket(conn, view, as_int(b, "bucket id"), fresh=True))
            seen = 0
            for (name,) in conn.execute("SELECT name FROM records"):
                entry = index.get(as_blob(name, "record name"))
                if entry is None:
                    raise StoreTamperedError(message="a record row is not in the index")
                load_record(conn, self._keys, name, entry)
                seen += 1
            if seen != len(index):
                raise StoreTamperedError(message="an indexed record is missing")
            extra = conn.execute("SELECT COUNT(*) FROM log WHERE ver > ?", (view.row.ver,)).fetchone()[0]
            if extra:
                raise StoreTamperedError(message="the write log has entries past the head")
            _, end = walk_log(conn, self._keys, 0, view.row.ver, GENESIS_DIGEST, check_stored=True)
            if end != view.row.digest:
                raise StoreTamperedError(message="the write log does not hash to the head's digest")

    # -- writes --------------------------------------------------------------------------------------------

    def commit(
        self,
        puts: Mapping[str, bytes],
        deletes: Iterable[str] = (),
        *,
        expect: Mapping[str, int | None] | None = None,
    ) -> Head:
        """Atomically write ``puts`` and remove ``deletes``; return the new head once it is durable.

        Args:
            puts: name -> new value (at most 4 MiB each).
            deletes: names to remove; absent names are ignored.
            expect: name -> the version the caller read (None: must be absent). Any mismatch raises
                STORE_CONFLICT and writes nothing.

        Returns:
            The new head, or the unchanged head if the commit changes nothing.
        """
        if isinstance(deletes, str | bytes):
            raise TypeError("deletes is an iterable of names, not one name")
        new = {check_name(n): check_value(v) for n, v in puts.items()}
        gone = {check_name(n) for n in deletes}
        want = {check_name(n): v for n, v in (expect or {}).items()}
        if new.keys() & gone:
            raise ValueError("a name is both put and deleted in one commit")
        for v in want.values():
            if v is not None and (type(v) is not int or v < 0):
                raise TypeError("expected versions are non-negative ints or None")
        with self._txn(write=True) as conn:
            view = self._verify_head(conn)
            touched = new.keys() | gone | want.keys()
            buckets = self._buckets(conn, view, touched)
            found = {n: None if (e := buckets[bucket_of(n)].get(n)) is None else e.ver for n in touched}
            failed = sorted(n.decode() for n, v in want.items() if found[n] != v)
            if failed:
                raise StoreConflictError(message=f"{len(failed)} expectation(s) did not hold", reasons=failed)
            gone = {n for n in gone if found[n] is not None}
            if not new and not gone:
                return view.row.head
            return self._write(conn, view, buckets, new, gone)

    def _write(
        self,
        conn: sqlite3.Connection,
        view: _View,
        verified: dict[int, Mapping[bytes, BucketEntry]],
        new: dict[bytes, bytes],
        gone: set[bytes],
    ) -> Head:
        """Inside the open write transaction: write records, buckets, log and head, then COMMIT."""
        head = view.row
        epoch, ver = head.epoch, head.ver + 1
        touched = {bucket_of(n) for n in new.keys() | gone}
        buckets = {b: dict(verified[b]) for b in touched}  # copies: the cache changes only after COMMIT
        put_hashes = []
        for name in sorted(new):
            ct = self._keys.seal(new[name], record_ad(name, epoch, ver))
            put_hashes.append((name, sha256(ct)))
            buckets[bucket_of(name)][name] = BucketEntry(epoch=epoch, ver=ver, ct_hash=put_hashes[-1][1])
            conn.execute(
                "INSERT INTO records(name, epoch, ver, ct) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET epoch = excluded.epoch, ver = excluded.ver, ct = excluded.ct",
                (name, epoch, ver, ct),
            )
        for name in sorted(gone):
            del buckets[bucket_of(name)][name]
            conn.execute("DELETE FROM records WHERE name = ?", (name,))
        hashes = list(view.bucket_hashes)
        for b in sorted(touched):
            blob = self._keys.seal(encode_bucket(buckets[b]), bucket_ad(b))
            hashes[b] = sha256(blob)
            conn.execute("UPDATE buckets SET hash = ?, blob = ? WHERE id = ?", (hashes[b], blob, b))
        root = index_root(tuple(hashes))
        body = encode_body(TxnBody(epoch=epoch, ver=ver, puts=tuple(put_hashes), deletes=tuple(sorted(gone))))
        digest = chain_digest(head.digest, epoch, ver, body)
        try:
            conn.execute(
                "INSERT INTO log(ver, epoch, body, digest) VALUES (?, ?, ?, ?)",
                (ver, epoch, self._keys.seal(body, log_ad(epoch, ver)), digest),
            )
        except sqlite3.IntegrityError as e:
            raise StoreTamperedError(message=f"the write log already has an entry {ver}") from e
        mac = self._keys.head_mac(epoch, ver, digest, root, self._keys.kcv)
        cur = conn.execute(
            "UPDATE head SET epoch = ?, ver = ?, digest = ?, root = ?, kcv = ?, mac = ? WHERE id = 1",
            (epoch, ver, digest, root, self._keys.kcv, mac),
        )
        if cur.rowcount != 1:
            raise StoreTamperedError(message="the head row is missing")
        conn.execute("COMMIT")
        row = HeadRow(epoch=epoch, ver=ver, digest=digest, root=root, kcv=self._keys.kcv, mac=mac)
        self._view = _View(row=row, bucket_hashes=tuple(hashes))
        self._parsed.update({b: (hashes[b], MappingProxyType(buckets[b])) for b in touched})
        return row.head
