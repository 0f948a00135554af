"""Render a service's configuration from the policy and its secrets' material. Pure: no I/O, no clock.

The result types, :class:`RenderedConfig` and :class:`RenderedFile`, and their JSON wire form live in
:mod:`custodes.config` (stdlib only, so the workload runtime can parse a config without the policy language); they
are re-exported here and from :mod:`custodes.policy`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from custodes.config import RenderedConfig, RenderedFile
from custodes.errors import PolicyError
from custodes.policy._checks import service_texts
from custodes.policy._placeholders import find_placeholders, substitute

if TYPE_CHECKING:
    from custodes.policy._model import Policy
    from custodes.secrets import SecretMaterial

__all__ = ["RenderedConfig", "RenderedFile", "render_service", "secret_order"]


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
