"""The SQLite side of the store: connection settings, schema, and mapping SQLite errors to store codes.

Everything in the database is untrusted. The schema check refuses unexpected objects (a trigger or view planted
by whoever controls the disk could rewrite our statements), and ``trusted_schema=OFF`` keeps SQL functions with
side effects out of any schema object SQLite does run.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from custodes.errors import StoreError
from custodes.store.errors import StoreCorruptError, StoreIOError, StoreTamperedError

__all__ = ["FORMAT", "SCHEMA", "check_schema", "connect", "fsync_dir", "is_empty", "map_sqlite_error"]

FORMAT = b"custodes-store/sqlite/v1"

SCHEMA: dict[str, str] = {
    "meta": "CREATE TABLE meta(k TEXT PRIMARY KEY, v BLOB NOT NULL) STRICT",
    "head": (
        "CREATE TABLE head(id INTEGER PRIMARY KEY CHECK (id = 1), epoch INTEGER NOT NULL, ver INTEGER NOT NULL, "
        "digest BLOB NOT NULL, root BLOB NOT NULL, kcv BLOB NOT NULL, mac BLOB NOT NULL) STRICT"
    ),
    "buckets": "CREATE TABLE buckets(id INTEGER PRIMARY KEY, hash BLOB NOT NULL, blob BLOB NOT NULL) STRICT",
    "records": (
        "CREATE TABLE records(name BLOB PRIMARY KEY, epoch INTEGER NOT NULL, ver INTEGER NOT NULL, "
        "ct BLOB NOT NULL) STRICT"
    ),
    "log": (
        "CREATE TABLE log(ver INTEGER PRIMARY KEY, epoch INTEGER NOT NULL, body BLOB NOT NULL, "
        "digest BLOB NOT NULL) STRICT"
    ),
}

_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
_SQLITE_ERROR = 1
_SQLITE_CONSTRAINT = 19
_SQLITE_MISMATCH = 20


def map_sqlite_error(e: sqlite3.Error | UnicodeDecodeError) -> StoreError:
    """Turn a SQLite exception into a store error. Only SQLite's error *name* is kept: never statement values.

    A UnicodeDecodeError comes from SQLite's own error text quoting a damaged schema: that is corruption.
    """
    if isinstance(e, UnicodeDecodeError):
        return StoreCorruptError(message="SQLite reports a damaged schema")
    code = getattr(e, "sqlite_errorcode", None)
    name = getattr(e, "sqlite_errorname", None) or type(e).__name__
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return StoreCorruptError(message=f"SQLite reports the file as corrupt or not a database ({name})")
    if primary == _SQLITE_ERROR:
        return StoreCorruptError(message=f"the database does not have the custodes schema ({name})")
    if primary in (_SQLITE_CONSTRAINT, _SQLITE_MISMATCH):
        return StoreTamperedError(message=f"a stored row violates the store's invariants ({name})")
    return StoreIOError(message=f"SQLite operation failed ({name})")


def fsync_dir(path: Path) -> None:
    """Make a directory entry (a newly created database or WAL file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def connect(path: Path) -> sqlite3.Connection:
    """Open the database in WAL mode with ``synchronous=FULL`` and manual transactions."""
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10.0)
    except sqlite3.Error as e:
        raise map_sqlite_error(e) from e
    # TEXT comes back as bytes, so damaged schema text cannot escape as a UnicodeDecodeError.
    conn.text_factory = bytes
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode is None or bytes(mode[0]).lower() != b"wal":
            raise StoreIOError(message="cannot switch the database to WAL mode")
        for pragma in ("synchronous=FULL", "trusted_schema=OFF", "cell_size_check=ON", "foreign_keys=OFF"):
            conn.execute(f"PRAGMA {pragma}")
    except (sqlite3.Error, UnicodeDecodeError) as e:
        conn.close()
        raise map_sqlite_error(e) from e
    except BaseException:
        conn.close()
        raise
    return conn


def _objects(conn: sqlite3.Connection) -> list[tuple[bytes, bytes, bytes | None]]:
    rows = conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_autoindex\\_%' ESCAPE '\\' "
        "AND name NOT LIKE 'sqlite\\_stat%' ESCAPE '\\'"
    )
    return list(rows.fetchall())


def is_empty(conn: sqlite3.Connection) -> bool:
    """Whether the database has no schema objects at all (a new file)."""
    return not _objects(conn)


def check_schema(conn: sqlite3.Connection) -> None:
    """Refuse a database whose schema is not exactly ours, or whose format marker is not ours."""
    found = {(t, n, s) for t, n, s in _objects(conn)}
    expected = {(b"table", name.encode(), sql.encode()) for name, sql in SCHEMA.items()}
    if found != expected:
        raise StoreCorruptError(message="the database is not a custodes store (unexpected schema)")
    row = conn.execute("SELECT v FROM meta WHERE k = 'format'").fetchone()
    if row is None or row[0] != FORMAT:
        raise StoreCorruptError(message="the database is not a custodes store (unknown format)")
