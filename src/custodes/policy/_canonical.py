"""The canonical form of a policy and its hash.

The validated policy is dumped with every default filled in, durations as integer seconds, timestamps as RFC 3339
UTC with ``Z``, file modes as integers, hex in lower case and keys as re-encoded SPKI PEM. ``services`` are sorted by
name, ``secrets`` by name and each service's ``files`` by path (their order carries no meaning); every other list
keeps its order. The result is serialised per RFC 8785 (JCS) and hashed with SHA-256.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from custodes.policy._model import Policy

__all__ = ["canonical_json", "policy_canonical_form", "policy_hash"]

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_MAX_SAFE_INT = 2**53 - 1


def _string(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch < " ":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if abs(value) > _MAX_SAFE_INT:
            raise ValueError("integer outside the JCS exact range")
        out.append(str(value))
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(value, dict):
        out.append("{")
        # RFC 8785 §3.2.3: members sorted by the UTF-16 code units of their names.
        for i, key in enumerate(sorted(value, key=lambda k: k.encode("utf-16-be"))):
            if not isinstance(key, str):
                raise TypeError("JSON object keys must be strings")
            if i:
                out.append(",")
            out.append(_string(key))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    else:
        raise TypeError(f"{type(value).__name__} has no canonical JSON form")


def canonical_json(value: Any) -> bytes:
    """RFC 8785 serialisation of JSON data without floats (null, booleans, safe integers, strings, lists, dicts)."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8")


def _plain(value: Any) -> Any:
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    if isinstance(value, datetime):
        # Not clock.rfc3339: YAML gives naive datetimes too, and the canonical bytes (hence every policy hash)
        # must not change.
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def policy_canonical_form(policy: Policy) -> dict[str, Any]:
    """The JSON data that the policy hash covers."""
    data = _plain(policy.model_dump(mode="python"))
    data["services"] = sorted(data["services"], key=lambda s: s["name"])
    for service in data["services"]:
        service["files"] = sorted(service["files"], key=lambda f: f["path"])
    data["secrets"] = sorted(data["secrets"], key=lambda s: s["name"])
    return data


def policy_hash(policy: Policy) -> str:
    """Hex SHA-256 of the JCS serialisation of :func:`policy_canonical_form`."""
    return hashlib.sha256(canonical_json(policy_canonical_form(policy))).hexdigest()
