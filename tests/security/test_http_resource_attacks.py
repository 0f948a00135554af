"""Resource attacks on a real CAS process: holding connections, trickling bytes, not reading, flooding.

The CAS runs with short limits (``--request-timeout 1s --keep-alive 1s --max-connections 4``) so that each attack
plays out in about a second; the defaults are 30 s, 30 s and 10,000. Every attack ends with the CAS closing the
attacker's connection, and the CAS still serving a well-behaved client.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _http import Conn
from _support import CasProcess, custodes_cmd
from custodes.evidence.simvendor import SimVendor

STATUS = b"GET /v1/status HTTP/1.1\r\nHost: cas\r\n\r\n"


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory, sim: SimVendor) -> Iterator[CasProcess]:
    limits = ["--request-timeout", "1s", "--keep-alive", "1s", "--max-connections", "4"]
    process = CasProcess(tmp_path_factory.mktemp("tight-cas"), sim.path, extra_args=limits).start()
    yield process
    process.stop()


def still_serves(cas: CasProcess) -> None:
    conn = Conn(cas)
    try:
        conn.send(STATUS)
        assert conn.reply().status == 200
    finally:
        conn.close()


def test_slowloris_headers_that_never_end_get_408_and_the_close(tight: CasProcess) -> None:
    conn = Conn(tight)
    conn.send(b"GET /v1/status HTTP/1.1\r\nHost: cas\r\n")
    for _ in range(6):  # one header line every 0.3 s: activity, but the request never completes
        time.sleep(0.3)
        with contextlib.suppress(OSError):
            conn.send(b"X-Slow: 1\r\n")
    reply = conn.reply()
    assert (reply.status, reply.error()["code"]) == (408, "REQUEST_TIMEOUT")
    assert conn.closed()
    still_serves(tight)


def test_a_body_that_never_arrives_gets_408(tight: CasProcess) -> None:
    conn = Conn(tight)
    conn.send(b"POST /v1/attest/challenge HTTP/1.1\r\nHost: cas\r\nContent-Length: 100\r\n\r\n{")
    reply = conn.reply()
    assert (reply.status, reply.error()["code"]) == (408, "REQUEST_TIMEOUT")
    assert conn.closed()


def test_an_endless_header_line_is_refused_at_the_size_limit_not_buffered(tight: CasProcess) -> None:
    """llhttp reports a header only when its line ends; the CAS counts raw bytes, so 64 KiB of one line without an
    end is refused at once with 431 (a 408 would mean it was held until the request timeout)."""
    conn = Conn(tight)
    conn.send(b"GET /v1/status HTTP/1.1\r\nX-Endless: ")
    with contextlib.suppress(OSError):  # the CAS may close while we still send
        for _ in range(4):
            conn.send(b"a" * (16 << 10))
    reply = conn.reply()
    assert (reply.status, reply.error()["code"]) == (431, "REQUEST_TOO_LARGE")
    assert conn.closed()


def test_an_endless_trailer_line_after_a_chunked_body_is_refused_at_the_size_limit(tight: CasProcess) -> None:
    """Trailer lines come after the body, where header bytes were not counted: the same 431 as in the headers."""
    conn = Conn(tight)
    conn.send(b"POST /v1/auth/challenge HTTP/1.1\r\nHost: cas\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"1\r\nx\r\n0\r\nX-Endless-Trailer: ")
    with contextlib.suppress(OSError):
        for _ in range(4):
            conn.send(b"a" * (16 << 10))
    reply = conn.reply()
    assert (reply.status, reply.error()["code"]) == (431, "REQUEST_TOO_LARGE")
    assert conn.closed()


def test_many_small_chunks_are_not_mistaken_for_oversized_headers(tight: CasProcess) -> None:
    conn = Conn(tight)
    body = b'{"pad": "' + b"x" * 8000 + b'"}'
    chunked = b"".join(b"1\r\n%c\r\n" % byte for byte in body)
    conn.send(b"POST /v1/auth/challenge HTTP/1.1\r\nHost: cas\r\nTransfer-Encoding: chunked\r\n"
              b"Content-Type: application/json\r\n\r\n" + chunked + b"0\r\n\r\n")
    reply = conn.reply()  # 8,000 one-byte chunks: framing, not headers
    assert reply.status == 200
    conn.close()


def test_an_idle_connection_is_closed_after_the_keep_alive(tight: CasProcess) -> None:
    conn = Conn(tight)
    conn.send(STATUS)
    assert conn.reply().status == 200
    assert conn.closed()  # nothing more is sent, and the CAS closes within about a second


def test_a_client_that_never_reads_is_cut_off(tight: CasProcess) -> None:
    """Pipelined requests for the largest document, never read: the CAS stops reading, and then drops the client
    instead of buffering responses without end."""
    host, port = tight.url.removeprefix("https://").rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=10)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock = ssl.create_default_context(cafile=str(tight.cert))
    sock.check_hostname = False
    conn = sock.wrap_socket(raw)
    conn.settimeout(0.5)
    request = b"GET /v1/openapi.json HTTP/1.1\r\nHost: cas\r\n\r\n" * 16
    for _ in range(400):  # ~270 KiB of requests for ~40 MiB of responses, until the CAS stops reading
        try:
            conn.sendall(request)
        except OSError:  # a timeout (backpressure) or a reset (already cut off)
            break
    deadline = time.monotonic() + 10
    cut_off = False
    while time.monotonic() < deadline and not cut_off:
        time.sleep(0.5)
        try:
            conn.sendall(request)
        except TimeoutError:
            continue
        except OSError:
            cut_off = True
    conn.close()
    assert cut_off
    still_serves(tight)


def test_a_connection_flood_is_capped_per_worker(tmp_path: Path, sim: SimVendor) -> None:
    """Its own CAS: connections other tests left draining would count against the cap."""
    limits = ["--max-connections", "4"]
    tight = CasProcess(tmp_path / "cas", sim.path, extra_args=limits).start()
    held: list[Conn] = []
    try:
        held = [Conn(tight) for _ in range(4)]
        for conn in held:  # the four are served
            conn.send(STATUS)
            assert conn.reply().status == 200
        with pytest.raises(OSError):  # closed at accept, before any TLS: the client's handshake sees EOF
            Conn(tight)
        for conn in held:
            conn.close()
        time.sleep(0.5)  # the CAS sees the four closes
        still_serves(tight)
    finally:
        for conn in held:
            conn.close()
        tight.stop()


def test_bad_limits_on_the_command_line_are_one_line_errors(tmp_path: Path) -> None:
    for args in (["--request-timeout", "0s"], ["--keep-alive", "soon"], ["--max-connections", "0"]):
        cmd = custodes_cmd("cas", "serve", "--data-dir", str(tmp_path / "cas"), "--listen", "127.0.0.1:0", *args)
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1
        assert done.stderr.startswith("error: ARGUMENT_INVALID: ") and done.stderr.count("\n") == 1, done.stderr


# -- floods of idle TCP connections (no TLS hello), against a CAS with a small open-file limit -----------------------

NOFILE = 300  # the CAS's open-file limit here; the default of 1,024 behaves the same with more connections


class LimitedCas(CasProcess):
    """A CAS under ``prlimit --nofile``, and without capabilities (``setpriv``): root is exempt from the kernel's
    limit on descriptors in flight between processes, a normally deployed CAS is not."""

    def command(self) -> list[str]:
        return ["setpriv", "--bounding-set=-all", "--inh-caps=-all",
                "prlimit", f"--nofile={NOFILE}:{NOFILE}", "--", *super().command()]


def idle_flood(cas: CasProcess, n: int) -> list[socket.socket]:
    host, port = cas.url.removeprefix("https://").rsplit(":", 1)
    held = []
    for _ in range(n):
        with contextlib.suppress(OSError):
            held.append(socket.create_connection((host, int(port)), timeout=2))
    return held


def open_files(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_flood_of_idle_connections_neither_locks_out_clients_nor_outlasts_itself(
    tmp_path: Path, sim: SimVendor, workers: int
) -> None:
    """Connections that never send a TLS hello are counted from accept; at the limit the one idle longest is closed
    to make room. So the workers stay below their open-file limit, keep serving during the flood, and afterwards;
    the supervisor survives (descriptors in flight between processes are limited too)."""
    cas = LimitedCas(tmp_path / "cas", sim.path, extra_args=["--workers", str(workers)]).start()
    held: list[socket.socket] = []
    try:
        still_serves(cas)
        held = idle_flood(cas, workers * NOFILE + 300)
        time.sleep(0.5)
        still_serves(cas)  # during the flood
        assert cas.proc.poll() is None
        serving = [int(p) for p in Path(f"/proc/{cas.proc.pid}/task/{cas.proc.pid}/children").read_text().split()]
        for pid in serving or [cas.proc.pid]:
            assert open_files(pid) < NOFILE
        for sock in held:
            sock.close()
        held = []
        time.sleep(0.5)
        still_serves(cas)  # and after it
        assert not any("restarting" in line for line in cas.stderr_lines)
        assert any("at the connection limit" in line for line in cas.stderr_lines)
    finally:
        for sock in held:
            sock.close()
        cas.stop()
