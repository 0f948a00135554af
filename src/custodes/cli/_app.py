"""Assembles the ``custodes`` command from one small module per command group."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="custodes",
    help="Attested configuration and secrets for confidential workloads.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def main() -> None:
    """Console-script entry point."""
    app()
