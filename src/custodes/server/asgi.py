"""The ASGI bridge of the CAS's HTTP server (server/http.py): every route but the two hot ones goes to FastAPI here.

Minimal on purpose: the whole request body in, the whole response out (the API streams nothing), HTTP/1.1 over TLS.
The server frames the response itself, so the app's framing headers are dropped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import unquote

from starlette.types import ASGIApp

from custodes.server.errors import error_json

__all__ = ["asgi_exchange"]

log = logging.getLogger("custodes.cas")

_FRAMING = (b"content-length", b"transfer-encoding", b"connection")
_JSON_HEADERS = [(b"content-type", b"application/json")]


async def asgi_exchange(
    app: ASGIApp,
    method: bytes,
    url: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    *,
    version: str,
    transport: asyncio.BaseTransport | None,
    disconnected: asyncio.Future[None],
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Run ``app`` on one whole request; return its whole response (a 500 if it gave none, or raised)."""
    path, _, query = url.partition(b"?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": version,
        "method": method.decode("ascii"),
        "scheme": "https",
        "path": unquote(path.decode("ascii", "replace")),
        "raw_path": path,
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": transport.get_extra_info("peername") if transport else None,
        "server": transport.get_extra_info("sockname") if transport else None,
    }
    sent_body = False
    start: dict[str, Any] = {}
    chunks: list[bytes] = []
    done = False

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await disconnected
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal done
        if message["type"] == "http.response.start" and not start:
            start.update(message)
        elif message["type"] == "http.response.body" and start and not done:
            chunks.append(bytes(message.get("body", b"")))
            done = not message.get("more_body", False)

    try:
        await app(scope, receive, send)
    except Exception as exc:  # FastAPI has already answered 500 if it could; never a trace to the client
        log.error("internal error: %s", type(exc).__name__)
    if not done:
        return 500, _JSON_HEADERS, error_json("INTERNAL_ERROR", "internal error")
    response_headers = [(bytes(k).lower(), bytes(v)) for k, v in start.get("headers", ())]
    return int(start["status"]), [(k, v) for k, v in response_headers if k not in _FRAMING], b"".join(chunks)
