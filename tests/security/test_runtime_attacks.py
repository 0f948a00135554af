"""Attacks on the workload runtime (`custodes run`, the Python API, the runtime directory, `attest --show-config`).

Each test is one way to keep secrets past a lease, or to make the runtime destroy or reveal something, with the exact
outcome the runtime must produce instead:

* what the application started must not outlive a fail-stop, nor the runtime itself (worker, escaped daemon);
* a stderr nobody reads must not stop supervision;
* a runtime killed outright must take its application with it;
* a runtime directory base made by someone else (or a link, or writable by others) must be refused, and a swapped
  instance directory must never be followed;
* the Python API must report a lost lease at its expiry even while the CAS hangs;
* redacted output must not carry a digest of a guessable secret.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from _support import CasProcess, Owner, alive, custodes_cmd
from custodes.client import EvidenceSource
from custodes.errors import CustodesError
from custodes.evidence.measure import measure_paths
from custodes.evidence.simvendor import SimVendor
from custodes.policy import load_policy
from custodes.runtime import ExitCode, RunSpec, Session, SimulatedProvider, run_workload
from custodes.runtime.rundir import RuntimeDir


def q(text: str) -> str:
    return json.dumps(text)


class App:
    """A policy with one service whose command is ``python app.py ROOT`` (``app.py`` is the test's), a password in
    its environment and in a file; ``custodes run`` for it with its own runtime directory."""

    def __init__(self, root: Path, cas: CasProcess, owner: Owner, platform: Path, source: str, *,
                 ttl: str = "1h", stop_grace: str = "1s") -> None:
        self.root, self.cas, self.owner, self.platform = root, cas, owner, platform
        self.name = f"attack/rt-{uuid.uuid4().hex[:8]}"
        self.app = root / "app.py"
        self.app.write_text(source)
        self.secret_file = root / "files" / "secret.txt"
        self.rt = root / "rt"
        self.ttl, self.stop_grace = ttl, stop_grace

    def policy(self, measurement: str | None = None, predecessor: str | None = None) -> str:
        return f"""\
name: {self.name}
predecessor: {predecessor or "~"}
keys: {{owner: "{self.owner.fingerprint}"}}
access: {{read: [owner], update: {{signers: [owner], threshold: 1}}}}
security: {{allow_simulated: true, tcb: {{accept: [UpToDate], grace: 7d}}}}
services:
  - name: svc
    measurements: [{{tee: simulated, measurement: {q(measurement or measure_paths([self.app]).hex())}}}]
    command: [{q(sys.executable)}, {q(str(self.app))}, {q(str(self.root))}]
    environment: {{PASSWORD: "$$custodes::password$$"}}
    files:
      - {{path: {q(str(self.secret_file))}, mode: "0600", content: "password=$$custodes::password$$\\n"}}
    cwd: {q(str(self.root))}
    lease: {{ttl: {self.ttl}, stop_grace: {self.stop_grace}}}
secrets:
  - {{name: password, kind: ascii, size: 20}}
"""

    def put(self, **kwargs: str) -> str:
        text = self.policy(**kwargs)
        policy = load_policy(text, source="policy")
        with self.cas.client() as client:
            client.put_policy(text, name=policy.name, policy_hash=policy.hash, predecessor=policy.predecessor,
                              signers=[("owner", self.owner.key)], create=policy.predecessor is None)
        return policy.hash

    def refuse_renewals(self, current: str) -> None:
        """The owner withdraws the app's measurement: the next renewal is refused (MEASUREMENT_MISMATCH)."""
        self.put(measurement="ab" * 48, predecessor=current)

    def argv(self) -> list[str]:
        return custodes_cmd("run", "--policy", self.name, "--service", "svc", "--tee", "simulated",
                            "--sim-platform", str(self.platform), "--sim-measure", str(self.app),
                            "--runtime-dir", str(self.rt))

    def start(self, stderr: int | None = None) -> subprocess.Popen[bytes]:
        """Start ``custodes run``; its stderr goes to ``err()`` unless given (a file: a descendant left behind
        by a regression would hold a pipe open, and the test would wait for it instead of failing)."""
        with (self.root / "run.err").open("wb") as log:
            return subprocess.Popen(self.argv(), env=self.cas.env(), stdout=subprocess.DEVNULL,
                                    stderr=log if stderr is None else stderr)

    def err(self) -> str:
        return (self.root / "run.err").read_text()

    def renewals(self) -> int:
        for status in self.rt.glob("*/status.json"):
            try:
                return int(json.loads(status.read_text())["renewals"])
            except (OSError, ValueError, KeyError):
                return 0
        return 0


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, what: str = "") -> None:
    """A hang guard, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def read_pids(path: Path, count: int) -> list[int]:
    wait_for(lambda: path.exists() and len(path.read_text().split()) == count, what=str(path))
    return [int(p) for p in path.read_text().split()]


@pytest.fixture
def reaper() -> Iterator[list[int]]:
    """Pids a test started indirectly: killed at the end if a regression left them running (never by name)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


