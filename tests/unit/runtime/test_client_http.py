"""The stdlib CAS client against a scripted TLS 1.3 server on loopback: keep-alive, one reconnect after a dropped
connection, timeouts, and the error codes the runtime's exit codes depend on (``CAS_TLS_FAILED`` vs
``CAS_UNREACHABLE``)."""

from __future__ import annotations

import itertools
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import custodes.client
from custodes.client import CasClient, CasError


def write_identity(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate and its key, as the CAS makes at its first start."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}-cert.pem", directory / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


Reply = Callable[[BaseHTTPRequestHandler, dict], None]


@dataclass
class Scripted:
    """What the server saw, and how it answers (``reply``) — by default, echo the request as JSON."""

    url: str
    cert: Path
    requests: list[dict] = field(default_factory=list)
    connections: set[int] = field(default_factory=set)
    reply: Reply | None = None
    server: ThreadingHTTPServer | None = None

    def close_idle_connections(self) -> None:
        """As uvicorn does after its keep-alive timeout: close connections between requests."""
        if self.server is not None:
            for conn in list(self.server.open_connections):  # type: ignore[attr-defined]
                conn.shutdown(socket.SHUT_RDWR)


def send_json(handler: BaseHTTPRequestHandler, status: int, body: object) -> None:
    data = json.dumps(body).encode() if not isinstance(body, bytes) else body
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


@pytest.fixture
def cas(tmp_path: Path) -> Iterator[Scripted]:
    cert, key = write_identity(tmp_path, "cas")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key)
    state = Scripted(url="", cert=cert)
    numbers = itertools.count()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive

        def log_message(self, *args: object) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            self.number = next(numbers)  # ids of socket objects are reused once they are freed: count instead
            self.server.open_connections.add(self.connection)  # type: ignore[attr-defined]

        def finish(self) -> None:
            super().finish()
            self.server.open_connections.discard(self.connection)  # type: ignore[attr-defined]

        def handle_one(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen = {"method": self.command, "path": self.path, "headers": dict(self.headers),
                    "body": self.rfile.read(length).decode(), "connection": self.number}
            state.requests.append(seen)
            state.connections.add(self.number)
            if state.reply is not None:
                state.reply(self, seen)
            else:
                send_json(self, 200, {"echo": seen["body"], "path": seen["path"]})

        do_GET = do_POST = do_PUT = handle_one

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # failed handshakes and dropped connections are what some tests provoke

    server = Server(("127.0.0.1", 0), Handler)
    server.open_connections = set()  # type: ignore[attr-defined]
    server.daemon_threads = True
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"https://127.0.0.1:{server.server_address[1]}"
    state.server = server
    yield state
    server.shutdown()
    server.server_close()


def test_json_request_and_answer_over_one_kept_alive_connection(cas: Scripted) -> None:
    with CasClient(cas.url + "/", cas.cert) as client:
        first = client.request("POST", "/v1/attest/challenge", json={"policy": "p", "service": "s"})
        second = client.request("GET", "/v1/status", headers={"Custodes-Note": "abc"})
    assert json.loads(first["echo"]) == {"policy": "p", "service": "s"}
    assert second["path"] == "/v1/status"
    assert cas.requests[0]["headers"]["Content-Type"] == "application/json"
    assert cas.requests[1]["headers"]["Custodes-Note"] == "abc"
    assert len(cas.connections) == 1


def test_url_path_prefix_is_kept(cas: Scripted) -> None:
    with CasClient(cas.url + "/cas", cas.cert) as client:
        assert client.request("GET", "/v1/status")["path"] == "/cas/v1/status"


def test_dropped_idle_connection_is_reopened_once(cas: Scripted) -> None:
    with CasClient(cas.url, cas.cert) as client:
        client.request("GET", "/v1/status")
        cas.close_idle_connections()
        assert client.request("GET", "/v1/status")["path"] == "/v1/status"
    assert len(cas.requests) == 2
    assert len(cas.connections) == 2


def test_cas_error_body_becomes_its_code_and_status(cas: Scripted) -> None:
    cas.reply = lambda h, _: send_json(h, 404, {"error": {"code": "POLICY_NOT_FOUND", "message": "no such policy",
                                                          "reasons": ["r1"]}})
    with CasClient(cas.url, cas.cert) as client, pytest.raises(CasError) as err:
        client.request("POST", "/v1/attest/challenge", json={})
    assert (err.value.code, err.value.status, err.value.reasons) == ("POLICY_NOT_FOUND", 404, ["r1"])


@pytest.mark.parametrize(("status", "body"), [(200, b"not json"), (200, b"[1, 2]"), (502, b"<html>bad gateway")])
def test_an_answer_that_is_not_a_json_object_is_a_protocol_error(cas: Scripted, status: int, body: bytes) -> None:
    cas.reply = lambda h, _: send_json(h, status, body)
    with CasClient(cas.url, cas.cert) as client, pytest.raises(CasError) as err:
        client.request("GET", "/v1/status")
    assert (err.value.code, err.value.status) == ("CAS_PROTOCOL_ERROR", status)


def test_oversized_answer_is_refused(cas: Scripted, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(custodes.client, "MAX_RESPONSE_BYTES", 64)
    cas.reply = lambda h, _: send_json(h, 200, {"padding": "x" * 100})
    with CasClient(cas.url, cas.cert) as client, pytest.raises(CasError) as err:
        client.request("GET", "/v1/status")
    assert err.value.code == "CAS_PROTOCOL_ERROR"


def test_wrong_pinned_certificate_is_a_tls_failure(cas: Scripted, tmp_path: Path) -> None:
    other, _ = write_identity(tmp_path, "impostor")
    with CasClient(cas.url, other) as client, pytest.raises(CasError) as err:
        client.request("GET", "/v1/status")
    assert err.value.code == "CAS_TLS_FAILED"
    assert cas.requests == []


def test_nobody_listening_is_unreachable(cas: Scripted) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with CasClient(f"https://127.0.0.1:{port}", cas.cert) as client, pytest.raises(CasError) as err:
        client.request("GET", "/v1/status")
    assert err.value.code == "CAS_UNREACHABLE"


def test_a_timeout_is_unreachable_and_not_resent(cas: Scripted) -> None:
    release = threading.Event()

    def slow_attest(handler: BaseHTTPRequestHandler, seen: dict) -> None:
        if seen["path"] == "/v1/attest":
            release.wait(5)
        send_json(handler, 200, {})

    cas.reply = slow_attest
    try:
        with CasClient(cas.url, cas.cert, timeout=0.3) as client:
            client.request("GET", "/v1/status")  # so the next request reuses the connection: no retry even then
            with pytest.raises(CasError) as err:
                client.request("POST", "/v1/attest", json={})
        assert err.value.code == "CAS_UNREACHABLE"
        assert [r["path"] for r in cas.requests] == ["/v1/status", "/v1/attest"]
    finally:
        release.set()


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8443", "https://user:hunter2@127.0.0.1:8443", "https://127.0.0.1:99999", "https://",
     "https://127.0.0.1:8443/?q=1"],
)
def test_only_plain_https_urls_are_accepted_and_never_echoed(cas: Scripted, url: str) -> None:
    with pytest.raises(CasError) as err:
        CasClient(url, cas.cert)
    assert err.value.code == "CAS_URL_INVALID"
    assert "hunter2" not in str(err.value)


def test_unreadable_certificate_is_reported(tmp_path: Path) -> None:
    with pytest.raises(CasError) as err:
        CasClient("https://127.0.0.1:8443", tmp_path / "missing.pem")
    assert err.value.code == "CAS_CERT_INVALID"
