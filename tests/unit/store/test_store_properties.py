"""Property tests: the store against a dict model, and random corruption of the database files."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custodes.errors import StoreError
from custodes.store import SqliteStore, StoreConflictError

KEY = bytes(range(32))
NAMES = ["a", "b", "ab", "a/b", "é", "x" * 40, "名"]

names = st.sampled_from(NAMES)
values = st.binary(max_size=64)


@dataclass
class Model:
    """The reference semantics: a dict of name -> (value, version) and a version counter."""

    data: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    version: int = 0
    log: list[tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)


commits = st.tuples(
    st.just("commit"),
    st.dictionaries(names, values, max_size=4),
    st.lists(names, max_size=3, unique=True),
    st.dictionaries(names, st.one_of(st.none(), st.integers(0, 12), st.just("current")), max_size=2),
)
ops = st.one_of(
    commits,
    st.tuples(st.just("get"), names),
    st.tuples(st.just("get_many"), st.lists(names, max_size=4)),
    st.tuples(st.just("names"), st.sampled_from(["", "a", "x", "é", "zz"])),
    st.tuples(st.just("version_of"), names),
    st.tuples(st.just("reopen")),
)


def _apply_commit(store: SqliteStore, model: Model, op: tuple) -> None:
    _, puts, deletes, raw_expect = op
    deletes = [n for n in deletes if n not in puts]
    expect = {
        n: (model.data[n][1] if n in model.data else None) if v == "current" else v for n, v in raw_expect.items()
    }
    wrong = sorted(n for n, v in expect.items() if (model.data[n][1] if n in model.data else None) != v)
    if wrong:
        with pytest.raises(StoreConflictError) as err:
            store.commit(puts, deletes, expect=expect)
        assert err.value.reasons == wrong
        return
    head = store.commit(puts, deletes, expect=expect)
    gone = sorted(n for n in deletes if n in model.data)
    if puts or gone:
        model.version += 1
        for n in gone:
            del model.data[n]
        for n, v in puts.items():
            model.data[n] = (v, model.version)
        model.log.append((tuple(sorted(puts, key=str.encode)), tuple(sorted(gone, key=str.encode))))
    assert head.version == model.version


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, max_size=25))
def test_operation_sequences_match_a_dict_model(sequence: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.db"
        store = SqliteStore.open(path, KEY)
        model = Model()
        try:
            for op in sequence:
                kind = op[0]
                if kind == "commit":
                    _apply_commit(store, model, op)
                elif kind == "get":
                    assert store.get(op[1]) == (model.data[op[1]][0] if op[1] in model.data else None)
                elif kind == "get_many":
                    expected = {n: model.data[n][0] if n in model.data else None for n in op[1]}
                    assert store.get_many(op[1]) == expected
                elif kind == "names":
                    assert store.names(op[1]) == sorted(n for n in model.data if n.startswith(op[1]))
                elif kind == "version_of":
                    assert store.version_of(op[1]) == (model.data[op[1]][1] if op[1] in model.data else None)
                else:
                    store.close()
                    store = SqliteStore.open(path, KEY)
                assert store.head.version == model.version
            assert [(e.puts, e.deletes) for e in store.log()] == model.log
            store.verify_all()
        finally:
            store.close()


# -- random corruption -------------------------------------------------------------------------------------


def _history_commits() -> list[tuple[dict[str, bytes], list[str]]]:
    return [
        ({"a": b"A1" * 10, "b": b"B1", "big": bytes(range(256)) * 20}, []),
        ({"a": b"A2", "c": b"C2" * 100}, []),
        ({"d": b"D3"}, ["b"]),
        ({"big": b"\xff" * 6000, "e": b""}, []),
        ({"b": b"B5"}, ["c"]),
        ({"a": b"A6" * 300}, ["d"]),
    ]


ALL_NAMES = ["a", "b", "c", "d", "e", "big"]


class Corpus(dict):
    """The corpus, with a short repr so that hypothesis reports stay readable."""

    def __repr__(self) -> str:
        return "<store corpus>"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """A store with a known history: one copy fully checkpointed, one with its newest commits only in the WAL."""
    base = tmp_path_factory.mktemp("corpus") / "s.db"
    states: list[dict[str, bytes]] = [{}]
    with SqliteStore.open(base, KEY) as s:
        for puts, deletes in _history_commits():
            s.commit(puts, deletes)
            states.append({**{k: v for k, v in states[-1].items() if k not in deletes}, **puts})
    checkpointed = base.read_bytes()
    s = SqliteStore.open(base, KEY)
    for puts, deletes in [({"a": b"A7", "f": b"F7"}, ["e"]), ({"b": b"B8" * 50}, [])]:
        s.commit(puts, deletes)
        states.append({**{k: v for k, v in states[-1].items() if k not in deletes}, **puts})
    with_wal = (base.read_bytes(), Path(f"{base}-wal").read_bytes())
    s.close()
    return Corpus(states=states, checkpointed=checkpointed, with_wal=with_wal)


def _observe(path: Path) -> tuple[int, dict[str, bytes]] | None:
    """Open and read everything; None if the store refused with a StoreError (the only allowed failure)."""
    try:
        with SqliteStore.open(path, KEY) as s:
            version = s.head.version
            got = s.get_many([*ALL_NAMES, "f"])
            assert sorted(s.names()) == sorted(n for n, v in got.items() if v is not None)
            return version, {n: v for n, v in got.items() if v is not None}
    except StoreError:
        return None


flips = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=3)


def _flip(data: bytes, where: list[tuple[float, int]]) -> bytes:
    out = bytearray(data)
    for frac, xor in where:
        out[int(frac * len(out))] ^= xor
    return bytes(out)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips)
def test_corrupting_the_database_never_yields_wrong_plaintext(corpus: dict, where: list) -> None:
    states = corpus["states"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.db"
        path.write_bytes(_flip(corpus["checkpointed"], where))
        seen = _observe(path)
    if seen is not None:
        assert seen == (6, states[6])  # the right answer, in full, or an error


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips, st.booleans())
def test_corrupting_the_database_or_wal_yields_an_error_or_a_genuine_state(
    corpus: dict, where: list, in_wal: bool
) -> None:
    """A damaged WAL frame makes SQLite stop replaying there: that is a truncation, a genuine older state.

    Across a restart that is the documented limit (truncation = rollback); what must never happen is a state
    that never existed, or a value that was never written.
    """
    states = corpus["states"]
    main, wal = corpus["with_wal"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.db"
        path.write_bytes(main if in_wal else _flip(main, where))
        Path(f"{path}-wal").write_bytes(_flip(wal, where) if in_wal else wal)
        seen = _observe(path)
    if seen is not None:
        version, got = seen
        assert got == states[version]
