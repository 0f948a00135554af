"""Cross-field rules of the policy language, reported as ``(path, message)`` pairs.

Paths are tuples of mapping keys and list indexes (``("services", 0, "command", 2)``) so that the loader can map
each finding back to its YAML position. The same checks guard programmatic construction of a ``Policy``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from custodes.policy._placeholders import find_placeholders
from custodes.policy._types import LOADER_CONTEXT, key_fingerprint
from custodes.secrets import supported_formats

if TYPE_CHECKING:
    from custodes.policy._model import Policy, Service

__all__ = ["LOADER_CONTEXT", "Issue", "Path", "check_policy", "format_path", "policy_warnings", "service_texts"]

Path = tuple[str | int, ...]
Issue = tuple[Path, str]

EXPLICIT_WARNING = "explicit secret values belong in encrypted policies"


def format_path(path: Path) -> str:
    """``("services", 0, "name")`` -> ``services[0].name``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def service_texts(service: Service, index: int) -> Iterator[tuple[Path, str]]:
    """Every text of a service that may hold placeholders, with its path."""
    base: Path = ("services", index)
    for i, arg in enumerate(service.command):
        yield (*base, "command", i), arg
    for key, value in service.environment.items():
        yield (*base, "environment", key), value
    for i, spec in enumerate(service.files):
        yield (*base, "files", i, "content"), spec.content


def _duplicates(values: list[str]) -> Iterator[tuple[int, str]]:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            yield i, value
        seen.add(value)


def _check_access(policy: Policy) -> Iterator[Issue]:
    keys = policy.keys
    # One key under two names (say a PEM and its sha256: fingerprint) would count twice toward a threshold.
    names_by_key: dict[str, str] = {}
    for name, ref in keys.items():
        first = names_by_key.setdefault(key_fingerprint(ref), name)
        if first != name:
            yield ("keys", name), f"key {name!r} is the same key as {first!r}"
    for i, name in enumerate(policy.access.read):
        if name not in keys:
            yield ("access", "read", i), f"key {name!r} is not declared under keys"
    rule = policy.access.update
    for i, name in enumerate(rule.signers):
        if name not in keys:
            yield ("access", "update", "signers", i), f"key {name!r} is not declared under keys"
    for i, name in _duplicates(list(rule.signers)):
        yield ("access", "update", "signers", i), f"signer {name!r} is listed twice"
    if not 1 <= rule.threshold <= len(rule.signers):
        yield (
            ("access", "update", "threshold"),
            f"threshold {rule.threshold} must be between 1 and the number of signers ({len(rule.signers)})",
        )


def _check_secrets(policy: Policy) -> Iterator[Issue]:
    by_name = {}
    for i, spec in enumerate(policy.secrets):
        if spec.name in by_name:
            yield ("secrets", i, "name"), f"duplicate secret name {spec.name!r}"
        else:
            by_name[spec.name] = spec
    for i, spec in enumerate(policy.secrets):
        issuer = getattr(spec, "issuer", None)
        if issuer is None:
            continue
        target = by_name.get(issuer)
        if target is None:
            yield ("secrets", i, "issuer"), f"issuer {issuer!r} is not a declared secret"
        elif target.kind != "x509-ca":
            yield ("secrets", i, "issuer"), f"issuer {issuer!r} is not an x509-ca secret (kind: {target.kind})"
    reported: set[str] = set()
    for i, spec in enumerate(policy.secrets):
        if spec.kind != "x509-ca" or spec.name in reported:
            continue
        chain = [spec.name]
        current = spec
        while current is not None and getattr(current, "issuer", None) is not None:
            nxt = by_name.get(current.issuer)
            if nxt is None or nxt.kind != "x509-ca":
                break
            if nxt.name in chain:
                cycle = chain[chain.index(nxt.name) :]
                if spec.name in cycle:
                    reported.update(cycle)
                    yield ("secrets", i, "issuer"), f"issuer cycle: {' -> '.join([*cycle, nxt.name])}"
                break
            chain.append(nxt.name)
            current = nxt


def _check_service(policy: Policy, service: Service, index: int) -> Iterator[Issue]:
    base: Path = ("services", index)
    for i, path in _duplicates([f.path for f in service.files]):
        yield (*base, "files", i, "path"), f"duplicate file path {path!r}"
    for i, name in _duplicates(list(service.inherit_env)):
        yield (*base, "inherit_env", i), f"{name!r} is listed twice"
    for i, name in enumerate(service.inherit_env):
        if name in service.environment:
            yield (*base, "inherit_env", i), f"{name!r} is also set under environment"
    for path, text in service_texts(service, index):
        try:
            placeholders = find_placeholders(text)
        except ValueError as e:
            yield path, str(e)
            continue
        for ph in placeholders:
            spec = policy.secret(ph.name)
            if spec is None:
                yield path, f"placeholder names unknown secret {ph.name!r}"
            elif ph.fmt not in supported_formats(spec.kind):
                formats = ", ".join(sorted(f for f in supported_formats(spec.kind) if f is not None))
                yield path, f"{spec.kind} secret {ph.name!r} has no format {ph.fmt!r} (formats: {formats})"
            elif ph.fmt is None and spec.kind == "explicit" and not spec.is_text():
                yield path, f"explicit secret {ph.name!r} is not UTF-8 text: use :hex or :base64"


def check_policy(policy: Policy) -> list[Issue]:
    """Every cross-field rule violation, in document order."""
    issues = list(_check_access(policy))
    for i, name in _duplicates([s.name for s in policy.services]):
        issues.append((("services", i, "name"), f"duplicate service name {name!r}"))
    issues.extend(_check_secrets(policy))
    for i, service in enumerate(policy.services):
        issues.extend(_check_service(policy, service, i))
    return issues


def policy_warnings(policy: Policy) -> list[Issue]:
    """Findings that do not reject the policy (yet)."""
    return [(("secrets", i, "value"), EXPLICIT_WARNING) for i, s in enumerate(policy.secrets) if s.kind == "explicit"]
