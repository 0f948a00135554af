"""Attacks on the Mode A store by someone who controls the disk (rollback-protection.md §1, §4).

Each test plays one attack with ``sqlite3`` or plain file I/O on the real database file and asserts the exact
refusal code. The adversary here has the disk but not the key: this is the storage-only adversary of a
simulation deployment (no TEE), which is all these tests can model. Tests named ``test_limit_*`` document what
Mode A cannot detect and assert that it indeed goes undetected.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from custodes.errors import StoreError
from custodes.store import SqliteStore

KEY = bytes(range(32))
SUFFIXES = ("", "-wal")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def store(db: Path) -> Iterator[SqliteStore]:
    s = SqliteStore.open(db, KEY)
    s.commit({"alice": b"alice-secret-1", "bob": b"bob-secret-1", "carol": b"carol-secret-1"})
    yield s
    s.close()


def attacker(db: Path) -> sqlite3.Connection:
    """A plain SQLite connection to the store's file: full control of the bytes, no key."""
    return sqlite3.connect(db, isolation_level=None)


def snapshot(db: Path) -> dict[str, bytes]:
    """Copy the database and its WAL aside, as a backup tool or an attacker would."""
    return {s: Path(f"{db}{s}").read_bytes() for s in SUFFIXES if Path(f"{db}{s}").exists()}


def install(db: Path, files: dict[str, bytes]) -> None:
    """Put copied files back *in place* (same inodes, as ``cp`` does) and invalidate the shared-memory index.

    Zeroing ``-shm`` (without truncating it: the live process has it mapped) makes SQLite rebuild its index
    from the files on the next read, which is what happens anyway when the files are swapped across a restart.
    """
    for suffix in SUFFIXES:
        path = Path(f"{db}{suffix}")
        data = files.get(suffix, b"")
        with open(path, "r+b" if path.exists() else "wb") as f:
            f.write(data)
            f.truncate(len(data))
    shm = Path(f"{db}-shm")
    if shm.exists():
        size = shm.stat().st_size
        with open(shm, "r+b") as f:
            f.write(b"\x00" * size)


