"""Exact connection balancing between the CAS's worker processes (least connections, as Envoy's exact balancer).

When every worker accepts on the shared socket, the kernel hands each new connection to whichever worker wakes
first. Clients keep their connection alive for many attestations, so a split such as 37 : 27 of 64 connections
lasts the whole run, and the busier worker sets the p99: in benchmarks/attest.py the open-loop p99 went from 58 ms
at 33 : 31 to 108 ms at 37 : 27 (docs/benchmarks.md). So with several workers the supervisor accepts, and passes
each connection (its file descriptor, over a UNIX socket pair, ``SCM_RIGHTS``) to the worker with the fewest open
connections. TLS and HTTP stay in the workers; the supervisor never reads a byte of a connection.

The count of a worker's open connections is ``sent - finished``, two shared 8-byte cells per worker: the supervisor
counts what it sent, the worker what it has finished (one writer each, so no lock). Any worker can read them all,
which is how ``/v1/status`` shows the balance.
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import socket
import ssl
from collections.abc import Callable

__all__ = ["Balancer", "ConnectionCounts", "adopt_connections"]

log = logging.getLogger("custodes.cas")

_FDS_PER_MESSAGE = 32


class ConnectionCounts:
    """Connections sent to and finished by each worker, in anonymous shared memory mapped before the fork."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._mem = mmap.mmap(-1, 16 * workers)
        self._cells = memoryview(self._mem).cast("Q")  # [sent 0, finished 0, sent 1, finished 1, ...]

    def sent(self, worker: int) -> None:
        """One more connection passed to ``worker`` (called only by the supervisor)."""
        self._cells[2 * worker] += 1

    def finish(self, worker: int) -> None:
        """One more connection of ``worker`` has ended (called only by that worker)."""
        self._cells[2 * worker + 1] += 1

    def open(self, worker: int) -> int:
        return max(0, self._cells[2 * worker] - self._cells[2 * worker + 1])

    def open_all(self) -> list[int]:
        return [self.open(w) for w in range(self.workers)]

    def reset(self, worker: int) -> None:
        """Before a worker is (re)started: its predecessor's connections died with it."""
        self._cells[2 * worker] = self._cells[2 * worker + 1] = 0


class Balancer:
    """The supervisor's side: one channel per worker, and the connections sent to each."""

    def __init__(self, counts: ConnectionCounts, workers: int) -> None:
        self.counts = counts
        self.channels: list[socket.socket | None] = [None] * workers

    def open_channel(self, worker: int) -> socket.socket:
        """A fresh channel for a worker about to be forked; returns the worker's end (the child keeps it)."""
        self.close_channel(worker)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        self.channels[worker] = ours
        self.counts.reset(worker)
        return theirs

    def close_channel(self, worker: int) -> None:
        channel, self.channels[worker] = self.channels[worker], None
        if channel is not None:
            channel.close()

    def close_all(self) -> None:
        for worker in range(len(self.channels)):
            self.close_channel(worker)

    def dispatch(self, conn: socket.socket) -> int | None:
        """Pass one accepted connection to the least-loaded worker that takes it; close our copy either way.

        Returns the worker, or None if no worker could take it (all channels full or gone): the connection is
        then closed, which a client sees as a reset and retries.
        """
        try:
            order = sorted(
                (w for w, channel in enumerate(self.channels) if channel is not None), key=self.counts.open
            )
            for worker in order:
                channel = self.channels[worker]
                try:
                    socket.send_fds(channel, [b"c"], [conn.fileno()])  # type: ignore[arg-type]
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    continue  # that worker is stuck or gone: try the next
                self.counts.sent(worker)
                return worker
            log.error("no worker could take a connection; closing it")
            return None
        finally:
            conn.close()


def adopt_connections(
    channel: socket.socket,
    factory: Callable[[], asyncio.Protocol],
    tls: ssl.SSLContext,
    *,
    handshake_timeout: float,
    finished: Callable[[], None],
) -> None:
    """The worker's side: take connections from the supervisor's channel and serve them with ``factory``.

    ``finished`` runs exactly once per received connection, when it ends (or fails its TLS handshake); the
    protocol made by ``factory`` must call its ``on_finished`` attribute from ``connection_lost``.
    """
    loop = asyncio.get_running_loop()
    channel.setblocking(False)
    adopting: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    async def adopt(sock: socket.socket) -> None:
        done = False

        def finish_once() -> None:
            nonlocal done
            if not done:
                done = True
                finished()

        def make() -> asyncio.Protocol:
            protocol = factory()
            protocol.on_finished = finish_once  # type: ignore[attr-defined]
            return protocol

        try:
            await loop.connect_accepted_socket(make, sock, ssl=tls, ssl_handshake_timeout=handshake_timeout)
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as exc:
            log.debug("connection dropped during the TLS handshake: %s", type(exc).__name__)
            sock.close()
            finish_once()

    def readable() -> None:
        while True:
            try:
                _, fds, _, _ = socket.recv_fds(channel, 16, _FDS_PER_MESSAGE)
            except BlockingIOError:
                return
            except OSError:
                loop.remove_reader(channel.fileno())
                return
            if not fds:  # the supervisor closed the channel: it is stopping
                loop.remove_reader(channel.fileno())
                return
            for fd in fds:
                task = loop.create_task(adopt(socket.socket(fileno=fd)))
                adopting.add(task)
                task.add_done_callback(adopting.discard)

    loop.add_reader(channel.fileno(), readable)
