"""Test support: raw TLS 1.3 connections to a real CAS process that send exact bytes and read exact responses."""

from __future__ import annotations

import json
import select
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from _support import CasProcess
from custodes.client import cas_ssl_context

WAIT = 10.0  # upper bound on any single read; nothing asserts on time


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, Any]:
        """The API's error object, checked for its exact shape."""
        assert self.headers.get("content-type") == "application/json", self.headers
        doc = json.loads(self.body)
        assert set(doc) == {"error"} and set(doc["error"]) == {"code", "message", "reasons"}, doc
        return doc["error"]  # type: ignore[no-any-return]


class Conn:
    """A TLS 1.3 connection to the CAS that pins its certificate and sends exact bytes."""

    def __init__(self, cas: CasProcess) -> None:
        host, port = cas.url.removeprefix("https://").rsplit(":", 1)
        raw = socket.create_connection((host, int(port)), timeout=WAIT)
        self.sock = cas_ssl_context(cas.cert).wrap_socket(raw)
        self.buffer = b""
        self.eof = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            data = self.sock.recv(1 << 16)
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            data = b""
        self.eof = not data
        self.buffer += data
        return bool(data)

    def reply(self) -> Reply:
        while b"\r\n\r\n" not in self.buffer:
            assert self._fill(), f"closed before a response: {self.buffer!r}"
        head, rest = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines)
        length = int(headers["content-length"])
        while len(rest) < length:
            assert self._fill(), "closed inside a response body"
            rest = self.buffer.split(b"\r\n\r\n", 1)[1]
        self.buffer = rest[length:]
        return Reply(int(status_line.split(" ")[1]), headers, rest[:length])

    def closed(self) -> bool:
        """Whether the CAS closes the connection with nothing more sent (no second response)."""
        while self._fill():
            pass
        return not self.buffer

    def readable(self) -> bool:
        """Whether the CAS has sent something (a response, or its close) that has not been read yet."""
        return bool(self.buffer) or self.sock.pending() > 0 or bool(select.select([self.sock], [], [], 0)[0])

    def close(self) -> None:
        self.sock.close()
