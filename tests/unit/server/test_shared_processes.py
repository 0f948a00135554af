"""The CAS's shared tables across forked worker processes, and the two ``flock`` locks that guard them.

Every test maps one :class:`SharedState` before it forks; each child calls ``attach()`` after the fork, as a
worker does, reports over a pipe and leaves with ``os._exit``. The ``processes`` fixture reaps every child (and
kills any that a failed test left behind), so no test leaves a process running.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from _support import flock_free
from custodes.server.shared import NonceStatus, SharedState, binding_of

T0 = 1_700_000_000.0
B = binding_of("policy", "svc")


class Processes:
    """Forks children that run one function each and tracks them until they are reaped."""

    def __init__(self) -> None:
        self.pids: list[int] = []

    def fork(self, child: Callable[[], None]) -> int:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                child()
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        self.pids.append(pid)
        return pid

    def reap(self, pid: int) -> int:
        """Wait for a child; its exit code, or minus the signal that ended it."""
        _, status = os.waitpid(pid, 0)
        self.pids.remove(pid)
        return os.waitstatus_to_exitcode(status)

    def cleanup(self) -> None:
        for pid in list(self.pids):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self.reap(pid)


@pytest.fixture
def processes() -> Iterator[Processes]:
    tracker = Processes()
    try:
        yield tracker
    finally:
        tracker.cleanup()


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[SharedState]:
    state = SharedState(tmp_path, nonce_capacity=4096, read_nonce_capacity=16, lease_capacity=16).attach()
    yield state
    state.detach()


def _send(fd: int, value: object) -> None:
    """One JSON line; short enough that the pipe write is atomic."""
    os.write(fd, json.dumps(value).encode() + b"\n")


class Inbox:
    """The parent's end of a pipe, read line by line."""

    def __init__(self, fd: int) -> None:
        self.fd, self.buffer = fd, b""

    def receive(self) -> object:
        while b"\n" not in self.buffer:
            chunk = os.read(self.fd, 65536)
            if not chunk:
                raise EOFError("the child closed its pipe without answering")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def rest(self) -> bytes:
        while chunk := os.read(self.fd, 65536):
            self.buffer += chunk
        rest, self.buffer = self.buffer, b""
        return rest


def _pipe() -> tuple[Inbox, int]:
    read, write = os.pipe()
    return Inbox(read), write


# ------------------------------------------------------------------------------------------ nonces


def test_each_nonce_is_fresh_in_exactly_one_of_two_racing_processes(shared: SharedState, processes: Processes) -> None:
    count = 2000
    with shared.tables():
        nonces = [shared.nonces.issue(B, T0, T0 + 60.0, 60.0) for _ in range(count)]
    assert None not in nonces
    start_read, start_write = os.pipe()
    inboxes = []
    for _ in range(2):
        inbox, out = _pipe()

        def consume_all(out: int = out) -> None:
            state = shared.attach()
            _send(out, "ready")
            os.read(start_read, 1)  # both start together
            statuses = []
            for nonce in nonces:
                with state.tables():
                    statuses.append(state.nonces.consume(nonce).status.value[0])
            os.write(out, "".join(statuses).encode())

        pid = processes.fork(consume_all)
        os.close(out)
        inboxes.append((pid, inbox))
    assert [inbox.receive() for _, inbox in inboxes] == ["ready", "ready"]
    os.write(start_write, b"gg")
    results = []
    for pid, inbox in inboxes:
        results.append(inbox.rest().decode())
        os.close(inbox.fd)
        assert processes.reap(pid) == 0
    os.close(start_read)
    os.close(start_write)
    assert [len(r) for r in results] == [count, count]
    for first, second in zip(*results, strict=True):
        assert {first, second} == {"f", "r"}  # one FRESH, one REUSED; never UNKNOWN, never both FRESH
    # The parent sees every nonce used.
    with shared.tables():
        assert {shared.nonces.consume(n).status for n in nonces} == {NonceStatus.REUSED}


# ------------------------------------------------------------------------------------------ leases and generation


