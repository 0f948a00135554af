"""The policy models: frozen pydantic v2 models that reject unknown keys.

A :class:`Policy` object is always valid: constructing one runs the same cross-field checks as
:func:`custodes.policy.load_policy` (which reports them with ``FILE:LINE:COL`` positions instead).
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, PrivateAttr, Strict, ValidationInfo, model_validator

from custodes.evidence.claims import TCB_STATUSES
from custodes.policy._checks import LOADER_CONTEXT, check_policy, format_path, policy_warnings
from custodes.policy._measurements import Hex64, Measurement
from custodes.policy._secretspec import SecretSpec
from custodes.policy._types import (
    U16,
    AbsPath,
    EnvName,
    KeyName,
    KeyRef,
    Mode,
    PolicyName,
    ServiceName,
    Text,
    duration,
    invalid,
)

__all__ = ["Access", "FileSpec", "Lease", "Policy", "Security", "Service", "TcbRule", "UpdateRule"]

_FROZEN = ConfigDict(frozen=True, extra="forbid")
#: Statuses a policy may accept: every TCB status except ``Revoked``.
ACCEPTABLE_TCB_STATUSES = tuple(s for s in TCB_STATUSES if s != "Revoked")


def _tcb_status(value: object) -> str:
    if value == "Revoked":
        invalid("a policy can never accept Revoked platforms")
    if not isinstance(value, str) or value not in ACCEPTABLE_TCB_STATUSES:
        invalid(f"unknown TCB status {str(value)[:40]!r} (expected one of: {', '.join(ACCEPTABLE_TCB_STATUSES)})")
    return value


class UpdateRule(BaseModel):
    """Who may replace the policy: ``threshold`` of ``signers`` must sign (default: all of them)."""

    model_config = _FROZEN
    signers: Annotated[tuple[KeyName, ...], Field(min_length=1)]
    threshold: U16

    @model_validator(mode="before")
    @classmethod
    def _default_threshold(cls, data: Any) -> Any:
        if isinstance(data, dict) and "threshold" not in data and isinstance(data.get("signers"), list | tuple):
            return {**data, "threshold": len(data["signers"])}
        return data


class Access(BaseModel):
    """Key names that may read the policy, and the rule for updating it."""

    model_config = _FROZEN
    read: tuple[KeyName, ...] = ()
    update: UpdateRule


class TcbRule(BaseModel):
    """Acceptable platform TCB statuses, and ``grace`` (the D of the CVE deadline model)."""

    model_config = _FROZEN
    accept: Annotated[tuple[Annotated[str, PlainValidator(_tcb_status)], ...], Field(min_length=1)] = ("UpToDate",)
    grace: Annotated[timedelta, duration(positive=False)] = timedelta(0)


class Security(BaseModel):
    """Platform-wide security options; every default is the strict choice."""

    model_config = _FROZEN
    allow_debug: Annotated[bool, Strict()] = False
    allow_simulated: Annotated[bool, Strict()] = False
    tcb: TcbRule = TcbRule()


class FileSpec(BaseModel):
    """A file the runtime writes before starting the service."""

    model_config = _FROZEN
    path: AbsPath
    mode: Mode = 0o600
    content: Text


class Lease(BaseModel):
    """How long an attestation lasts before the runtime must renew it, and the SIGTERM-to-SIGKILL grace."""

    model_config = _FROZEN
    ttl: Annotated[timedelta, duration(positive=True)] = timedelta(hours=1)
    stop_grace: Annotated[timedelta, duration(positive=False)] = timedelta(seconds=10)


class Service(BaseModel):
    """One workload: what it must measure as, and the configuration it receives after attestation."""

    model_config = _FROZEN
    name: ServiceName
    measurements: Annotated[tuple[Measurement, ...], Field(min_length=1)]
    command: Annotated[tuple[Text, ...], Field(min_length=1)]
    environment: dict[EnvName, Text] = Field(default_factory=dict)
    files: tuple[FileSpec, ...] = ()
    cwd: AbsPath | None = None
    lease: Lease = Lease()
    inherit_env: tuple[EnvName, ...] = ()


class Policy(BaseModel):
    """A complete policy (DESIGN.md §5). See docs/policy.md for every field."""

    model_config = _FROZEN
    name: PolicyName
    predecessor: Hex64 | None = None
    keys: dict[KeyName, KeyRef] = Field(default_factory=dict)
    access: Access
    security: Security = Security()
    services: tuple[Service, ...] = ()
    secrets: tuple[SecretSpec, ...] = ()

    _warnings: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> Policy:
        # The loader runs these itself so that it can attach FILE:LINE:COL to each finding.
        if (info.context or {}).get(LOADER_CONTEXT):
            return self
        issues = check_policy(self)
        if issues:
            invalid("; ".join(f"{format_path(path) or '<policy>'}: {message}" for path, message in issues))
        self._warnings = tuple(f"{format_path(path)}: {message}" for path, message in policy_warnings(self))
        return self

    @functools.cached_property
    def hash(self) -> str:
        """Hex SHA-256 of the canonical form (see docs/policy.md, "Canonical form")."""
        from custodes.policy._canonical import policy_hash  # noqa: PLC0415 - _canonical imports this module

        return policy_hash(self)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Non-fatal findings, e.g. explicit secret values (``SOURCE:LINE:COL: message`` when loaded from YAML)."""
        return self._warnings

    def service(self, name: str) -> Service | None:
        """The service called ``name``, if any."""
        return next((s for s in self.services if s.name == name), None)

    def secret(self, name: str) -> SecretSpec | None:
        """The secret called ``name``, if any."""
        return next((s for s in self.secrets if s.name == name), None)
