"""A CAS with several worker processes (``custodes cas serve --workers N``): one service to its clients, whichever
worker a connection lands on, and one supervisor that keeps the workers alive and takes them down with it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from _support import CasProcess, Owner, Workload, custodes_cmd, put_policy
from _workers import attest_with, challenge, clients_per_worker
from conftest import simple_policy
from custodes.evidence.simvendor import SimVendor
from custodes.policy import load_policy

POLICY_WITH_SECRETS = """\
name: {name}
predecessor: ~
keys: {{owner: "{owner}"}}
access: {{read: [owner], update: {{signers: [owner]}}}}
security: {{allow_simulated: true}}
services:
  - name: app
    measurements: [{{tee: simulated, measurement: "{measurement}"}}]
    command: [python3, app.py, "$$custodes::password$$"]
    files:
      - {{path: /run/tls.key, content: "$$custodes::tls:key$$"}}
      - {{path: /run/tls.crt, content: "$$custodes::tls:chain$$"}}
secrets:
  - {{name: password, kind: ascii, size: 24}}
  - {{name: ca, kind: x509-ca, common_name: workers CA}}
  - {{name: tls, kind: x509, issuer: ca, dns: [app.example]}}
"""


def worker_pids(cas: CasProcess) -> list[int]:
    """The supervisor's live children (none once it has exited)."""
    assert cas.proc is not None
    try:
        children = Path(f"/proc/{cas.proc.pid}/task/{cas.proc.pid}/children").read_text().split()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return sorted(int(pid) for pid in children)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


@pytest.fixture
def cas2(tmp_path: Path, sim: SimVendor) -> Iterator[CasProcess]:
    process = CasProcess(tmp_path / "cas", sim.path, extra_args=["--workers", "2"]).start()
    yield process
    process.stop()


def test_connections_are_spread_evenly_and_go_to_the_least_loaded_worker(cas2: CasProcess) -> None:
    """The supervisor passes each connection to the worker with the fewest open (server/balancer.py), so a
    keep-alive fleet splits exactly, not as the kernel's wake-ups happen to fall."""
    clients = [cas2.client() for _ in range(10)]
    try:
        workers = [client.status()["worker"] for client in clients]
        assert sorted(workers) == [0] * 5 + [1] * 5
        for client, worker in zip(clients, workers, strict=True):
            if worker == 0:
                client.close()
        time.sleep(1.0)  # worker 0 sees the five connections end
        fresh = [cas2.client() for _ in range(4)]
        clients += fresh
        assert [client.status()["worker"] for client in fresh] == [0, 0, 0, 0]
        assert fresh[-1].status()["connections"] == [4, 5]  # what an operator sees of the balance
    finally:
        for client in clients:
            client.close()


def test_every_worker_serves_the_same_policies_secrets_and_leases(
    cas2: CasProcess, workload: Workload, owner: Owner
) -> None:
    pinned = clients_per_worker(cas2, 2)
    assert {i: c.status()["workers"] for i, c in pinned.items()} == {0: 2, 1: 2}
    text = POLICY_WITH_SECRETS.format(name="workers/app", owner=owner.fingerprint, measurement=workload.measurement)
    put_policy(pinned[0], text, owner)
    # The first attestations of a new policy race to generate its secrets on both workers at once: one generation
    # wins and both workers hand out its values.
    with ThreadPoolExecutor(2) as pool:
        first = list(pool.map(lambda c: c.attest("workers/app", "app", workload.provider()), pinned.values()))
    configs = [a.rendered() for a in first]
    assert configs[0].command == configs[1].command
    assert [f.content for f in configs[0].files] == [f.content for f in configs[1].files]
    for secret in ("password", "ca", "tls"):
        assert sum(f"secret workers/app/{secret} generated" in line for line in cas2.stderr_lines) == 1
    # A lease issued by one worker is renewed by the other, and counted by both.
    lease = first[0].lease["id"]
    renewed = pinned[1].attest("workers/app", "app", workload.provider(), lease_id=lease)
    assert renewed.lease["id"] == lease
    assert pinned[0].status()["leases"] == pinned[1].status()["leases"] == 2
    for client in pinned.values():
        client.close()


def test_a_policy_update_on_one_worker_is_served_at_once_by_the_other(
    cas2: CasProcess, workload: Workload, owner: Owner
) -> None:
    pinned = clients_per_worker(cas2, 2)
    text = simple_policy("workers/update", owner, workload.measurement)
    put_policy(pinned[0], text, owner)
    old = load_policy(text).hash
    assert pinned[1].attest("workers/update", "app", workload.provider()).policy_version == old
    newer = simple_policy("workers/update", owner, workload.measurement, predecessor=old, grace="3d")
    pinned[1].put_policy(
        newer,
        name="workers/update",
        policy_hash=load_policy(newer).hash,
        predecessor=old,
        signers=[("owner", owner.key)],
        create=False,
    )
    assert pinned[0].attest("workers/update", "app", workload.provider()).policy_version == load_policy(newer).hash
    for client in pinned.values():
        client.close()


