"""Hostile input to the policy administration endpoints: each is sent to a real CAS and refused with its exact code
and message, never a 500 and never before the refusal it deserves (most of it arrives unsigned)."""

from __future__ import annotations

import base64

import pytest

from _support import CasProcess, Owner, Workload, put_policy
from conftest import simple_policy
from custodes.client import CasClient, CasError
from custodes.ledger.note import add_signature
from custodes.ledger.requests import proposal_text, read_text
from custodes.policy import load_policy
from custodes.protocol import b64e

FUTURE = 4_102_444_800  # 2100-01-01: a not-after that has not passed


def refused(call) -> CasError:  # type: ignore[no-untyped-def]
    with pytest.raises(CasError) as info:
        call()
    assert 400 <= info.value.status < 500
    return info.value


def post_policy(client: CasClient, text: str, note: str, keys: list[str] | None = None) -> None:
    client.request("POST", "/v1/policies", json={"policy": text, "note": note, "keys": keys or []})


def signed_note(name: str, policy_hash: str, *signers: tuple[str, Owner], not_after: str | int = FUTURE) -> str:
    text = proposal_text(name, None, policy_hash, 0).replace("not-after 0\n", f"not-after {not_after}\n")
    note = add_signature(text, signers[0][0], signers[0][1].key)
    for key_name, who in signers[1:]:
        note = add_signature(note, key_name, who.key)
    return note.render()


def spki_pem(der: bytes) -> str:
    return "-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(der).decode() + "-----END PUBLIC KEY-----\n"


def test_one_key_under_two_names_is_refused(cas: CasProcess, owner: Owner, workload: Workload) -> None:
    # One insider declares their key twice, once as a PEM and once as its fingerprint, to meet a 2-of-3 threshold alone.
    mallory, carol = Owner("alice"), Owner("carol")
    pem = mallory.pem.replace("\n", "\\n")
    extra = ("\n" + " " * 10).join(
        [f'  alice: "{pem}"', f'dave: "{mallory.fingerprint}"', f'carol: "{carol.fingerprint}"']
    )
    text = simple_policy(
        "input/alias",
        owner,
        workload.measurement,
        extra_keys=extra,
        update="{signers: [alice, dave, carol], threshold: 2}",
    )
    note = signed_note("input/alias", "0" * 64, ("alice", mallory), ("dave", mallory))
    with cas.client() as client:
        err = refused(lambda: post_policy(client, text, note, [mallory.pem]))
    assert (err.status, err.code) == (400, "POLICY_INVALID")
    assert err.message == "policy:6:9: keys.dave: key 'dave' is the same key as 'alice'"


def test_a_base_60_number_is_refused_before_conversion(cas: CasProcess) -> None:
    # YAML 1.1 reads 1:59:59 as a base-60 integer, which PyYAML converts in quadratic time: 1 MiB of it, unsigned,
    # used to hold a worker for tens of seconds.
    evil = "name: a/b\nfoo: 1" + ":59" * 349_000 + "\n"
    assert len(evil.encode()) <= 1 << 20
    with cas.client() as client:
        err = refused(lambda: post_policy(client, evil, "x"))
    assert (err.status, err.code) == (400, "POLICY_INVALID")
    assert err.message == "policy:2:6: YAML base-60 numbers are not allowed (quote the value if it is text)"


@pytest.mark.parametrize(
    "since",
    [
        "9999-12-31T23:59:59-01:00",  # after datetime.max once in UTC
        "0001-01-01T00:00:00+01:00",  # before datetime.min once in UTC
        "9999-12-31T00:00:00Z",  # representable, but since + grace is not
    ],
)
def test_an_out_of_range_deprecation_time_is_refused(
    cas: CasProcess, owner: Owner, workload: Workload, since: str
) -> None:
    text = simple_policy(
        "input/since", owner, workload.measurement, deprecated=f"{{since: {since}, advisory: CVE-0000-0001}}"
    )
    with cas.client() as client:
        err = refused(lambda: post_policy(client, text, signed_note("input/since", "0" * 64, ("owner", owner))))
    assert (err.status, err.code) == (400, "POLICY_INVALID")
    assert err.message == (
        "policy:16:159: services[0].measurements[0].deprecated.since: timestamp is out of range "
        "(expected 0001-01-01T00:00:00Z to 8999-12-31T23:59:59Z)"
    )


def test_a_public_key_of_an_unknown_algorithm_or_curve_is_refused(
    cas: CasProcess, owner: Owner, workload: Workload
) -> None:
    # Well-formed SubjectPublicKeyInfo structures that cryptography cannot load: algorithm OID 1.2.3.4, and EC on the
    # curve OID 1.2.3.5.
    unknown_oid = spki_pem(bytes.fromhex("300e" + "3005" + "06032a0304" + "030500" + "01020304"))
    unknown_curve = spki_pem(
        bytes.fromhex("3018" + "300e" + "06072a8648ce3d0201" + "06032a0305" + "030600" + "0401020304")
    )
    text = simple_policy("input/badkey", owner, workload.measurement)
    policy = load_policy(text)
    with cas.client() as client:
        note = signed_note(policy.name, policy.hash, ("owner", owner))
        on_create = refused(lambda: post_policy(client, text, note, [unknown_oid, owner.pem]))
        put_policy(client, text, owner)
        nonce = client.request("POST", "/v1/auth/challenge")["nonce"]
        read = add_signature(read_text(policy.name, nonce), "owner", owner.key)
        headers = {"Custodes-Note": b64e(read.render().encode()), "Custodes-Keys": b64e(unknown_curve.encode())}
        on_read = refused(lambda: client.request("GET", f"/v1/policies/{policy.name}", headers=headers))
    for err in (on_create, on_read):
        assert (err.status, err.code, err.message) == (400, "KEY_INVALID", "keys must be Ed25519 or ECDSA P-256")


@pytest.mark.parametrize("not_after", ["\u00b2", "9" * 5000], ids=["superscript-two", "5000-digits"])
def test_a_not_after_that_is_not_ascii_unix_seconds_is_refused(
    cas: CasProcess, owner: Owner, workload: Workload, not_after: str
) -> None:
    # str.isdigit() accepts "²", which int() refuses; int() also refuses more than 4300 digits.
    text = simple_policy("input/not-after", owner, workload.measurement)
    policy = load_policy(text)
    note = signed_note(policy.name, policy.hash, ("owner", owner), not_after=not_after)
    with cas.client() as client:
        err = refused(lambda: post_policy(client, text, note, [owner.pem]))
    assert (err.status, err.code, err.message) == (400, "NOTE_MALFORMED", "proposal not-after must be unix seconds")


def test_an_unquoted_explicit_secret_is_never_quoted_in_an_error(
    cas: CasProcess, owner: Owner, workload: Workload
) -> None:
    secret = "2024-19-37"  # a PIN-like value that YAML 1.1 resolves as a timestamp but cannot construct
    text = (
        simple_policy("input/explicit", owner, workload.measurement)
        + f"  - {{name: pin, kind: explicit, value: {secret}}}\n"
    )
    with cas.client() as client:
        err = refused(lambda: post_policy(client, text, "x"))
    assert (err.status, err.code) == (400, "POLICY_INVALID")
    assert err.message == "policy:20:40: invalid YAML timestamp (quote the value if it is text)"
    assert secret not in " ".join([err.message, *err.reasons])
