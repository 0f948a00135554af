"""The CAS HTTP API (DESIGN.md §4): JSON under ``/v1/``, errors as ``{"error": {code, message, reasons}}``.

The routes are thin: they validate the request shape and call :class:`custodes.server.cas.Cas`. Validation
errors name the field, never echo its value (it may be a secret).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from custodes.errors import CustodesError
from custodes.ledger.keys import split_public_pems
from custodes.protocol import b64d
from custodes.server.cas import Cas
from custodes.server.errors import error_json, status_for
from custodes.server.http import HotRoute

__all__ = ["CasApp", "create_app"]

log = logging.getLogger("custodes.cas")

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


def _error(status: int, code: str, message: str, reasons: list[str] | None = None) -> Response:
    return Response(error_json(code, message, reasons), status_code=status, media_type="application/json")


def _validation_reasons(errors: Any) -> list[str]:
    """Where and why a request failed validation: the field path and pydantic's message, never the value. A key the
    schema does not know is named only as ``<unknown key>``: its name came from the client."""
    return [f"{_location(e)}: {e.get('msg', 'invalid')}" for e in errors][:20]


def _location(error: Any) -> str:
    parts = [str(p) for p in error.get("loc", ())]
    if error.get("type") == "extra_forbidden" and parts:
        parts[-1] = "<unknown key>"
    return ".".join(p if len(p) <= 64 else "<long key>" for p in parts)


def _keys_header(value: str | None) -> list[str]:
    if not value:
        return []
    text = b64d(value, field="Custodes-Keys", max_len=1 << 16).decode("utf-8", "replace")
    return split_public_pems(text)


def _delegate(handler: _Handler) -> Callable[[Request], Awaitable[JSONResponse]]:
    """A Starlette endpoint running a hot route's handler; validation errors go to FastAPI's handler."""

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


@dataclass(frozen=True)
class CasApp:
    """The CAS's HTTP API: the two attestation routes, served directly by :mod:`custodes.server.http`, and the
    FastAPI app for everything else.

    Each attestation is two requests, so their cost per request matters most: here a request is its body, one
    pydantic validation and one JSON encoding (orjson). Their errors take the same shape, codes and statuses as the
    FastAPI handlers (one place maps them: :func:`status_for` and :func:`_validation_reasons`). Other methods on
    their paths, and the paths with a query string, reach FastAPI, which answers 405 or runs the same handler.
    """

    hot: dict[bytes, HotRoute]
    asgi: FastAPI
    slow: frozenset[bytes] = frozenset({b"/v1/attest"})  # answered after a loop turn's challenges (http.HttpServer)


def _hot_route(handler: _Handler) -> HotRoute:
    async def route(body: bytes) -> tuple[int, bytes]:
        try:
            return 200, orjson.dumps(await handler(body))
        except CustodesError as exc:
            status = status_for(exc)
            if status >= 500:
                log.error("refusing: %s", exc)
            return status, error_json(exc.code, exc.message, exc.reasons)
        except ValidationError as exc:
            reasons = _validation_reasons(exc.errors(include_input=False))
            return 400, error_json("REQUEST_INVALID", "the request does not match the API schema", reasons)
        except Exception as exc:  # the same catch-all as FastAPI's handler: a 500, never a trace
            log.error("internal error: %s", type(exc).__name__)
            return 500, error_json("INTERNAL_ERROR", "internal error")

    return route


def create_app(cas: Cas) -> CasApp:
    """The CAS's API: the hot attestation routes, and the FastAPI app for the rest."""
    hot = _hot_handlers(cas)
    return CasApp({path.encode(): _hot_route(handler) for path, handler in hot.items()}, _fastapi_app(cas, hot))


def _hot_handlers(cas: Cas) -> dict[str, _Handler]:
    async def attest_challenge(raw: bytes) -> dict[str, Any]:
        """Issue a single-use nonce for one attestation of a policy's service."""
        body = ChallengeRequest.model_validate_json(raw)
        return cas.challenge(body.policy, body.service)

    async def attest(raw: bytes) -> dict[str, Any]:
        """Verify evidence, appraise it, and return the HPKE-sealed config with a lease."""
        body = AttestRequest.model_validate_json(raw)
        return await cas.attest(
            policy_name=body.policy,
            service_name=body.service,
            nonce=body.nonce,
            public_key=body.public_key,
            evidence_type=body.evidence.type,
            evidence=body.evidence.data,
            aux=body.evidence.aux,
            lease_id=body.lease_id,
        )

    return {"/v1/attest/challenge": attest_challenge, "/v1/attest": attest}


def _fastapi_app(cas: Cas, hot: dict[str, _Handler]) -> FastAPI:
    app = FastAPI(
        title="custodes CAS",
        version="1",
        openapi_url="/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
    )

    @app.exception_handler(CustodesError)
    async def _custodes_error(_: Request, exc: CustodesError) -> Response:
        status = status_for(exc)
        if status >= 500:
            log.error("refusing: %s", exc)
        return _error(status, exc.code, exc.message, exc.reasons)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
        reasons = _validation_reasons(exc.errors())
        return _error(400, "REQUEST_INVALID", "the request does not match the API schema", reasons)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _internal_error(_: Request, exc: Exception) -> Response:
        log.error("internal error: %s", type(exc).__name__)
        return _error(500, "INTERNAL_ERROR", "internal error")

    @app.get("/v1/status")
    async def status() -> dict[str, Any]:
        return cas.status()

    # The two attestation routes are served by the HTTP server directly (``CasApp.hot``) and never reach FastAPI
    # as a POST without a query string. They are registered here too, with the same handlers, so other methods get
    # FastAPI's 405, a query string still works, and the OpenAPI document lists them (see ``openapi``).
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
