"""``custodes cas``: run the CAS."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custodes.cli._common import die, duration_option, handles_errors
from custodes.server.http import HttpLimits
from custodes.server.serve import ServeOptions, serve

cas_app = typer.Typer(help="The Configuration and Attestation Service.", no_args_is_help=True)


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        die("ARGUMENT_INVALID", f"--listen wants HOST:PORT, got {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


@cas_app.command("serve")
@handles_errors
def serve_command(
    data_dir: Annotated[Path, typer.Option(help="where the CAS keeps its encrypted state and certificate")],
    listen: Annotated[str, typer.Option(help="HOST:PORT (port 0 picks a free port)")] = "127.0.0.1:8443",
    sim_vendor: Annotated[
        Path | None, typer.Option(help="trust this simulated vendor (from `custodes sim init`); development only")
    ] = None,
    access_log: Annotated[bool, typer.Option(help="log every request")] = False,
    challenge_ttl: Annotated[str, typer.Option(help="how long an attestation nonce stays valid")] = "60s",
    collateral_dir: Annotated[
        Path | None, typer.Option(help="imported vendor collateral (default DATA_DIR/collateral)")
    ] = None,
    workers: Annotated[
        int, typer.Option(help="worker processes sharing the port, nonces and leases (about one per core)")
    ] = 1,
    stop_timeout: Annotated[
        str, typer.Option(help="how long requests may take to finish after SIGTERM before workers are killed")
    ] = "30s",
    request_timeout: Annotated[
        str, typer.Option(help="a request must arrive whole within this (slow clients get 408 and are cut off)")
    ] = "30s",
    keep_alive: Annotated[str, typer.Option(help="idle connections are closed after this")] = "30s",
    max_connections: Annotated[
        int, typer.Option(help="open connections per worker (also kept below the open-file limit)")
    ] = HttpLimits.max_connections,
) -> None:
    """Run the CAS over TLS 1.3. Without --sim-vendor it accepts no simulated evidence at all."""
    host, port = parse_listen(listen)
    serve(
        ServeOptions(
            data_dir=data_dir,
            host=host,
            port=port,
            sim_vendor=sim_vendor,
            access_log=access_log,
            challenge_ttl=duration_option("--challenge-ttl", challenge_ttl),
            collateral_dir=collateral_dir,
            workers=workers,
            stop_timeout=duration_option("--stop-timeout", stop_timeout),
            http=_limits(request_timeout, keep_alive, max_connections),
        )
    )


def _limits(request_timeout: str, keep_alive: str, max_connections: int) -> HttpLimits:
    request = duration_option("--request-timeout", request_timeout).total_seconds()
    idle = duration_option("--keep-alive", keep_alive).total_seconds()
    if request <= 0 or idle <= 0:
        die("ARGUMENT_INVALID", "--request-timeout and --keep-alive must be positive")
    if max_connections < 1:
        die("ARGUMENT_INVALID", "--max-connections must be at least 1")
    return HttpLimits(request_timeout=request, keep_alive=idle, max_connections=max_connections)
