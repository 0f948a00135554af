"""Shared data for the policy tests: the complete example policy, a minimal valid one, material generation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from custodes.policy import Policy, secret_order
from custodes.secrets import SecretMaterial, generate_secret

DATA = Path(__file__).parent / "data"
FULL_YAML = (DATA / "full.yaml").read_text(encoding="utf-8")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

FP = "sha256:" + "a" * 64
SIM = "b" * 96
#: A minimal valid policy. Line numbers matter to the error table: keep the layout.
MINIMAL = f"""\
name: t/p
keys: {{alice: "{FP}"}}
access:
  update: {{signers: [alice]}}
services:
  - name: api
    measurements:
      - {{tee: simulated, measurement: "{SIM}"}}
    command: [app, "$$custodes::pw$$"]
secrets:
  - {{name: pw, kind: ascii}}
"""


def make_materials(policy: Policy, names: list[str] | None = None) -> dict[str, SecretMaterial]:
    """Generate material for the given secrets (default: all), issuers first."""
    materials: dict[str, SecretMaterial] = {}
    for name in secret_order(policy) if names is None else names:
        spec = policy.secret(name)
        assert spec is not None
        issuer = getattr(spec, "issuer", None)
        materials[name] = generate_secret(spec, issuer=materials[issuer] if issuer else None, now=NOW)
    return materials
