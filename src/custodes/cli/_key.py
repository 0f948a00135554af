"""``custodes key``: signing keys for policy owners and board members."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custodes.cli._common import handles_errors
from custodes.ledger.keys import fingerprint, load_private_key, write_key_pair

key_app = typer.Typer(help="Signing keys for policy owners and signers.", no_args_is_help=True)


@key_app.command("new")
@handles_errors
def new(
    name: str,
    directory: Annotated[Path, typer.Option("--dir", help="where to write NAME.key and NAME.pub")] = Path(),
) -> None:
    """Create an Ed25519 key pair: NAME.key (private, 0600) and NAME.pub (put it in a policy's keys)."""
    private_path, public_path = write_key_pair(directory, name)
    print(f"{private_path} (keep it secret)\n{public_path}\n{fingerprint(load_private_key(private_path).public_key())}")
