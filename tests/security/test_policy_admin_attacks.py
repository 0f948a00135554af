"""Attacks on policy administration: each performed against a real CAS and refused with its exact code."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from _support import CasProcess, Owner, Workload, custodes_cmd
from conftest import simple_policy
from custodes.client import CasClient, CasError
from custodes.ledger.note import add_signature
from custodes.ledger.requests import read_text
from custodes.policy import load_policy
from custodes.protocol import b64e


def put(client: CasClient, text: str, signers: list[Owner], *, create: bool, keys: list[Owner] | None = None) -> dict:
    policy = load_policy(text)
    return client.put_policy(
        text,
        name=policy.name,
        policy_hash=policy.hash,
        predecessor=policy.predecessor,
        signers=[(s.name, s.key) for s in signers],
        create=create,
    )


def refused(call) -> CasError:  # type: ignore[no-untyped-def]
    with pytest.raises(CasError) as info:
        call()
    assert 400 <= info.value.status < 500
    return info.value


def test_update_with_a_stale_predecessor_is_refused(cas: CasProcess, owner: Owner, workload: Workload) -> None:
    m = workload.measurement
    with cas.client() as client:
        v1 = put(client, simple_policy("admin/stale", owner, m), [owner], create=True)["hash"]
        v2_text = simple_policy("admin/stale", owner, m, predecessor=v1, grace="6d")
        v2 = put(client, v2_text, [owner], create=False)["hash"]
        # A second update still naming v1 (e.g. replayed or raced) must not land.
        stale = simple_policy("admin/stale", owner, m, predecessor=v1, grace="5d")
        err = refused(lambda: put(client, stale, [owner], create=False))
    assert err.code == "PREDECESSOR_MISMATCH"
    assert err.status == 409
    assert f"current: {v2}" in err.reasons


def test_create_over_an_existing_name_is_refused(cas: CasProcess, owner: Owner, workload: Workload) -> None:
    mallory = Owner("owner")  # claims the same key name with another key
    with cas.client() as client:
        put(client, simple_policy("admin/taken", owner, workload.measurement), [owner], create=True)
        err = refused(
            lambda: put(client, simple_policy("admin/taken", mallory, workload.measurement), [mallory], create=True)
        )
    assert err.code == "POLICY_EXISTS"


def test_update_by_a_key_not_in_access_is_refused(cas: CasProcess, owner: Owner, workload: Workload) -> None:
    mallory = Owner("owner")  # same key name, different key: signature lines by unknown keys are ignored
    with cas.client() as client:
        v1 = put(client, simple_policy("admin/hijack", owner, workload.measurement), [owner], create=True)["hash"]
        hijack = simple_policy("admin/hijack", mallory, workload.measurement, predecessor=v1)
        err = refused(lambda: put(client, hijack, [mallory], create=False))
    assert err.code == "SIGNER_NOT_AUTHORIZED"


def test_update_by_a_reader_who_is_not_a_signer_is_refused(cas: CasProcess, owner: Owner, workload: Workload) -> None:
    reader = Owner("reader")
    extra = f'  reader: "{reader.fingerprint}"'
    with cas.client() as client:
        v1 = put(
            client,
            simple_policy("admin/reader", owner, workload.measurement, extra_keys=extra, readers="[owner, reader]"),
            [owner],
            create=True,
        )["hash"]
        change = simple_policy(
            "admin/reader",
            owner,
            workload.measurement,
            extra_keys=extra,
            readers="[owner, reader]",
            predecessor=v1,
            allow_debug=True,
        )
        err = refused(lambda: put(client, change, [reader], create=False))
    assert err.code == "SIGNER_NOT_AUTHORIZED"


def test_read_by_a_key_not_in_access_is_refused(cas: CasProcess, owner: Owner, workload: Workload) -> None:
    outsider = Owner("owner")
    with cas.client() as client:
        put(client, simple_policy("admin/secret-read", owner, workload.measurement), [owner], create=True)
        err = refused(lambda: client.read_policy("admin/secret-read", "owner", outsider.key))
        assert client.read_policy("admin/secret-read", "owner", owner.key)["name"] == "admin/secret-read"
    assert err.code == "SIGNER_NOT_AUTHORIZED"


def test_replayed_read_request_is_refused(cas: CasProcess, owner: Owner, workload: Workload) -> None:
    with cas.client() as client:
        put(client, simple_policy("admin/read-replay", owner, workload.measurement), [owner], create=True)
        nonce = client.request("POST", "/v1/auth/challenge")["nonce"]
        note = add_signature(read_text("admin/read-replay", nonce), "owner", owner.key)
        headers = {"Custodes-Note": b64e(note.render().encode()), "Custodes-Keys": b64e(owner.pem.encode())}
        client.request("GET", "/v1/policies/admin/read-replay", headers=headers)
        err = refused(lambda: client.request("GET", "/v1/policies/admin/read-replay", headers=headers))
    assert err.code == "NONCE_UNKNOWN"


def test_update_signed_by_fewer_signers_than_the_threshold_is_refused(
    cas: CasProcess, owner: Owner, workload: Workload
) -> None:
    alice, bob = Owner("alice"), Owner("bob")
    extra = f'  alice: "{alice.fingerprint}"\n' + " " * 10 + f'bob: "{bob.fingerprint}"'
    board = "{signers: [owner, alice, bob], threshold: 2}"
    m = workload.measurement
    with cas.client() as client:
        v1 = put(
            client, simple_policy("admin/board", owner, m, extra_keys=extra, update=board), [owner, alice], create=True
        )["hash"]
        change = simple_policy(
            "admin/board", owner, m, extra_keys=extra, update=board, predecessor=v1, allow_debug=True
        )
        err = refused(lambda: put(client, change, [alice], create=False))
        # The same signer twice still counts once.
        err_twice = refused(lambda: put(client, change, [alice, alice], create=False))
        assert put(client, change, [alice, bob], create=False)["signers"] == ["alice", "bob"]
    assert err.code == "SIGNATURE_THRESHOLD_NOT_MET"
    assert err_twice.code == "SIGNATURE_THRESHOLD_NOT_MET"


def test_create_below_the_new_policys_own_threshold_is_refused(
    cas: CasProcess, owner: Owner, workload: Workload
) -> None:
    alice = Owner("alice")
    extra = f'  alice: "{alice.fingerprint}"'
    text = simple_policy(
        "admin/board-create",
        owner,
        workload.measurement,
        extra_keys=extra,
        update="{signers: [owner, alice], threshold: 2}",
    )
    with cas.client() as client:
        err = refused(lambda: put(client, text, [owner], create=True))
    assert err.code == "SIGNATURE_THRESHOLD_NOT_MET"


def test_tampered_record_in_the_sqlite_file_stops_the_cas(
    tmp_path: Path,
    sim,
    owner: Owner,
    workload: Workload,  # type: ignore[no-untyped-def]
) -> None:
    server = CasProcess(tmp_path / "cas", sim.path).start()
    with server.client() as client:
        put(client, simple_policy("admin/tamper", owner, workload.measurement), [owner], create=True)
    server.stop()
    db = sqlite3.connect(tmp_path / "cas" / "state.db")
    (table,) = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'") if "rec" in r[0]]
    rowid, blob = db.execute(f"SELECT rowid, ct FROM {table} ORDER BY length(ct) DESC LIMIT 1").fetchone()
    tampered = bytearray(blob)
    tampered[len(tampered) // 2] ^= 0x40
    db.execute(f"UPDATE {table} SET ct = ? WHERE rowid = ?", (bytes(tampered), rowid))
    db.commit()
    db.close()
    result = subprocess.run(
        custodes_cmd(
            "cas",
            "serve",
            "--data-dir",
            str(tmp_path / "cas"),
            "--listen",
            "127.0.0.1:0",
            "--sim-vendor",
            str(sim.path),
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: STORE_TAMPERED:")