# A worker of the app (as gunicorn, a shell script or a JVM launcher start them): it ignores SIGTERM and inherits the
# environment, with the secret. Without ESCAPE it stays in the app's process group; with it, it leaves (setsid), as a
# daemonising child does. With EXIT the app exits at once, leaving it behind.
SPAWNER = r'''
import os, subprocess, sys, time
ESCAPE, EXIT = {escape}, {exit}
code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"
child = subprocess.Popen([sys.executable, "-c", code], start_new_session=ESCAPE)
with open(os.path.join(sys.argv[1], "pids"), "w") as fh:
    fh.write(f"{{os.getpid()}} {{child.pid}}")
if EXIT:
    sys.exit(0)
while True:
    time.sleep(0.05)
'''


def spawner(escape: bool, exit_at_once: bool = False) -> str:
    return SPAWNER.format(escape=escape, exit=exit_at_once)


@pytest.mark.parametrize("escape", [False, True], ids=["worker-in-group", "daemon-left-the-group"])
def test_what_the_app_started_does_not_outlive_a_fail_stop(
    tmp_path: Path, cas: CasProcess, owner: Owner, sim: SimVendor, reaper: list[int], escape: bool
) -> None:
    """The renewal is refused: the app is stopped, and so is the child it started (it ignores SIGTERM and holds
    PASSWORD in its environment), whether it stayed in the app's group or left it. Before the fix only the app's pid
    was signalled and the child ran on after `custodes run` had exited."""
    app = App(tmp_path, cas, owner, sim.platforms()[0].path, spawner(escape), ttl="2s")
    current = app.put()
    proc = app.start()
    app_pid, child = read_pids(tmp_path / "pids", 2)
    reaper += [app_pid, child]
    assert b"PASSWORD=" in Path(f"/proc/{child}/environ").read_bytes()
    app.refuse_renewals(current)
    assert proc.wait(timeout=60) == ExitCode.LEASE_REFUSED, app.err()
    assert app.err().splitlines()[-1].startswith("error: MEASUREMENT_MISMATCH: lease renewal refused")
    assert not alive(app_pid)
    assert not alive(child), "a child of the app outlived the fail-stop with the secret in its environment"
    assert not app.secret_file.exists()


def test_an_app_that_exits_leaves_no_daemon_behind(
    tmp_path: Path, cas: CasProcess, owner: Owner, sim: SimVendor, reaper: list[int]
) -> None:
    """The app daemonises a child (setsid) and exits 0: `custodes run` exits 0, and the daemon, which would keep the
    secret without a lease, is gone (as when a container's main process exits)."""
    app = App(tmp_path, cas, owner, sim.platforms()[0].path, spawner(escape=True, exit_at_once=True))
    app.put()
    proc = app.start()
    app_pid, child = read_pids(tmp_path / "pids", 2)
    reaper += [app_pid, child]
    assert proc.wait(timeout=60) == 0, app.err()
    assert not alive(child)
    assert not app.secret_file.exists()


SERVE = r'''
import os, sys, time
open(os.path.join(sys.argv[1], "pids"), "w").write(str(os.getpid()))
while True:
    time.sleep(0.05)
'''


def test_a_stderr_nobody_reads_does_not_stop_supervision(
    tmp_path: Path, cas: CasProcess, owner: Owner, sim: SimVendor, reaper: list[int]
) -> None:
    """The runtime's stderr is a pipe whose reader went away: its progress lines fail with EPIPE. It must keep
    renewing, and stop the app and remove the files when the renewal is refused (exit 78). Before the fix the first
    progress line killed the runtime and the app ran on, unsupervised, with the secret file on disk."""
    app = App(tmp_path, cas, owner, sim.platforms()[0].path, SERVE, ttl="2s")
    current = app.put()
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    try:
        proc = app.start(stderr=write_fd)
    finally:
        os.close(write_fd)
    (app_pid,) = read_pids(tmp_path / "pids", 1)
    reaper.append(app_pid)
    wait_for(lambda: app.renewals() >= 1 or proc.poll() is not None, what="a renewal")
    assert proc.poll() is None, f"custodes run died with {proc.returncode}"
    assert alive(app_pid) and app.secret_file.exists()
    app.refuse_renewals(current)
    assert proc.wait(timeout=60) == ExitCode.LEASE_REFUSED
    assert not alive(app_pid)
    assert not app.secret_file.exists()
    assert list(app.rt.iterdir()) == []


