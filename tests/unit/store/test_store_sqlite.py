"""SqliteStore behaviour on real SQLite files: round trips, deletes, expectations, reopening, limits, threads."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest

from custodes.errors import StoreError
from custodes.store import (
    MAX_NAME_BYTES,
    MAX_VALUE_BYTES,
    Head,
    SqliteStore,
    StoreClosedError,
    StoreConflictError,
    StoreCorruptError,
    StoreKeyInvalidError,
    StoreNameInvalidError,
    StoreValueTooLargeError,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def store(db: Path):
    s = SqliteStore.open(db, KEY)
    yield s
    s.close()


def test_new_store_is_empty_at_version_zero(store: SqliteStore) -> None:
    assert store.created is True
    assert store.head.version == 0
    assert store.head.epoch == 1
    assert store.get("absent") is None
    assert store.names() == []
    assert store.log() == []


def test_round_trip_and_versions(store: SqliteStore) -> None:
    h1 = store.commit({"a": b"one", "b": b""})
    assert h1 == Head(epoch=1, version=1, digest=h1.digest)
    assert store.get("a") == b"one"
    assert store.get("b") == b""
    assert store.version_of("a") == 1
    h2 = store.commit({"a": b"two"})
    assert h2.version == 2
    assert h2.digest != h1.digest
    assert store.get("a") == b"two"
    assert store.version_of("a") == 2
    assert store.version_of("b") == 1
    assert store.head == h2


def test_unicode_names_and_binary_values(store: SqliteStore) -> None:
    values = {"ключ/é": bytes(range(256)), "名前": b"\x00" * 10, "x" * MAX_NAME_BYTES: b"long name"}
    store.commit(values)
    assert store.get_many(list(values)) == values


def test_many_records(store: SqliteStore) -> None:
    values = {f"rec/{i:04d}": os.urandom(i % 50) for i in range(1500)}
    store.commit(dict(list(values.items())[:700]))
    store.commit(dict(list(values.items())[700:]))
    assert store.names() == sorted(values)
    assert store.names("rec/00") == sorted(n for n in values if n.startswith("rec/00"))
    assert store.get_many(list(values)) == values
    store.verify_all()


def test_deletes(store: SqliteStore) -> None:
    store.commit({"a": b"1", "b": b"2", "c": b"3"})
    head = store.commit({}, ["a", "c"])
    assert head.version == 2
    assert store.get("a") is None
    assert store.version_of("a") is None
    assert store.names() == ["b"]
    assert store.log(1)[0].deletes == ("a", "c")
    store.verify_all()


def test_deleting_absent_names_writes_nothing(store: SqliteStore) -> None:
    h1 = store.commit({"a": b"1"})
    assert store.commit({}, ["never-there"]) == h1
    assert store.commit({}) == h1
    assert store.head == h1


def test_put_and_delete_of_same_name_is_refused(store: SqliteStore) -> None:
    with pytest.raises(ValueError):
        store.commit({"a": b"1"}, ["a"])
    with pytest.raises(TypeError):
        store.commit({}, "a")  # a bare string is a likely mistake for ["a"]


def test_expect_absent_and_versions(store: SqliteStore) -> None:
    store.commit({"a": b"1"}, expect={"a": None})
    with pytest.raises(StoreConflictError) as err:
        store.commit({"a": b"2"}, expect={"a": None})
    assert err.value.code == "STORE_CONFLICT"
    assert err.value.reasons == ["a"]
    store.commit({"a": b"2"}, expect={"a": 1})
    with pytest.raises(StoreConflictError):
        store.commit({"a": b"3"}, expect={"a": 1})
    assert store.get("a") == b"2"


def test_conflict_writes_nothing_at_all(store: SqliteStore) -> None:
    h = store.commit({"a": b"1"})
    with pytest.raises(StoreConflictError) as err:
        store.commit({"a": b"2", "b": b"x"}, ["a2"], expect={"a": 1, "c": 7, "d": None})
    assert err.value.reasons == ["c"]
    assert store.head == h
    assert store.get("b") is None


def test_expect_on_untouched_name_guards_a_read(store: SqliteStore) -> None:
    store.commit({"policy": b"p1"})
    seen = store.version_of("policy")
    store.commit({"policy": b"p2"})
    with pytest.raises(StoreConflictError):
        store.commit({"derived": b"from p1"}, expect={"policy": seen})
    assert store.get("derived") is None


def test_log_lists_names_never_values(store: SqliteStore) -> None:
    store.commit({"b": b"secret-b", "a": b"secret-a"})
    store.commit({"c": b"secret-c"}, ["a"])
    log = store.log()
    assert [(e.version, e.puts, e.deletes) for e in log] == [(1, ("a", "b"), ()), (2, ("c",), ("a",))]
    assert log[-1].digest == store.head.digest
    assert store.log(1) == log[1:]
    assert store.log(2) == []
    assert "secret" not in repr(log)


def test_reopen_with_the_right_key(db: Path) -> None:
    with SqliteStore.open(db, KEY) as s:
        s.commit({"a": b"1"})
        s.commit({"b": b"2"}, ["a"])
        head = s.head
    with SqliteStore.open(db, KEY) as s:
        assert s.created is False
        assert s.head == head
        assert s.get("b") == b"2"
        assert s.get("a") is None
        s.verify_all()
        assert s.commit({"c": b"3"}).version == 3


def test_reopen_with_a_wrong_key_is_key_invalid(db: Path) -> None:
    with SqliteStore.open(db, KEY) as s:
        s.commit({"a": b"1"})
    with pytest.raises(StoreKeyInvalidError) as err:
        SqliteStore.open(db, OTHER_KEY)
    assert err.value.code == "STORE_KEY_INVALID"
    assert OTHER_KEY.hex() not in str(err.value)


@pytest.mark.parametrize("key", [b"", b"\x00" * 31, b"\x00" * 33, "0" * 32])
def test_malformed_root_key_is_refused(db: Path, key: object) -> None:
    with pytest.raises(StoreKeyInvalidError):
        SqliteStore.open(db, key)  # type: ignore[arg-type]


def test_name_limits(store: SqliteStore) -> None:
    for bad in ["", "x" * (MAX_NAME_BYTES + 1), "é" * (MAX_NAME_BYTES // 2 + 1), "\ud800"]:
        with pytest.raises(StoreNameInvalidError):
            store.commit({bad: b"v"})
        with pytest.raises(StoreNameInvalidError):
            store.get(bad)
    with pytest.raises(TypeError):
        store.get(b"bytes")  # type: ignore[arg-type]


def test_value_limit(store: SqliteStore) -> None:
    store.commit({"max": b"\x01" * MAX_VALUE_BYTES})
    assert store.get("max") == b"\x01" * MAX_VALUE_BYTES
    with pytest.raises(StoreValueTooLargeError) as err:
        store.commit({"big": b"\x01" * (MAX_VALUE_BYTES + 1)})
    assert err.value.code == "STORE_VALUE_TOO_LARGE"
    with pytest.raises(TypeError):
        store.commit({"s": "text"})  # type: ignore[dict-item]


def test_closed_store_refuses(db: Path) -> None:
    s = SqliteStore.open(db, KEY)
    s.close()
    s.close()
    with pytest.raises(StoreClosedError):
        s.get("a")


def test_not_a_database_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"definitely not sqlite" * 300)
    with pytest.raises(StoreCorruptError):
        SqliteStore.open(path, KEY)


def test_foreign_sqlite_database_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE users(id INTEGER)")
    with pytest.raises(StoreCorruptError):
        SqliteStore.open(path, KEY)


def test_planted_trigger_is_refused(db: Path) -> None:
    SqliteStore.open(db, KEY).close()
    with sqlite3.connect(db) as c:
        c.execute("CREATE TRIGGER t AFTER UPDATE ON head BEGIN DELETE FROM log; END")
    with pytest.raises(StoreCorruptError):
        SqliteStore.open(db, KEY)


def test_wal_mode_and_full_sync(store: SqliteStore, db: Path) -> None:
    store.commit({"a": b"1"})
    conn = store._conn  # the store's own connection: the settings are per connection
    assert conn is not None
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == b"wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert Path(f"{db}-wal").exists()


def test_acknowledged_commit_survives_an_unclean_stop(db: Path) -> None:
    s = SqliteStore.open(db, KEY)
    head = s.commit({"a": b"durable"})
    # No close(): a crashed process never checkpoints. A new process must see the acknowledged state.
    with SqliteStore.open(db, KEY) as again:
        assert again.head == head
        assert again.get("a") == b"durable"
    s.close()


def test_second_instance_on_same_file_sees_the_other_writes(db: Path) -> None:
    with SqliteStore.open(db, KEY) as a, SqliteStore.open(db, KEY) as b:
        a.commit({"x": b"1"})
        assert b.get("x") == b"1"  # b's head moves forward after checking a's log extends its own
        b.commit({"y": b"2"}, expect={"x": 1})
        assert a.get_many(["x", "y"]) == {"x": b"1", "y": b"2"}
        assert a.head == b.head


def test_concurrent_writers_and_readers(store: SqliteStore) -> None:
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            for i in range(40):
                name = f"counter/{t}"
                seen = store.version_of(name)
                store.commit({name: str(i).encode(), f"w/{t}/{i}": b"x"}, expect={name: seen})
        except BaseException as e:
            errors.append(e)

    def reader() -> None:
        try:
            for _ in range(80):
                for v in store.get_many([f"counter/{t}" for t in range(4)]).values():
                    assert v is None or v.isdigit()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.head.version == 160
    assert all(store.get(f"counter/{t}") == b"39" for t in range(4))
    assert len(store.log()) == 160
    store.verify_all()


def test_concurrent_expectations_on_one_name_let_exactly_one_win(store: SqliteStore) -> None:
    store.commit({"slot": b"free"})
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def claim(t: int) -> None:
        barrier.wait()
        try:
            store.commit({"slot": f"taken by {t}".encode()}, expect={"slot": 1})
            outcomes.append("won")
        except StoreError as e:
            outcomes.append(e.code)

    threads = [threading.Thread(target=claim, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["STORE_CONFLICT"] * 3 + ["won"]


def test_repr_shows_no_key_material(store: SqliteStore) -> None:
    store.commit({"a": b"value-bytes"})
    text = repr(store) + repr(store._keys)
    assert KEY.hex() not in text
    assert "value-bytes" not in text
    assert "redacted" in repr(store._keys)
