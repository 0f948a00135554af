"""``custodes run``: attest, inject, run and supervise a service's command (docs/runtime.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from custodes.cli._common import CasCertOption, CasOption
from custodes.errors import CustodesError
from custodes.runtime.gramine import DEFAULT_GRAMINE_ROOT
from custodes.runtime.launcher import ExitCode, RunSpec, exit_code_for, run_workload
from custodes.runtime.providers import PROVIDER_NAMES, select_provider
from custodes.runtime.tsm import DEFAULT_TSM_ROOT

__all__ = ["run"]


def run(
    policy: Annotated[str, typer.Option(help="policy name")],
    service: Annotated[str, typer.Option(help="service name in the policy")],
    tee: Annotated[str, typer.Option(help=f"evidence provider: {' | '.join(PROVIDER_NAMES)}")] = "auto",
    sim_platform: Annotated[
        Path | None, typer.Option(help="--tee simulated: a platform from `custodes sim init`")
    ] = None,
    sim_measure: Annotated[list[Path] | None, typer.Option(help="--tee simulated: the files to measure")] = None,
    tsm_root: Annotated[Path, typer.Option(help="configfs-tsm report directory")] = DEFAULT_TSM_ROOT,
    gramine_root: Annotated[Path, typer.Option(help="Gramine attestation directory")] = DEFAULT_GRAMINE_ROOT,
    start_timeout: Annotated[float, typer.Option(help="seconds to keep retrying an unreachable CAS at start")] = 60.0,
    stop_grace: Annotated[
        float, typer.Option(help="seconds between SIGTERM and SIGKILL when the lease is lost (if the CAS names none)")
    ] = 10.0,
    runtime_dir: Annotated[
        Path | None, typer.Option(envvar="CUSTODES_RUNTIME_DIR", help="base of the runtime's own directory")
    ] = None,
    cas: CasOption = None,
    cas_cert: CasCertOption = None,
) -> None:
    """Attest, write the service's files, run its command with its argv and environment, keep the lease alive, and
    stop the command when the CAS says no. Exit codes: docs/runtime.md."""
    raise typer.Exit(
        _run(
            policy,
            service,
            tee,
            sim_platform,
            sim_measure or [],
            tsm_root,
            gramine_root,
            start_timeout,
            stop_grace,
            runtime_dir,
            cas,
            cas_cert,
        )
    )


def _run(
    policy: str,
    service: str,
    tee: str,
    sim_platform: Path | None,
    sim_measure: list[Path],
    tsm_root: Path,
    gramine_root: Path,
    start_timeout: float,
    stop_grace: float,
    runtime_dir: Path | None,
    cas: str | None,
    cas_cert: Path | None,
) -> int:
    try:
        if not cas or cas_cert is None:
            raise CustodesError(
                "CAS_NOT_CONFIGURED", "name the CAS with --cas/CUSTODES_CAS and --cas-cert/CUSTODES_CAS_CERT"
            )
        if not (0 <= start_timeout <= 86400 and 0 <= stop_grace <= 3600):
            raise CustodesError("ARGUMENT_INVALID", "--start-timeout or --stop-grace is out of range")
        source = select_provider(
            tee,
            sim_platform=sim_platform,
            sim_measure=sim_measure,
            tsm_root=tsm_root,
            gramine_root=gramine_root,
        )
    except CustodesError as exc:
        print(f"error: {exc.code}: {exc.message.splitlines()[0]}", file=sys.stderr)
        return exit_code_for(exc)
    except (OSError, ValueError) as exc:
        print(f"error: ARGUMENT_INVALID: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    spec = RunSpec(
        policy=policy,
        service=service,
        cas_url=cas,
        cas_cert=cas_cert,
        source=source,
        start_timeout=start_timeout,
        stop_grace=stop_grace,
        runtime_base=runtime_dir,
    )
    return run_workload(spec)


if __name__ == "__main__":  # `python -m custodes.cli._run`, for embedding before the command is registered
    typer.run(run)
