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
import functools
import logging
import mmap
import socket
import ssl
import time
from collections.abc import Callable

__all__ = ["Admission", "Balancer", "ConnectionCounts", "accept_connections", "adopt_connections"]

log = logging.getLogger("custodes.cas")

_FDS_PER_MESSAGE = 32
_MESSAGES_PER_TURN = 32  # connections a worker takes per loop turn


class _Throttled:
    """A log call made at most once per ``interval`` seconds (the others are dropped)."""

    def __init__(self, emit: Callable[..., None], interval: float) -> None:
        self.emit, self.interval, self.last = emit, interval, -interval

    def __call__(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self.emit(message, *args)


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
        self._warn = _Throttled(log.error, 5.0)  # under a connection flood this happens for every connection

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
                except OSError as exc:  # ETOOMANYREFS (too many descriptors in flight), ENOBUFS, ...: never fatal
                    self._warn("passing a connection to worker %d failed: %s", worker, exc.strerror)
                    continue
                self.counts.sent(worker)
                return worker
            self._warn("no worker could take a connection; closing it")
            return None
        finally:
            conn.close()


class Admission:
    """A worker's door: every accepted connection is counted from accept, through its TLS handshake, to its end.

    Connections that have not finished their handshake count against ``limit`` (``HttpServer.max_connections``)
    like served ones: otherwise idle TCP connections that never send a TLS hello would pile up, uncounted, until the
    worker ran out of file descriptors. A connection waits, as a bare socket, until its client sends its first bytes;
    only then does its TLS handshake start. At the limit, the connection that has waited longest without sending a
    byte is closed to make room (a real client sends its hello at once; a flood of idle connections evicts itself).
    If none is waiting, the new connection is closed.

    ``finished`` runs exactly once per admitted or refused connection, when it ends (or fails its handshake); the
    protocol made by ``factory`` must call its ``on_finished`` attribute from ``connection_lost``, and should call
    its ``on_connected`` attribute first thing in ``connection_made``.
    """

    def __init__(
        self,
        factory: Callable[[], asyncio.Protocol],
        tls: ssl.SSLContext,
        *,
        handshake_timeout: float,
        served: Callable[[], int],
        limit: int,
        finished: Callable[[], None] = lambda: None,
    ) -> None:
        self.factory, self.tls, self.handshake_timeout = factory, tls, handshake_timeout
        self.served, self.limit, self.finished = served, limit, finished
        self.loop = asyncio.get_running_loop()
        self.waiting: dict[socket.socket, asyncio.TimerHandle] = {}  # no byte yet, oldest first; their timeouts
        self.handshaking: set[asyncio.Task[None]] = set()
        self.evicted = self.refused = 0
        self._warn_limit = _Throttled(log.warning, 10.0)

    def open(self) -> int:
        return self.served() + len(self.waiting) + len(self.handshaking)

    def admit(self, sock: socket.socket) -> None:
        if self.open() >= self.limit:
            if not self.waiting:
                self.refused += 1
                self._warn()
                sock.close()
                self.finished()
                return
            self.evicted += 1
            self._warn()
            self._drop(next(iter(self.waiting)))
        sock.setblocking(False)
        self.waiting[sock] = self.loop.call_later(self.handshake_timeout, self._drop, sock)
        self.loop.add_reader(sock.fileno(), self._first_bytes, sock)

    def _drop(self, sock: socket.socket) -> None:
        """Close a connection that has sent nothing (its time is up, or it is the oldest at the limit)."""
        self.waiting.pop(sock).cancel()
        self.loop.remove_reader(sock.fileno())
        sock.close()
        self.finished()

    def _first_bytes(self, sock: socket.socket) -> None:
        self.waiting.pop(sock).cancel()
        self.loop.remove_reader(sock.fileno())
        task = self.loop.create_task(self._handshake(sock))
        self.handshaking.add(task)
        task.add_done_callback(self.handshaking.discard)

    def _warn(self) -> None:
        self._warn_limit(
            "at the connection limit (%d: %d served, %d in their TLS handshake, %d not yet sending): "
            "%d idle connections closed to make room, %d refused so far",
            self.limit, self.served(), len(self.handshaking), len(self.waiting), self.evicted, self.refused,
        )

    async def _handshake(self, sock: socket.socket) -> None:
        done = False

        def finish_once() -> None:
            nonlocal done
            if not done:
                done = True
                self.finished()

        task = asyncio.current_task()

        def make() -> asyncio.Protocol:
            protocol = self.factory()
            protocol.on_finished = finish_once  # type: ignore[attr-defined]
            # Counted as served from connection_made on, not a loop turn later when this task ends.
            protocol.on_connected = functools.partial(self.handshaking.discard, task)  # type: ignore[attr-defined]
            return protocol

        try:
            await self.loop.connect_accepted_socket(
                make, sock, ssl=self.tls, ssl_handshake_timeout=self.handshake_timeout
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as exc:
            log.debug("connection dropped during the TLS handshake: %s", type(exc).__name__)
            sock.close()
            finish_once()


def adopt_connections(channel: socket.socket, admission: Admission) -> Callable[[], None]:
    """The worker's side of the balancer: take connections from the supervisor's channel and admit them.

    Returns how to stop taking them. A message whose descriptor the kernel could not deliver (``MSG_CTRUNC``: this
    worker was out of descriptors) is a lost connection, not the end of the channel: it is counted as finished, and
    the worker goes on reading. Only an empty message (the supervisor closed the channel) ends it.
    """
    loop = asyncio.get_running_loop()
    channel.setblocking(False)

    def readable() -> None:
        for _ in range(_MESSAGES_PER_TURN):  # then let the loop run: evicted handshakes release their descriptors
            try:
                message, fds, flags, _ = socket.recv_fds(channel, 16, _FDS_PER_MESSAGE)
            except BlockingIOError:
                return
            except OSError:
                loop.remove_reader(channel.fileno())
                return
            if not message:  # the supervisor closed the channel: it is stopping
                loop.remove_reader(channel.fileno())
                return
            if flags & socket.MSG_CTRUNC:
                log.error("a connection passed by the supervisor was lost: out of file descriptors")
                for _ in range(len(message) - len(fds)):
                    admission.finished()
            for fd in fds:
                admission.admit(socket.socket(fileno=fd))

    loop.add_reader(channel.fileno(), readable)
    return functools.partial(loop.remove_reader, channel.fileno())


def accept_connections(sock: socket.socket, admission: Admission) -> Callable[[], None]:
    """One worker, no supervisor: accept on the listening socket itself and admit each connection."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    paused: list[asyncio.TimerHandle] = []

    def readable() -> None:
        for _ in range(_MESSAGES_PER_TURN):
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: pause, and let the backlog hold the rest meanwhile
                log.error("accept failed: %s", exc.strerror)
                loop.remove_reader(sock.fileno())
                paused.append(loop.call_later(0.05, resume))
                return
            admission.admit(conn)

    def resume() -> None:
        paused.clear()
        loop.add_reader(sock.fileno(), readable)

    def stop() -> None:
        for handle in paused:
            handle.cancel()
        loop.remove_reader(sock.fileno())

    loop.add_reader(sock.fileno(), readable)
    return stop
