"""Property tests: no input makes ``load_policy`` raise anything but ``PolicyError``."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policy_fixtures import FULL_YAML

from custodes.errors import PolicyError
from custodes.policy import load_policy

_POSITIONED = re.compile(r"fuzz\.yaml:\d+:\d+: .+")
_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _load_or_policy_error(data: str | bytes) -> None:
    error: PolicyError | None = None
    try:
        policy = load_policy(data, source="fuzz.yaml")
    except PolicyError as e:
        error = e
    if error is None:
        assert len(policy.hash) == 64
        return
    assert error.code == "POLICY_INVALID"
    assert error.reasons
    assert all(_POSITIONED.fullmatch(r) for r in error.reasons), error.reasons
    assert error.message == error.reasons[0]


@_SETTINGS
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    _load_or_policy_error(text)


@_SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    _load_or_policy_error(data)


_YAMLISH = st.text(alphabet=st.sampled_from(list("abc:-[]{}&*!?|>#'\"\n ,0123456789$~.")), max_size=200)


@_SETTINGS
@given(_YAMLISH)
def test_yaml_punctuation_soup(text: str) -> None:
    _load_or_policy_error(text)


@_SETTINGS
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=len(FULL_YAML)),
            st.integers(min_value=0, max_value=8),
            st.text(alphabet=st.sampled_from(list("ab01:-[]{}&*\n $\"'Zx")), max_size=6),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_mutations_of_the_full_example(edits: list[tuple[int, int, str]]) -> None:
    text = FULL_YAML
    for offset, length, insert in edits:
        pos = min(offset, len(text))
        text = text[:pos] + insert + text[pos + length :]
    _load_or_policy_error(text)


@_SETTINGS
@given(st.integers(min_value=0, max_value=len(FULL_YAML.splitlines()) - 1))
def test_dropping_any_line_of_the_full_example(index: int) -> None:
    lines = FULL_YAML.splitlines(keepends=True)
    _load_or_policy_error("".join(lines[:index] + lines[index + 1 :]))
