"""Run the CAS: open the store, load the identity, serve the API over TLS 1.3 (:mod:`custodes.server.http`).

With ``workers`` > 1 the process becomes a supervisor: it checks the state once, binds the listening socket, maps
the shared tables (:mod:`custodes.server.shared`) and forks that many worker processes. The supervisor accepts
and passes each connection to the worker with the fewest (:mod:`custodes.server.balancer`). CPython runs one
thread of Python at a time, so on a multi-core machine several processes are how the CAS uses the cores. The
supervisor restarts a worker that dies and gives up (exit, fail closed) if they keep dying; workers die with the
supervisor (``PR_SET_PDEATHSIG``), so a killed CAS leaves nothing behind serving the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import gc
import logging
import os
import select
import signal
import socket
import ssl
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from custodes._linux import die_with_parent
from custodes.clock import FlooredClock
from custodes.errors import CustodesError
from custodes.server.app import create_app
from custodes.server.balancer import Admission, Balancer, ConnectionCounts, accept_connections, adopt_connections
from custodes.server.binding import ReportDataBinding
from custodes.server.cas import DEFAULT_NONCE_TTL, Cas
from custodes.server.http import HttpLimits, HttpServer
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
    http: HttpLimits = field(default_factory=HttpLimits)


MAX_WORKERS = 64
RESTART_LIMIT = 5  # worker restarts within RESTART_WINDOW_S before the supervisor gives up
RESTART_WINDOW_S = 60.0
READY_TIMEOUT_S = 60.0
TLS_HANDSHAKE_TIMEOUT_S = 10.0


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
                with _listening_socket(options.host, options.port) as sock:
                    ready = functools.partial(_print_listening, options.host, sock.getsockname()[1])
                    _serve_worker(cas, options, start=_accepting(sock), ready=ready)
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


def _print_listening(host: str, port: int) -> None:
    print(f"custodes CAS listening on https://{host}:{port}", flush=True)


# How a worker gets its connections: it starts taking them, and returns how to stop.
_Start = Callable[[HttpServer, ssl.SSLContext], Awaitable[Callable[[], None]]]


def _accepting(sock: socket.socket) -> _Start:
    """Accept on the listening socket itself (one worker)."""

    async def start(server: HttpServer, tls: ssl.SSLContext) -> Callable[[], None]:
        return accept_connections(sock, _admission(server, tls))

    return start


def _adopting(channel: socket.socket, finished: Callable[[], None]) -> _Start:
    """Serve the connections the supervisor passes over ``channel`` (several workers; server/balancer.py)."""

    async def start(server: HttpServer, tls: ssl.SSLContext) -> Callable[[], None]:
        return adopt_connections(channel, _admission(server, tls, finished))

    return start


def _admission(server: HttpServer, tls: ssl.SSLContext, finished: Callable[[], None] = lambda: None) -> Admission:
    return Admission(
        server.protocol,
        tls,
        handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S,
        served=server.open_count,
        limit=server.max_connections,
        finished=finished,
    )


def _serve_worker(
    cas: Cas,
    options: ServeOptions,
    *,
    start: _Start,
    ready: Callable[[], None],
    counts: ConnectionCounts | None = None,
) -> None:
    """Serve the API until SIGTERM/SIGINT; call ``ready()`` once connections are being taken. ``counts``: every
    worker's connections (several workers), shown by /v1/status; otherwise this server's own."""
    app = create_app(cas)
    server = HttpServer(app.hot, app.asgi, limits=options.http, log_access=options.access_log, slow=app.slow)
    cas.open_connections = counts.open_all if counts is not None else lambda: [len(server.connections)]
    tls = cas.identity.ssl_context()
    # Everything loaded so far (FastAPI, pydantic, the policies) lives as long as the process. Moving it out of
    # the collector's reach keeps a full collection from scanning ~60,000 objects (~20 ms) in the middle of an
    # attestation; at 64 concurrent clients that pause was a visible part of the p99 (benchmarks/attest.py).
    gc.collect()
    gc.freeze()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        stopped = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopped.set)
        stop_taking = await start(server, tls)
        ready()
        await stopped.wait()
        stop_taking()
        await server.shutdown(options.stop_timeout.total_seconds())

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
        self.balancer = Balancer(ConnectionCounts(options.workers), options.workers)

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
            self.balancer.close_all()
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
        channel = self.balancer.open_channel(index)
        pid = os.fork()
        if pid:
            channel.close()
            self.workers[pid] = index
            return
        code = 1
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.set_wakeup_fd(-1)
            die_with_parent(parent, 1)  # the kernel kills this worker if the supervisor dies, however
            self.sock.close()  # the supervisor accepts; a worker only serves what it is passed
            self.balancer.close_all()
            shared = self.shared.attach()
            cas = build_cas(self.options, shared=shared, clock=self.clock, binding=self.binding, worker=index)

            def ready() -> None:
                if ready_w >= 0:
                    os.write(ready_w, b"+")
                    os.close(ready_w)

            counts = self.balancer.counts
            finished = functools.partial(counts.finish, index)
            _serve_worker(cas, self.options, start=_adopting(channel, finished), ready=ready, counts=counts)
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
        """Accept connections and pass each to the least-loaded worker; restart workers that die."""
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)  # a signal (SIGCHLD, SIGTERM) wakes the select below
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.sock.setblocking(False)
        try:
            while self.workers and not self.stopping:
                readable, _, _ = select.select([self.sock, wake_r], [], [], 1.0)
                if wake_r in readable:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 512)
                if self.sock in readable:
                    self._accept()
                self._restart_exited()
        finally:
            signal.set_wakeup_fd(-1)
            os.close(wake_r)
            os.close(wake_w)

    def _accept(self) -> None:
        for _ in range(256):  # a burst at a time, then look at the workers again
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: log, back off, and let the backlog hold the rest
                log.error("accept failed: %s", exc.strerror)
                time.sleep(0.05)
                return
            self.balancer.dispatch(conn)

    def _restart_exited(self) -> None:
        while self.workers and not self.stopping:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if not pid:
                return
            index = self.workers.pop(pid, None)
            if index is None:
                continue
            self.balancer.close_channel(index)
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


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
