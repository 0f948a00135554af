"""Run one application process in the foreground, as an init process would.

* stdin, stdout and stderr are the runtime's own (passed through, not copied).
* SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to the runtime are forwarded to the application, also
  those that arrive between installing the handlers and starting it (they wait in the wake-up pipe).
* Zombies are reaped: as PID 1, or as a Linux child subreaper (``reap_orphans=True``), every orphan that the kernel
  re-parents to the runtime is collected.
* The application starts in a session (and process group) of its own, so that it can be stopped with everything it
  started: :meth:`Supervisor.supervise` ends it when told to with SIGTERM to the whole group, ``stop_grace``
  seconds, then SIGKILL to the group. Forwarded signals go to the application alone, as they would to a container's
  main process.
* Nothing the application started outlives supervision: when the application has exited (by itself or stopped),
  what is left of its group is killed, and with ``reap_orphans=True`` so is every other remaining child of the
  runtime (descendants that left the group, re-parented to the subreaper), until none is left.
* On Linux the application gets ``PR_SET_PDEATHSIG(SIGKILL)``: if the runtime itself dies (``kill -9``, the OOM
  killer), the kernel kills the application. That does not reach the application's own children, which the kernel
  re-parents to the next subreaper or init (see docs/runtime.md, "When the runtime itself dies").

The loop sleeps in ``select`` on a self-pipe that the C signal handler writes (``signal.set_wakeup_fd``) and that
other threads may poke through :meth:`Supervisor.wake`, so nothing polls and no signal is lost.
"""

from __future__ import annotations

import contextlib
import functools
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

from custodes._linux import become_subreaper, die_with_parent, prctl
from custodes.errors import CustodesError
from custodes.runtime.keeper import LeaseLost

__all__ = ["FORWARDED_SIGNALS", "Outcome", "Supervisor", "become_subreaper", "single_threaded"]

FORWARDED_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
_STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT})
_IDLE_S = 1.0  # upper bound on a select; a missed wake-up can only delay, never lose, an event
_SWEEP_S = 5.0  # how long the final sweep keeps killing re-parented descendants before it gives up
_PARENT_GONE = 128 + signal.SIGKILL  # the child's exit code if the runtime died before the child could exec


def single_threaded() -> bool:
    """Whether this process has exactly one thread (Python's or any native library's), from ``/proc/self/task``."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def _parent_death_hook() -> Callable[[], None] | None:
    """The code the child runs between fork and exec: ``PR_SET_PDEATHSIG(SIGKILL)``, then a check that the runtime
    had not already died before that (the child would have been re-parented: no signal would ever come).

    Only for a single-threaded runtime. Python code between fork and exec (``preexec_fn``) can deadlock in the child
    when another thread held a lock at the fork that the code then needs; with one thread nobody holds one. ``custodes
    run`` is single-threaded at that point (the lease keeper starts after the application), which
    tests/security/test_runtime_attacks.py checks by killing the runtime. A multi-threaded embedding gets no
    parent-death signal rather than a risk of hanging: an exec wrapper would need a second interpreter
    (``sys.executable`` is not always one when Python is embedded) and its start-up on every start.

    The kernel sends the signal when the *thread* that forked exits: the spawn happens in the main thread (the
    supervisor owns the signal handlers), which lives as long as the process.
    """
    call = prctl()
    if call is None or not single_threaded():
        return None
    return functools.partial(die_with_parent, os.getpid(), _PARENT_GONE, call)


def _children_of(parent: int) -> list[int]:
    """The processes whose parent is ``parent`` (zombies included), from ``/proc``."""
    found = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                fields = fh.read().rpartition(b")")[2].split()  # the command name may hold spaces and parens
        except OSError:
            continue
        if len(fields) > 1 and fields[1].isdigit() and int(fields[1]) == parent:
            found.append(int(name))
    return found


def exit_code_of(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128 + the signal number."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


@dataclass(frozen=True, slots=True)
class Outcome:
    """How supervision ended: the application's exit code (shell style) and, if the runtime stopped it, why."""

    app_exit_code: int
    lost: LeaseLost | None = None
    killed: bool = False


