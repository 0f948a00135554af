"""``custodes policy create | update | show | sign``: policy changes signed by their owners' keys."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from custodes.cli._common import CasCertOption, CasOption, die, handles_errors
from custodes.cli._policy import policy_app
from custodes.client import DEFAULT_PROPOSAL_VALIDITY_S, CasClient
from custodes.errors import CustodesError
from custodes.ledger.keys import load_private_key, public_pem, split_public_pems
from custodes.ledger.note import PrivateKey, SignedNote, add_signature, parse_note
from custodes.ledger.requests import parse_proposal, proposal_text
from custodes.policy import Policy, load_policy

KeyOption = Annotated[
    list[str] | None,
    typer.Option("--key", help="a signing key file (NAME.key, or KEYNAME=PATH); the key name must be in the policy"),
]
NoteOption = Annotated[Path | None, typer.Option("--note", help="a proposal note signed offline (`policy sign`)")]
PubOption = Annotated[
    list[Path] | None,
    typer.Option("--pub", help="public key (NAME.pub) of a --note signer whose policy key is a fingerprint"),
]


def _note_keys_path(note: Path) -> Path:
    """`policy sign` keeps the signers' public keys beside the note, so fingerprint keys can be checked."""
    return note.with_name(note.name + ".pub")


def _policy_text(file: Path) -> tuple[str, Policy]:
    """Read and load a policy file; not UTF-8 is a policy error (``POLICY_INVALID``), as for ``policy check``."""
    data = file.read_bytes()
    policy = load_policy(data, source=str(file))  # refuses bytes that are not UTF-8, with the file's name
    return data.decode("utf-8"), policy


def _note(path: Path) -> SignedNote:
    return parse_note(path.read_bytes())  # refuses bytes that are not UTF-8 (NOTE_MALFORMED)


def _text(path: Path, what: str) -> str:
    """A text input (a public key file): not UTF-8 is a one-line ``ARGUMENT_INVALID``, never a traceback."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise CustodesError("ARGUMENT_INVALID", f"{what} {path} is not valid UTF-8") from None


def _keys(specs: list[str] | None) -> list[tuple[str, PrivateKey]]:
    keys = []
    for spec in specs or []:
        name, sep, path = spec.partition("=")
        file = Path(path if sep else spec)
        keys.append((name if sep else file.stem, load_private_key(file)))
    return keys


def _submit(
    file: Path,
    keys: list[str] | None,
    note: Path | None,
    pubs: list[Path] | None,
    cas: str | None,
    cert: Path | None,
    create: bool,
) -> None:
    text, policy = _policy_text(file)
    signers = _keys(keys)
    signed = _note(note) if note else None
    public_keys = [_text(p, "--pub") for p in pubs or []]
    if note is not None and _note_keys_path(note).exists():
        public_keys += split_public_pems(_text(_note_keys_path(note), "the note's public keys"))
    if signed is None and not signers:
        die("NOTE_UNSIGNED", "sign the change: give --key (repeatable) or --note")
    with CasClient.from_env(cas, cert) as client:
        result = client.put_policy(
            text,
            name=policy.name,
            policy_hash=policy.hash,
            predecessor=policy.predecessor,
            signers=signers,
            note=signed,
            public_keys=public_keys,
            create=create,
        )
    for warning in result.get("warnings", []):
        print(f"warning: {warning}")
    verb = "created" if create else "updated"
    signed_by = ", ".join(result["signers"])
    print(f"{verb} {result['name']} serial {result['serial']} hash {result['hash']} signed by {signed_by}")


@policy_app.command("create")
@handles_errors
def create(
    file: Path,
    key: KeyOption = None,
    note: NoteOption = None,
    pub: PubOption = None,
    cas: CasOption = None,
    cas_cert: CasCertOption = None,
) -> None:
    """Upload a new policy. Its own access.update signers must sign it: the first creator owns the name."""
    _submit(file, key, note, pub, cas, cas_cert, create=True)


@policy_app.command("update")
@handles_errors
def update(
    file: Path,
    key: KeyOption = None,
    note: NoteOption = None,
    pub: PubOption = None,
    cas: CasOption = None,
    cas_cert: CasCertOption = None,
) -> None:
    """Replace a policy. FILE must name the current hash as predecessor; the current policy's signers sign."""
    _submit(file, key, note, pub, cas, cas_cert, create=False)


@policy_app.command("show")
@handles_errors
def show(
    name: str,
    key: Annotated[str, typer.Option("--key", help="a key named in the policy's access (NAME.key or KEYNAME=PATH)")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    cas: CasOption = None,
    cas_cert: CasCertOption = None,
) -> None:
    """Print a policy as stored in the CAS (the reader must be named in its access block)."""
    ((key_name, private),) = _keys([key])
    with CasClient.from_env(cas, cas_cert) as client:
        result = client.read_policy(name, key_name, private)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print(f"# {result['name']} serial {result['serial']} hash {result['hash']}")
        print(result["policy"], end="" if result["policy"].endswith("\n") else "\n")


@policy_app.command("sign")
@handles_errors
def sign(
    file: Path,
    key: KeyOption = None,
    note: Annotated[Path | None, typer.Option("--note", help="add signatures to this existing proposal note")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write the note here (default: stdout)")] = None,
    valid_for: Annotated[int, typer.Option(help="seconds until the proposal expires")] = DEFAULT_PROPOSAL_VALIDITY_S,
) -> None:
    """Sign a proposal for FILE offline. Each signer adds a line; submit with `policy update FILE --note NOTE`.

    With --out, the signers' public keys are kept beside the note in NOTE.pub, which `--note` picks up.
    """
    _, policy = _policy_text(file)
    signed: SignedNote | str
    if note is not None:
        signed = _note(note)
        proposal = parse_proposal(signed.text)
        if (proposal.name, proposal.policy_hash, proposal.predecessor) != (
            policy.name,
            policy.hash,
            policy.predecessor,
        ):
            die("NOTE_POLICY_MISMATCH", "the note is a proposal for a different policy")
    else:
        signed = proposal_text(policy.name, policy.predecessor, policy.hash, int(time.time()) + valid_for)
    signers = _keys(key)
    if not signers:
        die("NOTE_UNSIGNED", "give at least one --key")
    for name, private in signers:
        signed = add_signature(signed, name, private)
    rendered = signed.render() if isinstance(signed, SignedNote) else signed
    if out:
        out.write_text(rendered)
        sidecar = _note_keys_path(out)
        known = split_public_pems(_text(sidecar, "the note's public keys")) if sidecar.exists() else []
        if note is not None and note != out and _note_keys_path(note).exists():
            known += split_public_pems(_text(_note_keys_path(note), "the note's public keys"))
        pems = dict.fromkeys([*known, *(public_pem(private.public_key()) for _, private in signers)])
        sidecar.write_text("".join(pems))
    else:
        print(rendered, end="")
