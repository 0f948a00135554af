"""HTTP-level attacks on a real CAS process (server/http.py), over TLS 1.3 with raw sockets and exact bytes.

Each attack is refused with its exact status and error code, in the API's JSON error shape, and the CAS then closes
the connection: after a framing error the rest of the byte stream cannot be trusted, so nothing more is read from it.
tests/e2e/test_bad_input.py covers bad bodies sent through a well-behaved client (httpx); here the client is hostile
at the framing level.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from _http import Conn
from _support import CasProcess, Workload
from conftest import uploaded_workload
from custodes.protocol import RuntimeKey, b64d, b64e, report_data_for

POLICY = "http/attacks"
MAX_BODY = 2 << 20  # the CAS's limits (server/http.py HttpLimits defaults)
MARKER = "HUNTER2-SECRET-MARKER"


@pytest.fixture
def conn(cas: CasProcess) -> Iterator[Conn]:
    connection = Conn(cas)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def policy(cas: CasProcess, sim, tmp_path_factory) -> Workload:  # type: ignore[no-untyped-def]
    return uploaded_workload(cas, sim, tmp_path_factory.mktemp("http-attacks"), POLICY)


def request(method: str, path: str, *headers: str, body: bytes = b"") -> bytes:
    return ("\r\n".join([f"{method} {path} HTTP/1.1", "Host: cas.test", *headers]) + "\r\n\r\n").encode() + body


CHALLENGE = json.dumps({"policy": POLICY, "service": "app"}).encode()


def challenge(*headers: str, body: bytes = CHALLENGE) -> bytes:
    return request("POST", "/v1/attest/challenge", "Content-Type: application/json", *headers, body=body)


def refused_and_closed(conn: Conn, data: bytes, status: int, code: str) -> dict[str, Any]:
    conn.send(data)
    reply = conn.reply()
    assert reply.status == status, reply.body
    error = reply.error()
    assert error["code"] == code
    assert reply.headers["connection"] == "close"
    assert conn.closed()
    return error


# -- request smuggling: framing the parser rejects, so two parties can never disagree on where a request ends

_SMUGGLING = {
    "content-length-and-chunked": challenge(f"Content-Length: {len(CHALLENGE)}", "Transfer-Encoding: chunked"),
    "chunked-and-content-length": challenge("Transfer-Encoding: chunked", "Content-Length: 4", body=b"0\r\n\r\n"),
    "two-content-lengths": challenge(f"Content-Length: {len(CHALLENGE)}", f"Content-Length: {len(CHALLENGE) + 1}"),
    "chunked-then-identity": challenge("Transfer-Encoding: chunked, identity", body=b"0\r\n\r\n"),
    "chunked-not-last": request("POST", "/v1/attest/challenge", "Transfer-Encoding: gzip", body=b"0\r\n\r\n"),
    "content-length-list": challenge(f"Content-Length: {len(CHALLENGE)}, {len(CHALLENGE)}"),
    "bare-lf": challenge(f"Content-Length: {len(CHALLENGE)}").replace(b"\r\n", b"\n"),
    "bare-lf-in-one-header": challenge(f"Content-Length: {len(CHALLENGE)}").replace(b"Host: cas.test\r\n", b"X: 1\n"),
    "space-in-header-name": challenge(f"Content-Length: {len(CHALLENGE)}", "X Forwarded: 1"),
    "space-before-colon": challenge(f"Content-Length : {len(CHALLENGE)}"),
    "obsolete-line-folding": challenge(f"Content-Length: {len(CHALLENGE)}", "X-Folded: a\r\n b"),
    "bad-chunk-size": challenge("Transfer-Encoding: chunked", body=b"5 \r\nhello\r\n0\r\n\r\n"),
    "nul-in-header-value": challenge(f"Content-Length: {len(CHALLENGE)}", "X-Nul: a\x00b"),
    # llhttp takes any coding list that ends in chunked; the CAS would hand the route a body still encoded
    "unknown-coding-then-chunked": challenge("Transfer-Encoding: x-custom, chunked", body=b"0\r\n\r\n"),
    "gzip-then-chunked": challenge("Transfer-Encoding: gzip, chunked", body=b"0\r\n\r\n"),
    "two-transfer-encoding-headers": challenge("Transfer-Encoding: gzip", "Transfer-Encoding: chunked",
                                               body=b"0\r\n\r\n"),
}


@pytest.mark.parametrize("data", list(_SMUGGLING.values()), ids=list(_SMUGGLING))
def test_ambiguous_framing_is_refused(conn: Conn, policy: Workload, data: bytes) -> None:
    error = refused_and_closed(conn, data, 400, "REQUEST_INVALID")
    assert b"cas.test" not in json.dumps(error).encode()


def test_a_request_inside_a_body_is_not_executed(conn: Conn, policy: Workload) -> None:
    """The body of a challenge request is a whole second challenge request: it is the body, not a request."""
    inner = challenge(f"Content-Length: {len(CHALLENGE)}")
    conn.send(challenge(f"Content-Length: {len(inner)}", "Connection: close", body=inner))
    reply = conn.reply()
    assert (reply.status, reply.error()["code"]) == (400, "REQUEST_INVALID")  # the body is not JSON
    assert conn.closed()  # and exactly one response


def test_a_request_inside_a_chunked_body_is_not_executed(conn: Conn, policy: Workload) -> None:
    inner = challenge(f"Content-Length: {len(CHALLENGE)}")
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(inner), inner)
    conn.send(challenge("Transfer-Encoding: chunked", "Connection: close", body=chunked))
    reply = conn.reply()
    assert (reply.status, reply.error()["code"]) == (400, "REQUEST_INVALID")
    assert conn.closed()


def test_a_get_body_is_consumed_as_a_body_not_as_the_next_request(conn: Conn, policy: Workload) -> None:
    """CL.0 desync: a route that ignores bodies must still not leave its body on the wire as a next request."""
    inner = challenge(f"Content-Length: {len(CHALLENGE)}")
    conn.send(request("GET", "/v1/status", f"Content-Length: {len(inner)}", "Connection: close", body=inner))
    reply = conn.reply()
    assert reply.status == 200
    assert "nonce" not in json.loads(reply.body)
    assert conn.closed()


# -- size limits


def test_headers_over_16_kib_are_refused(conn: Conn) -> None:
    refused_and_closed(conn, request("GET", "/v1/status", "X-Big: " + "a" * (16 << 10)), 431, "REQUEST_TOO_LARGE")


def test_a_url_over_16_kib_is_refused(conn: Conn) -> None:
    refused_and_closed(conn, request("GET", "/v1/status?q=" + "a" * (16 << 10)), 431, "REQUEST_TOO_LARGE")


def test_many_small_headers_adding_up_over_16_kib_are_refused(conn: Conn) -> None:
    headers = [f"X-{i}: {'b' * 200}" for i in range(90)]
    refused_and_closed(conn, request("GET", "/v1/status", *headers), 431, "REQUEST_TOO_LARGE")


def test_more_than_100_headers_are_refused(conn: Conn) -> None:
    headers = [f"X-{i}: 1" for i in range(101)]
    refused_and_closed(conn, request("GET", "/v1/status", *headers), 431, "REQUEST_TOO_LARGE")


def test_a_declared_body_over_2_mib_is_refused_before_it_is_sent(conn: Conn) -> None:
    """Only the headers are sent: the refusal comes without the CAS waiting for (or reading) the body."""
    data = request("POST", "/v1/attest", "Content-Type: application/json", f"Content-Length: {MAX_BODY + 1}")
    refused_and_closed(conn, data, 413, "REQUEST_TOO_LARGE")


def test_a_chunked_body_growing_past_2_mib_is_refused(conn: Conn) -> None:
    conn.send(request("GET", "/v1/status"))  # one exchange first: TLS session tickets are read and out of the way
    assert conn.reply().status == 200
    conn.send(request("POST", "/v1/attest", "Content-Type: application/json", "Transfer-Encoding: chunked"))
    piece = b"%x\r\n%s\r\n" % (64 << 10, b"x" * (64 << 10))
    sent = 0
    while not conn.readable() and sent < 2 * MAX_BODY:
        conn.send(piece)
        sent += 64 << 10
    assert sent > MAX_BODY  # nothing came back before the limit was crossed
    reply = conn.reply()
    assert (reply.status, reply.error()["code"]) == (413, "REQUEST_TOO_LARGE")
    assert reply.headers["connection"] == "close"
    assert conn.closed()


# -- protocol switches: the CAS speaks HTTP/1.1 only

_UPGRADES = {
    "websocket": request(
        "GET", "/v1/status", "Connection: Upgrade", "Upgrade: websocket",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
    ),
    "h2c": request("GET", "/v1/status", "Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c",
                   "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"),
    "h2c-on-a-post": challenge(f"Content-Length: {len(CHALLENGE)}", "Connection: Upgrade", "Upgrade: h2c"),
    "connect-tunnel": request("CONNECT", "169.254.169.254:80"),
    "http2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
}


@pytest.mark.parametrize("data", list(_UPGRADES.values()), ids=list(_UPGRADES))
def test_protocol_upgrades_are_refused(conn: Conn, policy: Workload, data: bytes) -> None:
    refused_and_closed(conn, data, 400, "REQUEST_INVALID")


# -- refusals of attestation requests never carry the request's bytes


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _fresh_nonce(conn: Conn) -> str:
    conn.send(challenge(f"Content-Length: {len(CHALLENGE)}"))
    reply = conn.reply()
    assert reply.status == 200, reply.body
    return str(json.loads(reply.body)["nonce"])


# field -> (where the marker goes, the value carrying it, the refusal's status and code)
_MARKED: dict[str, tuple[str, Any, int, str]] = {
    "nonce": ("nonce", MARKER, 400, "REQUEST_INVALID"),
    "nonce-as-base64": ("nonce", _b64(MARKER.encode() * 2), 403, "NONCE_UNKNOWN"),
    "nonce-wrong-type": ("nonce", [MARKER], 400, "REQUEST_INVALID"),
    "public-key": ("public_key", MARKER, 400, "REQUEST_INVALID"),
    "public-key-as-base64": ("public_key", _b64(MARKER.encode()), 400, "REQUEST_INVALID"),  # not 32 bytes
    "public-key-too-long": ("public_key", MARKER * 10, 400, "REQUEST_INVALID"),
    "evidence-data": ("data", MARKER, 400, "REQUEST_INVALID"),
    "evidence-data-as-base64": ("data", _b64(MARKER.encode() * 8), 403, "SIM_EVIDENCE_MALFORMED"),
    "evidence-data-appended": ("data", "APPEND", 403, "SIM_EVIDENCE_MALFORMED"),
    "evidence-aux": ("aux", MARKER, 400, "REQUEST_INVALID"),
    "lease-id": ("lease_id", MARKER, 403, "LEASE_UNKNOWN"),
    "lease-id-as-base64": ("lease_id", _b64(MARKER.encode()), 403, "LEASE_UNKNOWN"),
    # An unknown evidence type and an unknown JSON key were quoted back once; neither is now.
    "evidence-type": ("type", MARKER, 403, "EVIDENCE_TYPE_UNSUPPORTED"),
    "unknown-key": (MARKER, "x", 400, "REQUEST_INVALID"),
}


def _attest_body(conn: Conn, workload: Workload, field: str) -> dict[str, Any]:
    """An attest request with valid evidence over a fresh nonce and key, then ``field`` set to carry MARKER."""
    nonce = _fresh_nonce(conn)
    key = RuntimeKey.generate()
    data, aux = workload.provider().evidence(report_data_for(b64d(nonce, field="nonce"), key.public_bytes))
    body: dict[str, Any] = {
        "policy": POLICY, "service": "app", "nonce": nonce, "public_key": b64e(key.public_bytes),
        "evidence": {"type": "simulated", "data": b64e(data), "aux": b64e(aux) if aux else None},
    }
    name, value, _, _ = _MARKED[field]
    if value == "APPEND":
        value = b64e(data + MARKER.encode())
    (body["evidence"] if name in ("type", "data", "aux") else body)[name] = value
    return body


@pytest.mark.parametrize("field", list(_MARKED))
def test_attest_refusals_never_echo_the_request(conn: Conn, policy: Workload, field: str) -> None:
    body = json.dumps(_attest_body(conn, policy, field)).encode()
    conn.send(request("POST", "/v1/attest", "Content-Type: application/json", f"Content-Length: {len(body)}",
                      body=body))
    reply = conn.reply()
    error = reply.error()
    assert (reply.status, error["code"]) == _MARKED[field][2:]
    text = reply.body.decode("latin-1")
    for needle in (MARKER, _b64(MARKER.encode()), MARKER.encode().hex()):
        assert needle not in text, error


@pytest.mark.parametrize(
    "body",
    [
        b'{"policy": "' + MARKER.encode() + b'" "service": "app"}',  # malformed JSON around the marker
        b"\xff\xfe" + MARKER.encode(),
        b'{"policy": "http/attacks", "service": "app", "evidence": "' + MARKER.encode() + b'"}',
        b'{"policy": "http/attacks", "service": "app", "nonce": "' + MARKER.encode() * 20 + b'"}',
    ],
    ids=["broken-json", "not-utf8", "wrong-type", "too-long"],
)
@pytest.mark.parametrize("path", ["/v1/attest/challenge", "/v1/attest"])
def test_unparsable_attestation_bodies_are_refused_without_echo(conn: Conn, path: str, body: bytes) -> None:
    conn.send(request("POST", path, "Content-Type: application/json", f"Content-Length: {len(body)}", body=body))
    reply = conn.reply()
    assert (reply.status, reply.error()["code"]) == (400, "REQUEST_INVALID")
    assert MARKER.encode() not in reply.body


def test_a_framing_refusal_never_echoes_the_request(conn: Conn) -> None:
    data = request("GET", f"/v1/status?{MARKER}", f"X-{MARKER}: {MARKER}\x01")
    error = refused_and_closed(conn, data, 400, "REQUEST_INVALID")
    assert MARKER not in json.dumps(error)
