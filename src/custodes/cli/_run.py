"""``custodes run``: attest, inject, run and supervise a service's command (docs/runtime.md).

Start-up time is part of this command's contract (≤ 150 ms added to the application's own start, docs/runtime.md),
so this module imports neither typer nor the rest of the CLI. Its options are defined once, in :data:`OPTIONS`; from
that table come both the argparse parser of the fast path (:func:`main`, which ``custodes.cli.main`` dispatches
``custodes run`` to) and the typer command registered in the full CLI (:data:`run`, built on first access).
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

from custodes.errors import CustodesError
from custodes.runtime.gramine import DEFAULT_GRAMINE_ROOT
from custodes.runtime.launcher import ExitCode, RunSpec, exit_code_for, run_workload
from custodes.runtime.providers import PROVIDER_NAMES, select_provider
from custodes.runtime.tsm import DEFAULT_TSM_ROOT

__all__ = ["HELP", "OPTIONS", "Option", "execute", "main", "parser", "run"]  # noqa: F822  (run: module __getattr__)

HELP = (
    "Attest, write the service's files, run its command with its argv and environment, keep the lease alive, and "
    "stop the command when the CAS says no. Exit codes: docs/runtime.md."
)


@dataclass(frozen=True, slots=True)
class Option:
    """One ``custodes run`` option. ``kind`` converts the text; ``envvar`` supplies a value the flag did not."""

    dest: str
    help: str
    kind: Callable[[str], Any] = str
    default: Any = None
    required: bool = False
    multiple: bool = False
    envvar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.dest.replace("_", "-")

    def env_default(self, environ: Mapping[str, str]) -> Any:
        value = environ.get(self.envvar) if self.envvar else None
        return self.kind(value) if value else self.default


OPTIONS: tuple[Option, ...] = (
    Option("policy", "policy name", required=True),
    Option("service", "service name in the policy", required=True),
    Option("tee", f"evidence provider: {' | '.join(PROVIDER_NAMES)}", default="auto"),
    Option("sim_platform", "--tee simulated: a platform from `custodes sim init`", Path),
    Option("sim_measure", "--tee simulated: the files to measure", Path, multiple=True),
    Option("tsm_root", "configfs-tsm report directory", Path, DEFAULT_TSM_ROOT),
    Option("gramine_root", "Gramine attestation directory", Path, DEFAULT_GRAMINE_ROOT),
    Option("start_timeout", "seconds to keep retrying an unreachable CAS at start", float, 60.0),
    Option("stop_grace", "seconds between SIGTERM and SIGKILL when the lease is lost (if the CAS names none)", float,
           10.0),
    Option("runtime_dir", "base of the runtime's own directory", Path, envvar="CUSTODES_RUNTIME_DIR"),
    Option("cas", "CAS URL, e.g. https://127.0.0.1:8443", envvar="CUSTODES_CAS"),
    Option("cas_cert", "the CAS certificate to pin (DATA_DIR/cas-cert.pem)", Path, envvar="CUSTODES_CAS_CERT"),
)


class _Parser(argparse.ArgumentParser):
    """Bad arguments are one ``error:`` line and exit code 64, like every other refusal of ``custodes run``."""

    def error(self, message: str) -> NoReturn:
        print(f"error: ARGUMENT_INVALID: {message}", file=sys.stderr)
        raise SystemExit(ExitCode.USAGE)


def parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The fast path's parser, built from :data:`OPTIONS` (environment variables fill options not given)."""
    env = os.environ if environ is None else environ
    result = _Parser(prog="custodes run", description=HELP, allow_abbrev=False)
    for option in OPTIONS:
        default = option.env_default(env)
        helptext = option.help + (f" [env: {option.envvar}]" if option.envvar else "")
        if option.default is not None:
            helptext += f" [default: {option.default}]"
        result.add_argument(
            option.flag,
            dest=option.dest,
            type=option.kind,
            action="append" if option.multiple else "store",
            default=default,
            required=option.required and default is None,
            help=helptext,
            metavar=option.dest.upper(),
        )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """``custodes run ARGS``: parse with argparse and run. Returns the exit code."""
    return execute(vars(parser().parse_args(argv)))


def execute(values: Mapping[str, Any]) -> int:
    """Run with the parsed option values (keyed by :attr:`Option.dest`); returns ``custodes run``'s exit code."""
    start_timeout, stop_grace = values["start_timeout"], values["stop_grace"]
    try:
        cas, cas_cert = values["cas"], values["cas_cert"]
        if not cas or cas_cert is None:
            raise CustodesError(
                "CAS_NOT_CONFIGURED", "name the CAS with --cas/CUSTODES_CAS and --cas-cert/CUSTODES_CAS_CERT"
            )
        if not (0 <= start_timeout <= 86400 and 0 <= stop_grace <= 3600):
            raise CustodesError("ARGUMENT_INVALID", "--start-timeout or --stop-grace is out of range")
        source = select_provider(
            values["tee"],
            sim_platform=values["sim_platform"],
            sim_measure=values["sim_measure"] or [],
            tsm_root=values["tsm_root"],
            gramine_root=values["gramine_root"],
        )
    except CustodesError as exc:
        print(f"error: {exc.code}: {exc.message.splitlines()[0]}", file=sys.stderr)
        return exit_code_for(exc)
    except (OSError, ValueError) as exc:
        print(f"error: ARGUMENT_INVALID: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    spec = RunSpec(
        policy=values["policy"],
        service=values["service"],
        cas_url=cas,
        cas_cert=cas_cert,
        source=source,
        start_timeout=start_timeout,
        stop_grace=stop_grace,
        runtime_base=values["runtime_dir"],
    )
    return run_workload(spec)


def _typer_command() -> Callable[..., None]:
    """The typer command for the full CLI, with one keyword parameter per :data:`OPTIONS` row."""
    import typer  # noqa: PLC0415  (only the full CLI pays for typer; the fast path never gets here)

    def run(**values: Any) -> None:
        raise typer.Exit(execute(values))

    params = []
    for option in OPTIONS:
        kind = list[option.kind] if option.multiple else option.kind  # type: ignore[name-defined]
        annotation = kind if option.required else kind | None
        info = typer.Option(option.flag, envvar=option.envvar, help=option.help, show_default=True)
        default = inspect.Parameter.empty if option.required else option.default
        params.append(inspect.Parameter(option.dest, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=Annotated[annotation, info]))
    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in params}
    run.__doc__ = HELP
    return run


def __getattr__(name: str) -> Any:
    if name == "run":  # the full CLI's `from custodes.cli._run import run`
        command = _typer_command()
        globals()["run"] = command
        return command
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":  # `python -m custodes.cli._run ARGS`, the same as `custodes run ARGS`
    raise SystemExit(main())
