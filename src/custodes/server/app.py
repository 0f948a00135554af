"""The CAS HTTP API (DESIGN.md §4): JSON under ``/v1/``, errors as ``{"error": {code, message, reasons}}``.

The routes are thin: they validate the request shape and call :class:`custodes.server.cas.Cas`. Validation
errors name the field, never echo its value (it may be a secret).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from custodes.errors import CustodesError
from custodes.ledger.keys import split_public_pems
from custodes.protocol import b64d
from custodes.server.cas import Cas
from custodes.server.errors import ApiError, status_for

__all__ = ["create_app"]

log = logging.getLogger("custodes.cas")

MAX_BODY_BYTES = 2 << 20
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChallengeRequest(_Model):
    policy: str = Field(pattern=_NAME)
    service: str = Field(min_length=1, max_length=200)


class EvidenceIn(_Model):
    type: str = Field(max_length=32)
    data: str = Field(max_length=1 << 20)
    aux: str | None = Field(default=None, max_length=1 << 20)


class AttestRequest(_Model):
    policy: str = Field(pattern=_NAME)
    service: str = Field(min_length=1, max_length=200)
    nonce: str = Field(max_length=128)
    evidence: EvidenceIn
    public_key: str = Field(max_length=128)
    lease_id: str | None = Field(default=None, max_length=64)


class PolicyRequest(_Model):
    policy: str = Field(max_length=1 << 20, description="the policy YAML")
    note: str = Field(max_length=1 << 16, description="a custodes/proposal/v1 signed note")
    keys: list[str] = Field(default_factory=list, max_length=64, description="public key PEMs for fingerprint keys")


def _error_body(code: str, message: str, reasons: list[str] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "reasons": reasons or []}}


def _error(status: int, code: str, message: str, reasons: list[str] | None = None) -> JSONResponse:
    return JSONResponse(_error_body(code, message, reasons), status_code=status)


def _validation_reasons(errors: Any) -> list[str]:
    """Where and why a request failed validation: the field path and pydantic's message, never the value."""
    return [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors][:20]


def _declared_too_large(scope: Scope) -> bool:
    """Whether the request declares a body over ``MAX_BODY_BYTES`` (or an unreadable length)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length" and (not value.isdigit() or int(value) > MAX_BODY_BYTES):
            return True
    return False


class _BodyLimit:
    """Refuse request bodies over ``MAX_BODY_BYTES`` (413) before they are buffered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _declared_too_large(scope):
            await _error(413, "REQUEST_TOO_LARGE", "request body too large")(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _keys_header(value: str | None) -> list[str]:
    if not value:
        return []
    text = b64d(value, field="Custodes-Keys", max_len=1 << 16).decode("utf-8", "replace")
    return split_public_pems(text)




def _delegate(handler: _Handler) -> Callable[[Request], Awaitable[JSONResponse]]:
    """A Starlette endpoint running a :class:`HotRoutes` handler; validation errors go to FastAPI's handler."""

    async def endpoint(request: Request) -> JSONResponse:
        try:
            return JSONResponse(await handler(await request.body()))
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_input=False)) from None

    return endpoint


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """An inline OpenAPI request-body schema for a route that parses its body itself."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    _EXTRA_SCHEMAS.update(schema.pop("$defs", {}))
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


_EXTRA_SCHEMAS: dict[str, Any] = {}


_Handler = Callable[[bytes], Awaitable[dict[str, Any]]]
_JSON_HEADERS = b"application/json"


class HotRoutes:
    """The attestation routes as a bare ASGI app in front of FastAPI; every other request passes through.

    Each attestation is two requests, and FastAPI's stack (six middleware layers, routing, request and response
    objects) cost about a fifth of the CAS's CPU per attestation (``benchmarks/attest.py``). Here a request is
    its body, one pydantic validation and one JSON encoding (orjson). Errors take the same shape, codes and statuses as
    the FastAPI handlers (one place maps them: :func:`status_for` and :func:`_validation_reasons`); methods other
    than POST fall through to FastAPI, which answers 405.
    """

    def __init__(self, app: ASGIApp, routes: dict[str, _Handler]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        try:
            status, result = 200, await handler(await _read_body(scope, receive))
        except CustodesError as exc:
            status, result = status_for(exc), _error_body(exc.code, exc.message, exc.reasons)
            if status >= 500:
                log.error("refusing: %s", exc)
        except ValidationError as exc:
            reasons = _validation_reasons(exc.errors(include_input=False))
            status, result = 400, _error_body("REQUEST_INVALID", "the request does not match the API schema", reasons)
        except Exception as exc:  # the same catch-all as FastAPI's handler: a 500, never a trace
            log.error("internal error: %s", type(exc).__name__)
            status, result = 500, _error_body("INTERNAL_ERROR", "internal error")
        body = orjson.dumps(result)
        headers = [(b"content-type", _JSON_HEADERS), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    """The whole request body, refused with ``REQUEST_TOO_LARGE`` beyond ``MAX_BODY_BYTES`` (declared or sent)."""
    if _declared_too_large(scope):
        raise ApiError(413, "REQUEST_TOO_LARGE", "request body too large")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ApiError(400, "REQUEST_INVALID", "the client went away before its request was complete")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, "REQUEST_TOO_LARGE", "request body too large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def create_app(cas: Cas) -> HotRoutes:
    """The CAS's ASGI app: :class:`HotRoutes` for attestation in front of the FastAPI app for the rest."""
    hot = _hot_handlers(cas)
    return HotRoutes(_fastapi_app(cas, hot), hot)


