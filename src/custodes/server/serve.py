"""Run the CAS: open the store, load the identity, serve the API over TLS 1.3 with uvicorn."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from custodes.clock import FlooredClock
from custodes.server.app import create_app
from custodes.server.binding import ReportDataBinding
from custodes.server.cas import DEFAULT_NONCE_TTL, Cas
from custodes.server.identity import load_or_create_identity
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


def build_cas(
    options: ServeOptions, *, clock: FlooredClock | None = None, binding: ReportDataBinding | None = None
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
        binding=binding,
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
    """Serve until SIGTERM/SIGINT. Prints one ``listening`` line once the socket is bound."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    cas = build_cas(options, clock=clock, binding=binding)
    if options.sim_vendor:
        log.warning(
            "SIMULATED evidence is ACCEPTED from the vendor in %s. Development only: no hardware protects "
            "the workloads this CAS configures.",
            options.sim_vendor,
        )
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
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started:
            sockets = [s for srv in server.servers for s in srv.sockets]
            port = sockets[0].getsockname()[1] if sockets else options.port
            print(f"custodes CAS listening on https://{options.host}:{port}", flush=True)
        await task

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(run())
    finally:
        cas.store.close()
