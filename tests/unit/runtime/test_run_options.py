"""``custodes run`` options are defined once (``custodes.cli._run.OPTIONS``): the fast path's argparse parser and the
full CLI's typer command must accept the same flags, apply the same defaults and environment variables, and give the
same values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from custodes.cli import app
from custodes.cli._run import OPTIONS, main, parser

ARGS = ["--policy", "clinic/dosage", "--service", "dosage", "--tee", "simulated", "--sim-platform", "plat",
        "--sim-measure", "a.py", "--sim-measure", "b.py", "--start-timeout", "2.5", "--cas", "https://cas:1"]
ENV = {"CUSTODES_CAS_CERT": "/pins/cas.pem", "CUSTODES_RUNTIME_DIR": "/run/x", "CUSTODES_CAS": "https://ignored:2"}


def typer_values(args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for name in ("CUSTODES_CAS", "CUSTODES_CAS_CERT", "CUSTODES_RUNTIME_DIR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    group: Any = typer.main.get_command(app)
    command = group.commands["run"]
    with command.make_context("run", list(args)) as ctx:
        values = dict(ctx.params)
    # click gives an unset multiple option as (); argparse as None; `execute` reads both as "none given"
    return {k: (list(v) or None) if isinstance(v, tuple | list) else v for k, v in values.items()}


def argparse_values(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    return vars(parser(env).parse_args(args))


def test_both_front_ends_have_exactly_the_table_options() -> None:
    group: Any = typer.main.get_command(app)
    typer_flags = {opt for p in group.commands["run"].params for opt in p.opts if opt != "--help"}
    argparse_flags = {opt for a in parser({})._actions for opt in a.option_strings if opt not in {"-h", "--help"}}
    assert typer_flags == argparse_flags == {o.flag for o in OPTIONS}


@pytest.mark.parametrize(("args", "env"), [(ARGS, ENV), (ARGS[:4], {}), (ARGS[:4], ENV)],
                         ids=["flags-and-env", "defaults", "env-only"])
def test_both_front_ends_parse_the_same_values(args: list[str], env: dict[str, str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    fast = argparse_values(args, env)
    full = typer_values(args, env, monkeypatch)
    assert fast == full
    assert fast["cas_cert"] == (Path("/pins/cas.pem") if env else None)


def test_flag_wins_over_environment() -> None:
    assert argparse_values(ARGS, ENV)["cas"] == "https://cas:1"
    assert argparse_values(ARGS, ENV)["sim_measure"] == [Path("a.py"), Path("b.py")]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(["--service", "s"], "--policy"), ([*ARGS, "--start-timeout", "soon"], "--start-timeout"),
     ([*ARGS, "--no-such-flag"], "--no-such-flag"), ([*ARGS[:4], "--pol", "x"], "--pol")],
    ids=["missing-required", "bad-number", "unknown-flag", "no-abbreviations"],
)
def test_bad_arguments_are_one_line_and_exit_64(args: list[str], fragment: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 64
    err = capsys.readouterr().err
    assert err.startswith("error: ARGUMENT_INVALID: ") and err.count("\n") == 1 and fragment in err


def test_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(o.flag in out for o in OPTIONS)


def test_full_cli_lists_run_and_runs_it() -> None:
    runner = CliRunner()
    listing = runner.invoke(app, ["--help"])
    assert listing.exit_code == 0 and " run " in listing.output
    result = runner.invoke(app, ["run", "--policy", "p", "--service", "s", "--tee", "simulated"],
                           env={"CUSTODES_CAS": "https://127.0.0.1:1", "CUSTODES_CAS_CERT": "/nonexistent.pem"})
    assert result.exit_code == 64
    assert "error: ARGUMENT_INVALID: --tee simulated needs" in result.output
