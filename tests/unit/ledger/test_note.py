"""C2SP signed notes: the key-ID formula, signing, verification and malformed input."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.ledger.keys import generate_key
from custodes.ledger.note import NoteError, NoteKey, add_signature, parse_note, verify_note
from custodes.ledger.requests import parse_proposal, proposal_text


def test_key_id_matches_the_go_sumdb_known_answer() -> None:
    # vkey "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW" (C2SP signed-note).
    raw = base64.b64decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    assert raw[0] == 0x01
    key_id = hashlib.sha256(b"PeterNeumann\n" + raw).digest()[:4]
    assert key_id.hex() == "c74f20a3"
    assert NoteKey("PeterNeumann", ed25519.Ed25519PublicKey.from_public_bytes(raw[1:])).key_id.hex() == "c74f20a3"


def test_k_signatures_on_one_text_verify_and_count_distinct_names() -> None:
    alice, bob = generate_key(), generate_key()
    text = proposal_text("a/b", None, "0" * 64, 2_000_000_000)
    note = add_signature(add_signature(text, "alice", alice), "bob", bob)
    note = add_signature(note, "alice", alice)  # re-signing replaces, never duplicates
    parsed = parse_note(note.render())
    keys = [NoteKey("alice", alice.public_key()), NoteKey("bob", bob.public_key())]
    assert sorted(verify_note(parsed, keys)) == ["alice", "bob"]
    assert len(parsed.signatures) == 2
    assert parse_proposal(parsed.text).name == "a/b"


def test_one_key_known_under_two_names_counts_once() -> None:
    # The loader refuses such a policy; a stored or hand-built key list must not double count either.
    alice, bob = generate_key(), generate_key()
    note = add_signature(add_signature(proposal_text("a/b", None, "0" * 64, 1), "alice", alice), "dave", alice)
    note = add_signature(note, "bob", bob)
    keys = [NoteKey(name, key.public_key()) for name, key in (("alice", alice), ("dave", alice), ("bob", bob))]
    assert verify_note(parse_note(note.render()), keys) == ["alice", "bob"]


def test_a_failing_known_signature_rejects_the_whole_note() -> None:
    alice = generate_key()
    note = add_signature(proposal_text("a/b", None, "0" * 64, 1), "alice", alice)
    name, kid, sig = note.signatures[0]
    forged = type(note)(note.text.replace("a/b", "a/c"), ((name, kid, sig),))
    with pytest.raises(NoteError) as info:
        verify_note(parse_note(forged.render()), [NoteKey("alice", alice.public_key())])
    assert info.value.code == "NOTE_SIGNATURE_INVALID"


def test_a_note_signed_only_by_unknown_keys_is_unsigned() -> None:
    note = add_signature(proposal_text("a/b", None, "0" * 64, 1), "mallory", generate_key())
    with pytest.raises(NoteError) as info:
        verify_note(parse_note(note.render()), [NoteKey("alice", generate_key().public_key())])
    assert info.value.code == "NOTE_UNSIGNED"


@pytest.mark.parametrize(
    "text",
    [
        "no signature block\n",
        "text\n\nnot a signature line\n",
        "text\n\n\u2014 name !!!\n",
        "a\x01b\n\n\u2014 n AAAA\n",
    ],
    ids=["no-block", "bad-line", "bad-base64", "control-char"],
)
def test_malformed_notes_are_refused(text: str) -> None:
    with pytest.raises(NoteError) as info:
        parse_note(text)
    assert info.value.code == "NOTE_MALFORMED"


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_random_input_only_raises_note_errors(data: str | bytes) -> None:
    try:
        note = parse_note(data)
    except NoteError:
        return
    with pytest.raises(NoteError):
        verify_note(note, [NoteKey("alice", generate_key().public_key())])
