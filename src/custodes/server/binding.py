"""How the CAS checks that evidence binds the attestation nonce and the runtime's public key.

There is exactly one implementation in the package: :class:`StrictBinding`, a constant-time comparison of the
evidence's ``report_data`` with ``SHA-512("custodes/attest/v1" || nonce || public_key)``.

Recorded hardware evidence (``../shared/testvectors``) cannot bind a fresh nonce, so the tests that replay it
against a real CAS process supply their own binding from ``tests/vectors``. That code is not part of the package,
and the only way to pass it is the ``binding=`` argument of :func:`custodes.server.serve.serve` in Python: no
command-line flag, environment variable, file or API request can select anything but :class:`StrictBinding`.
"""

from __future__ import annotations

import hmac
from typing import Protocol

from custodes.evidence.claims import Claims

__all__ = ["ReportDataBinding", "StrictBinding"]


class ReportDataBinding(Protocol):
    """Decides whether verified evidence is bound to this attestation request."""

    def binds(self, claims: Claims, evidence: bytes, expected_report_data: bytes) -> bool: ...


class StrictBinding:
    """The production rule: report_data must equal the expected value exactly."""

    def binds(self, claims: Claims, evidence: bytes, expected_report_data: bytes) -> bool:
        return hmac.compare_digest(claims.report_data, expected_report_data)
