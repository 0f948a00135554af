"""``SharedState.write_lock``: tasks of one worker, and cancellation of a task that waits for another holder.

The other holder is a second open file description of the lock file, which ``flock`` treats exactly like another
process. Whether the lock is held is read from a third description (a non-blocking attempt), and whether a thread
is blocked in ``flock`` from ``/proc/locks``, so no test depends on how long anything takes.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from _support import flock_free
from custodes.server.shared import SharedState

WAIT = 10.0  # upper bound on waiting for an event that should happen at once; never reached when the code works


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[SharedState]:
    state = SharedState(tmp_path, nonce_capacity=4, read_nonce_capacity=4, lease_capacity=4).attach()
    yield state
    state.detach()


@pytest.fixture
def holder(tmp_path: Path, shared: SharedState) -> Iterator[int]:
    """Another description of the write lock file, holding the lock until the test releases it."""
    fd = os.open(tmp_path / ".writes.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield fd
    finally:
        os.close(fd)  # releases the lock if the test did not


def _blocked_waiters(path: Path) -> int:
    """Requests blocked on the file's lock, from ``/proc/locks`` (lines ``N: -> FLOCK ... MAJ:MIN:INODE ...``)."""
    st = os.stat(path)
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    lines = Path("/proc/locks").read_text().splitlines()
    return sum(1 for line in lines if line.split()[1:2] == ["->"] and device in line.split())


class _CountingExecutor(ThreadPoolExecutor):
    """The loop's default executor, counting calls that have not returned (an abandoned ``flock`` among them)."""

    def __init__(self) -> None:
        super().__init__(max_workers=4, thread_name_prefix="test-write-lock")
        self._mutex = threading.Lock()
        self.pending = 0

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        with self._mutex:
            self.pending += 1
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._returned)
        return future

    def _returned(self, _: object) -> None:
        with self._mutex:
            self.pending -= 1


def _counting_executor() -> _CountingExecutor:
    executor = _CountingExecutor()
    asyncio.get_running_loop().set_default_executor(executor)
    return executor


async def _until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"gave up waiting: {what}")
        await asyncio.sleep(0.005)


def _run_then_release(main: Coroutine[object, object, None], holder: int) -> None:
    """Run the test's event loop; release the other holder even when it fails, so that no executor thread stays
    blocked in ``flock`` (``asyncio.run`` waits for those threads when it closes the loop)."""

    async def guarded() -> None:
        try:
            await main
        finally:
            fcntl.flock(holder, fcntl.LOCK_UN)

    asyncio.run(guarded())


async def _settle() -> None:
    """Let callbacks scheduled from executor threads run."""
    for _ in range(20):
        await asyncio.sleep(0.001)


def test_write_lock_holds_the_flock_and_releases_it(shared: SharedState, tmp_path: Path) -> None:
    lock = tmp_path / ".writes.lock"

    async def main() -> None:
        async with shared.write_lock():
            assert not flock_free(lock)
        assert flock_free(lock)
        async with shared.write_lock():  # and again
            assert not flock_free(lock)
        assert flock_free(lock)

    asyncio.run(main())


def test_write_lock_serialises_tasks_of_one_process(shared: SharedState) -> None:
    """A flock does not exclude a second acquisition through the same description, so tasks need their own lock."""
    events: list[str] = []

    async def writer(name: str, first_in: asyncio.Event) -> None:
        async with shared.write_lock():
            events.append(f"{name} in")
            first_in.set()
            await asyncio.sleep(0.01)
            await asyncio.sleep(0.01)
            events.append(f"{name} out")

    async def main() -> None:
        first_in = asyncio.Event()
        first = asyncio.create_task(writer("a", first_in))
        await first_in.wait()
        await asyncio.gather(first, writer("b", asyncio.Event()))

    asyncio.run(main())
    assert events == ["a in", "a out", "b in", "b out"]


def test_cancelled_waiter_leaks_no_lock(shared: SharedState, holder: int, tmp_path: Path) -> None:
    lock = tmp_path / ".writes.lock"
    entered: list[str] = []

    async def waiter() -> None:
        async with shared.write_lock():
            entered.append("cancelled waiter")

    async def main() -> None:
        executor = _counting_executor()
        task = asyncio.create_task(waiter())
        await _until(lambda: _blocked_waiters(lock) == 1, "the waiter to block in flock")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not flock_free(lock)
        fcntl.flock(holder, fcntl.LOCK_UN)
        # The cancelled acquisition completes on its thread; once it has, its lock must already be undone.
        await _until(lambda: executor.pending == 0, "the abandoned flock call to return")
        await _settle()
        assert flock_free(lock)
        async with shared.write_lock():  # a third acquisition
            entered.append("third")
            assert not flock_free(lock)
        assert flock_free(lock)

    _run_then_release(main(), holder)
    assert entered == ["third"]


def test_cancelled_waiter_behind_a_task_of_the_same_process(shared: SharedState, tmp_path: Path) -> None:
    lock = tmp_path / ".writes.lock"

    async def main() -> None:
        release = asyncio.Event()
        holding = asyncio.Event()

        async def hold() -> None:
            async with shared.write_lock():
                holding.set()
                await release.wait()

        first = asyncio.create_task(hold())
        await holding.wait()
        waiting = asyncio.create_task(hold())
        await _settle()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        release.set()
        await first
        await _until(lambda: flock_free(lock), "the lock to be free")
        async with shared.write_lock():
            assert not flock_free(lock)
        assert flock_free(lock)

    asyncio.run(main())


def test_cancelled_waiter_does_not_release_the_next_holders_lock(
    shared: SharedState, holder: int, tmp_path: Path
) -> None:
    """A task that enters after another task's acquisition was cancelled must hold the lock for its whole body.

    The cancelled acquisition's thread obtains the flock later, and its clean-up unlocks the description, which is
    the same description the next task locked through."""
    lock = tmp_path / ".writes.lock"
    observed: list[bool] = []

    async def main() -> None:
        executor = _counting_executor()
        first = asyncio.create_task(_enter(shared))
        await _until(lambda: _blocked_waiters(lock) == 1, "the first task to block in flock")
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        inside, leave = asyncio.Event(), asyncio.Event()
        second = asyncio.create_task(_enter(shared, inside, leave))
        await _settle()
        fcntl.flock(holder, fcntl.LOCK_UN)
        await asyncio.wait_for(inside.wait(), WAIT)
        await _until(lambda: executor.pending == 0, "every flock call to return")
        await _settle()  # and their callbacks to run
        observed.extend(flock_free(lock) for _ in range(5))
        leave.set()
        await second
        await _until(lambda: flock_free(lock), "the lock to be free after the second task")

    _run_then_release(main(), holder)
    assert observed == [False] * 5, "another process could take the write lock while a task was inside it"


async def _enter(shared: SharedState, inside: asyncio.Event | None = None, leave: asyncio.Event | None = None) -> None:
    async with shared.write_lock():
        if inside is not None and leave is not None:
            inside.set()
            await leave.wait()