def _hot_handlers(cas: Cas) -> dict[str, _Handler]:
    async def attest_challenge(raw: bytes) -> dict[str, Any]:
        """Issue a single-use nonce for one attestation of a policy's service."""
        body = ChallengeRequest.model_validate_json(raw)
        return cas.challenge(body.policy, body.service)

    async def attest(raw: bytes) -> dict[str, Any]:
        """Verify evidence, appraise it, and return the HPKE-sealed config with a lease."""
        return await cas.attest(AttestRequest.model_validate_json(raw).model_dump())

    return {"/v1/attest/challenge": attest_challenge, "/v1/attest": attest}


def _fastapi_app(cas: Cas, hot: dict[str, _Handler]) -> FastAPI:
    app = FastAPI(
        title="custodes CAS",
        version="1",
        openapi_url="/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(_BodyLimit)

    @app.exception_handler(CustodesError)
    async def _custodes_error(_: Request, exc: CustodesError) -> JSONResponse:
        status = status_for(exc)
        if status >= 500:
            log.error("refusing: %s", exc)
        return _error(status, exc.code, exc.message, exc.reasons)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        reasons = _validation_reasons(exc.errors())
        return _error(400, "REQUEST_INVALID", "the request does not match the API schema", reasons)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _internal_error(_: Request, exc: Exception) -> JSONResponse:
        log.error("internal error: %s", type(exc).__name__)
        return _error(500, "INTERNAL_ERROR", "internal error")

    @app.get("/v1/status")
    async def status() -> dict[str, Any]:
        return cas.status()

    # The two attestation routes are served by :class:`HotRoutes` before a request reaches FastAPI. They are
    # registered here too, with the same handlers, so other methods get FastAPI's 405 and the OpenAPI document
    # lists them (see ``openapi``).
    models = {"/v1/attest/challenge": ChallengeRequest, "/v1/attest": AttestRequest}
    for path, handler in hot.items():
        app.router.routes.append(Route(path, _delegate(handler), methods=["POST"]))

    @app.post("/v1/auth/challenge")
    async def auth_challenge() -> dict[str, str]:
        return cas.auth_challenge()

    @app.post("/v1/policies", status_code=201)
    async def create_policy(body: PolicyRequest) -> dict[str, Any]:
        return await cas.put_policy(body.policy, body.note, body.keys, create=True)

    @app.put("/v1/policies/{name:path}")
    async def update_policy(name: str, body: PolicyRequest) -> dict[str, Any]:
        return await cas.put_policy(body.policy, body.note, body.keys, create=False, url_name=name)

    @app.get("/v1/policies/{name:path}")
    async def read_policy(
        name: str,
        custodes_note: Annotated[str, Header(max_length=1 << 16)],
        custodes_keys: Annotated[str | None, Header(max_length=1 << 16)] = None,
    ) -> dict[str, Any]:
        note = b64d(custodes_note, field="Custodes-Note", max_len=1 << 16).decode("utf-8", "replace")
        return cas.read_policy(name, note, _keys_header(custodes_keys))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            for path, handler in hot.items():
                schema["paths"][path] = {
                    "post": {
                        "operationId": handler.__name__,
                        "summary": (handler.__doc__ or path).strip(),
                        **_body_schema(models[path]),
                        "responses": {"200": {"description": "see docs/api.md"}, "4XX": {"description": "an error"}},
                    }
                }
            schema.setdefault("components", {}).setdefault("schemas", {}).update(_EXTRA_SCHEMAS)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
