"""One error root for custodes.

Every refusal in custodes carries a stable, machine-readable ``code`` (for scripts, tests and the HTTP API)
and a human ``message``. ``reasons`` lists the individual findings when there is more than one.

Messages never contain secret material: callers build them from names, codes and public values only.
"""

from __future__ import annotations

__all__ = [
    "CollateralError",
    "CustodesError",
    "EvidenceError",
    "PolicyError",
    "StoreError",
]


class CustodesError(Exception):
    """The root of all custodes errors.

    Args:
        code: a stable UPPER_SNAKE code, documented where it is raised.
        message: one human-readable line.
        reasons: further stable reason codes or short texts.
    """

    code: str = "CUSTODES_ERROR"

    def __init__(self, code: str | None = None, message: str = "", reasons: list[str] | None = None) -> None:
        if code is not None:
            self.code = code
        self.message = message or self.code
        self.reasons: list[str] = list(reasons or [])
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def to_json(self) -> dict[str, object]:
        """The wire form of DESIGN.md §4: ``{"error": {"code", "message", "reasons"}}``."""
        return {"error": {"code": self.code, "message": self.message, "reasons": self.reasons}}


class PolicyError(CustodesError):
    """A policy document is malformed or violates a rule of the policy language."""

    code = "POLICY_INVALID"


class EvidenceError(CustodesError):
    """Evidence could not be parsed or did not verify cryptographically."""

    code = "EVIDENCE_INVALID"


class CollateralError(CustodesError):
    """Vendor collateral is missing, malformed, expired or does not verify."""

    code = "COLLATERAL_INVALID"


class StoreError(CustodesError):
    """The state store is unusable, tampered with, or rolled back."""

    code = "STORE_ERROR"
