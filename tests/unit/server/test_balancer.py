"""The connection balancer (server/balancer.py): least connections, exact counts, and no leaked descriptors."""

from __future__ import annotations

import asyncio
import datetime
import os
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from custodes.server.balancer import Admission, Balancer, ConnectionCounts, adopt_connections


def connected_pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_counts_are_shared_with_a_forked_process() -> None:
    counts = ConnectionCounts(2)
    for _ in range(7):
        counts.sent(1)
    pid = os.fork()
    if pid == 0:
        for _ in range(5):
            counts.finish(1)
        os._exit(0)
    os.waitpid(pid, 0)
    assert counts.open_all() == [0, 2]
    counts.reset(1)
    assert counts.open_all() == [0, 0]


def test_dispatch_sends_each_connection_to_the_worker_with_the_fewest() -> None:
    balancer = Balancer(ConnectionCounts(3), 3)
    ends = [balancer.open_channel(w) for w in range(3)]
    chosen = []
    for _ in range(6):
        ours, _theirs = connected_pair()
        chosen.append(balancer.dispatch(ours))
    assert sorted(chosen) == [0, 0, 1, 1, 2, 2]
    balancer.counts.finish(1)  # worker 1 finished one of its two: it is now the least loaded
    balancer.counts.finish(1)
    ours, _ = connected_pair()
    assert balancer.dispatch(ours) == 1
    assert balancer.counts.open_all() == [2, 1, 2]
    for end in ends:
        end.close()
    balancer.close_all()


def test_the_worker_receives_a_working_descriptor_and_the_supervisor_keeps_none() -> None:
    balancer = Balancer(ConnectionCounts(1), 1)
    theirs = balancer.open_channel(0)
    before = open_fds()
    ours, peer = connected_pair()
    assert balancer.dispatch(ours) == 0
    assert ours.fileno() == -1  # the supervisor's copy is closed
    _, fds, _, _ = socket.recv_fds(theirs, 16, 4)
    assert len(fds) == 1
    with socket.socket(fileno=fds[0]) as received:
        peer.sendall(b"ping")
        assert received.recv(4) == b"ping"
    peer.close()
    assert open_fds() == before
    theirs.close()
    balancer.close_all()


def test_a_gone_worker_is_skipped_and_with_none_left_the_connection_is_closed() -> None:
    balancer = Balancer(ConnectionCounts(2), 2)
    gone = balancer.open_channel(0)
    alive = balancer.open_channel(1)
    gone.close()  # worker 0 died: its end of the channel is closed
    ours, peer = connected_pair()
    assert balancer.dispatch(ours) == 1
    alive.close()
    ours, peer = connected_pair()
    assert balancer.dispatch(ours) is None
    assert peer.recv(1) == b""  # closed, not leaked
    balancer.close_all()


def test_a_restarted_worker_starts_from_zero() -> None:
    balancer = Balancer(ConnectionCounts(2), 2)
    ends = [balancer.open_channel(0), balancer.open_channel(1)]
    for _ in range(4):
        balancer.dispatch(connected_pair()[0])
    ends[0].close()
    ends[0] = balancer.open_channel(0)  # as the supervisor does before forking the replacement
    assert balancer.counts.open(0) == 0
    assert balancer.dispatch(connected_pair()[0]) == 0
    for end in ends:
        end.close()
    balancer.close_all()


def _tls_contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1)).sign(key, hashes.SHA256())
    )
    pem = tmp_path / "server.pem"
    pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.minimum_version = ssl.TLSVersion.TLSv1_3
    server.load_cert_chain(pem)
    client = ssl.create_default_context(cafile=str(pem))
    client.check_hostname = False
    return server, client


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_finished()  # type: ignore[attr-defined]


