"""``custodes attest`` (one attestation, for diagnostics) and ``custodes measure``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from custodes.cli._common import CasCertOption, CasOption, die, handles_errors
from custodes.client import CasClient
from custodes.evidence.measure import measure_paths
from custodes.policy import RenderedConfig
from custodes.runtime.providers import SimulatedProvider


def _redacted(config: RenderedConfig) -> dict[str, Any]:
    """Show the shape of a config without its values: argv after argv[0], env values and file contents may all
    carry secrets, so they are replaced by their length only. No digest, not even a short one: an unsalted hash of
    a low-entropy value (a PIN, a chosen password, a short secret in a known template) gives the value away."""

    def tag(value: bytes) -> str:
        return f"<redacted {len(value)} bytes>"

    return {
        "command": [config.command[0], *(tag(arg.encode()) for arg in config.command[1:])],
        "environment": {k: tag(v.encode()) for k, v in config.environment.items()},
        "files": [{"path": f.path, "mode": f"{f.mode:04o}", "content": tag(f.content)} for f in config.files],
        "cwd": config.cwd,
    }


def _revealed(config: RenderedConfig) -> dict[str, Any]:
    return {
        "command": list(config.command),
        "environment": dict(config.environment),
        "files": [
            {"path": f.path, "mode": f"{f.mode:04o}", "content": f.content.decode("utf-8", "backslashreplace")}
            for f in config.files
        ],
        "cwd": config.cwd,
    }


def attest(
    policy: Annotated[str, typer.Option(help="policy name")],
    service: Annotated[str, typer.Option(help="service name in the policy")],
    tee: Annotated[str, typer.Option(help="evidence provider: simulated")] = "simulated",
    sim_platform: Annotated[Path | None, typer.Option(help="a platform directory from `custodes sim init`")] = None,
    sim_measure: Annotated[list[Path] | None, typer.Option(help="files whose measurement the evidence carries")] = None,
    sim_debug: Annotated[bool, typer.Option(help="produce debug-mode evidence")] = False,
    show_config: Annotated[bool, typer.Option(help="print the config (redacted unless --reveal)")] = False,
    reveal: Annotated[bool, typer.Option(help="with --show-config: print secret values too")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document")] = False,
    cas: CasOption = None,
    cas_cert: CasCertOption = None,
) -> None:
    """Attest once and print the verdict and lease (diagnostics)."""
    _attest(
        policy, service, tee, sim_platform, sim_measure or [], sim_debug, show_config, reveal, as_json, cas, cas_cert
    )


@handles_errors
def _attest(
    policy: str,
    service: str,
    tee: str,
    sim_platform: Path | None,
    sim_measure: list[Path],
    sim_debug: bool,
    show_config: bool,
    reveal: bool,
    as_json: bool,
    cas: str | None,
    cas_cert: Path | None,
) -> None:
    if tee != "simulated":
        die("PROVIDER_UNAVAILABLE", f"evidence provider {tee!r} is not available in this build (use simulated)")
    if sim_platform is None or not sim_measure:
        die("ARGUMENT_INVALID", "--tee simulated needs --sim-platform DIR and at least one --sim-measure PATH")
    source = SimulatedProvider(sim_platform, sim_measure, debug=sim_debug)
    with CasClient.from_env(cas, cas_cert) as client:
        result = client.attest(policy, service, source)
    config = result.rendered()
    shown = (_revealed(config) if reveal else _redacted(config)) if show_config else None
    if as_json:
        doc = {
            "verdict": result.verdict,
            "lease": result.lease,
            "policy_version": result.policy_version,
            "attestation_token": result.attestation_token,
        }
        if shown is not None:
            doc["config"] = shown
        print(json.dumps(doc, indent=2))
        return
    print(f"ACCEPTED: {policy} / {service} (policy version {result.policy_version})")
    for warning in result.verdict.get("warnings", []):
        print(f"WARNING: {warning}")
    print(
        f"lease {result.lease['id']} expires {result.lease['expires_at']} (renew after {result.lease['renew_after']})"
    )
    if result.verdict.get("deadline"):
        print(f"deadline: {result.verdict['deadline']} (patch or update before then)")
    if shown is not None:
        print(json.dumps(shown, indent=2))


def measure(paths: Annotated[list[Path], typer.Argument(help="files or directories of the workload")]) -> None:
    """Print the simulated measurement (SHA-384) of a workload's files."""
    _measure(paths)


@handles_errors
def _measure(paths: list[Path]) -> None:
    try:
        print(measure_paths(paths).hex())
    except ValueError as exc:
        die("MEASURE_FAILED", str(exc))
