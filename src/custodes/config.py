"""The rendered configuration a service receives after attestation, and its JSON wire form. Stdlib only.

This lives outside :mod:`custodes.policy` so that the workload runtime (``custodes run``) can parse its config
without importing the policy language (pydantic, YAML): start-up time is part of the runtime's contract
(docs/runtime.md). :mod:`custodes.policy` re-exports both classes; this is their only implementation.

:class:`RenderedConfig` holds secrets in clear text (it is what the workload receives), so its ``repr``/``str`` are
redacted and it refuses to pickle. ``to_json_bytes`` is the plaintext that the CAS seals with HPKE.
"""

from __future__ import annotations

import base64
import binascii
import json
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from custodes.errors import PolicyError

__all__ = ["WIRE_FORMAT", "RenderedConfig", "RenderedFile"]

WIRE_FORMAT = "custodes-config/v1"
_FIELDS = frozenset({"format", "command", "environment", "files", "cwd", "inherit_env"})
_FILE_FIELDS = frozenset({"path", "mode", "content"})


@dataclass(frozen=True, slots=True, repr=False)
class RenderedFile:
    """A file for the runtime to write (content may hold secrets)."""

    path: str
    mode: int
    content: bytes

    def __repr__(self) -> str:
        return f"RenderedFile(path={self.path!r}, mode=0o{self.mode:o}, content=***)"

    __str__ = __repr__


@dataclass(frozen=True, slots=True, repr=False)
class RenderedConfig:
    """What a service receives after attestation: argv, environment, files, working directory.

    ``inherit_env`` names the runtime environment variables the service may keep (everything else is dropped).
    """

    command: tuple[str, ...]
    environment: Mapping[str, str]
    files: tuple[RenderedFile, ...]
    cwd: str | None = None
    inherit_env: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "command", tuple(self.command))
        object.__setattr__(self, "environment", types.MappingProxyType(dict(self.environment)))
        object.__setattr__(self, "files", tuple(self.files))
        object.__setattr__(self, "inherit_env", tuple(self.inherit_env))

    def __repr__(self) -> str:
        return (
            f"RenderedConfig(command=<{len(self.command)} args>, environment=<{sorted(self.environment)}>, "
            f"files={list(self.files)!r}, cwd={self.cwd!r}, ***)"
        )

    __str__ = __repr__

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("RenderedConfig is not picklable: seal to_json_bytes() instead")

    def to_json_dict(self) -> dict[str, Any]:
        """The wire document (file contents in base64). Contains secrets."""
        return {
            "format": WIRE_FORMAT,
            "command": list(self.command),
            "environment": dict(self.environment),
            "files": [
                {"path": f.path, "mode": f.mode, "content": base64.b64encode(f.content).decode("ascii")}
                for f in self.files
            ],
            "cwd": self.cwd,
            "inherit_env": list(self.inherit_env),
        }

    def to_json_bytes(self) -> bytes:
        """Canonical JSON (RFC 8785) with base64 file contents: the plaintext to seal. Contains secrets."""
        # Imported here, not at the top: only the CAS serialises configs, and it has the policy package loaded
        # already; the runtime only parses them and must not pay for importing the policy language.
        from custodes.policy._canonical import canonical_json  # noqa: PLC0415

        return canonical_json(self.to_json_dict())

    @classmethod
    def from_json_bytes(cls, data: bytes) -> RenderedConfig:
        """Parse :meth:`to_json_bytes` output (after unsealing).

        Raises:
            PolicyError: code ``CONFIG_INVALID`` for malformed input; the message never quotes it.
        """
        try:
            doc = json.loads(data)
        except (ValueError, TypeError, RecursionError) as e:
            raise PolicyError("CONFIG_INVALID", "rendered config is malformed") from e
        return cls.from_json_dict(doc)

    @classmethod
    def from_json_dict(cls, doc: object) -> RenderedConfig:
        """Parse the wire document (as :meth:`to_json_dict` makes it, or as decoded from JSON).

        Raises:
            PolicyError: code ``CONFIG_INVALID`` for malformed input; the message never quotes it.
        """
        try:
            return _parse_config(doc)
        except (ValueError, TypeError, KeyError, AttributeError, binascii.Error, RecursionError) as e:
            raise PolicyError("CONFIG_INVALID", "rendered config is malformed") from e


def _str_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of strings")
    return tuple(value)


def _parse_config(doc: Any) -> RenderedConfig:
    if not isinstance(doc, dict) or doc.get("format") != WIRE_FORMAT:
        raise ValueError("not a rendered config")
    if set(doc) != _FIELDS:
        raise ValueError("unexpected fields")
    env = doc["environment"]
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise TypeError("environment must map strings to strings")
    if not isinstance(doc["files"], list):
        raise TypeError("files must be a list")
    files = []
    for item in doc["files"]:
        if not isinstance(item, dict) or set(item) != _FILE_FIELDS:
            raise ValueError("unexpected file fields")
        path, mode, content = item["path"], item["mode"], item["content"]
        if not isinstance(path, str) or type(mode) is not int or not 0 <= mode <= 0o777:
            raise TypeError("bad file entry")
        files.append(RenderedFile(path, mode, base64.b64decode(content.encode("ascii"), validate=True)))
    cwd = doc["cwd"]
    if cwd is not None and not isinstance(cwd, str):
        raise TypeError("cwd must be a string")
    return RenderedConfig(_str_list(doc["command"]), env, tuple(files), cwd, _str_list(doc["inherit_env"]))
