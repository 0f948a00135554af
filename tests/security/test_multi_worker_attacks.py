"""Attacks across the worker processes of one CAS (``--workers 2``): state one worker keeps must bind the others.

Each test pins its connections to known workers (tests/_workers.py), so the attack really crosses processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from _support import CasProcess, Owner, Workload, put_policy
from _workers import attest_with, challenge, clients_per_worker
from conftest import simple_policy
from custodes.client import CasClient, CasError
from custodes.evidence.simvendor import SimVendor
from custodes.ledger.keys import public_pem
from custodes.ledger.note import add_signature
from custodes.ledger.requests import read_text
from custodes.policy import load_policy
from custodes.protocol import RuntimeKey, b64d, b64e, report_data_for


@pytest.fixture(scope="module")
def cas2(tmp_path_factory: pytest.TempPathFactory, sim: SimVendor) -> Iterator[CasProcess]:
    process = CasProcess(tmp_path_factory.mktemp("cas"), sim.path, extra_args=["--workers", "2"]).start()
    yield process
    process.stop()


@pytest.fixture
def pinned(cas2: CasProcess) -> Iterator[dict[int, CasClient]]:
    clients = clients_per_worker(cas2, 2)
    yield clients
    for client in clients.values():
        client.close()


def refused(call) -> CasError:  # type: ignore[no-untyped-def]
    with pytest.raises(CasError) as info:
        call()
    assert 400 <= info.value.status < 500, info.value
    return info.value


def test_a_nonce_used_on_one_worker_is_refused_as_reused_on_the_other(
    pinned: dict[int, CasClient], workload: Workload, owner: Owner
) -> None:
    put_policy(pinned[0], simple_policy("xw/replay", owner, workload.measurement), owner)
    nonce = challenge(pinned[0], "xw/replay", "app")
    key = RuntimeKey.generate()
    attest_with(pinned[1], "xw/replay", "app", nonce, workload.provider(), key=key)  # answered on the other worker
    err = refused(lambda: attest_with(pinned[0], "xw/replay", "app", nonce, workload.provider(), key=key))
    assert err.code == "NONCE_REUSED"


def test_one_nonce_raced_on_connections_to_both_workers_is_accepted_once(
    cas2: CasProcess, pinned: dict[int, CasClient], workload: Workload, owner: Owner
) -> None:
    """The same evidence and nonce at once on 12 connections spread over both workers."""
    put_policy(pinned[0], simple_policy("xw/race", owner, workload.measurement), owner)
    nonce = challenge(pinned[1], "xw/race", "app")
    key = RuntimeKey.generate()
    data, aux = workload.provider().evidence(report_data_for(b64d(nonce, field="nonce"), key.public_bytes))
    body = {
        "policy": "xw/race",
        "service": "app",
        "nonce": nonce,
        "evidence": {"type": "simulated", "data": b64e(data), "aux": b64e(aux) if aux else None},
        "public_key": b64e(key.public_bytes),
    }
    racers = [cas2.client() for _ in range(10)] + list(pinned.values())
    workers = {client.status()["worker"] for client in racers}
    assert workers == {0, 1}

    def send(client: CasClient) -> str:
        try:
            client.request("POST", "/v1/attest", json=body)
            return "accepted"
        except CasError as exc:
            return exc.code

    with ThreadPoolExecutor(len(racers)) as pool:
        outcomes = list(pool.map(send, racers))
    for client in racers[:10]:
        client.close()
    assert outcomes.count("accepted") == 1, outcomes
    assert set(outcomes) == {"accepted", "NONCE_REUSED"}


def test_a_nonce_for_one_policy_is_refused_for_another_on_the_other_worker(
    pinned: dict[int, CasClient], workload: Workload, owner: Owner
) -> None:
    put_policy(pinned[0], simple_policy("xw/bind-a", owner, workload.measurement), owner)
    put_policy(pinned[0], simple_policy("xw/bind-b", owner, workload.measurement), owner)
    nonce = challenge(pinned[0], "xw/bind-a", "app")
    err = refused(lambda: attest_with(pinned[1], "xw/bind-b", "app", nonce, workload.provider()))
    assert err.code == "NONCE_MISMATCH"


def test_a_lease_of_one_policy_cannot_be_renewed_for_another_on_the_other_worker(
    pinned: dict[int, CasClient], workload: Workload, owner: Owner
) -> None:
    put_policy(pinned[0], simple_policy("xw/lease-a", owner, workload.measurement), owner)
    put_policy(pinned[0], simple_policy("xw/lease-b", owner, workload.measurement), owner)
    lease_a = pinned[0].attest("xw/lease-a", "app", workload.provider()).lease["id"]
    nonce = challenge(pinned[1], "xw/lease-b", "app")
    err = refused(lambda: attest_with(pinned[1], "xw/lease-b", "app", nonce, workload.provider(), lease_id=lease_a))
    assert err.code == "LEASE_UNKNOWN"


def test_a_lease_ended_by_refused_evidence_on_one_worker_cannot_be_renewed_on_the_other(
    tmp_path: Path, pinned: dict[int, CasClient], workload: Workload, owner: Owner
) -> None:
    put_policy(pinned[0], simple_policy("xw/revoked", owner, workload.measurement), owner)
    lease = pinned[0].attest("xw/revoked", "app", workload.provider()).lease["id"]
    other = tmp_path / "other.py"
    other.write_text("print('not the measured app')\n")
    intruder = Workload(workload.platform, [other])
    err = refused(lambda: pinned[0].attest("xw/revoked", "app", intruder.provider(), lease_id=lease))
    assert err.code == "MEASUREMENT_MISMATCH"
    err = refused(lambda: pinned[1].attest("xw/revoked", "app", workload.provider(), lease_id=lease))
    assert err.code == "LEASE_UNKNOWN"


def test_a_forged_lease_id_naming_a_live_slot_is_refused(
    pinned: dict[int, CasClient], workload: Workload, owner: Owner
) -> None:
    """A lease id names its slot; the random tag beside it must match, so a guessed id for a live slot fails."""
    put_policy(pinned[0], simple_policy("xw/forged", owner, workload.measurement), owner)
    lease = pinned[0].attest("xw/forged", "app", workload.provider()).lease["id"]
    raw = bytearray(b64d(lease, field="lease"))
    raw[-1] ^= 1
    forged = b64e(bytes(raw))
    err = refused(lambda: pinned[1].attest("xw/forged", "app", workload.provider(), lease_id=forged))
    assert err.code == "LEASE_UNKNOWN"


def test_an_update_with_the_predecessor_another_worker_superseded_is_refused(
    pinned: dict[int, CasClient], workload: Workload, owner: Owner
) -> None:
    """Worker 1 commits an update; worker 0, whose cache still held the old policy, must refuse the stale one."""
    first = put_policy(pinned[0], simple_policy("xw/stale", owner, workload.measurement), owner)
    assert pinned[1].read_policy("xw/stale", "owner", owner.key)["hash"] == first  # both workers know v1
    second = simple_policy("xw/stale", owner, workload.measurement, predecessor=first, grace="3d")
    put_policy(pinned[1], second, owner, create=False)
    stale = simple_policy("xw/stale", owner, workload.measurement, predecessor=first, grace="5d")
    err = refused(lambda: put_policy(pinned[0], stale, owner, create=False))
    assert err.code == "PREDECESSOR_MISMATCH"
    assert load_policy(second).hash in err.reasons[0]


def test_a_signed_read_replayed_on_the_other_worker_is_refused(
    pinned: dict[int, CasClient], workload: Workload, owner: Owner
) -> None:
    """A read request signs the CAS's nonce; replaying it, even to another worker, finds the nonce used."""
    put_policy(pinned[0], simple_policy("xw/read", owner, workload.measurement), owner)
    nonce = pinned[0].request("POST", "/v1/auth/challenge")["nonce"]
    note = add_signature(read_text("xw/read", nonce), "owner", owner.key)
    headers = {
        "Custodes-Note": b64e(note.render().encode()),
        "Custodes-Keys": b64e(public_pem(owner.key.public_key()).encode()),
    }
    assert pinned[1].request("GET", "/v1/policies/xw/read", headers=headers)["name"] == "xw/read"
    err = refused(lambda: pinned[0].request("GET", "/v1/policies/xw/read", headers=headers))
    assert err.code == "NONCE_UNKNOWN"


@pytest.mark.parametrize("last_update_on", [0, 1], ids=["caching-worker", "other-worker"])
def test_both_workers_hand_out_one_secret_after_its_definition_changes_and_changes_back(
    pinned: dict[int, CasClient], workload: Workload, owner: Owner, last_update_on: int
) -> None:
    """Worker 0 holds the value for definition A; worker 1 generates anew for B; the policy returns to A. A worker
    that trusted its own copy because A matches would hand out a value the store no longer holds."""
    name, m = f"xw/secret-round-trip-{last_update_on}", workload.measurement

    def password(worker: int) -> str:
        return pinned[worker].attest(name, "app", workload.provider()).config["command"][2]

    v1 = put_policy(pinned[0], simple_policy(name, owner, m), owner)
    password(0)  # worker 0 now holds definition A's value
    spec_b = simple_policy(name, owner, m, predecessor=v1).replace("size: 16", "size: 17")
    v2 = put_policy(pinned[1], spec_b, owner, create=False)
    assert len(password(1)) == 17  # worker 1 generated B's value
    put_policy(pinned[last_update_on], simple_policy(name, owner, m, predecessor=v2), owner, create=False)
    assert password(1) == password(0)
    assert len(password(0)) == 16
