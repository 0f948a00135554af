"""`custodes attest`, `policy create/update/show/sign` and `key new` as a user runs them: real processes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jwt

from _support import CasProcess, Workload, custodes_cmd
from custodes.ledger.keys import fingerprint, load_private_key


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(custodes_cmd(*args), capture_output=True, text=True, env=env, timeout=60, check=False)


def write_policy(path: Path, owner_fp: str, bob_fp: str, measurement: str, predecessor: str = "~",
                 threshold: int = 1) -> None:
    path.write_text(f"""\
name: cli/flow
predecessor: {predecessor}
keys: {{owner: "{owner_fp}", bob: "{bob_fp}"}}
access: {{read: [owner], update: {{signers: [owner, bob], threshold: {threshold}}}}}
security: {{allow_simulated: true}}
services:
  - name: app
    measurements: [{{tee: simulated, measurement: "{measurement}"}}]
    command: [app, "--password=$$custodes::password$$"]
    environment: {{PASSWORD: "$$custodes::password$$"}}
secrets: [{{name: password, kind: ascii, size: 30}}]
""")


def test_cli_policy_lifecycle_and_attest_output(cas: CasProcess, workload: Workload, tmp_path: Path) -> None:
    env = cas.env()
    for name in ("owner", "bob"):
        assert run("key", "new", name, "--dir", str(tmp_path), env=env).returncode == 0
    fps = [fingerprint(load_private_key(tmp_path / f"{n}.key").public_key()) for n in ("owner", "bob")]
    policy = tmp_path / "policy.yaml"
    write_policy(policy, *fps, workload.measurement, threshold=2)
    created = run("policy", "create", str(policy), "--key", str(tmp_path / "owner.key"),
                  "--key", str(tmp_path / "bob.key"), env=env)
    assert created.returncode == 0, created.stderr
    v1 = run("policy", "hash", str(policy), env=env).stdout.strip()
    assert v1 in created.stdout

    base = ["attest", "--policy", "cli/flow", "--service", "app", "--sim-platform", str(workload.platform),
            "--sim-measure", str(workload.files[0])]
    redacted = run(*base, "--show-config", "--json", env=env)
    assert redacted.returncode == 0, redacted.stderr
    doc = json.loads(redacted.stdout)
    assert doc["verdict"]["accepted"] is True
    assert doc["config"]["environment"]["PASSWORD"].startswith("<redacted 30 bytes")
    revealed = json.loads(run(*base, "--show-config", "--reveal", "--json", env=env).stdout)
    password = revealed["config"]["environment"]["PASSWORD"]
    assert len(password) == 30
    assert password not in redacted.stdout
    assert jwt.decode(doc["attestation_token"], options={"verify_signature": False})["eat_profile"]

    # A 2-of-2 update, signed offline by each signer in turn, then submitted as one note.
    write_policy(policy, *fps, workload.measurement, predecessor=v1, threshold=2)
    note = tmp_path / "update.note"
    assert run("policy", "sign", str(policy), "--key", str(tmp_path / "owner.key"), "-o", str(note),
               env=env).returncode == 0
    one = run("policy", "update", str(policy), "--note", str(note), env=env)
    assert one.returncode == 1
    assert one.stderr.startswith("error: SIGNATURE_THRESHOLD_NOT_MET:")
    assert run("policy", "sign", str(policy), "--note", str(note), "--key", str(tmp_path / "bob.key"),
               "-o", str(note), env=env).returncode == 0
    both = run("policy", "update", str(policy), "--note", str(note), env=env)
    assert both.returncode == 0, both.stderr
    assert "signed by" in both.stdout

    shown = run("policy", "show", "cli/flow", "--key", str(tmp_path / "owner.key"), env=env)
    assert shown.returncode == 0
    assert f"predecessor: {v1}" in shown.stdout
    assert run("policy", "show", "cli/flow", "--key", str(tmp_path / "bob.key"), env=env).returncode == 0  # a signer
    assert run("key", "new", "mallory", "--dir", str(tmp_path), env=env).returncode == 0
    denied = run("policy", "show", "cli/flow", "--key", f"owner={tmp_path / 'mallory.key'}", env=env)
    assert denied.returncode == 1
    assert denied.stderr.startswith("error: SIGNER_NOT_AUTHORIZED:")


def test_measure_prints_the_simulated_measurement(workload: Workload) -> None:
    result = subprocess.run(custodes_cmd("measure", *map(str, workload.files)), capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == workload.measurement