def checkpoint(db: Path) -> None:
    with attacker(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def code_of(call: object) -> str:
    try:
        call()  # type: ignore[operator]
    except StoreError as e:
        return e.code
    return "NO ERROR"


# -- per-record attacks -----------------------------------------------------------------------------------


def test_flipped_byte_in_record_ciphertext_is_tampered(store: SqliteStore, db: Path) -> None:
    with attacker(db) as c:
        ct = bytearray(c.execute("SELECT ct FROM records WHERE name = ?", (b"alice",)).fetchone()[0])
        ct[len(ct) // 2] ^= 0x01
        c.execute("UPDATE records SET ct = ? WHERE name = ?", (bytes(ct), b"alice"))
    assert code_of(lambda: store.get("alice")) == "STORE_TAMPERED"
    assert store.get("bob") == b"bob-secret-1"  # other records stay readable


def test_swapped_record_ciphertexts_are_tampered(store: SqliteStore, db: Path) -> None:
    with attacker(db) as c:
        a = c.execute("SELECT ct FROM records WHERE name = ?", (b"alice",)).fetchone()[0]
        b = c.execute("SELECT ct FROM records WHERE name = ?", (b"bob",)).fetchone()[0]
        c.execute("UPDATE records SET ct = ? WHERE name = ?", (b, b"alice"))
        c.execute("UPDATE records SET ct = ? WHERE name = ?", (a, b"bob"))
    assert code_of(lambda: store.get("alice")) == "STORE_TAMPERED"
    assert code_of(lambda: store.get("bob")) == "STORE_TAMPERED"


def test_replayed_older_ciphertext_of_the_same_record_is_tampered(store: SqliteStore, db: Path) -> None:
    with attacker(db) as c:
        old = c.execute("SELECT epoch, ver, ct FROM records WHERE name = ?", (b"alice",)).fetchone()
    store.commit({"alice": b"alice-secret-2"})
    with attacker(db) as c:  # mix and match: the old, validly encrypted row next to new data
        c.execute("UPDATE records SET epoch = ?, ver = ?, ct = ? WHERE name = ?", (*old, b"alice"))
    assert code_of(lambda: store.get("alice")) == "STORE_TAMPERED"


def test_replayed_older_ciphertext_relabelled_with_the_new_version_is_tampered(store: SqliteStore, db: Path) -> None:
    with attacker(db) as c:
        old_ct = c.execute("SELECT ct FROM records WHERE name = ?", (b"alice",)).fetchone()[0]
    store.commit({"alice": b"alice-secret-2"})
    with attacker(db) as c:
        c.execute("UPDATE records SET ct = ? WHERE name = ?", (old_ct, b"alice"))
    assert code_of(lambda: store.get("alice")) == "STORE_TAMPERED"


def test_replayed_record_with_its_old_bucket_is_tampered(store: SqliteStore, db: Path) -> None:
    with attacker(db) as c:
        old_rec = c.execute("SELECT epoch, ver, ct FROM records WHERE name = ?", (b"alice",)).fetchone()
        old_buckets = c.execute("SELECT id, hash, blob FROM buckets").fetchall()
    store.commit({"alice": b"alice-secret-2"})
    with attacker(db) as c:  # a consistent record + index pair from version 1, under the version-2 head
        c.execute("UPDATE records SET epoch = ?, ver = ?, ct = ? WHERE name = ?", (*old_rec, b"alice"))
        c.executemany("UPDATE buckets SET hash = ?, blob = ? WHERE id = ?", [(h, b, i) for i, h, b in old_buckets])
    assert code_of(lambda: store.get("alice")) == "STORE_TAMPERED"
    store.close()
    assert code_of(lambda: SqliteStore.open(db, KEY)) == "STORE_TAMPERED"  # the root catches it after a restart


def test_deleted_record_row_is_tampered(store: SqliteStore, db: Path) -> None:
    with attacker(db) as c:
        c.execute("DELETE FROM records WHERE name = ?", (b"bob",))
    assert code_of(lambda: store.get("bob")) == "STORE_TAMPERED"


def test_inserted_record_row_is_ignored_by_reads_and_found_by_the_scan(store: SqliteStore, db: Path) -> None:
    with attacker(db) as c:
        ct = c.execute("SELECT ct FROM records WHERE name = ?", (b"bob",)).fetchone()[0]
        c.execute("INSERT INTO records(name, epoch, ver, ct) VALUES (?, 1, 1, ?)", (b"mallory", ct))
    assert store.get("mallory") is None  # the verified index does not list it
    assert code_of(store.verify_all) == "STORE_TAMPERED"


# -- head, index and log ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value"), [("ver", 7), ("epoch", 2), ("digest", b"\x00" * 32), ("mac", b"\x11" * 32)]
)
def test_edited_head_is_tampered(store: SqliteStore, db: Path, column: str, value: object) -> None:
    with attacker(db) as c:
        c.execute(f"UPDATE head SET {column} = ? WHERE id = 1", (value,))
    assert code_of(lambda: store.get("alice")) == "STORE_TAMPERED"
    store.close()
    assert code_of(lambda: SqliteStore.open(db, KEY)) == "STORE_TAMPERED"


def test_deleted_head_is_tampered(store: SqliteStore, db: Path) -> None:
    with attacker(db) as c:
        c.execute("DELETE FROM head")
    assert code_of(lambda: store.get("alice")) == "STORE_TAMPERED"


def test_edited_key_check_value_reads_as_a_wrong_key_at_open(store: SqliteStore, db: Path) -> None:
    with attacker(db) as c:
        c.execute("UPDATE head SET kcv = ? WHERE id = 1", (b"\x00" * 32,))
    assert code_of(lambda: store.get("alice")) == "STORE_TAMPERED"  # the running process knows its key is right
    store.close()
    assert code_of(lambda: SqliteStore.open(db, KEY)) == "STORE_KEY_INVALID"  # denial of service, never a bypass


def test_edited_bucket_blob_is_tampered(store: SqliteStore, db: Path) -> None:
    with attacker(db) as c:
        bid, blob = c.execute("SELECT id, blob FROM buckets WHERE length(blob) > 60 LIMIT 1").fetchone()
        c.execute("UPDATE buckets SET blob = ? WHERE id = ?", (blob[:-1] + bytes([blob[-1] ^ 1]), bid))
    results = {code_of(lambda n=n: store.get(n)) for n in ("alice", "bob", "carol")}
    assert "STORE_TAMPERED" in results
    assert code_of(store.verify_all) == "STORE_TAMPERED"


def test_edited_bucket_blob_with_matching_hash_column_is_tampered(store: SqliteStore, db: Path) -> None:
    with attacker(db) as c:
        bid, blob = c.execute("SELECT id, blob FROM buckets WHERE length(blob) > 60 LIMIT 1").fetchone()
        forged = blob[:-1] + bytes([blob[-1] ^ 1])
        c.execute("UPDATE buckets SET blob = ?, hash = ? WHERE id = ?", (forged, hashlib.sha256(forged).digest(), bid))
    assert code_of(store.verify_all) == "STORE_TAMPERED"
    store.close()
    assert code_of(lambda: SqliteStore.open(db, KEY)) == "STORE_TAMPERED"  # the root no longer matches


def test_emptied_bucket_replaced_by_another_bucket_is_tampered(store: SqliteStore, db: Path) -> None:
    with attacker(db) as c:
        full = c.execute("SELECT id FROM buckets WHERE length(blob) > 60 LIMIT 1").fetchone()[0]
        empty_hash, empty_blob = c.execute(
            "SELECT hash, blob FROM buckets WHERE id != ? ORDER BY length(blob) LIMIT 1", (full,)
        ).fetchone()
        c.execute("UPDATE buckets SET hash = ?, blob = ? WHERE id = ?", (empty_hash, empty_blob, full))
    assert code_of(store.verify_all) == "STORE_TAMPERED"
    assert code_of(store.names) == "STORE_TAMPERED"


def test_truncated_write_log_is_tampered(store: SqliteStore, db: Path) -> None:
    store.commit({"alice": b"alice-secret-2"})
    store.commit({"dave": b"dave-secret-1"})
    with attacker(db) as c:
        c.execute("DELETE FROM log WHERE ver >= 2")
    assert code_of(store.log) == "STORE_TAMPERED"
    assert code_of(store.verify_all) == "STORE_TAMPERED"


def test_edited_write_log_entry_is_tampered(store: SqliteStore, db: Path) -> None:
    store.commit({"alice": b"alice-secret-2"})
    with attacker(db) as c:
        body = c.execute("SELECT body FROM log WHERE ver = 1").fetchone()[0]
        c.execute("UPDATE log SET body = ? WHERE ver = 1", (body[:20] + bytes([body[20] ^ 4]) + body[21:],))
    assert code_of(store.log) == "STORE_TAMPERED"


def test_write_log_entry_planted_ahead_of_the_head_blocks_commits(store: SqliteStore, db: Path) -> None:
    with attacker(db) as c:
        row = c.execute("SELECT epoch, body, digest FROM log WHERE ver = 1").fetchone()
        c.execute("INSERT INTO log(ver, epoch, body, digest) VALUES (2, ?, ?, ?)", row)
    assert code_of(store.verify_all) == "STORE_TAMPERED"
    assert code_of(lambda: store.commit({"x": b"1"})) == "STORE_TAMPERED"


# -- rollback, truncation and forks while the process runs ------------------------------------------------


def test_whole_file_rollback_while_open_is_rollback(store: SqliteStore, db: Path) -> None:
    old = snapshot(db)
    store.commit({"alice": b"alice-secret-2"})
    store.commit({}, ["bob"])
    install(db, old)
    assert code_of(lambda: store.get("alice")) == "STORE_ROLLBACK"
    assert code_of(lambda: store.get("carol")) == "STORE_ROLLBACK"  # fails closed for every record
    assert code_of(lambda: store.commit({"x": b"1"})) == "STORE_ROLLBACK"


def test_rollback_stays_refused_after_the_newer_files_return(store: SqliteStore, db: Path) -> None:
    old = snapshot(db)
    store.commit({"alice": b"alice-secret-2"})
    new = snapshot(db)
    install(db, old)
    assert code_of(store.verify_all) == "STORE_ROLLBACK"
    install(db, new)
    assert code_of(lambda: store.get("alice")) == "STORE_ROLLBACK"  # sticky until an operator reopens it


def test_dropped_wal_while_open_is_rollback(store: SqliteStore, db: Path) -> None:
    checkpoint(db)  # version 1 is now in the main file; versions 2 and 3 will live only in the WAL
    store.commit({"alice": b"alice-secret-2"})
    store.commit({"dave": b"dave-secret-1"})
    main_only = {"": Path(db).read_bytes()}
    install(db, main_only)  # the WAL is emptied: the last transactions are gone
    assert code_of(lambda: store.get("dave")) == "STORE_ROLLBACK"


def test_replayed_old_head_row_while_open_is_rollback(store: SqliteStore, db: Path) -> None:
    with attacker(db) as c:
        old_head = c.execute("SELECT epoch, ver, digest, root, kcv, mac FROM head").fetchone()
    store.commit({"alice": b"alice-secret-2"})
    with attacker(db) as c:
        c.execute("UPDATE head SET epoch = ?, ver = ?, digest = ?, root = ?, kcv = ?, mac = ? WHERE id = 1", old_head)
    assert code_of(lambda: store.get("alice")) == "STORE_ROLLBACK"


def _fork(db: Path, tmp_path: Path) -> Path:
    """A second copy of the store's files, as an attacker would start a second instance on."""
    other = tmp_path / "fork" / "state.db"
    other.parent.mkdir()
    for suffix, data in snapshot(db).items():
        Path(f"{other}{suffix}").write_bytes(data)
    return other


def test_fork_at_the_same_version_is_fork(store: SqliteStore, db: Path, tmp_path: Path) -> None:
    other = _fork(db, tmp_path)
    store.commit({"alice": b"alice-secret-2"})
    with SqliteStore.open(other, KEY) as twin:
        twin.commit({"alice": b"alice-evil-2"})
    install(db, {"": other.read_bytes()})
    assert code_of(lambda: store.get("alice")) == "STORE_FORK"


def test_record_from_a_fork_at_the_same_version_is_tampered(store: SqliteStore, db: Path, tmp_path: Path) -> None:
    """The fork's record has the same AD (name, epoch, version) and a valid tag: only the index hash stops it."""
    other = _fork(db, tmp_path)
    store.commit({"alice": b"alice-secret-2"})
    with SqliteStore.open(other, KEY) as twin:
        twin.commit({"alice": b"alice-evil-2"})
    with sqlite3.connect(other) as c:
        row = c.execute("SELECT epoch, ver, ct FROM records WHERE name = ?", (b"alice",)).fetchone()
    with attacker(db) as c:
        c.execute("UPDATE records SET epoch = ?, ver = ?, ct = ? WHERE name = ?", (*row, b"alice"))
    assert code_of(lambda: store.get("alice")) == "STORE_TAMPERED"


def test_fork_that_went_further_is_fork(store: SqliteStore, db: Path, tmp_path: Path) -> None:
    other = _fork(db, tmp_path)
    store.commit({"alice": b"alice-secret-2"})
    with SqliteStore.open(other, KEY) as twin:
        twin.commit({"alice": b"alice-evil-2"})
        twin.commit({"mallory": b"evil"})
    install(db, {"": other.read_bytes()})
    assert code_of(lambda: store.get("alice")) == "STORE_FORK"


# -- documented limits ------------------------------------------------------------------------------------


def test_limit_whole_file_rollback_across_restart_is_undetected(db: Path) -> None:
    """Mode A without an external anchor cannot see this (docs/state.md): the restarted process has no `reg`."""
    with SqliteStore.open(db, KEY) as s:
        s.commit({"alice": b"alice-secret-1"})
        old = snapshot(db)
        s.commit({"alice": b"alice-secret-2"})
    install(db, old)
    with SqliteStore.open(db, KEY) as s:
        assert s.get("alice") == b"alice-secret-1"  # the stale value is served without any error
        assert s.head.version == 1
        s.verify_all()  # and every integrity check passes


def test_limit_deleted_store_is_recreated_empty_and_only_flagged(db: Path) -> None:
    """Deleting the files is a rollback to nothing; across a restart only `created` tells the caller."""
    with SqliteStore.open(db, KEY) as s:
        s.commit({"alice": b"alice-secret-1"})
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    with SqliteStore.open(db, KEY) as s:
        assert s.created is True
        assert s.get("alice") is None


def test_limit_fork_of_two_copies_running_apart_is_undetected(store: SqliteStore, db: Path, tmp_path: Path) -> None:
    """Two instances on two copies (two hosts) each see a consistent history; without a witness neither can tell."""
    other = _fork(db, tmp_path)
    with SqliteStore.open(other, KEY) as twin:
        store.commit({"alice": b"alice-secret-2"})
        twin.commit({"alice": b"alice-evil-2"})
        assert store.get("alice") == b"alice-secret-2"
        assert twin.get("alice") == b"alice-evil-2"
        assert store.head.version == twin.head.version == 2
        assert store.head.digest != twin.head.digest  # only a party that sees both heads can tell
        store.verify_all()
        twin.verify_all()
