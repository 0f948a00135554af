"""The policy language: models, YAML loading with ``FILE:LINE:COL`` errors, canonical hash, rendering.

>>> from custodes.policy import load_policy
>>> policy = load_policy(open("policy.yaml", "rb").read(), source="policy.yaml")  # doctest: +SKIP
>>> policy.hash  # doctest: +SKIP
'3f9c…'

The reference for every field, placeholder format and error message is ``docs/policy.md``.
"""

from custodes.policy._canonical import canonical_json, policy_canonical_form, policy_hash
from custodes.policy._duration import format_duration, parse_duration
from custodes.policy._loader import MAX_POLICY_BYTES, load_policy
from custodes.policy._measurements import (
    Deprecated,
    Measurement,
    SevSnpMeasurement,
    SgxMeasurement,
    SimulatedMeasurement,
    TdxMeasurement,
)
from custodes.policy._model import Access, FileSpec, Lease, Policy, Security, Service, TcbRule, UpdateRule
from custodes.policy._render import RenderedConfig, RenderedFile, render_service, secret_order
from custodes.policy._secretspec import (
    AsciiSecret,
    BinarySecret,
    ExplicitSecret,
    PrivateKeySecret,
    SecretSpec,
    X509CaSecret,
    X509Secret,
)

__all__ = [
    "MAX_POLICY_BYTES",
    "Access",
    "AsciiSecret",
    "BinarySecret",
    "Deprecated",
    "ExplicitSecret",
    "FileSpec",
    "Lease",
    "Measurement",
    "Policy",
    "PrivateKeySecret",
    "RenderedConfig",
    "RenderedFile",
    "SecretSpec",
    "Security",
    "Service",
    "SevSnpMeasurement",
    "SgxMeasurement",
    "SimulatedMeasurement",
    "TcbRule",
    "TdxMeasurement",
    "UpdateRule",
    "X509CaSecret",
    "X509Secret",
    "canonical_json",
    "format_duration",
    "load_policy",
    "parse_duration",
    "policy_canonical_form",
    "policy_hash",
    "render_service",
    "secret_order",
]
