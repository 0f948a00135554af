"""Render a service's configuration from the policy and its secrets' material. Pure: no I/O, no clock.

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
from typing import TYPE_CHECKING, Any, NoReturn

from custodes.errors import PolicyError
from custodes.policy._canonical import canonical_json
from custodes.policy._checks import service_texts
from custodes.policy._placeholders import find_placeholders, substitute

if TYPE_CHECKING:
    from custodes.policy._model import Policy
    from custodes.secrets import SecretMaterial

__all__ = ["RenderedConfig", "RenderedFile", "render_service", "secret_order"]

_WIRE_FORMAT = "custodes-config/v1"


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

    def to_json_bytes(self) -> bytes:
        """Canonical JSON (RFC 8785) with base64 file contents: the plaintext to seal. Contains secrets."""
        return canonical_json(
            {
                "format": _WIRE_FORMAT,
                "command": list(self.command),
                "environment": dict(self.environment),
                "files": [
                    {"path": f.path, "mode": f.mode, "content": base64.b64encode(f.content).decode("ascii")}
                    for f in self.files
                ],
                "cwd": self.cwd,
                "inherit_env": list(self.inherit_env),
            }
        )

    @classmethod
    def from_json_bytes(cls, data: bytes) -> RenderedConfig:
        """Parse :meth:`to_json_bytes` output (after unsealing).

        Raises:
            PolicyError: code ``CONFIG_INVALID`` for malformed input; the message never quotes it.
        """
        try:
            return _parse_config(json.loads(data))
        except (ValueError, TypeError, KeyError, AttributeError, binascii.Error, RecursionError) as e:
            raise PolicyError("CONFIG_INVALID", "rendered config is malformed") from e


def _str_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of strings")
    return tuple(value)


def _parse_config(doc: Any) -> RenderedConfig:
    if not isinstance(doc, dict) or doc.get("format") != _WIRE_FORMAT:
        raise ValueError("not a rendered config")
    if set(doc) != {"format", "command", "environment", "files", "cwd", "inherit_env"}:
        raise ValueError("unexpected fields")
    env = doc["environment"]
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise TypeError("environment must map strings to strings")
    files = []
    for item in doc["files"]:
        if set(item) != {"path", "mode", "content"}:
            raise ValueError("unexpected file fields")
        path, mode, content = item["path"], item["mode"], item["content"]
        if not isinstance(path, str) or type(mode) is not int or not 0 <= mode <= 0o777:
            raise TypeError("bad file entry")
        files.append(RenderedFile(path, mode, base64.b64decode(content.encode("ascii"), validate=True)))
    cwd = doc["cwd"]
    if cwd is not None and not isinstance(cwd, str):
        raise TypeError("cwd must be a string")
    return RenderedConfig(_str_list(doc["command"]), env, tuple(files), cwd, _str_list(doc["inherit_env"]))


def _service_index(policy: Policy, service_name: str) -> int:
    for i, service in enumerate(policy.services):
        if service.name == service_name:
            return i
    raise PolicyError("SERVICE_NOT_FOUND", f"policy {policy.name!r} has no service {service_name!r}")


def secret_order(policy: Policy, service_name: str | None = None) -> list[str]:
    """Secret names in generation order: every issuer before what it issues, otherwise declaration order.

    Args:
        service_name: only the secrets the service's placeholders name, plus their issuer chains; ``None`` = all.

    Raises:
        PolicyError: ``SERVICE_NOT_FOUND``.
    """
    if service_name is None:
        wanted = [s.name for s in policy.secrets]
    else:
        index = _service_index(policy, service_name)
        wanted = []
        for _, text in service_texts(policy.services[index], index):
            wanted.extend(ph.name for ph in find_placeholders(text))
    needed: set[str] = set()
    for name in wanted:
        current = policy.secret(name)
        while current is not None and current.name not in needed:
            needed.add(current.name)
            issuer = getattr(current, "issuer", None)
            current = policy.secret(issuer) if issuer else None
    return _topological([s.name for s in policy.secrets if s.name in needed], policy)


def _topological(names: list[str], policy: Policy) -> list[str]:
    """Repeatedly take the first name (in declaration order) whose issuer is already placed."""
    remaining = list(names)
    done: list[str] = []
    while remaining:
        for name in remaining:
            issuer = getattr(policy.secret(name), "issuer", None)
            if issuer is None or issuer in done:
                done.append(name)
                remaining.remove(name)
                break
        else:  # pragma: no cover - a validated policy has no issuer cycles
            raise PolicyError("POLICY_INVALID", "issuer cycle")
    return done


def render_service(policy: Policy, service_name: str, secrets: Mapping[str, SecretMaterial]) -> RenderedConfig:
    """Fill a service's placeholders with its secrets' material.

    Args:
        secrets: material by secret name; it must hold every secret the service's placeholders name.

    Raises:
        PolicyError: ``SERVICE_NOT_FOUND``; ``SECRET_MISSING`` when material is absent or of the wrong kind.
    """
    index = _service_index(policy, service_name)
    service = policy.services[index]

    def value_of(name: str, fmt: str | None) -> str:
        material = secrets.get(name)
        spec = policy.secret(name)
        if material is None or spec is None or material.kind != spec.kind:
            raise PolicyError("SECRET_MISSING", f"no {spec.kind if spec else ''} material for secret {name!r}")
        return material.format(fmt)

    def fill(text: str) -> str:
        return substitute(text, value_of)

    return RenderedConfig(
        command=tuple(fill(arg) for arg in service.command),
        environment={key: fill(value) for key, value in service.environment.items()},
        files=tuple(RenderedFile(f.path, f.mode, fill(f.content).encode("utf-8")) for f in service.files),
        cwd=service.cwd,
        inherit_env=service.inherit_env,
    )
