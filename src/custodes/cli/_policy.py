"""``custodes policy check`` / ``hash``: offline validation and the canonical hash (DESIGN.md §9)."""

from __future__ import annotations

from pathlib import Path

import typer

from custodes.errors import PolicyError
from custodes.policy import MAX_POLICY_BYTES, Policy, load_policy

__all__ = ["policy_app"]

policy_app = typer.Typer(help="Validate, hash and manage policies.", no_args_is_help=True)

_FILE = typer.Argument(..., help="The policy YAML file.", dir_okay=False)


def _load(file: Path) -> Policy:
    """Load a policy or print every error (``FILE:LINE:COL: message``) to stderr and exit 1."""
    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_POLICY_BYTES + 1)  # the loader reports oversize input; never read more
    except OSError as e:
        typer.echo(f"{file}: cannot read file ({e.strerror or type(e).__name__})", err=True)
        raise typer.Exit(1) from None
    try:
        return load_policy(data, source=str(file))
    except PolicyError as e:
        for reason in e.reasons or [e.message]:
            typer.echo(reason, err=True)
        raise typer.Exit(1) from None


@policy_app.command("check")
def check(file: Path = _FILE) -> None:
    """Validate FILE offline: print "OK <hash>" and any warnings, or every error with its position."""
    policy = _load(file)
    typer.echo(f"OK {policy.hash}")
    for warning in policy.warnings:
        typer.echo(f"warning: {warning}", err=True)


@policy_app.command("hash")
def hash_(file: Path = _FILE) -> None:
    """Print the canonical SHA-256 hash of FILE (the value an update names as predecessor)."""
    typer.echo(_load(file).hash)
