"""``custodes quickstart``: the whole tour on the embedded default (DESIGN.md §9), in about ten seconds.

Every step prints what it does; the command exits 0 only if every step behaved as expected, refusals included:
a simulated TEE and a CAS; the example app under ``custodes run`` with its injected password, TLS certificate and
config file; a tampered app refused; a rolling update with both versions side by side on the same secrets; and the
old version deprecated with an advisory, its renewal refused and the app stopped while the new one keeps running.
Everything happens in a temporary directory that is removed at the end (``--keep`` keeps it).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import IO, Annotated

import typer

from custodes.client import CasClient, CasError
from custodes.clock import rfc3339, utcnow
from custodes.evidence.measure import measure_paths
from custodes.evidence.simvendor import SimVendor
from custodes.ledger.keys import fingerprint, load_private_key, write_key_pair
from custodes.ledger.note import PrivateKey
from custodes.policy import load_policy
from custodes.runtime.launcher import ExitCode

_LISTENING = re.compile(r"listening on (https://\S+)")
_PROOF = re.compile(r"dosage-app v\d: (DB_PASSWORD=.*)")
_WAIT_S = 30.0
_STOP_S = 10.0  # SIGTERM to SIGKILL for the `custodes run` children at the end (or on a failure, or Ctrl-C)


class QuickstartFailed(Exception):
    """A step did not behave as expected."""


def _step(number: int, text: str) -> None:
    print(f"\n[{number}] {text}", flush=True)


def _example(name: str) -> str:
    return (resources.files("custodes") / "examples" / "quickstart" / name).read_text()


def _run_command() -> list[str]:
    """``custodes run`` as a child process (the module entry point until the command is registered)."""
    from custodes.cli._app import app  # noqa: PLC0415  (avoid an import cycle at module load)

    if any(command.name == "run" for command in app.registered_commands):
        return [sys.executable, "-m", "custodes", "run"]
    return [sys.executable, "-m", "custodes.cli._run"]


@contextmanager
def _cas(data_dir: Path, sim_dir: Path) -> Iterator[str]:
    """Run ``custodes cas serve`` as a child process on a free loopback port."""
    log = (data_dir.parent / "cas.log").open("w")
    proc = subprocess.Popen(  # noqa: S603  (our own interpreter and arguments)
        [sys.executable, "-m", "custodes", "cas", "serve", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0",
         "--sim-vendor", str(sim_dir)],
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


class _Instance:
    """One ``custodes run`` child: its app's stdout and the runtime's stderr are collected line by line."""

    def __init__(self, label: str, app_dir: Path, argv: list[str], env: dict[str, str]) -> None:
        self.label = label
        self.proc = subprocess.Popen(  # noqa: S603
            argv, cwd=app_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, None), daemon=True).start()

    def _pump(self, stream: IO[str], into: queue.Queue[str] | None) -> None:
        for line in stream:
            if into is not None:
                into.put(line.rstrip("\n"))
            else:
                self.stderr.append(line.rstrip("\n"))

    def expect(self, pattern: str) -> re.Match[str]:
        """Wait for an app output line matching ``pattern``; print the app's lines as they come."""
        give_up = time.monotonic() + _WAIT_S
        while time.monotonic() < give_up:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            print(f"    {self.label} | {line}")
            if match := re.search(pattern, line):
                return match
        raise QuickstartFailed(f"{self.label}: no {pattern!r} from the app; runtime said: {self.errors()}")

    def errors(self) -> str:
        return "; ".join(line for line in self.stderr if line.startswith("error: ")) or "(nothing)"

    def renewals(self) -> int:
        return sum("lease renewed" in line for line in self.stderr)

    def wait(self) -> int:
        try:
            return self.proc.wait(timeout=_WAIT_S)
        except subprocess.TimeoutExpired:
            _stop_all([self])
            raise QuickstartFailed(f"{self.label} did not stop") from None