def test_leases_are_shared_both_ways(shared: SharedState, processes: Processes) -> None:
    inbox, out = _pipe()

    def issue_in_child() -> None:
        state = shared.attach()
        with state.tables():
            lease = state.leases.issue(B, T0, T0 + 100.0, T0 + 50.0)
        _send(out, lease.id)

    pid = processes.fork(issue_in_child)
    os.close(out)
    child_lease = inbox.receive()
    assert processes.reap(pid) == 0
    os.close(inbox.fd)
    with shared.tables():
        slot, record = shared.leases.find(child_lease)
        assert (record.binding, record.expires_at, record.renewals) == (B, T0 + 100.0, 0)
        renewed = shared.leases.renew(slot, record, T0 + 300.0, T0 + 200.0)
    assert renewed.renewals == 1

    with shared.tables():
        parent_lease = shared.leases.issue(B, T0, T0 + 100.0, T0 + 50.0)
    inbox, out = _pipe()

    def renew_in_child() -> None:
        state = shared.attach()
        with state.tables():
            seen = state.leases.find(child_lease)[1]
            slot, record = state.leases.find(parent_lease.id)
            state.leases.renew(slot, record, T0 + 500.0, T0 + 400.0)
        _send(out, [seen.renewals, seen.expires_at, record.renewals])

    pid = processes.fork(renew_in_child)
    os.close(out)
    assert inbox.receive() == [1, T0 + 300.0, 0]  # the child saw the parent's renewal of its lease
    assert processes.reap(pid) == 0
    os.close(inbox.fd)
    with shared.tables():
        _, record = shared.leases.find(parent_lease.id)
    assert (record.expires_at, record.renew_after, record.renewals) == (T0 + 500.0, T0 + 400.0, 1)
    assert shared.leases.live(T0 + 350.0) == 1


def test_generation_bumped_in_a_child_is_seen_by_the_parent(shared: SharedState, processes: Processes) -> None:
    assert shared.bump_generation() == 1
    inbox, out = _pipe()

    def bump() -> None:
        state = shared.attach()
        _send(out, [state.generation, state.bump_generation(), state.bump_generation()])

    pid = processes.fork(bump)
    os.close(out)
    assert inbox.receive() == [1, 2, 3]
    assert processes.reap(pid) == 0
    os.close(inbox.fd)
    assert shared.generation == 3
    assert shared.bump_generation() == 4


def test_clock_floor_raised_in_a_child_is_seen_by_the_parent_and_never_lowered(
    shared: SharedState, processes: Processes
) -> None:
    assert shared.floor == 0.0
    shared.raise_floor(1_700_000_000.5)
    inbox, out = _pipe()

    def raise_it() -> None:
        state = shared.attach()
        seen = state.floor
        state.raise_floor(1_800_000_000.25)
        state.raise_floor(1_750_000_000.0)  # older: ignored
        _send(out, [seen, state.floor])

    pid = processes.fork(raise_it)
    os.close(out)
    assert inbox.receive() == [1_700_000_000.5, 1_800_000_000.25]
    assert processes.reap(pid) == 0
    os.close(inbox.fd)
    assert shared.floor == 1_800_000_000.25
    shared.raise_floor(1.0)
    assert shared.floor == 1_800_000_000.25


# ------------------------------------------------------------------------------------------ locks


def test_write_lock_excludes_another_process(shared: SharedState, processes: Processes, tmp_path: Path) -> None:
    inbox, out = _pipe()

    def hold() -> None:
        state = shared.attach()

        async def main() -> None:
            async with state.write_lock():
                _send(out, ["holding", time.monotonic_ns()])
                await asyncio.sleep(0.3)
                _send(out, ["releasing", time.monotonic_ns()])

        asyncio.run(main())

    pid = processes.fork(hold)
    os.close(out)
    event, held_at = inbox.receive()
    assert event == "holding"
    assert not flock_free(tmp_path / ".writes.lock")

    async def acquire() -> int:
        async with shared.write_lock():
            return time.monotonic_ns()

    acquired_at = asyncio.run(acquire())
    event, releasing_at = inbox.receive()
    assert event == "releasing"
    assert held_at < releasing_at < acquired_at  # CLOCK_MONOTONIC is one clock for all processes
    assert processes.reap(pid) == 0
    os.close(inbox.fd)
    assert flock_free(tmp_path / ".writes.lock")


def test_child_killed_inside_the_table_lock_does_not_wedge_the_parent(
    shared: SharedState, processes: Processes, tmp_path: Path
) -> None:
    inbox, out = _pipe()
    go_read, go_write = os.pipe()

    def die_holding() -> None:
        state = shared.attach()
        with state.tables():
            _send(out, "locked")
            os.read(go_read, 1)
            os.kill(os.getpid(), signal.SIGKILL)

    pid = processes.fork(die_holding)
    os.close(out)
    os.close(go_read)
    assert inbox.receive() == "locked"
    assert not flock_free(tmp_path / ".tables.lock")  # the child really holds it
    os.write(go_write, b"x")
    os.close(go_write)
    assert processes.reap(pid) == -signal.SIGKILL
    os.close(inbox.fd)
    assert flock_free(tmp_path / ".tables.lock")
    with shared.tables():
        nonce = shared.nonces.issue(B, T0, T0 + 60.0, 60.0)
        assert shared.nonces.consume(nonce).status is NonceStatus.FRESH
    assert shared.bump_generation() == 1
