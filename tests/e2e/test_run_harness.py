"""Harness for the ``custodes run`` end-to-end tests (helpers only; the tests are in the other test_run_* modules).

It builds: a probe application (a real Python program that writes a digest of the argv, environment, files and
working directory it received, and reacts to signals as told), a policy text with tmp paths in it (policy file paths
must be absolute), and the ``custodes run`` command line.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from _support import CasProcess, Owner
from custodes.evidence.measure import measure_paths
from custodes.policy import load_policy

PROBE = r'''
import hashlib, json, os, signal, subprocess, sys, time

report, mode = sys.argv[1], sys.argv[2]
events = report + ".events"

def note(text):
    with open(events, "a") as fh:
        fh.write(text + "\n")

def digest(data):
    return hashlib.sha256(data).hexdigest()

def snapshot():
    files = {}
    for path in json.loads(os.environ.get("PROBE_FILES", "[]")):
        with open(path, "rb") as fh:
            files[path] = {"sha256": digest(fh.read()), "mode": oct(os.stat(path).st_mode & 0o777)}
    return {
        "argv": [digest(a) for a in open("/proc/self/cmdline", "rb").read().split(b"\0")[:-1]],
        # the environment exactly as exec'd (os.environ may gain LC_CTYPE from Python's own locale coercion)
        "env": dict(sorted((k.decode(), digest(v)) for k, _, v in
                           (e.partition(b"=") for e in open("/proc/self/environ", "rb").read().split(b"\0") if e))),
        "files": files,
        "cwd": os.getcwd(),
        "pid": os.getpid(),
    }

def on_signal(signum, frame):
    note(f"signal {signum}")
    if mode != "ignore-term":
        sys.exit(0)

for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, on_signal)
tmp = report + f".{os.getpid()}.tmp"
state = snapshot()
with open(tmp, "w") as fh:
    json.dump(state, fh)
os.replace(tmp, report)
with open(report + ".all", "a") as fh:  # one line per instance, for side-by-side runs
    fh.write(json.dumps(state) + "\n")
note("started")
if mode.startswith("exit:"):
    sys.exit(int(mode[5:]))
if mode == "orphan":
    # double fork: the middle process exits at once, so the grandchild is orphaned and re-parented to the runtime
    # (the subreaper, as PID 1 would be), which must reap it when it exits
    code = "import subprocess, sys, os; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(0.2)']);"
    code += " print(p.pid, flush=True); os._exit(0)"
    middle = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    note(f"orphan {middle.stdout.strip()}")
while True:
    time.sleep(0.05)
'''


def run_command() -> list[str]:
    """``custodes run`` (falls back to the module entry point until the command is registered in the CLI)."""
    from custodes.cli._app import app  # noqa: PLC0415

    names = {c.name for c in app.registered_commands}
    if "run" in names:
        return [sys.executable, "-m", "custodes", "run"]
    return [sys.executable, "-m", "custodes.cli._run"]


def q(text: str) -> str:
    return json.dumps(text)


@dataclass
class ProbeSetup:
    """A probe app, its policy (with tmp paths), and how to run it under ``custodes run``."""

    root: Path
    cas: CasProcess
    owner: Owner
    platform: Path
    mode: str = "serve"
    ttl: str = "1h"
    stop_grace: str = "1s"
    grace: str = "7d"
    name: str = ""
    relative: bool = False  # command `python probe.py` run in the runtime's cwd (one image per instance)

    def __post_init__(self) -> None:
        self.name = self.name or f"e2e/run-{uuid.uuid4().hex[:8]}"
        self.app = self.root / "app"
        self.app.mkdir(parents=True, exist_ok=True)
        self.probe = self.app / "probe.py"
        self.probe.write_text(PROBE)
        self.workdir = self.root / "work"
        self.workdir.mkdir(exist_ok=True)
        self.report = self.root / "report.json"
        self.files_dir = self.root / "files"
        self.secret_file = self.files_dir / "a" / "secret.txt"
        self.public_file = self.files_dir / "b" / "public.txt"

    @property
    def events(self) -> Path:
        return Path(str(self.report) + ".events")

    @property
    def measurement(self) -> str:
        return measure_paths([self.probe]).hex()

    def policy_text(self, *, measurements: list[str] | None = None, predecessor: str | None = None,
                    file_paths: list[str] | None = None) -> str:
        files = file_paths or [str(self.secret_file), str(self.public_file)]
        entries = measurements or [f"{{tee: simulated, measurement: {q(self.measurement)}}}"]
        meas = "\n".join(f"      - {m}" for m in entries)
        return f"""\