def _stop_all(instances: list[_Instance], timeout: float = _STOP_S) -> None:
    """Stop ``custodes run`` children the way an orchestrator does: SIGTERM, which each forwards to its app before it
    removes its files and exits; SIGKILL only for those still running after ``timeout`` (their apps then die with
    them: the runtime sets PR_SET_PDEATHSIG on them). Never SIGKILL first: that leaves the files behind."""
    running = [i for i in instances if i.proc.poll() is None]
    for instance in running:
        with contextlib.suppress(ProcessLookupError):
            instance.proc.send_signal(signal.SIGTERM)
    give_up = time.monotonic() + timeout
    for instance in running:
        try:
            instance.proc.wait(timeout=max(0.0, give_up - time.monotonic()))
        except subprocess.TimeoutExpired:
            instance.proc.kill()
            instance.proc.wait()


def _put(client: CasClient, text: str, owner: PrivateKey) -> str:
    policy = load_policy(text, source="policy.yaml")
    client.put_policy(
        text, name=policy.name, policy_hash=policy.hash, predecessor=policy.predecessor,
        signers=[("owner", owner)], create=policy.predecessor is None,
    )
    return policy.hash


def run_quickstart(work: Path) -> None:
    started = time.monotonic()
    _step(1, "Create a SIMULATED TEE vendor with two platforms (development only: no hardware here)")
    vendor = SimVendor.init(work / "sim", platforms=2, tcb_level=2, now=utcnow())
    platforms = vendor.platforms()
    for platform in platforms:
        print(f"    platform {platform.platform_id}, TCB level {platform.tcb_level}: UpToDate")

    _step(2, "Make the policy owner's signing key and measure version 1 of the example app")
    owner = load_private_key(write_key_pair(work / "keys", "owner")[0])
    v1_dir, v2_dir = work / "v1", work / "v2"
    v1_dir.mkdir()
    (v1_dir / "app.py").write_text(_example("app.py"))
    v1 = measure_paths([v1_dir / "app.py"]).hex()
    print(f"    owner key {fingerprint(owner.public_key())}; measurement of v1: {v1[:32]}...")

    _step(3, "Fill in the example policy (examples/quickstart/policy.yaml) and check it offline")
    run_dir = work / "run"
    template = (
        _example("policy.yaml")
        .replace("@@OWNER_KEY@@", fingerprint(owner.public_key()))
        .replace("@@RUN_DIR@@", str(run_dir))
    )
    text = template.replace("@@APP_MEASUREMENT@@", v1)
    policy = load_policy(text, source="policy.yaml")
    print(f"    {policy.name}: {len(policy.secrets)} secrets, lease 4s, grace D = 3s; hash {policy.hash[:16]}...")

    _step(4, "Start a CAS: TLS 1.3 on loopback, encrypted SQLite state, trusting the simulated vendor")
    cert = work / "cas" / "cas-cert.pem"
    instances: list[_Instance] = []
    with _cas(work / "cas", work / "sim") as url, CasClient(url, cert) as client:
        print(f"    {url}, certificate pinned from {cert}")
        env = {**os.environ, "CUSTODES_CAS": url, "CUSTODES_CAS_CERT": str(cert), "CUSTODES_RUNTIME_DIR": str(work)}

        def launch(label: str, app_dir: Path, platform: int) -> _Instance:
            argv = [*_run_command(), "--policy", policy.name, "--service", "dosage", "--tee", "simulated",
                    "--sim-platform", str(platforms[platform].path), "--sim-measure", str(app_dir / "app.py")]
            instance = _Instance(label, app_dir, argv, env)
            instances.append(instance)
            return instance

        try:
            _step(5, "Upload the policy, signed by its owner")
            current = _put(client, text, owner)
            print(f"    created {policy.name}, hash {current[:16]}...")

            _step(6, "custodes run: attest, write the files, start v1 with exactly the policy's argv and env")
            old = launch("v1", v1_dir, 0)
            proof_v1 = old.expect(_PROOF.pattern).group(1)
            old.expect("ready")
            print("    (the app printed lengths and hash prefixes only: it has the secrets, you do not see them)")

            _step(7, "A tampered app gets nothing: the runtime refuses to start it")
            bad_dir = work / "tampered"
            bad_dir.mkdir()
            (bad_dir / "app.py").write_text(_example("app.py") + "\n# a backdoor\n")
            bad = launch("tampered", bad_dir, 0)
            code = bad.wait()
            if code != ExitCode.REFUSED or "MEASUREMENT_MISMATCH" not in bad.errors():
                raise QuickstartFailed(f"a tampered app was not refused (exit {code}: {bad.errors()})")
            print(f"    exit {code}: {bad.errors()}")

            _step(8, "Rolling update: the owner adds v2's measurement; v2 starts beside v1 and gets the same secrets")
            v2_dir.mkdir()
            (v2_dir / "app.py").write_text(_example("app.py").replace("VERSION = 1", "VERSION = 2"))
            v2 = measure_paths([v2_dir / "app.py"]).hex()
            both = template.replace(
                '      - {tee: simulated, measurement: "@@APP_MEASUREMENT@@"}',
                f'      - {{tee: simulated, measurement: "{v1}"}}\n      - {{tee: simulated, measurement: "{v2}"}}',
            ).replace("predecessor: ~", f"predecessor: {current}")
            first, current = current, _put(client, both, owner)
            new = launch("v2", v2_dir, 1)
            proof_v2 = new.expect(_PROOF.pattern).group(1)
            new.expect("ready")
            if proof_v1 != proof_v2:
                raise QuickstartFailed("v1 and v2 received different secrets")
            if old.proc.poll() is not None:
                raise QuickstartFailed(f"v1 stopped during the update: {old.errors()}")
            print("    v1 and v2 run side by side with identical secrets (same hash prefixes)")

            _step(9, "The owner deprecates v1 (advisory CVE-2026-0001); after D = 3s its renewal is refused", )
            since = rfc3339(utcnow())
            deprecated = both.replace(
                f'      - {{tee: simulated, measurement: "{v1}"}}',
                f'      - {{tee: simulated, measurement: "{v1}", '
                f"deprecated: {{since: {since}, advisory: CVE-2026-0001}}}}",
            ).replace(f"predecessor: {first}", f"predecessor: {current}")
            _put(client, deprecated, owner)
            old.expect("shutting down")
            code = old.wait()
            if code != ExitCode.LEASE_REFUSED or "MEASUREMENT_DEPRECATED" not in old.errors():
                raise QuickstartFailed(f"v1 was not stopped for its deprecation (exit {code}: {old.errors()})")
            print(f"    v1 stopped: exit {code}: {old.errors()}")
            renewed = new.renewals()
            give_up = time.monotonic() + _WAIT_S
            while new.renewals() <= renewed and new.proc.poll() is None and time.monotonic() < give_up:
                time.sleep(0.05)
            if new.proc.poll() is not None or new.renewals() <= renewed:
                raise QuickstartFailed(f"v2 did not keep running: {new.errors()}")
            print(f"    v2 keeps running and renewing its lease ({new.renewals()} renewals so far)")

            _step(10, "Stop v2 the way Kubernetes would (SIGTERM): forwarded to the app, its exit code propagated")
            new.proc.send_signal(signal.SIGTERM)
            new.expect("shutting down")
            code = new.wait()
            if code != 0:
                raise QuickstartFailed(f"v2 exited {code}: {new.errors()}")
            leftovers = [p for p in run_dir.rglob("*") if p.is_file()] if run_dir.exists() else []
            if leftovers:
                raise QuickstartFailed(f"files left behind: {leftovers}")
            print("    v2 exited 0; the runtimes removed every file they wrote")
        finally:
            _stop_all(instances)
    print(f"\nquickstart OK in {time.monotonic() - started:.1f}s: every step behaved as expected.")


def quickstart(
    keep: Annotated[bool, typer.Option(help="keep the temporary directory and print its path")] = False,
) -> None:
    """A self-contained tour: simulated TEE, CAS, `custodes run`, a rolling update and a deprecation.
    Exits 0 only if every step behaved as expected."""
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
