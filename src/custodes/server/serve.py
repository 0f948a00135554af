"""Run the CAS: open the store, load the identity, serve the API over TLS 1.3 with uvicorn.

With ``workers`` > 1 the process becomes a supervisor: it checks the state once, binds the listening socket, maps
the shared tables (:mod:`custodes.server.shared`) and forks that many worker processes, which all accept on the
socket. CPython runs one thread of Python at a time, so on a multi-core machine several processes are how the CAS
uses the cores. The supervisor restarts a worker that dies and gives up (exit, fail closed) if they keep dying;
workers die with the supervisor (``PR_SET_PDEATHSIG``), so a killed CAS leaves nothing behind serving the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import gc
import logging
import os
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from custodes.clock import FlooredClock
from custodes.errors import CustodesError
from custodes.server.app import create_app
from custodes.server.binding import ReportDataBinding
from custodes.server.cas import DEFAULT_NONCE_TTL, Cas
from custodes.server.identity import load_or_create_identity
from custodes.server.shared import SharedState
from custodes.server.verifiers import Verifiers
from custodes.store import SqliteStore, load_or_create_storage_key

__all__ = ["ServeOptions", "build_cas", "serve"]

log = logging.getLogger("custodes.cas")


@dataclass(frozen=True)
class ServeOptions:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8443
    sim_vendor: Path | None = None
    access_log: bool = False
    challenge_ttl: timedelta = DEFAULT_NONCE_TTL
    collateral_dir: Path | None = None  # default: DATA_DIR/collateral
    workers: int = 1
    stop_timeout: timedelta = timedelta(seconds=30)  # graceful shutdown; then the supervisor kills the workers


MAX_WORKERS = 64
RESTART_LIMIT = 5  # worker restarts within RESTART_WINDOW_S before the supervisor gives up
RESTART_WINDOW_S = 60.0
READY_TIMEOUT_S = 60.0


def build_cas(
    options: ServeOptions,
    *,
    shared: SharedState,
    clock: FlooredClock | None = None,
    binding: ReportDataBinding | None = None,
    worker: int = 0,
) -> Cas:
    """Open (or initialise) the CAS's state in ``data_dir``. Fails closed on any integrity error.

    ``clock`` and ``binding`` exist for tests that replay recorded hardware evidence (tests/vectors); no command
    line flag, environment variable or config file reaches them.
    """
    options.data_dir.mkdir(parents=True, exist_ok=True)
    options.data_dir.chmod(0o700)
    clock = clock or FlooredClock()
    key_existed = any(options.data_dir.glob("storage*.key"))
    store = SqliteStore.open(options.data_dir / "state.db", load_or_create_storage_key(options.data_dir))
    store.verify_all()
    if store.created and key_existed:
        # Mode A cannot tell a deleted database from a first start; the surviving key file is the only hint.
        log.error(
            "the state database was missing and has been re-created EMPTY although a storage key existed: "
            "all policies and secrets are gone (deleted or rolled back?)"
        )
    identity = load_or_create_identity(store, options.data_dir, hosts=[options.host], now=clock.now())
    verifiers = Verifiers(options.sim_vendor, options.collateral_dir or options.data_dir / "collateral")
    return Cas(
        store=store,
        identity=identity,
        verifiers=verifiers,
        clock=clock,
        nonce_ttl=options.challenge_ttl,
        shared=shared,
        binding=binding,
        # One worker: verify on threads beside the event loop, to use the other cores. Several: the workers do.
        verify_threads=min(4, os.cpu_count() or 1) if options.workers == 1 else 0,
        workers=options.workers,
        worker=worker,
    )


class _CoalescingTransport:
    """A transport proxy whose writes in one event-loop turn leave as one write.

    uvicorn writes a response's head and body separately; over TLS each write is its own record and its own
    send(2). Joining them saves a record and a system call per response (every attestation is two responses).
    Everything but ``write`` and ``close`` (which flushes first) goes to the real transport.
    """

    __slots__ = ("_buffer", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._buffer: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._buffer:
            self._loop.call_soon(self._flush)
        self._buffer.append(data)

    def _flush(self) -> None:
        if self._buffer:
            data = b"".join(self._buffer)
            self._buffer.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._transport, name)


class _HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a :class:`_CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_CoalescingTransport(transport))  # type: ignore[arg-type]


def _loop_factory():  # type: ignore[no-untyped-def]
    """uvloop where installed (it is a dependency): its TLS transport roughly halves the per-request cost."""
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:  # pragma: no cover - fall back to the stdlib loop
        return None
    return uvloop.new_event_loop


def serve(
    options: ServeOptions, *, clock: FlooredClock | None = None, binding: ReportDataBinding | None = None
) -> None:
    """Serve until SIGTERM/SIGINT. Prints one ``listening`` line once every worker accepts connections."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not 1 <= options.workers <= MAX_WORKERS:
        raise CustodesError("ARGUMENT_INVALID", f"workers must be between 1 and {MAX_WORKERS}")
    options.data_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(options.data_dir):
        if options.sim_vendor:
            log.warning(
                "SIMULATED evidence is ACCEPTED from the vendor in %s. Development only: no hardware protects "
                "the workloads this CAS configures.",
                options.sim_vendor,
            )
        shared = SharedState(options.data_dir)
        if options.workers == 1:
            cas = build_cas(options, shared=shared.attach(), clock=clock, binding=binding)
            try:
                _serve_worker(cas, options, sock=None, ready=_print_listening(options))
            finally:
                cas.store.close()
            return
        # Check (and on a first start, create) the state once, before any worker exists: the workers then only
        # read what is there, and a damaged store stops the CAS here with one clear error.
        build_cas(options, shared=shared.attach(), clock=clock, binding=binding).store.close()
        shared.detach()
        with _listening_socket(options.host, options.port) as sock:
            _Supervisor(options, shared, sock, clock=clock, binding=binding).run()


