"""HTTP status for every error code the CAS can return, and the error body. One place, so the API stays consistent."""

from __future__ import annotations

import orjson

from custodes.errors import CollateralError, CustodesError, EvidenceError, PolicyError, StoreError

__all__ = ["ApiError", "error_json", "status_for"]


def error_json(code: str, message: str, reasons: list[str] | None = None) -> bytes:
    """The API's error body (DESIGN.md §4): ``{"error": {"code", "message", "reasons"}}``."""
    return orjson.dumps({"error": {"code": code, "message": message, "reasons": reasons or []}})


class ApiError(CustodesError):
    """An error raised by the CAS service layer with an explicit HTTP status."""

    def __init__(self, status: int, code: str, message: str, reasons: list[str] | None = None) -> None:
        super().__init__(code, message, reasons)
        self.status = status


_BY_CODE = {
    "REQUEST_INVALID": 400,
    "REQUEST_TOO_LARGE": 413,
    "NOTE_MALFORMED": 400,
    "KEY_INVALID": 400,
    "POLICY_NOT_FOUND": 404,
    "NOT_FOUND": 404,
    "POLICY_EXISTS": 409,
    "PREDECESSOR_MISMATCH": 409,
    "STORE_CONFLICT": 409,
    "NONCE_LIMIT": 429,
}


def status_for(exc: CustodesError) -> int:
    """Map an error to its HTTP status: 4xx for every refusal; 503 when the CAS's own state is unusable."""
    if isinstance(exc, ApiError):
        return exc.status
    if exc.code in _BY_CODE:
        return _BY_CODE[exc.code]
    if isinstance(exc, PolicyError):
        return 400
    if isinstance(exc, EvidenceError | CollateralError):
        return 403
    if isinstance(exc, StoreError):
        return 503
    return 403
