"""Annotated field types of the policy models, each with a precise error message.

Every validator raises :func:`invalid`, whose message becomes the text after ``FILE:LINE:COL:`` verbatim. Values are
normalised where the meaning allows it (hex to lower case, PEM keys re-encoded), so that the canonical hash depends
only on meaning.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, NoReturn

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from pydantic import AfterValidator, Field, PlainValidator, Strict, ValidationInfo
from pydantic_core import PydanticCustomError

from custodes.ledger.keys import fingerprint, load_public_key
from custodes.policy._duration import MAX_DURATION, parse_duration

LOADER_CONTEXT = "custodes.policy.loader"

__all__ = [
    "U8",
    "U16",
    "U53",
    "AbsPath",
    "DnsName",
    "EnvName",
    "Identifier",
    "IpAddress",
    "KeyName",
    "KeyRef",
    "Mode",
    "NonEmptyText",
    "PolicyName",
    "ServiceName",
    "Text",
    "UtcTimestamp",
    "duration",
    "hex_digits",
    "invalid",
    "key_fingerprint",
]

#: ``name``: lower-case segments separated by ``/`` (at most 8), each 1-63 characters of ``a-z 0-9 . _ -``.
POLICY_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}(?:/[a-z0-9][a-z0-9._-]{0,62}){0,7}")
#: services: a DNS label (Kubernetes object names follow the same rule).
SERVICE_NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
#: secrets: identifier-like, so that placeholders stay unambiguous.
IDENTIFIER_RE = re.compile(r"[a-z_][a-z0-9_]{0,63}")
#: key names (``keys``, ``access``).
KEY_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
#: environment variable names (POSIX portable).
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,255}")
_DNS_LABEL = r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)"
DNS_NAME_RE = re.compile(rf"(?:\*\.)?{_DNS_LABEL}(?:\.{_DNS_LABEL})*")
_HEX_RE = re.compile(r"[0-9a-fA-F]*")
_MODE_RE = re.compile(r"0?[0-7]{3}")
_FINGERPRINT_RE = re.compile(r"sha256:[0-9a-f]{64}")
#: Timestamps end before this, so that a timestamp plus the longest duration (``since + tcb.grace``) fits a datetime.
TIMESTAMP_LIMIT = datetime(9000, 1, 1, tzinfo=UTC)


def _from_yaml(info: ValidationInfo) -> bool:
    """Whether the loader is validating YAML data (then only the YAML spellings are accepted)."""
    return bool((info.context or {}).get(LOADER_CONTEXT))


def invalid(message: str) -> NoReturn:
    """Raise a validation error whose message is exactly ``message``."""
    raise PydanticCustomError("custodes", "{detail}", {"detail": message})


def _text(value: object) -> str:
    if not isinstance(value, str):
        invalid("expected a string")
    if "\x00" in value:
        invalid("NUL characters are not allowed")
    return value


def _pattern(regex: re.Pattern[str], what: str) -> PlainValidator:
    def check(value: object) -> str:
        text = _text(value)
        if not regex.fullmatch(text):
            invalid(f"invalid {what} {text[:80]!r} (must match {regex.pattern})")
        return text

    return PlainValidator(check)


Text = Annotated[str, PlainValidator(_text)]
PolicyName = Annotated[str, _pattern(POLICY_NAME_RE, "policy name")]
ServiceName = Annotated[str, _pattern(SERVICE_NAME_RE, "service name")]
Identifier = Annotated[str, _pattern(IDENTIFIER_RE, "secret name")]
KeyName = Annotated[str, _pattern(KEY_NAME_RE, "key name")]
EnvName = Annotated[str, _pattern(ENV_NAME_RE, "environment variable name")]


def _dns(value: object) -> str:
    text = _text(value).lower()
    if len(text) > 253 or not DNS_NAME_RE.fullmatch(text):
        invalid(f"invalid DNS name {text[:80]!r}")
    return text


DnsName = Annotated[str, PlainValidator(_dns)]


def _ip(value: object) -> str:
    text = _text(value)
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        invalid(f"invalid IP address {text[:80]!r}")


IpAddress = Annotated[str, PlainValidator(_ip)]


def hex_digits(length: int) -> PlainValidator:
    """A hex string of exactly ``length`` digits, any case on input, stored lower case."""

    def check(value: object) -> str:
        if not isinstance(value, str):
            invalid(f"expected a quoted string of {length} hex digits")
        if not _HEX_RE.fullmatch(value):
            invalid(f"expected {length} hex digits, found a non-hex character")
        if len(value) != length:
            invalid(f"expected {length} hex digits, got {len(value)}")
        return value.lower()

    return PlainValidator(check)


def duration(*, positive: bool) -> PlainValidator:
    """A duration string (see :func:`parse_duration`); ``positive`` rejects ``0s``."""

    def check(value: object, info: ValidationInfo) -> timedelta:
        if isinstance(value, timedelta) and not _from_yaml(info):
            parsed = value
            if parsed < timedelta(0) or parsed > MAX_DURATION or parsed.microseconds:
                invalid("duration must be whole seconds between 0s and 36500d")
        else:
            try:
                parsed = parse_duration(value)  # type: ignore[arg-type]
            except ValueError as e:
                invalid(str(e))
        if positive and not parsed:
            invalid("duration must be longer than 0s")
        return parsed

    return PlainValidator(check)


#: Integers are never coerced from strings, floats or booleans.
U8 = Annotated[int, Strict(), Field(ge=0, le=0xFF)]
U16 = Annotated[int, Strict(), Field(ge=0, le=0xFFFF)]
#: The JCS canonical form represents numbers exactly only up to 2**53 - 1.
U53 = Annotated[int, Strict(), Field(ge=0, le=2**53 - 1)]


def _mode(value: object, info: ValidationInfo) -> int:
    # In YAML an unquoted 0600 is the decimal 384 or the octal 0o600 depending on the YAML version: require text.
    if type(value) is int and not _from_yaml(info):
        if not 0 <= value <= 0o777:
            invalid("file mode must be between 0 and 0o777")
        return value
    if not isinstance(value, str):
        invalid('file mode must be a quoted octal string such as "0600"')
    if not _MODE_RE.fullmatch(value):
        invalid(f'invalid file mode {value[:20]!r} (expected an octal string such as "0600", at most 0777)')
    return int(value, 8)


Mode = Annotated[int, PlainValidator(_mode)]


def _abs_path(value: object) -> str:
    text = _text(value)
    if not text.startswith("/"):
        invalid(f"path {text[:80]!r} must be absolute")
    if ".." in text.split("/"):
        invalid(f"path {text[:80]!r} must not contain '..'")
    if posixpath.normpath(text) != text or text.startswith("//"):
        invalid(f"path {text[:80]!r} is not normalised (expected {posixpath.normpath(text)[:80]!r})")
    if len(text) > 4096:
        invalid("path is longer than 4096 characters")
    return text


AbsPath = Annotated[str, PlainValidator(_abs_path)]


def _timestamp(value: object) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            invalid(f"invalid timestamp {value[:40]!r} (expected RFC 3339, e.g. 2026-11-20T00:00:00Z)")
    if not isinstance(value, datetime):
        invalid("expected an RFC 3339 timestamp with a time zone, e.g. 2026-11-20T00:00:00Z")
    if value.tzinfo is None or value.utcoffset() is None:
        invalid("timestamp has no time zone (add 'Z' for UTC)")
    try:
        utc: datetime | None = value.astimezone(UTC)
    except OverflowError:  # before year 1 or after year 9999 in UTC, e.g. 0001-01-01T00:00:00+01:00
        utc = None
    if utc is None or utc >= TIMESTAMP_LIMIT:
        invalid("timestamp is out of range (expected 0001-01-01T00:00:00Z to 8999-12-31T23:59:59Z)")
    return utc


UtcTimestamp = Annotated[datetime, PlainValidator(_timestamp)]


def _key_ref(value: object) -> str:
    text = _text(value).strip()
    if text.startswith("sha256:"):
        if not _FINGERPRINT_RE.fullmatch(text.lower()):
            invalid("invalid key fingerprint (expected 'sha256:' and 64 hex digits)")
        return text.lower()
    try:
        key = serialization.load_pem_public_key(text.encode("utf-8"))
    except (ValueError, TypeError, UnicodeEncodeError):
        invalid("not a PEM public key or a 'sha256:<64 hex>' fingerprint")
    except Exception:
        invalid("unsupported public key type (expected Ed25519 or ECDSA P-256)")
    if not (
        isinstance(key, ed25519.Ed25519PublicKey)
        or (isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1))
    ):
        invalid("unsupported public key type (expected Ed25519 or ECDSA P-256)")
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode("ascii")


#: A governance key: a PEM public key (stored re-encoded as SPKI PEM) or ``sha256:<hex>`` of the DER SPKI.
KeyRef = Annotated[str, PlainValidator(_key_ref)]


def key_fingerprint(ref: str) -> str:
    """The ``sha256:`` fingerprint of a validated :data:`KeyRef`: the key it names, however it is spelled."""
    return ref if ref.startswith("sha256:") else fingerprint(load_public_key(ref))


def _non_empty(value: str) -> str:
    if not value.strip():
        invalid("must not be empty")
    return value


NonEmptyText = Annotated[Text, AfterValidator(_non_empty)]
