"""The signed-note texts that authorise admin requests (policy create, update and read).

A policy change is a *proposal* note; every required signer adds a signature line to the same text, so a
k-of-n update is one note with k lines (docs/trust-design.md §7.3)::

    custodes/proposal/v1
    name clinic/dosage
    predecessor <hex SHA-256 of the current policy, or "-" when creating>
    policy <hex SHA-256 of the new policy's canonical form>
    not-after <unix seconds: the CAS refuses the note after this time>

The policy body travels beside the note; the CAS recomputes its hash. A read is a *read* note over a
single-use nonce from ``POST /v1/auth/challenge``, so a captured read request cannot be replayed::

    custodes/read/v1
    name clinic/dosage
    nonce <hex>
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from custodes.ledger.note import NoteError, note_fields

__all__ = ["Proposal", "ReadRequest", "parse_proposal", "parse_read", "proposal_text", "read_text"]

PROPOSAL_HEADER = "custodes/proposal/v1"
READ_HEADER = "custodes/read/v1"
_HEX64 = re.compile(r"[0-9a-f]{64}")
#: ASCII digits only (``str.isdigit`` also accepts e.g. "²"), and short enough for ``int``: 20 digits exceed 2**64.
_UNIX_SECONDS = re.compile(r"[0-9]{1,20}")


@dataclass(frozen=True, slots=True)
class Proposal:
    name: str
    predecessor: str | None
    policy_hash: str
    not_after: int


@dataclass(frozen=True, slots=True)
class ReadRequest:
    name: str
    nonce: str


def proposal_text(name: str, predecessor: str | None, policy_hash: str, not_after: int) -> str:
    return (
        f"{PROPOSAL_HEADER}\nname {name}\npredecessor {predecessor or '-'}\npolicy {policy_hash}\n"
        f"not-after {not_after}\n"
    )


def parse_proposal(text: str) -> Proposal:
    fields = note_fields(text, PROPOSAL_HEADER, ["name", "predecessor", "policy", "not-after"])
    pred = fields["predecessor"]
    if (pred != "-" and not _HEX64.fullmatch(pred)) or not _HEX64.fullmatch(fields["policy"]):
        raise NoteError("NOTE_MALFORMED", "proposal hashes must be 64 lower-case hex digits")
    if not _UNIX_SECONDS.fullmatch(fields["not-after"]):
        raise NoteError("NOTE_MALFORMED", "proposal not-after must be unix seconds")
    return Proposal(fields["name"], None if pred == "-" else pred, fields["policy"], int(fields["not-after"]))


def read_text(name: str, nonce: str) -> str:
    return f"{READ_HEADER}\nname {name}\nnonce {nonce}\n"


def parse_read(text: str) -> ReadRequest:
    fields = note_fields(text, READ_HEADER, ["name", "nonce"])
    return ReadRequest(fields["name"], fields["nonce"])
