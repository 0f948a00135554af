"""The ``custodes run`` start-up path stays light: a structural check of what it imports (no timing assertions).

Each case runs a fresh interpreter, takes the real ``custodes.cli.main`` dispatch, and lists ``sys.modules`` at the
end. The heavy stacks (the CAS server, the policy language, typer, HTTP client libraries, numpy) must be absent.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_client_http import write_identity

from custodes.evidence.simvendor import SimVendor

FORBIDDEN = (
    "pydantic",
    "fastapi",
    "starlette",
    "uvicorn",
    "numpy",
    "httpx",
    "httpcore",
    "yaml",
    "typer",
    "click",
    "rich",
    "custodes.policy",
    "custodes.server",
    "custodes.encoded",
    "custodes.ledger",
    "custodes.store",
    "custodes.cli._app",
)

DRIVER = """
import json, sys
sys.argv = ["custodes", *json.loads(sys.argv[1])]
import custodes.cli
try:
    custodes.cli.main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def run_entry_point(args: list[str], env: dict[str, str] | None = None) -> tuple[int, set[str]]:
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(args)], capture_output=True, text=True,
                          timeout=60, check=True, env=env)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["code"], set(result["modules"])


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))


def test_run_help_imports_nothing_heavy() -> None:
    code, modules = run_entry_point(["run", "--help"])
    assert code == 0
    assert "custodes.runtime.launcher" in modules  # the check looks at the real entry point
    assert heavy(modules) == []


def test_a_whole_start_attempt_imports_nothing_heavy(tmp_path: Path, sim: SimVendor) -> None:
    """Provider, TLS client, attestation attempt against a port where nobody listens: exit 69, light throughout."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cert, _ = write_identity(tmp_path, "pin")
    app = tmp_path / "app.py"
    app.write_text("print('hello')\n")
    args = ["run", "--policy", "p/q", "--service", "s", "--tee", "simulated",
            "--sim-platform", str(sim.platforms()[0].path), "--sim-measure", str(app),
            "--cas", f"https://127.0.0.1:{port}", "--cas-cert", str(cert), "--start-timeout", "0",
            "--runtime-dir", str(tmp_path / "rt")]
    code, modules = run_entry_point(args)
    assert code == 69  # CAS_UNREACHABLE: it got as far as the network
    assert {"custodes.client", "custodes.protocol", "custodes.evidence.simvendor"} <= modules
    assert heavy(modules) == []


@pytest.mark.parametrize("args", [["--help"], ["sim", "--help"]])
def test_other_commands_still_load_the_full_cli(args: list[str]) -> None:
    code, modules = run_entry_point(args)
    assert code == 0
    assert {"typer", "custodes.cli._app"} <= modules
