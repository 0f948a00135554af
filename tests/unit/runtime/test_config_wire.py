"""The config wire form (``custodes.config``), as the runtime parses it after unsealing: property tests.

The runtime trusts the sealed config only as far as its HPKE tag, so the parser must still turn any malformed
document into ``CONFIG_INVALID`` and never crash or quote it.
"""

from __future__ import annotations

import json
import string

from hypothesis import given, settings
from hypothesis import strategies as st

import custodes.policy
from custodes.config import RenderedConfig, RenderedFile
from custodes.errors import PolicyError

text = st.text(alphabet=string.printable, max_size=12)
files = st.lists(st.builds(RenderedFile, text, st.integers(0, 0o777), st.binary(max_size=32)), max_size=3)
configs = st.builds(RenderedConfig, st.lists(text, max_size=4), st.dictionaries(text, text, max_size=4), files,
                    st.none() | text, st.lists(text, max_size=3))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=10,
)
FIELDS = ("format", "command", "environment", "files", "cwd", "inherit_env")


def test_policy_package_re_exports_the_one_implementation() -> None:
    assert custodes.policy.RenderedConfig is RenderedConfig
    assert custodes.policy.RenderedFile is RenderedFile


@settings(max_examples=60, deadline=None)
@given(configs)
def test_round_trip(config: RenderedConfig) -> None:
    assert RenderedConfig.from_json_dict(config.to_json_dict()) == config
    assert RenderedConfig.from_json_bytes(json.dumps(config.to_json_dict()).encode()) == config


def parse(data: object) -> RenderedConfig | PolicyError:
    """The parsed config, or the refusal (raised errors other than PolicyError fail the test)."""
    try:
        if isinstance(data, bytes):
            return RenderedConfig.from_json_bytes(data)
        return RenderedConfig.from_json_dict(data)
    except PolicyError as exc:
        return exc


def is_config_invalid(result: RenderedConfig | PolicyError) -> bool:
    return isinstance(result, PolicyError) and (result.code, result.message) == (
        "CONFIG_INVALID", "rendered config is malformed")  # a fixed message: the input is never quoted


@settings(max_examples=150, deadline=None)
@given(configs, st.sampled_from(FIELDS), json_values)
def test_any_replaced_field_parses_or_is_config_invalid(config: RenderedConfig, name: str, value: object) -> None:
    result = parse({**config.to_json_dict(), name: value})
    assert is_config_invalid(result) or isinstance(result, RenderedConfig)


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_any_json_document_parses_or_is_config_invalid(doc: object) -> None:
    result = parse(json.dumps(doc).encode())
    assert is_config_invalid(result) or isinstance(result, RenderedConfig)


def test_known_bad_documents_are_refused() -> None:
    good = RenderedConfig(("app",), {"A": "b"}, (RenderedFile("/f", 0o600, b"x"),)).to_json_dict()
    bad = [
        {**good, "files": "not a list"},
        {**good, "files": [{"path": "/f", "mode": 0o1000, "content": ""}]},
        {**good, "files": [{"path": "/f", "mode": True, "content": ""}]},
        {**good, "files": [{"path": "/f", "mode": 1, "content": "!!"}]},
        {**good, "environment": {"A": 1}},
        {**good, "extra": 1},
        {**good, "format": "custodes-config/v2"},
        [good],
    ]
    assert all(is_config_invalid(parse(doc)) for doc in bad)
    assert parse(good) == RenderedConfig.from_json_dict(good)