def test_a_killed_worker_is_restarted_and_the_shared_state_survives_it(
    cas2: CasProcess, workload: Workload, owner: Owner
) -> None:
    pinned = clients_per_worker(cas2, 2)
    put_policy(pinned[0], simple_policy("workers/crash", owner, workload.measurement), owner)
    lease = pinned[0].attest("workers/crash", "app", workload.provider()).lease["id"]
    nonce = challenge(pinned[0], "workers/crash", "app")
    victim_pid = pinned[0].status()["worker_pid"]
    assert victim_pid in worker_pids(cas2)
    os.kill(victim_pid, signal.SIGKILL)
    wait_until(lambda: len(worker_pids(cas2)) == 2 and victim_pid not in worker_pids(cas2))
    wait_until(lambda: any("restarting it" in line for line in cas2.stderr_lines))
    survivor = pinned[1]
    # The nonce and the lease the dead worker issued live in the supervisor's shared memory, not in the worker.
    result, _ = attest_with(survivor, "workers/crash", "app", nonce, workload.provider(), lease_id=lease)
    assert result["lease"]["id"] == lease
    fresh = clients_per_worker(cas2, 2)  # the restarted worker accepts connections again
    assert fresh[0].status()["worker_pid"] != victim_pid
    assert fresh[0].attest("workers/crash", "app", workload.provider()).lease["id"]
    for client in [*pinned.values(), *fresh.values()]:
        client.close()


def test_workers_that_keep_dying_stop_the_cas_instead_of_flapping(cas2: CasProcess) -> None:
    """More than 5 restarts within a minute: the supervisor stops everything and exits non-zero."""
    assert cas2.proc is not None
    killed: set[int] = set()
    while cas2.proc.poll() is None:
        for pid in set(worker_pids(cas2)) - killed:
            killed.add(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    assert cas2.proc.wait(timeout=30) == 1
    wait_until(lambda: any("CAS_WORKER_FAILED" in line for line in cas2.stderr_lines))
    # Two workers, then five restarts; the sixth death within the minute ends it (the test may not have seen the
    # last restarted worker before the supervisor stopped it).
    assert 6 <= len(killed) <= 7
    wait_until(lambda: not any(alive(pid) for pid in killed))


def test_sigterm_stops_every_worker_and_the_supervisor(cas2: CasProcess) -> None:
    pids = worker_pids(cas2)
    assert len(pids) == 2
    assert cas2.stop() == 0
    wait_until(lambda: not any(alive(pid) for pid in pids))


def test_a_worker_that_does_not_stop_is_killed_after_the_stop_timeout(tmp_path: Path, sim: SimVendor) -> None:
    cas = CasProcess(tmp_path / "cas", sim.path, extra_args=["--workers", "2", "--stop-timeout", "1s"]).start()
    pids = worker_pids(cas)
    os.kill(pids[0], signal.SIGSTOP)  # a stopped process cannot act on SIGTERM
    assert cas.stop() == 0
    assert not any(alive(pid) for pid in pids)
    wait_until(lambda: any("did not stop within 1 s; killing them" in line for line in cas.stderr_lines))


def test_workers_die_with_a_killed_supervisor_and_free_the_port(cas2: CasProcess) -> None:
    pids = worker_pids(cas2)
    port = int(cas2.url.rsplit(":", 1)[1])
    assert cas2.proc is not None
    cas2.proc.kill()
    cas2.proc.wait()
    wait_until(lambda: not any(alive(pid) for pid in pids))
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


def test_a_second_cas_on_the_same_data_dir_is_refused(cas2: CasProcess, sim: SimVendor) -> None:
    second = subprocess.run(
        custodes_cmd("cas", "serve", "--data-dir", str(cas2.data_dir), "--listen", "127.0.0.1:0"),
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode != 0
    assert second.stderr.strip().splitlines()[-1].startswith("error: CAS_DATA_DIR_BUSY")


@pytest.mark.parametrize("workers", ["0", "65"])
def test_a_worker_count_out_of_range_is_one_line_error(tmp_path: Path, workers: str) -> None:
    serve = custodes_cmd("cas", "serve", "--data-dir", str(tmp_path / "cas"), "--listen", "127.0.0.1:0")
    run = subprocess.run(
        [*serve, "--workers", workers],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert run.stderr.strip().splitlines() == ["error: ARGUMENT_INVALID: workers must be between 1 and 64"]


def test_a_single_worker_reports_its_own_connections(tmp_path: Path, sim: SimVendor) -> None:
    single = CasProcess(tmp_path / "cas", sim.path).start()
    try:
        with single.client() as first, single.client() as second:
            first.status()
            status = second.status()
        assert (status["workers"], status["worker"], status["connections"]) == (1, 0, [2])
    finally:
        single.stop()
