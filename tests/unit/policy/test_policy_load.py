"""Loading the complete example, defaults, normalisation, and programmatic construction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from policy_fixtures import FP, MINIMAL
from pydantic import ValidationError

from custodes.errors import PolicyError
from custodes.policy import Policy, format_duration, load_policy, parse_duration, secret_order


def test_full_example_loads_with_every_tee_and_secret_kind(full_policy: Policy) -> None:
    assert full_policy.name == "clinic/dosage"
    api = full_policy.service("api")
    assert api is not None
    assert {m.tee for m in api.measurements} == {"simulated", "sgx-dcap", "tdx", "sev-snp"}
    assert {s.kind for s in full_policy.secrets} == {"ascii", "binary", "private-key", "x509-ca", "x509", "explicit"}
    assert full_policy.access.update.threshold == 2
    assert full_policy.security.tcb.grace == timedelta(days=7)
    assert api.lease.ttl == timedelta(hours=1)
    assert api.lease.stop_grace == timedelta(seconds=30)
    assert api.files[0].mode == 0o600
    assert api.files[1].mode == 0o600  # default
    assert api.cwd == "/srv/app"
    assert api.inherit_env == ("TZ", "LANG")
    deprecated = api.measurements[2].deprecated
    assert deprecated is not None
    assert deprecated.since == datetime(2026, 11, 20, tzinfo=UTC)
    assert full_policy.service("nope") is None


def test_explicit_secrets_produce_positioned_warnings(full_policy: Policy) -> None:
    assert full_policy.warnings == (
        "full.yaml:93:49: secrets[4].value: explicit secret values belong in encrypted policies",
        "full.yaml:94:44: secrets[5].value: explicit secret values belong in encrypted policies",
    )


def test_defaults_are_the_strict_choices() -> None:
    policy = load_policy(MINIMAL)
    assert policy.security.allow_debug is False
    assert policy.security.allow_simulated is False
    assert policy.security.tcb.accept == ("UpToDate",)
    assert policy.security.tcb.grace == timedelta(0)
    assert policy.access.update.threshold == 1  # all signers
    assert policy.access.read == ()
    assert policy.predecessor is None
    assert policy.warnings == ()
    spec = policy.secret("pw")
    assert spec is not None
    assert spec.size == 32  # type: ignore[union-attr]


def test_hex_and_fingerprints_are_stored_lower_case() -> None:
    policy = load_policy(MINIMAL.replace("b" * 96, "B" * 96).replace(FP, FP.upper().replace("SHA256", "sha256")))
    assert policy.services[0].measurements[0].measurement == "b" * 96  # type: ignore[union-attr]
    assert policy.keys["alice"] == FP


def test_secret_order_puts_issuers_first(full_policy: Policy) -> None:
    order = secret_order(full_policy)
    assert order.index("ca") < order.index("issuing_ca") < order.index("api_cert")
    assert order.index("ca") < order.index("worker_cert")
    assert sorted(order) == sorted(s.name for s in full_policy.secrets)
    assert secret_order(full_policy, "worker") == ["ca", "worker_cert"]
    assert "pin" not in secret_order(full_policy, "api")


def test_secret_order_of_unknown_service() -> None:
    with pytest.raises(PolicyError) as info:
        secret_order(load_policy(MINIMAL), "nope")
    assert info.value.code == "SERVICE_NOT_FOUND"


def test_programmatic_construction_runs_the_same_checks(full_policy: Policy) -> None:
    data = full_policy.model_dump()
    data["access"]["update"]["signers"] = ("owner", "mallory")
    with pytest.raises(ValidationError, match=r"access\.update\.signers\[1\]: key 'mallory' is not declared"):
        Policy.model_validate(data)
    rebuilt = Policy.model_validate(full_policy.model_dump())
    assert rebuilt.hash == full_policy.hash
    assert rebuilt.warnings == (
        "secrets[4].value: explicit secret values belong in encrypted policies",
        "secrets[5].value: explicit secret values belong in encrypted policies",
    )


def test_models_are_frozen(full_policy: Policy) -> None:
    with pytest.raises(ValidationError):
        full_policy.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0s", 0), ("30s", 30), ("15m", 900), ("1h", 3600), ("7d", 604800), ("1h30m", 5400), ("1d2h3m4s", 93784)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_duration(format_duration(timedelta(seconds=seconds))) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5", "1.5h", "-1s", "1m1h", "1h1h", "1 h", "h", "36501d", "1w"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_bytes_input_and_bom_are_accepted() -> None:
    assert load_policy(b"\xef\xbb\xbf" + MINIMAL.encode()).hash == load_policy(MINIMAL).hash


def test_typed_values_are_accepted_in_python_but_not_from_yaml(full_policy: Policy) -> None:
    data = full_policy.model_dump()
    data["services"][0]["files"][0]["mode"] = 0o640
    data["services"][0]["lease"]["ttl"] = timedelta(minutes=5)
    policy = Policy.model_validate(data)
    assert policy.services[0].files[0].mode == 0o640
    assert policy.services[0].lease.ttl == timedelta(minutes=5)
    data["services"][0]["files"][0]["mode"] = 0o4755
    with pytest.raises(ValidationError, match="between 0 and 0o777"):
        Policy.model_validate(data)
