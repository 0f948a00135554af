"""Run one application process in the foreground, as an init process would.

* stdin, stdout and stderr are the runtime's own (passed through, not copied).
* SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to the runtime are forwarded to the application, also
  those that arrive between installing the handlers and starting it (they wait in the wake-up pipe).
* Zombies are reaped: as PID 1, or as a Linux child subreaper (``reap_orphans=True``), every orphan that the kernel
  re-parents to the runtime is collected.
* :meth:`Supervisor.supervise` ends the application when told to: SIGTERM, ``stop_grace`` seconds, then SIGKILL.

The loop sleeps in ``select`` on a self-pipe that the C signal handler writes (``signal.set_wakeup_fd``) and that
other threads may poke through :meth:`Supervisor.wake`, so nothing polls and no signal is lost.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

from custodes.errors import CustodesError
from custodes.runtime.keeper import LeaseLost

__all__ = ["FORWARDED_SIGNALS", "Outcome", "Supervisor", "become_subreaper"]

FORWARDED_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
_STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT})
_PR_SET_CHILD_SUBREAPER = 36
_IDLE_S = 1.0  # upper bound on a select; a missed wake-up can only delay, never lose, an event


def become_subreaper() -> bool:
    """Ask Linux to re-parent orphaned descendants to this process (``PR_SET_CHILD_SUBREAPER``), so the runtime
    reaps them even when it is not PID 1. Returns False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


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
        self.reaped_orphans = 0

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
        try:
            self._proc = subprocess.Popen(list(argv), env=dict(env), cwd=cwd, close_fds=True)  # noqa: S603
        except FileNotFoundError as exc:
            what = "working directory" if cwd and exc.filename == cwd else "program"
            name = exc.filename if exc.filename is not None else argv[0]
            raise CustodesError("APP_NOT_FOUND", f"the application's {what} {name!s} does not exist") from None
        except OSError as exc:
            raise CustodesError("APP_START_FAILED", f"cannot start {argv[0]}: {exc.strerror or exc}") from None
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
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._proc.pid, signum)

    def supervise(
        self,
        *,
        deadline: Callable[[], float | None] = lambda: None,
        lost: Callable[[], LeaseLost | None] = lambda: None,
        stop_grace: float = 10.0,
    ) -> Outcome:
        """Wait for the application to exit, forwarding signals. Stop it when ``lost()`` reports a loss or the
        monotonic ``deadline()`` passes (the lease's expiry, enforced here even if a renewal hangs)."""
        if self._proc is None or self._pipe is None:
            raise CustodesError("APP_NOT_STARTED", "spawn the application first")
        stopping: LeaseLost | None = None
        kill_at: float | None = None
        killed = False
        while True:
            status = self._reap()
            if status is not None:
                return Outcome(exit_code_of(status), stopping, killed)
            now = time.monotonic()
            if stopping is None:
                due = deadline()
                stopping = lost() or (
                    LeaseLost("expired", "LEASE_EXPIRED", "the lease expired before it was renewed")
                    if due is not None and now >= due
                    else None
                )
                if stopping is not None:
                    self._signal(signal.SIGTERM)
                    kill_at = now + stop_grace
            if kill_at is not None and not killed and now >= kill_at:
                self._signal(signal.SIGKILL)
                killed = True
            timeout = _IDLE_S
            if stopping is None and (due := deadline()) is not None:
                timeout = min(timeout, due - now)
            if kill_at is not None and not killed:
                timeout = min(timeout, kill_at - now)
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