def test_a_runtime_killed_outright_takes_its_app_with_it(
    tmp_path: Path, cas: CasProcess, owner: Owner, sim: SimVendor, reaper: list[int]
) -> None:
    """`kill -9` of `custodes run` (the OOM killer, a careless script): the kernel kills the app too
    (PR_SET_PDEATHSIG). Before the fix it ran on forever with its secrets and no lease. (The files stay: nobody is
    left to remove them; docs/runtime.md says so.)"""
    app = App(tmp_path, cas, owner, sim.platforms()[0].path, SERVE)
    app.put()
    proc = app.start()
    (app_pid,) = read_pids(tmp_path / "pids", 1)
    reaper.append(app_pid)
    proc.kill()
    proc.wait()
    wait_for(lambda: not alive(app_pid), timeout=5, what="the app to die with its runtime")


class _SignalsItself(EvidenceSource):
    """A provider that, while producing evidence, gets a SIGTERM (a rollout stopping the pod mid-attestation)."""

    evidence_type = "simulated"

    def __init__(self, inner: SimulatedProvider) -> None:
        self.inner = inner

    def evidence(self, report_data: bytes) -> tuple[bytes, bytes | None]:
        os.kill(os.getpid(), signal.SIGTERM)  # recorded by the runtime's handler; never delivered to pytest
        return self.inner.evidence(report_data)


def test_a_stop_signal_during_the_attestation_leaves_no_secret_files(
    tmp_path: Path, cas: CasProcess, owner: Owner, sim: SimVendor
) -> None:
    """SIGTERM arrives while the first attestation is under way: the app is not started (128 + 15), and the files
    already written and the runtime directory are removed. Before the fix this path returned without removing them."""
    app = App(tmp_path, cas, owner, sim.platforms()[0].path, SERVE)
    app.put()
    spec = RunSpec(policy=app.name, service="svc", cas_url=cas.url, cas_cert=cas.cert, reap_orphans=False,
                   source=_SignalsItself(SimulatedProvider(app.platform, [app.app])), runtime_base=app.rt)
    err = tmp_path / "err.txt"
    with err.open("w") as out:
        code = run_workload(spec, err=out)
    assert code == 128 + signal.SIGTERM
    assert err.read_text().startswith("error: INTERRUPTED: signal 15 before the application started")
    assert not (tmp_path / "pids").exists()
    assert not app.secret_file.exists()
    assert list(app.rt.iterdir()) == []


# ------------------------------------------------------------------------------------------ the runtime directory


def precious_dir(root: Path) -> Path:
    """A directory of the victim's that the runtime must never touch."""
    precious = root / "victim-data"
    precious.mkdir()
    for name in ("thesis.tex", "id_ed25519", "db.sqlite"):
        (precious / name).write_text("important\n")
    return precious


def assert_refused(base: Path, fragment: str) -> None:
    with pytest.raises(CustodesError) as err:
        RuntimeDir.create(base, "svc")
    assert err.value.code == "RUNTIME_DIR_UNWRITABLE"
    assert fragment in err.value.message


@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory another user's needs root (chown)")
def test_a_runtime_base_made_by_another_user_is_refused(tmp_path: Path) -> None:
    """Another user creates `<tmp>/custodes-<uid>` first (a predictable name in a shared /tmp), open to all. The
    runtime must refuse it, so that user can never swap its instance directory for a link to the victim's files."""
    shared = tmp_path / "tmp"
    shared.mkdir(mode=0o1777)
    os.chmod(shared, 0o1777)
    base = shared / f"custodes-{os.getuid()}"
    base.mkdir()
    os.chmod(base, 0o777)
    os.chown(base, 65534, 65534)
    assert_refused(base, "belongs to uid 65534")
    os.chmod(base, 0o700)  # even closed to others: still not ours
    assert_refused(base, "belongs to uid 65534")
    assert list(base.iterdir()) == []


def test_a_runtime_base_writable_by_others_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    for mode in (0o777, 0o770, 0o702):
        os.chmod(base, mode)
        assert_refused(base, f"other users can write to it (mode {mode:04o})")
    assert list(base.iterdir()) == []


def test_a_runtime_base_that_is_a_link_is_refused(tmp_path: Path) -> None:
    precious = precious_dir(tmp_path)
    base = tmp_path / "base"
    base.symlink_to(precious)
    assert_refused(base, "it is a symbolic link")
    assert sorted(p.name for p in precious.iterdir()) == ["db.sqlite", "id_ed25519", "thesis.tex"]