class Supervisor:
    """Use as a context manager around :meth:`spawn` and :meth:`supervise` (main thread only: it owns signals)."""

    def __init__(self, *, reap_orphans: bool = False) -> None:
        self._reap_orphans = reap_orphans
        self._proc: subprocess.Popen[bytes] | None = None
        self._pipe: tuple[int, int] | None = None
        self._saved: dict[int, object] = {}
        self._saved_wakeup = -1
        self._swept = False
        self.reaped_orphans = 0
        self.parent_death_signal = False  # whether the application got PR_SET_PDEATHSIG (see _parent_death_hook)

    def __enter__(self) -> Supervisor:
        read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._pipe = (read_fd, write_fd)
        for signum in (*FORWARDED_SIGNALS, signal.SIGCHLD):
            self._saved[signum] = signal.signal(signum, _record)
        self._saved_wakeup = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.stop(0.0)  # a last resort: normally the application and its descendants are gone by now
        finally:
            self._restore()

    def _restore(self) -> None:
        signal.set_wakeup_fd(self._saved_wakeup)
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        if self._pipe:
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def wake(self) -> None:
        """Wake the loop from another thread (byte 0 is not a signal number)."""
        if self._pipe:
            with contextlib.suppress(BlockingIOError):
                os.write(self._pipe[1], b"\0")

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], cwd: str | None) -> int:
        """Start the application. ``argv[0]`` is looked up on the *application's* ``PATH`` (or the system default).

        Raises:
            CustodesError: ``APP_NOT_FOUND`` (no such program or working directory) or ``APP_START_FAILED``.
        """
        hook = _parent_death_hook()
        try:
            self._proc = subprocess.Popen(  # noqa: S603
                list(argv),
                env=dict(env),
                cwd=cwd,
                close_fds=True,
                # A session of its own, not just a group: the application's group can then be signalled as one
                # (it cannot leave it: a session leader cannot change its group), and an application reading an
                # inherited terminal is not stopped by SIGTTIN as a background group of that terminal would be.
                start_new_session=True,
                preexec_fn=hook,  # noqa: PLW1509  (only when single-threaded: see _parent_death_hook)
            )
        except FileNotFoundError as exc:
            what = "working directory" if cwd and exc.filename == cwd else "program"
            name = exc.filename if exc.filename is not None else argv[0]
            raise CustodesError("APP_NOT_FOUND", f"the application's {what} {name!s} does not exist") from None
        except OSError as exc:
            raise CustodesError("APP_START_FAILED", f"cannot start {argv[0]}: {exc.strerror or exc}") from None
        self.parent_death_signal = hook is not None
        self._swept = False
        return self._proc.pid

    def _reap(self) -> int | None:
        """Collect exited children; return the application's wait status once it has exited."""
        proc = self._proc
        if proc is None:
            return None
        found: int | None = None
        while True:
            try:
                pid, status = os.waitpid(-1 if self._reap_orphans else proc.pid, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == proc.pid:
                found = status
                proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen never waits for it again
                if not self._reap_orphans:
                    break
            else:
                self.reaped_orphans += 1
        return found

    def _signal(self, signum: int) -> None:
        """A forwarded signal: to the application only."""
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._proc.pid, signum)

    def _signal_group(self, signum: int) -> bool:
        """Signal the application's process group (its id is the application's pid); False if it has no member
        left. Process ids are handed out cyclically, so the id is not reused while the group was just in use."""
        if self._proc is None:
            return False
        try:
            os.killpg(self._proc.pid, signum)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def _sweep(self) -> None:
        """After the application has exited: SIGKILL what is left of its group, and (as a subreaper) every other
        remaining child of the runtime, re-parented descendants included; reap them all, until none is left."""
        if self._swept or self._proc is None:
            return
        self._swept = True
        self._signal_group(signal.SIGKILL)
        if not self._reap_orphans:
            return
        me = os.getpid()
        give_up = time.monotonic() + _SWEEP_S
        while True:
            for pid in _children_of(me):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)  # still our child (or our zombie): the id cannot have been reused
            try:
                while (pid := os.waitpid(-1, os.WNOHANG)[0]) != 0:
                    if pid != self._proc.pid:
                        self.reaped_orphans += 1
            except ChildProcessError:
                return  # no child left: as a subreaper, no descendant either
            if time.monotonic() >= give_up:
                return
            self._wait(0.02)

    def stop(self, grace: float) -> Outcome | None:
        """End the application if it still runs (SIGTERM to its group, ``grace`` seconds, SIGKILL) and sweep its
        descendants. For paths that leave supervision early (an error); idempotent. Returns how it ended, or None if
        there was nothing left to stop."""
        if self._proc is None or self._pipe is None:
            return None
        if self._proc.returncode is None:
            stopped = LeaseLost("expired", "RUNTIME_STOPPING", "the runtime is stopping")
            return self.supervise(lost=lambda: stopped, stop_grace=grace)
        self._sweep()
        return None

    def supervise(
        self,
        *,
        deadline: Callable[[], float | None] = lambda: None,
        lost: Callable[[], LeaseLost | None] = lambda: None,
        stop_grace: float = 10.0,
    ) -> Outcome:
        """Wait for the application to exit, forwarding signals. Stop it when ``lost()`` reports a loss or the
        monotonic ``deadline()`` passes (the lease's expiry, enforced here even if a renewal hangs): SIGTERM to its
        process group, ``stop_grace`` seconds for the whole group, then SIGKILL to the group. Before returning, what
        is left of the group and (with ``reap_orphans``) every other descendant is killed and reaped."""
        if self._proc is None or self._pipe is None:
            raise CustodesError("APP_NOT_STARTED", "spawn the application first")
        stopping: LeaseLost | None = None
        kill_at: float | None = None
        killed = False
        exited: int | None = None  # the application's wait status, once it has exited
        while True:
            status = self._reap()  # the application's status once; orphans (zombie members of its group) always
            if exited is None:
                exited = status
            now = time.monotonic()
            if exited is not None and (
                # a stop in progress: the rest of the group keeps its grace (it may be shutting down cleanly)
                kill_at is None or now >= kill_at or not self._signal_group(0)
            ):
                self._sweep()
                return Outcome(exit_code_of(exited), stopping, killed)
            if stopping is None:
                due = deadline()
                stopping = lost() or (
                    LeaseLost("expired", "LEASE_EXPIRED", "the lease expired before it was renewed")
                    if due is not None and now >= due
                    else None
                )
                if stopping is not None:
                    self._signal_group(signal.SIGTERM)
                    kill_at = now + stop_grace
            if kill_at is not None and not killed and now >= kill_at:
                killed = True  # an application that had exited returned above: this SIGKILL is for it
                self._signal_group(signal.SIGKILL)
                continue
            timeout = _IDLE_S
            if stopping is None and (due := deadline()) is not None:
                timeout = min(timeout, due - now)
            if kill_at is not None and not killed:
                timeout = min(timeout, kill_at - now)
            if exited is not None:
                timeout = min(timeout, 0.05)  # waiting for the rest of the group: poll, they are not our children
            self._wait(max(0.0, timeout))

    def interrupted(self, timeout: float = 0.0) -> int | None:
        """Before the application runs: wait up to ``timeout`` for a stop signal (TERM, INT, HUP, QUIT) and return
        its number, or None. Used to sleep between start-up retries without missing a request to give up."""
        if self._pipe is None:
            return None
        deadline = time.monotonic() + timeout
        while True:
            ready, _, _ = select.select([self._pipe[0]], [], [], max(0.0, deadline - time.monotonic()))
            if ready:
                with contextlib.suppress(BlockingIOError):
                    for signum in os.read(self._pipe[0], 4096):
                        if signum in _STOP_SIGNALS:
                            return signum
            if time.monotonic() >= deadline:
                return None

    def _wait(self, timeout: float) -> None:
        if self._pipe is None:
            return
        ready, _, _ = select.select([self._pipe[0]], [], [], timeout)
        if not ready:
            return
        try:
            data = os.read(self._pipe[0], 4096)
        except BlockingIOError:
            return
        for signum in data:
            if signum in FORWARDED_SIGNALS:
                self._signal(signum)


def _record(signum: int, frame: object) -> None:
    """The Python-level handler does nothing: the C handler already wrote the signal number to the wake-up pipe."""
