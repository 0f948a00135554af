"""``custodes quickstart``: a self-contained tour on the embedded default (DESIGN.md §9).

Every step prints what it does; the command exits 0 only if every step behaved as expected, refusals included.
Everything happens in a temporary directory that is removed at the end (``--keep`` keeps it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from custodes.client import CasClient, CasError
from custodes.clock import utcnow
from custodes.evidence.measure import measure_paths
from custodes.evidence.simvendor import SimVendor
from custodes.ledger.keys import fingerprint, load_private_key, write_key_pair
from custodes.policy import load_policy
from custodes.runtime.providers import SimulatedProvider

_LISTENING = re.compile(r"listening on (https://\S+)")


class QuickstartFailed(Exception):
    """A step did not behave as expected."""


def _step(number: int, text: str) -> None:
    print(f"\n[{number}] {text}", flush=True)


def _example(name: str) -> str:
    return (resources.files("custodes") / "examples" / "quickstart" / name).read_text()


@contextmanager
def _cas(data_dir: Path, sim_dir: Path) -> Iterator[str]:
    """Run ``custodes cas serve`` as a child process on a free loopback port."""
    log = (data_dir.parent / "cas.log").open("w")
    proc = subprocess.Popen(  # noqa: S603  (our own interpreter and arguments)
        [
            sys.executable,
            "-m",
            "custodes",
            "cas",
            "serve",
            "--data-dir",
            str(data_dir),
            "--listen",
            "127.0.0.1:0",
            "--sim-vendor",
            str(sim_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        match = _LISTENING.search(line)
        if not match:
            raise QuickstartFailed(f"the CAS did not start (see {data_dir.parent / 'cas.log'})")
        yield match.group(1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def run_quickstart(work: Path) -> None:
    started = time.monotonic()
    _step(1, "Create a SIMULATED TEE vendor with two platforms (development only: no hardware here)")
    vendor = SimVendor.init(work / "sim", platforms=2, tcb_level=2, now=utcnow())
    platform = vendor.platforms()[0]
    print(f"    platform {platform.platform_id}, TCB level {platform.tcb_level}: UpToDate")

    _step(2, "Make the policy owner's signing key and measure the example app")
    private_path, _ = write_key_pair(work / "keys", "owner")
    owner_key = load_private_key(private_path)
    app_dir = work / "app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(_example("app.py"))
    measurement = measure_paths([app_dir / "app.py"]).hex()
    print(f"    owner key {fingerprint(owner_key.public_key())}")
    print(f"    measurement of app.py: {measurement[:32]}...")

    _step(3, "Fill in the example policy (examples/quickstart/policy.yaml) and check it offline")
    text = (
        _example("policy.yaml")
        .replace("@@OWNER_KEY@@", fingerprint(owner_key.public_key()))
        .replace("@@APP_MEASUREMENT@@", measurement)
    )
    (work / "policy.yaml").write_text(text)
    policy = load_policy(text, source="policy.yaml")
    print(
        f"    {policy.name}: {len(policy.services)} service, {len(policy.secrets)} secrets, hash {policy.hash[:16]}..."
    )

    _step(4, "Start a CAS: TLS 1.3 on loopback, encrypted SQLite state, trusting the simulated vendor")
    with _cas(work / "cas", work / "sim") as url, CasClient(url, work / "cas" / "cas-cert.pem") as client:
        print(f"    {url}, certificate pinned from {work / 'cas' / 'cas-cert.pem'}")

        _step(5, "Upload the policy, signed by its owner")
        created = client.put_policy(
            text,
            name=policy.name,
            policy_hash=policy.hash,
            predecessor=None,
            signers=[("owner", owner_key)],
            create=True,
        )
        print(f"    created {created['name']} serial {created['serial']}, signed by {', '.join(created['signers'])}")

        _step(6, "Attest as the dosage service: evidence -> verdict -> HPKE-sealed config and a lease")
        result = client.attest(policy.name, "dosage", SimulatedProvider(platform.path, [app_dir / "app.py"]))
        config = result.rendered()
        for warning in result.verdict.get("warnings", []):
            print(f"    WARNING: {warning}")
        print(f"    ACCEPTED; lease {result.lease['id']} expires {result.lease['expires_at']}")
        print(
            f"    received: argv {list(config.command)}, env {sorted(config.environment)}, "
            f"{len(config.files)} files (secret values not shown)"
        )
        password = config.environment.get("DB_PASSWORD", "")
        if len(password) != 24:
            raise QuickstartFailed("the config does not carry the 24-character database password")

        _step(7, "A second instance gets the same secrets; a tampered app gets nothing")
        again = client.attest(policy.name, "dosage", SimulatedProvider(platform.path, [app_dir / "app.py"]))
        if again.rendered() != config:
            raise QuickstartFailed("a second instance received different secrets")
        print("    second instance: identical secrets")
        (app_dir / "app.py").write_text(_example("app.py") + "\n# a backdoor\n")
        try:
            client.attest(policy.name, "dosage", SimulatedProvider(platform.path, [app_dir / "app.py"]))
        except CasError as exc:
            if exc.code != "MEASUREMENT_MISMATCH":
                raise QuickstartFailed(f"tampered app refused with {exc.code}, expected MEASUREMENT_MISMATCH") from None
            print(f"    tampered app: REFUSED with {exc.code} (as it should be)")
        else:
            raise QuickstartFailed("a tampered app received the config")
    print(f"\nquickstart OK in {time.monotonic() - started:.1f}s: every step behaved as expected.")


def quickstart(
    keep: Annotated[bool, typer.Option(help="keep the temporary directory and print its path")] = False,
) -> None:
    """A self-contained tour: simulated TEE, CAS, policy, attestation, refusal. Exits 0 only if all went right."""
    work = Path(tempfile.mkdtemp(prefix="custodes-quickstart-"))
    os.chmod(work, 0o700)
    try:
        run_quickstart(work)
    except (QuickstartFailed, CasError) as exc:
        print(f"error: QUICKSTART_FAILED: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    finally:
        if keep:
            print(f"(kept {work})")
        else:
            shutil.rmtree(work, ignore_errors=True)