name: {self.name}
predecessor: {predecessor or "~"}
keys:
  owner: "{self.owner.fingerprint}"
access:
  read: [owner]
  update: {{signers: [owner], threshold: 1}}
security:
  allow_simulated: true
  tcb: {{accept: [UpToDate], grace: {self.grace}}}
services:
  - name: probe
    measurements:
{meas}
    command: [{q(sys.executable)}, {q("probe.py" if self.relative else str(self.probe))}, {q(str(self.report))},
              {q(self.mode)}, "--password=$$custodes::password$$", "two words"]
    environment:
      PASSWORD: "$$custodes::password$$"
      PLAIN: "plain value"
      PROBE_FILES: {q(json.dumps(files))}
    inherit_env: [INHERITED_OK, ALSO_INHERITED]
    files:
      - {{path: {q(files[0])}, mode: "0600", content: "password=$$custodes::password$$\\n"}}
      - {{path: {q(files[1])}, mode: "0644", content: "hello, world\\n"}}
{"" if self.relative else f"    cwd: {q(str(self.workdir))}"}
    lease: {{ttl: {self.ttl}, stop_grace: {self.stop_grace}}}
secrets:
  - {{name: password, kind: ascii, size: 20}}
"""

    def create_policy(self, **kwargs: object) -> str:
        text = self.policy_text(**kwargs)  # type: ignore[arg-type]
        policy = load_policy(text, source="policy")
        with self.cas.client() as client:
            client.put_policy(text, name=policy.name, policy_hash=policy.hash, predecessor=policy.predecessor,
                              signers=[("owner", self.owner.key)], create=policy.predecessor is None)
        return policy.hash

    def argv(self, *extra: str, tee: str = "simulated", measure: Path | None = None) -> list[str]:
        args = [*run_command(), "--policy", self.name, "--service", "probe", "--tee", tee]
        if tee == "simulated":
            args += ["--sim-platform", str(self.platform), "--sim-measure", str(measure or self.probe)]
        return [*args, "--runtime-dir", str(self.root / "rt"), *extra]

    def env(self, **extra: str) -> dict[str, str]:
        env = {**self.cas.env(), "RUNTIME_ONLY_SECRET": "must-not-leak", "INHERITED_OK": "inherited ok"}
        env.update(extra)
        return env

    def start(self, *extra: str, env: dict[str, str] | None = None, **kwargs: object) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*extra, **kwargs), env=env or self.env(),  # type: ignore[arg-type]
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=self.app if self.relative else None)

    def wait_for(self, predicate, timeout: float = 30.0, proc: subprocess.Popen[str] | None = None) -> None:  # type: ignore[no-untyped-def]
        """Poll until ``predicate()`` (a hang guard, not a timing assertion)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"custodes run exited early with {proc.returncode}: {proc.stderr.read()}")  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting")
            time.sleep(0.02)

    def started(self) -> bool:
        return self.report.exists()

    def read_report(self) -> dict:
        return json.loads(self.report.read_text())

    def read_report_lines(self) -> list[dict]:
        path = Path(str(self.report) + ".all")
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def event_lines(self) -> list[str]:
        return self.events.read_text().splitlines() if self.events.exists() else []


def sha(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def finish(proc: subprocess.Popen[str], timeout: float = 60.0) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, out, err


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