@pytest.mark.parametrize("loop_factory", [uvloop.new_event_loop, asyncio.new_event_loop], ids=["uvloop", "asyncio"])
@pytest.mark.parametrize("handshake", ["completes", "fails"])
def test_adopted_connections_are_served_and_each_counted_finished_once(
    tmp_path: Path, handshake: str, loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    server_tls, client_tls = _tls_contexts(tmp_path)
    finished: list[int] = []

    async def scenario() -> None:
        supervisor_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        admission = Admission(_Echo, server_tls, handshake_timeout=5.0, served=lambda: 0, limit=100,
                              finished=lambda: finished.append(1))
        adopt_connections(worker_end, admission)
        ours, theirs = connected_pair()
        socket.send_fds(supervisor_end, [b"c"], [theirs.fileno()])
        theirs.close()
        ours.setblocking(False)
        loop = asyncio.get_running_loop()
        if handshake == "completes":
            reader, writer = await asyncio.open_connection(sock=ours, ssl=client_tls, server_hostname="localhost")
            writer.write(b"hello")
            assert await reader.readexactly(5) == b"hello"
            writer.close()
        else:
            await loop.sock_sendall(ours, b"this is not a TLS client hello\r\n" * 4)
            ours.close()
        for _ in range(200):
            if finished:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # a second count, if there were one, would land now
        loop.remove_reader(worker_end.fileno())
        supervisor_end.close()
        worker_end.close()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(scenario())
    assert finished == [1]


def test_at_the_limit_the_connection_idle_longest_makes_room_and_else_the_new_one_is_refused() -> None:
    finished: list[int] = []

    async def scenario() -> None:
        server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # never reached: no connection here sends a byte
        admission = Admission(_Echo, server_tls, handshake_timeout=5.0, served=lambda: 0, limit=2,
                              finished=lambda: finished.append(1))
        pairs = [connected_pair() for _ in range(3)]
        for ours, _ in pairs:
            admission.admit(ours)
        assert len(admission.waiting) == 2 and admission.evicted == 1 and finished == [1]
        assert pairs[0][1].recv(1) == b""  # the oldest was closed
        for _ours, theirs in pairs[1:]:  # the two waiting ones send their first bytes: their handshakes start
            theirs.sendall(b"not a TLS hello")
        for _ in range(100):
            if not admission.waiting:
                break
            await asyncio.sleep(0.01)
        admission.served = lambda: 2  # both slots taken by connections past their first bytes: nothing idle
        late, late_peer = connected_pair()
        admission.admit(late)
        assert admission.refused == 1 and len(finished) >= 2
        assert late_peer.recv(1) == b""
        for ours, theirs in pairs:
            ours.close()
            theirs.close()
        late_peer.close()
        await asyncio.sleep(0.05)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())


def test_a_connection_the_kernel_could_not_deliver_is_counted_and_the_worker_reads_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Simulated kernel boundary: a worker out of descriptors receives the message without its descriptor
    (``MSG_CTRUNC``). That is one lost connection, not the supervisor closing the channel."""
    finished: list[int] = []
    admitted: list[socket.socket] = []
    ours, theirs = connected_pair()
    messages = [(b"c", [], socket.MSG_CTRUNC, None), (b"c", [theirs.fileno()], 0, None)]

    def recv_fds(*_args: object) -> tuple[bytes, list[int], int, object]:
        if not messages:
            raise BlockingIOError
        return messages.pop(0)

    monkeypatch.setattr(socket, "recv_fds", recv_fds)

    async def scenario() -> None:
        supervisor_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        admission = Admission(_Echo, ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), handshake_timeout=5.0,
                              served=lambda: 0, limit=10, finished=lambda: finished.append(1))
        admission.admit = admitted.append  # type: ignore[method-assign]
        stop = adopt_connections(worker_end, admission)
        supervisor_end.send(b"wake")  # makes the channel readable; the patched recv_fds answers
        for _ in range(100):
            if admitted:
                break
            await asyncio.sleep(0.01)
        stop()
        supervisor_end.close()
        worker_end.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())
    assert finished == [1]  # the lost one
    assert [s.fileno() for s in admitted] == [theirs.fileno()]  # and the next one was still taken
    for sock in admitted:
        sock.detach()
    ours.close()
    theirs.close()
