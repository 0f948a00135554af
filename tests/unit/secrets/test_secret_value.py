"""The ``Secret`` value type never shows its bytes by accident."""

from __future__ import annotations

import copy
import json
import logging
import pickle

import pytest

from custodes.secrets import Secret

VALUE = b"correct horse battery staple"


def test_repr_str_format_are_redacted() -> None:
    secret = Secret(VALUE)
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{secret:>40}", "%s" % (secret,)):  # noqa: UP031
        assert text == "Secret(***)"
    assert "horse" not in repr([secret, {"k": secret}])


def test_reveal_returns_the_bytes() -> None:
    assert Secret(bytearray(VALUE)).reveal() == VALUE
    assert len(Secret(VALUE)) == len(VALUE)


def test_equality_is_by_value_and_secrets_are_unhashable() -> None:
    assert Secret(VALUE) == Secret(VALUE)
    assert Secret(VALUE) != Secret(VALUE + b"!")
    assert Secret(VALUE) != VALUE
    with pytest.raises(TypeError):
        hash(Secret(VALUE))


def test_not_picklable_not_json_serialisable_immutable() -> None:
    secret = Secret(VALUE)
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        json.dumps({"s": secret})
    with pytest.raises(TypeError):
        bytes(secret)  # type: ignore[call-overload]
    with pytest.raises(AttributeError):
        secret._value = b"x"  # type: ignore[misc]
    assert copy.deepcopy(secret) is secret


def test_rejects_non_bytes() -> None:
    with pytest.raises(TypeError):
        Secret("text")  # type: ignore[arg-type]


def test_logging_a_secret_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("value=%s %r", Secret(VALUE), Secret(VALUE))
    assert "horse" not in caplog.text
    assert "Secret(***)" in caplog.text