def test_a_swapped_instance_directory_is_never_followed(tmp_path: Path) -> None:
    """Even in a base others may write to (sticky, as /tmp), the instance directory swapped for a link to the victim's
    directory (rename needs no right on the victim's files) must not make the runtime write or delete there. Before
    the fix cleanup ran `glob("*")` through the link and deleted every file in it."""
    precious = precious_dir(tmp_path)
    base = tmp_path / "sticky"
    base.mkdir()
    os.chmod(base, 0o1777)
    rundir = RuntimeDir.create(base, "svc")
    assert stat.S_IMODE(rundir.path.stat().st_mode) == 0o700
    rundir.write_status({"state": "running", "renewals": 0})
    moved = rundir.path.with_name(rundir.path.name + ".moved")
    rundir.path.rename(moved)
    rundir.path.symlink_to(precious)
    rundir.write_status({"state": "running", "renewals": 1})
    rundir.cleanup()
    assert sorted(p.name for p in precious.iterdir()) == ["db.sqlite", "id_ed25519", "thesis.tex"]
    assert rundir.path.is_symlink()  # the link is not ours to remove
    assert list(moved.iterdir()) == []  # what was ours is gone (status.json went into it, not into the link)


# ------------------------------------------------------------------------------------------------- the Python API


def test_the_python_api_reports_a_lost_lease_at_its_expiry_while_the_cas_hangs(
    tmp_path: Path, owner: Owner, sim: SimVendor
) -> None:
    """The CAS stops answering (SIGSTOP: a host starving it, a network black hole) while the lease is being renewed:
    `on_lost` must run at the lease's expiry (4 s), not when the hung request times out (10 s later: 12.1 s)."""
    own = CasProcess(tmp_path / "cas", sim.path).start()
    try:
        app = App(tmp_path, own, owner, sim.platforms()[0].path, "print('x')\n", ttl="4s")
        app.put()
        lost: list[tuple[float, object]] = []
        done = threading.Event()

        def on_lost(event: object) -> None:
            lost.append((time.monotonic(), event))
            done.set()

        opened = time.monotonic()
        session = Session.open(app.name, "svc", source=SimulatedProvider(app.platform, [app.app]), cas=own.url,
                               cas_cert=own.cert, on_lost=on_lost)
        assert own.proc is not None
        os.kill(own.proc.pid, signal.SIGSTOP)
        try:
            assert done.wait(20)
        finally:
            os.kill(own.proc.pid, signal.SIGCONT)
            session.close()
        at, event = lost[0]
        assert at - opened < 4 + 1.0, f"on_lost {at - opened:.1f} s after the start of a 4 s lease"
        assert event.reason == "expired" and event.code == "LEASE_EXPIRED"  # type: ignore[attr-defined]
        assert len(lost) == 1
    finally:
        own.stop()


# --------------------------------------------------------------------------------------------- redacted output


def test_redacted_show_config_carries_no_digest_of_a_guessable_secret(
    tmp_path: Path, cas: CasProcess, owner: Owner, sim: SimVendor
) -> None:
    """`attest --show-config` without --reveal printed a 48-bit unsalted SHA-256 prefix of every value: a 4-digit
    PIN was recovered from it in 10,000 guesses. Now the value is its length, and nothing else."""
    app = App(tmp_path, cas, owner, sim.platforms()[0].path, "print('x')\n")
    text = app.policy().replace('PASSWORD: "$$custodes::password$$"', 'DOOR_PIN: "$$custodes::pin$$"')
    text += '  - {name: pin, kind: explicit, value: "4711"}\n'
    policy = load_policy(text, source="policy")
    with cas.client() as client:
        client.put_policy(text, name=policy.name, policy_hash=policy.hash, predecessor=None,
                          signers=[("owner", owner.key)], create=True)
    result = subprocess.run(
        custodes_cmd("attest", "--policy", app.name, "--service", "svc", "--sim-platform", str(app.platform),
                     "--sim-measure", str(app.app), "--show-config", "--json"),
        env=cas.env(), capture_output=True, text=True, timeout=60, check=True,
    )
    config = json.loads(result.stdout)["config"]
    assert config["environment"] == {"DOOR_PIN": "<redacted 4 bytes>"}
    assert config["files"][0]["content"] == "<redacted 30 bytes>"
    assert config["command"][1:] == [f"<redacted {len(str(app.app))} bytes>", f"<redacted {len(str(tmp_path))} bytes>"]
    assert "sha256" not in result.stdout and "4711" not in result.stdout
