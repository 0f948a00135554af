"""The CAS's HTTP/1.1 server: asyncio (uvloop) for TLS and sockets, llhttp (``httptools``) for parsing.

Why not uvicorn: an attestation is two small requests, and uvicorn's per-request machinery (ASGI scope, a task,
cycle and message dicts, a keep-alive timer per response) is a visible share of the CAS's CPU. On the transport
floor (two trivial routes, same TLS and loop, 1,000 attestations/s offered) uvicorn cost 290–394 µs of server CPU
per attestation and this server 244–285 µs; with the CAS behind it, its CPU per attestation fell by 6 %
(docs/benchmarks.md). So the two attestation routes run directly on the connection (:class:`HotRoute`), and every
other request goes to the ASGI app (FastAPI) through a minimal bridge (:mod:`custodes.server.asgi`).

What a client cannot do (each refusal is the API's JSON error; the connection then closes, lingering):

* send headers over ``max_header_bytes`` (431) or a body over ``max_body_bytes`` (413), declared or sent;
* send anything llhttp rejects (400 ``REQUEST_INVALID``): both ``Content-Length`` and ``Transfer-Encoding``,
  duplicate lengths, bare LF line ends, bad tokens; so requests cannot be smuggled past the parser;
* ask for a protocol upgrade (400: the CAS speaks HTTP/1.1 only);
* hold a connection without finishing a request (408 after ``request_timeout``) or idle beyond ``keep_alive``;
* stop reading its responses: the server stops reading its requests, and cuts it off after ``request_timeout``;
* send a transfer coding other than ``chunked``, or trailer lines beyond the header limit;
* open more than ``max_connections`` connections to one worker, counted from accept by the worker's admission
  (server/balancer.py): the longest-idle connection that has sent nothing is closed to make room, else the newest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import time
import types
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import httptools
from starlette.types import ASGIApp

from custodes.server.asgi import asgi_exchange
from custodes.server.errors import error_json

#: Raw bytes allowed per body chunk beyond its data: its size line (hex digits, CRLF) and the CRLF after it.
_CHUNK_FRAMING = 16

__all__ = ["HotRoute", "HttpLimits", "HttpServer"]

log = logging.getLogger("custodes.cas")
access_log = logging.getLogger("custodes.access")

# A hot route: the request body in, (status, JSON body) out. It maps its own errors (server/app.py).
HotRoute = Callable[[bytes], Awaitable[tuple[int, bytes]]]


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int = 16 << 10  # request line and headers
    max_headers: int = 100
    max_body_bytes: int = 2 << 20
    max_pipelined: int = 16  # complete requests queued on one connection before it stops reading
    keep_alive: float = 30.0  # idle seconds between requests before the CAS closes the connection
    request_timeout: float = 30.0  # seconds from a request's first byte to its last
    max_connections: int = 10_000  # per worker; also kept below the open-file limit


_LINGER_S = 2.0  # how long a closing connection's input is drained before the socket closes
_CORK_BYTES = 64 << 10  # at most this much response data waits for the end of a loop turn
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_JSON_HEADERS = [(b"content-type", b"application/json")]


class _Refusal(Exception):
    """Raised inside a parser callback: answer with this error, then close."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(slots=True)
class _Request:
    method: bytes
    url: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    keep_alive: bool
    version: str