@contextlib.contextmanager
def _exclusive(data_dir: Path) -> Iterator[None]:
    """One CAS per data dir: a second one would keep its own nonces and leases, and its own idea of the state."""
    fd = os.open(data_dir / "cas.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CustodesError("CAS_DATA_DIR_BUSY", f"another CAS is serving {data_dir}") from None
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _listening_socket(host: str, port: int) -> Iterator[socket.socket]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise CustodesError("LISTEN_FAILED", f"cannot listen on {host}:{port}: {exc.strerror}") from None
    with sock:
        yield sock


def _print_listening(options: ServeOptions) -> Callable[[int], None]:
    def ready(port: int) -> None:
        print(f"custodes CAS listening on https://{options.host}:{port}", flush=True)

    return ready


def _serve_worker(cas: Cas, options: ServeOptions, *, sock: socket.socket | None, ready: Callable[[int], None]) -> None:
    """Run uvicorn on this process's event loop until SIGTERM/SIGINT; call ``ready(port)`` once it accepts."""
    config = uvicorn.Config(
        create_app(cas),
        host=options.host,
        port=options.port,
        log_level="warning",
        access_log=options.access_log,
        lifespan="off",
        timeout_keep_alive=30,
        http=_HttpProtocol,
        proxy_headers=False,  # no proxy in front: the peer address is the real one
        timeout_graceful_shutdown=max(1, int(options.stop_timeout.total_seconds())),
    )
    config.load()
    config.ssl = cas.identity.ssl_context()
    server = uvicorn.Server(config)
    # Everything loaded so far (FastAPI, pydantic, the policies) lives as long as the process. Moving it out of
    # the collector's reach keeps a full collection from scanning ~60,000 objects (~20 ms) in the middle of an
    # attestation; at 64 concurrent clients that pause was a visible part of the p99 (benchmarks/attest.py).
    gc.collect()
    gc.freeze()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        task = asyncio.create_task(server.serve(sockets=[sock] if sock is not None else None))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started:
            sockets = [s for srv in server.servers for s in srv.sockets]
            ready(sockets[0].getsockname()[1] if sockets else options.port)
        await task

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(run())


class _Supervisor:
    """Forks the workers, reports readiness once all accept, restarts the ones that die, stops them on a signal."""

    def __init__(
        self,
        options: ServeOptions,
        shared: SharedState,
        sock: socket.socket,
        *,
        clock: FlooredClock | None,
        binding: ReportDataBinding | None,
    ) -> None:
        self.options, self.shared, self.sock = options, shared, sock
        self.clock, self.binding = clock, binding
        self.workers: dict[int, int] = {}  # pid -> worker index
        self.restarts: list[float] = []
        self.stopping = False

    def run(self) -> None:
        ready_r, ready_w = os.pipe()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        try:
            for index in range(self.options.workers):
                self._spawn(index, ready_w)
            os.close(ready_w)
            self._await_ready(ready_r)
            print(f"custodes CAS listening on https://{self.options.host}:{self.sock.getsockname()[1]}", flush=True)
            log.info("%d workers serving (pids %s)", len(self.workers), ", ".join(map(str, sorted(self.workers))))
            self._supervise()
        finally:
            os.close(ready_r)
            self._stop(signal.SIGTERM, None)
            self._reap(self.options.stop_timeout.total_seconds())

    def _reap(self, timeout: float) -> None:
        """Wait for the workers to finish their requests and exit; kill the ones still running after ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.workers:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid:
                self.workers.pop(pid, None)
            elif time.monotonic() > deadline:
                log.error("workers %s did not stop within %.0f s; killing them", sorted(self.workers), timeout)
                for straggler in self.workers:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(straggler, signal.SIGKILL)
                deadline = float("inf")
            else:
                time.sleep(0.02)

    def _spawn(self, index: int, ready_w: int) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid:
            self.workers[pid] = index
            return
        code = 1
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            _die_with(parent)
            shared = self.shared.attach()
            cas = build_cas(self.options, shared=shared, clock=self.clock, binding=self.binding, worker=index)

            def ready(_port: int) -> None:
                if ready_w >= 0:
                    os.write(ready_w, b"+")
                    os.close(ready_w)

            _serve_worker(cas, self.options, sock=self.sock, ready=ready)
            code = 0
        except CustodesError as exc:  # a worker reports, then exits without unwinding into the supervisor's code
            print(f"custodes CAS worker: {exc.code}: {exc.message}", file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)

    def _await_ready(self, ready_r: int) -> None:
        deadline, count = time.monotonic() + READY_TIMEOUT_S, 0
        while count < self.options.workers:
            if self.stopping:
                raise CustodesError("CAS_STOPPED", "stopped before every worker was ready")
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid:
                    self.workers.pop(pid, None)
                    why = f"worker {pid} exited ({_describe(status)}) while starting"
                    raise CustodesError("CAS_WORKER_FAILED", why)
            if time.monotonic() > deadline:
                raise CustodesError("CAS_WORKER_FAILED", f"workers not ready within {READY_TIMEOUT_S:.0f} s")
            readable, _, _ = select.select([ready_r], [], [], 0.05)
            if readable:
                count += len(os.read(ready_r, 64))

    def _supervise(self) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                return
            index = self.workers.pop(pid, None)
            if self.stopping:
                return
            if index is None:
                continue
            now = time.monotonic()
            self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW_S] + [now]
            if len(self.restarts) > RESTART_LIMIT:
                log.error("worker %d (pid %d) exited (%s); too many restarts, stopping", index, pid, _describe(status))
                raise CustodesError("CAS_WORKER_FAILED", f"workers exited {len(self.restarts)} times within a minute")
            log.error("worker %d (pid %d) exited (%s); restarting it", index, pid, _describe(status))
            self._spawn(index, -1)

    def _stop(self, _signum: int, _frame: object) -> None:
        self.stopping = True
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def _die_with(parent: int) -> None:
    """Have the kernel kill this worker if the supervisor dies, however it dies (Linux ``PR_SET_PDEATHSIG``)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the supervisor died before the request took effect
        os._exit(1)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
