"""The canonical form and hash: same meaning, same hash; different meaning, different hash."""

from __future__ import annotations

import json

import pytest
from policy_fixtures import FULL_YAML, MINIMAL

from custodes.policy import Policy, canonical_json, load_policy, policy_canonical_form, policy_hash

EQUIVALENT = {
    "comments and blank lines": MINIMAL.replace("name: t/p\n", "# a comment\nname: t/p   # trailing\n\n"),
    "reordered top-level keys": "secrets:\n  - {name: pw, kind: ascii}\n" + MINIMAL.split("secrets:\n")[0],
    "reordered flow mapping": MINIMAL.replace("{name: pw, kind: ascii}", "{kind: ascii, name: pw}"),
    "upper-case hex": MINIMAL.replace("b" * 96, "B" * 96),
    "defaults spelled out": MINIMAL.replace("kind: ascii}", "kind: ascii, size: 32}").replace(
        "signers: [alice]}", "signers: [alice], threshold: 1}"
    ),
    "block style": MINIMAL.replace("  update: {signers: [alice]}", "  update:\n    signers:\n      - alice"),
    "equivalent duration": MINIMAL.replace("command:", "lease: {ttl: 60m}\n    command:"),
}


@pytest.mark.parametrize("text", EQUIVALENT.values(), ids=EQUIVALENT.keys())
def test_same_meaning_same_hash(text: str) -> None:
    assert load_policy(text).hash == load_policy(MINIMAL).hash


CHANGED = {
    "secret size": MINIMAL.replace("kind: ascii}", "kind: ascii, size: 31}"),
    "measurement": MINIMAL.replace("b" * 96, "c" * 96),
    "command": MINIMAL.replace("[app,", "[app2,"),
    "allow_simulated": MINIMAL.replace("access:", "security: {allow_simulated: true}\naccess:"),
    "lease": MINIMAL.replace("command:", "lease: {ttl: 2h}\n    command:"),
    "name": MINIMAL.replace("name: t/p", "name: t/q"),
}


@pytest.mark.parametrize("text", CHANGED.values(), ids=CHANGED.keys())
def test_different_meaning_different_hash(text: str) -> None:
    assert load_policy(text).hash != load_policy(MINIMAL).hash


def test_pem_formatting_does_not_change_the_hash(full_policy: Policy) -> None:
    # The same Ed25519 key, with CRLF line ends and surrounding blank space.
    body = "MCowBQYDK2VwAyEAI8zSRiz381QyJjPDfTYR3tfkrN0l95ZWo9Gd+7bapr8="
    pem = f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"
    flat = json.dumps("\n" + pem.replace("\n", "\r\n") + "\n")
    text = FULL_YAML.replace(
        "  owner: |\n    -----BEGIN PUBLIC KEY-----\n    MCowBQYDK2VwAyEAI8zSRiz381QyJjPDfTYR3tfkrN0l95ZWo9Gd+7bapr8=\n"
        "    -----END PUBLIC KEY-----\n",
        f"  owner: {flat}\n",
    )
    assert text != FULL_YAML
    assert load_policy(text).hash == full_policy.hash


def test_service_and_secret_order_do_not_change_the_hash(full_policy: Policy) -> None:
    data = full_policy.model_dump()
    data["services"] = tuple(reversed(data["services"]))
    data["secrets"] = tuple(reversed(data["secrets"]))
    assert Policy.model_validate(data).hash == full_policy.hash


def test_hash_is_sha256_of_the_jcs_form(full_policy: Policy) -> None:
    form = policy_canonical_form(full_policy)
    encoded = canonical_json(form)
    assert json.loads(encoded) == form
    assert encoded == json.dumps(form, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert policy_hash(full_policy) == full_policy.hash
    assert len(full_policy.hash) == 64
    api = next(s for s in form["services"] if s["name"] == "api")
    assert api["lease"] == {"ttl": 3600, "stop_grace": 30}
    assert api["measurements"][2]["deprecated"]["since"] == "2026-11-20T00:00:00Z"
    modes = {f["path"]: f["mode"] for f in api["files"]}
    assert modes["/run/secrets/tls.key"] == 0o600
    assert [f["path"] for f in api["files"]] == sorted(modes)
    assert form["security"]["tcb"]["grace"] == 7 * 86400


def test_jcs_sorts_by_utf16_code_units_and_escapes_minimally() -> None:
    # RFC 8785 §3.2.3 sorting example (subset): U+20AC sorts after U+FB33? No: by UTF-16 units, '\ud83d' < '\ufb33'.
    value = {"\u20ac": 1, "\U0001f600": 2, "\ufb33": 3, "a": 4, "\r": 5, "1": 6}
    assert canonical_json(value) == (
        '{"\\r":5,"1":6,"a":4,"\u20ac":1,"\U0001f600":2,"\ufb33":3}'.encode()
    )
    assert canonical_json(["\u0001\"\\/\u007f"]) == '["\\u0001\\"\\\\/\u007f"]'.encode()
    assert canonical_json({"b": [True, False, None, -5]}) == b'{"b":[true,false,null,-5]}'


def test_jcs_refuses_what_it_cannot_represent_exactly() -> None:
    with pytest.raises(ValueError, match="JCS"):
        canonical_json(2**53)
    with pytest.raises(TypeError):
        canonical_json(1.5)
