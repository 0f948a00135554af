"""Which placeholder formats each secret kind supports, and what they produce.

The policy loader checks placeholders against this table at upload time, so a policy never names a format that
would fail at run time. ``None`` is the default format (a placeholder without ``:FORMAT``).

=========== ============================= ==================================================================
kind        formats                       output
=========== ============================= ==================================================================
ascii       default, ``hex``, ``base64``  the text; hex / standard base64 of its bytes
binary      default, ``hex``, ``base64``  default and ``hex`` are lower-case hex; standard base64
explicit    default, ``hex``, ``base64``  the value as UTF-8 text (only for text values); hex; base64
private-key default, ``pem``, ``key``     PKCS#8 PEM private key
            ``public``                    SubjectPublicKeyInfo PEM
x509-ca,    default, ``crt``, ``pem``     the certificate, PEM
x509        ``key``                       its private key, PKCS#8 PEM
            ``chain``                     the certificate, then its issuers up to the root, PEM
            ``public``                    the certificate's public key, SubjectPublicKeyInfo PEM
=========== ============================= ==================================================================
"""

from __future__ import annotations

import types
from collections.abc import Mapping

__all__ = ["FORMATS", "SECRET_KINDS", "supported_formats"]

#: Every secret kind of the policy language.
SECRET_KINDS = ("ascii", "binary", "private-key", "x509-ca", "x509", "explicit")

_TEXT: frozenset[str | None] = frozenset({None, "hex", "base64"})
_KEY: frozenset[str | None] = frozenset({None, "pem", "key", "public"})
_CERT: frozenset[str | None] = frozenset({None, "crt", "pem", "key", "chain", "public"})

#: kind -> the formats it supports (``None`` = default).
FORMATS: Mapping[str, frozenset[str | None]] = types.MappingProxyType(
    {
        "ascii": _TEXT,
        "binary": _TEXT,
        "explicit": _TEXT,
        "private-key": _KEY,
        "x509-ca": _CERT,
        "x509": _CERT,
    }
)


def supported_formats(kind: str) -> frozenset[str | None]:
    """The formats a kind supports; empty for an unknown kind (fail closed)."""
    return FORMATS.get(kind, frozenset())
