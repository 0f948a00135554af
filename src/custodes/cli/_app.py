"""Assembles the ``custodes`` command from one small module per command group."""

from __future__ import annotations

import typer

from custodes.cli import _policy_remote  # noqa: F401  (adds create/update/show/sign to the policy group)
from custodes.cli._attest import attest, measure
from custodes.cli._cas import cas_app
from custodes.cli._encoded import encoded_app
from custodes.cli._evidence import collateral_app, evidence_app
from custodes.cli._key import key_app
from custodes.cli._policy import policy_app
from custodes.cli._quickstart import quickstart
from custodes.cli._run import run
from custodes.cli._sim import sim_app

app = typer.Typer(
    name="custodes",
    help="Attested configuration and secrets for confidential workloads.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(cas_app, name="cas")
app.add_typer(policy_app, name="policy")
app.add_typer(sim_app, name="sim")
app.add_typer(key_app, name="key")
app.add_typer(evidence_app, name="evidence")
app.add_typer(collateral_app, name="collateral")
app.add_typer(encoded_app, name="encoded")
app.command("attest")(attest)
app.command("measure")(measure)
app.command("quickstart")(quickstart)
app.command("run")(run)


def main() -> None:
    """Console-script entry point."""
    app()