class HttpServer:
    """The connections of one worker: creates their protocols, sweeps their timeouts, closes them on shutdown."""

    def __init__(
        self,
        hot: dict[bytes, HotRoute],
        app: ASGIApp,
        *,
        limits: HttpLimits | None = None,
        log_access: bool = False,
        slow: frozenset[bytes] = frozenset(),
    ) -> None:
        self.hot, self.app = hot, app
        self.slow = slow  # hot routes answered after the quick requests of the same loop turn (see defer)
        self._deferred: deque[tuple[HttpProtocol, _Request]] = deque()
        self.limits = limits or HttpLimits()
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        room = soft - 128 if soft != resource.RLIM_INFINITY else self.limits.max_connections  # the rest: own files
        self.max_connections = max(1, min(self.limits.max_connections, room))
        self.log_access = log_access
        self.connections: set[HttpProtocol] = set()
        self.draining: set[HttpProtocol] = set()  # closed by us, flushing their last bytes (aborted if that stalls)
        self.stopping = False
        self._sweeper: asyncio.Task[None] | None = None
        self._corked: list[tuple[asyncio.Transport, bytes]] = []
        self._corked_bytes = 0
        self.tasks: set[asyncio.Task[None]] = set()  # requests that had to wait

    def send(self, transport: asyncio.Transport, data: bytes) -> None:
        """Write ``data`` once this loop turn has read and answered its quick requests, with their other responses
        (a slow request's response leaves as soon as it is done: see :meth:`defer`).

        Beyond ``_CORK_BYTES`` it writes at once, so a transport's flow control still applies.
        """
        if not self._corked:
            asyncio.get_running_loop().call_soon(self.uncork)
        self._corked.append((transport, data))
        self._corked_bytes += len(data)
        if self._corked_bytes > _CORK_BYTES:
            self.uncork()

    def defer(self, protocol: HttpProtocol, request: _Request) -> None:
        """Answer a slow request after the quick ones this loop turn read, once their responses have left, and send
        its response as soon as it is done.

        A worker that falls behind reads several requests in one turn. Answered in arrival order, a challenge
        (~0.1 ms) waited behind every attestation (~1 ms) read before it, and each attestation's response waited for
        the whole turn. Now the challenged clients compute their evidence, and the attested ones unseal, on the
        other core while this worker verifies the next. This lowers the p99 at 1,000/s offered by 64 clients; it
        costs throughput only when clients share the CAS's cores and saturate them, since their wake-ups then
        interrupt the worker (figures: docs/benchmarks.md). Nothing starves: a turn's deferred requests all run
        before the loop polls again.
        """
        if not self._deferred:
            asyncio.get_running_loop().call_soon(self._run_deferred)
        self._deferred.append((protocol, request))

    def _run_deferred(self) -> None:
        self.uncork()
        deferred, self._deferred = self._deferred, deque()
        for protocol, request in deferred:
            protocol.start(request)
            self.uncork()

    def uncork(self) -> None:
        corked, self._corked, self._corked_bytes = self._corked, [], 0
        for transport, data in corked:
            if not transport.is_closing():
                transport.write(data)

    def open_count(self) -> int:
        """Connections this server holds: served, and closed by it but still flushing."""
        return len(self.connections) + len(self.draining)

    def protocol(self) -> HttpProtocol:
        """The protocol factory for ``loop.create_server`` / ``loop.connect_accepted_socket``."""
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        return HttpProtocol(self)

    async def _sweep(self) -> None:
        """Once a second: close connections idle beyond ``keep_alive`` or slower than ``request_timeout``."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for conn in list(self.connections):
                conn.check_timeouts(now)
            for conn in list(self.draining):
                if now - conn.closed_at > self.limits.request_timeout:
                    conn.abort()

    async def shutdown(self, timeout: float) -> None:
        """Close idle connections now, the others after their current response; abort what is left at ``timeout``."""
        self.stopping = True
        for conn in list(self.connections):
            conn.close_when_idle()
        deadline = time.monotonic() + timeout
        while (self.connections or self.draining) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for conn in [*self.connections, *self.draining]:
            conn.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper


class HttpProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection. Requests are answered in order, one at a time; pipelined ones wait in a queue."""

    on_finished: Callable[[], None] | None = None  # set by the worker's admission (server/balancer.py)
    on_connected: Callable[[], None] | None = None  # likewise

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.limits = server.limits
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: deque[_Request | _Refusal] = deque()
        self.busy = False  # a request is being answered
        self.closing = False  # closed by us (see _close): nothing more is read or answered
        self.closed_at = 0.0
        self.paused = False  # reading is paused (see _update_reading)
        self.write_paused_at: float | None = None  # the transport's buffer is full: the client is not reading
        self.refused = False  # the parser refused a request: answer what came before, then the refusal, then close
        self.last_active = time.monotonic()
        self.request_started: float | None = None  # when the current partial request's first byte came
        self.request_raw = 0  # bytes received of the current request (llhttp buffers a header line until it ends)
        self.chunks = 0  # chunks of the current request's body (Transfer-Encoding: chunked)
        self.completed = 0  # requests parsed on this connection
        self.disconnected: asyncio.Future[None] = self.loop.create_future()
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.body: list[bytes] = []
        self.body_bytes = 0

    # -- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.on_connected is not None:
            self.on_connected()
        self.transport = transport  # type: ignore[assignment]
        open_now = self.server.open_count()
        if self.server.stopping or open_now >= self.server.max_connections:
            log.warning("refusing a connection: %d open", open_now)
            transport.abort()  # type: ignore[attr-defined]
            return
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.server.draining.discard(self)
        if self.on_finished is not None:
            self.on_finished()
        self.queue.clear()
        if not self.disconnected.done():
            self.disconnected.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused_at = time.monotonic()
        self._update_reading()

    def resume_writing(self) -> None:
        self.write_paused_at = None
        if not self.busy:
            self._next()
        self._update_reading()

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return  # after a refusal the rest of the byte stream is not trusted, and not read
        completed = self.completed
        try:
            self.parser.feed_data(data)
            if self.completed != completed:
                if not self.busy:
                    self._next()
                self._update_reading()
            # A header line (or a trailer line after a chunked body) is only reported when it ends, so count the raw
            # bytes of a request in progress: all but its body and a little chunk framing per chunk must fit the
            # header limit (a chunk in which an earlier request completed is not counted: one read's worth at most).
            if self.request_started is not None and self.completed == completed:
                self.request_raw += len(data)
                if self.request_raw - self.body_bytes > self.limits.max_header_bytes + _CHUNK_FRAMING * self.chunks:
                    raise _Refusal(431, "REQUEST_TOO_LARGE", "request headers too large")
        except _Refusal as refusal:
            self._refuse(refusal.status, refusal.code, refusal.message)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Refusal):
                self._refuse(cause.status, cause.code, cause.message)
            else:
                log.error("HTTP parser callback failed: %s", type(cause).__name__)
                self._refuse(500, "INTERNAL_ERROR", "internal error")
        except httptools.HttpParserUpgrade:
            self._refuse(400, "REQUEST_INVALID", "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            self._refuse(400, "REQUEST_INVALID", f"malformed HTTP request: {_parser_reason(exc)}")

    # -- llhttp callbacks

    def on_message_begin(self) -> None:
        self.request_started = self.last_active = time.monotonic()
        self.request_raw, self.chunks = 0, 0
        self._reset()

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count_header_bytes(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))
        self._count_header_bytes(len(name) + len(value) + 4)
        if len(self.headers) > self.limits.max_headers:
            raise _Refusal(431, "REQUEST_TOO_LARGE", "too many request headers")

    def _count_header_bytes(self, n: int) -> None:
        self.header_bytes += n
        if self.header_bytes > self.limits.max_header_bytes:
            raise _Refusal(431, "REQUEST_TOO_LARGE", "request headers too large")

    def on_headers_complete(self) -> None:
        if self.parser.should_upgrade():
            raise _Refusal(400, "REQUEST_INVALID", "protocol upgrades are not supported")
        headers = dict(self.headers)  # llhttp has refused duplicate lengths
        if b"transfer-encoding" in headers and (
            headers[b"transfer-encoding"].strip().lower() != b"chunked"
            or sum(name == b"transfer-encoding" for name, _ in self.headers) > 1
        ):  # llhttp takes any coding list that ends in chunked; the CAS decodes none but chunked itself
            raise _Refusal(400, "REQUEST_INVALID", "unsupported transfer coding (only chunked is accepted)")
        if int(headers.get(b"content-length", 0)) > self.limits.max_body_bytes:  # llhttp checked the digits
            raise _Refusal(413, "REQUEST_TOO_LARGE", "request body too large")
        if headers.get(b"expect", b"").lower() == b"100-continue" and self._idle() and self.transport:
            self.server.send(self.transport, b"HTTP/1.1 100 Continue\r\n\r\n")  # never between pipelined responses

    def on_chunk_header(self) -> None:
        self.chunks += 1

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > self.limits.max_body_bytes:
            raise _Refusal(413, "REQUEST_TOO_LARGE", "request body too large")
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.request_started = None
        self.completed += 1
        request = _Request(
            self.parser.get_method(),
            self.url,
            self.headers,
            b"".join(self.body),
            self.parser.should_keep_alive(),
            self.parser.get_http_version(),
        )
        self._reset()
        self.queue.append(request)  # answered once feed_data returns: handlers never run inside llhttp's callbacks

    # -- answering

    def _idle(self) -> bool:
        return not self.busy and not self.queue

    def _update_reading(self) -> None:
        """Read only while the client is reading its responses and has few requests waiting; never after a refusal."""
        if self.closing:
            return  # a closing connection drains its input (see _close)
        pause = (
            self.refused or self.write_paused_at is not None or len(self.queue) >= self.limits.max_pipelined
        )
        if pause != self.paused and self.transport is not None and not self.transport.is_closing():
            self.paused = pause
            if pause:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def _next(self) -> None:
        """Answer the next queued request, unless the client is not reading its responses."""
        if self.closing or self.write_paused_at is not None or not self.queue:
            self._update_reading()
            return
        item = self.queue.popleft()
        if isinstance(item, _Refusal):
            self._write(item.status, _JSON_HEADERS, error_json(item.code, item.message), keep_alive=False, head=False)
            self._close()
            return
        self.busy = True
        if item.url in self.server.slow and item.method == b"POST":
            self.server.defer(self, item)
        else:
            self.start(item)
        self._update_reading()

    def start(self, request: _Request) -> None:
        if self.transport is None or self.transport.is_closing():
            self.busy = False  # gone while its request waited its turn: nobody to answer
            return
        _start_eagerly(self.loop, self._answer(request), self.server.tasks)

    async def _answer(self, request: _Request) -> None:
        started = time.monotonic()
        route = self.server.hot.get(request.url) if request.method == b"POST" else None
        try:
            if route is not None:
                status, body = await route(request.body)
                headers = _JSON_HEADERS
            else:
                status, headers, body = await asgi_exchange(
                    self.server.app,
                    request.method,
                    request.url,
                    request.headers,
                    request.body,
                    version=request.version,
                    transport=self.transport,
                    disconnected=self.disconnected,
                )
        except Exception as exc:  # the routes map their own errors; this is a bug, and still never a trace
            log.error("internal error: %s", type(exc).__name__)
            status, headers, body = 500, _JSON_HEADERS, error_json("INTERNAL_ERROR", "internal error")
        keep_alive = request.keep_alive and not self.server.stopping
        self._write(status, headers, body, keep_alive, head=request.method == b"HEAD")
        if self.server.log_access:
            ms = (time.monotonic() - started) * 1000
            access_log.info("%s %s %d %.1fms", request.method.decode(), _printable(request.url), status, ms)
        self.busy = False
        self.last_active = time.monotonic()
        if keep_alive:
            self._next()
        else:
            self._close()

    def _write(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, keep_alive: bool, *, head: bool
    ) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        lines = [b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Unknown"))]
        lines += [b"%s: %s" % (name, value) for name, value in headers]
        if status < 200 or status in (204, 304):  # RFC 9110: no content, and no length
            body = b""
        else:
            lines.append(b"content-length: %d" % len(body))
        if not keep_alive:
            lines.append(b"connection: close")
        self.server.send(self.transport, b"\r\n".join(lines) + b"\r\n\r\n" + (b"" if head else body))

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Refuse what the client is sending, after the responses to its earlier requests, then close: the rest of
        the connection's byte stream is no longer trusted."""
        if self.refused:
            return
        self.refused = True
        self.request_started = None
        self.queue.append(_Refusal(status, code, message))
        if not self.busy:
            self._next()
        self._update_reading()

    def _close(self) -> None:
        """Close after what has been written, lingering: the client may still be sending (a refused body, pipelined
        requests), and closing a socket with unread input makes the kernel answer with a reset that can destroy
        the response before the client reads it. So the input is read and dropped until the client closes (or
        ``_LINGER_S``): on plain TCP after a FIN, on TLS by the close_notify exchange."""
        self.server.uncork()  # what this connection has to send goes out before the close
        transport = self.transport
        if self.closing or transport is None or transport.is_closing():
            return
        self.closing, self.closed_at = True, time.monotonic()
        self.server.connections.discard(self)
        self.server.draining.add(self)
        self.refused = True  # whatever comes now is dropped unparsed
        if self.paused:
            self.paused = False
            transport.resume_reading()
        if transport.can_write_eof():
            transport.write_eof()
            self.loop.call_later(_LINGER_S, transport.close)
        else:
            transport.close()

    def close_when_idle(self) -> None:
        """At shutdown: an idle connection closes now, a busy one after its response (the server is stopping)."""
        if not self.busy:
            self._close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def check_timeouts(self, now: float) -> None:
        if self.write_paused_at is not None and now - self.write_paused_at > self.limits.request_timeout:
            log.info("aborting a connection whose client has not read for %.0f s", now - self.write_paused_at)
            self.abort()
        elif self.request_started is not None and now - self.request_started > self.limits.request_timeout:
            self._refuse(408, "REQUEST_TIMEOUT", "the request was not complete in time")
        elif self._idle() and now - self.last_active > self.limits.keep_alive:
            self._close()

def _start_eagerly(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, None, None], tasks: set[asyncio.Task[None]]
) -> None:
    """Run ``coro`` at once, up to its first suspension, and make it a task only if it suspends.

    An attestation route usually finishes without suspending (with several workers nothing in it waits), so its
    response leaves in the same loop turn that read the request, without a task per request (Python 3.12's eager
    task factory does the same; this runs on 3.11).
    """
    try:
        yielded = coro.send(None)
    except StopIteration:
        return
    task = loop.create_task(_resume(coro, yielded))
    tasks.add(task)  # the loop holds tasks weakly
    task.add_done_callback(tasks.discard)


async def _resume(coro: Coroutine[Any, None, None], yielded: Any) -> None:
    await _continue(coro, yielded)


@types.coroutine
def _continue(coro: Coroutine[Any, None, None], yielded: Any) -> Generator[Any, Any, None]:
    """Hand what ``coro`` awaits to the task running this, and pass back what the task sends or throws in."""
    while True:
        try:
            sent = yield yielded
        except BaseException as exc:  # cancellation, thrown in by the task: the coroutine handles or re-raises it
            try:
                yielded = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration:
                return


def _parser_reason(exc: Exception) -> str:
    """llhttp's reason, which names the defect (never echoes request bytes)."""
    return str(exc)[:120] or type(exc).__name__


def _printable(url: bytes) -> str:
    return url[:200].decode("ascii", "replace").replace("\n", "?").replace("\r", "?")
