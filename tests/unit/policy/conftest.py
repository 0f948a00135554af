"""Fixtures for the policy tests (shared constants live in ``policy_fixtures``)."""

from __future__ import annotations

import pytest
from policy_fixtures import FULL_YAML, make_materials

from custodes.policy import Policy, load_policy
from custodes.secrets import SecretMaterial


@pytest.fixture(scope="session")
def full_policy() -> Policy:
    return load_policy(FULL_YAML, source="full.yaml")


@pytest.fixture(scope="session")
def full_materials(full_policy: Policy) -> dict[str, SecretMaterial]:
    return make_materials(full_policy)
