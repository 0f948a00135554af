"""Test support: a real CAS process over TLS on loopback, simulated platforms, owner keys."""

from __future__ import annotations

import fcntl
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from custodes.client import CasClient
from custodes.clock import utcnow
from custodes.evidence.measure import measure_paths
from custodes.evidence.simvendor import SimVendor
from custodes.ledger.keys import fingerprint, generate_key, public_pem
from custodes.ledger.note import PrivateKey
from custodes.policy import load_policy
from custodes.runtime.providers import SimulatedProvider

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TESTVECTORS = PROJECT_ROOT.parent / "shared" / "testvectors"
_LISTENING = re.compile(r"listening on (https://\S+)")


def custodes_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "custodes", *args]


@dataclass
class CasProcess:
    """``custodes cas serve`` in a subprocess on a free port. Its stderr is kept for assertions."""

    data_dir: Path
    sim_vendor: Path | None
    proc: subprocess.Popen[str] | None = None
    url: str = ""
    stderr_lines: list[str] = field(default_factory=list)
    extra_args: list[str] = field(default_factory=list)

    def command(self) -> list[str]:
        args = ["cas", "serve", "--data-dir", str(self.data_dir), "--listen", "127.0.0.1:0"]
        if self.sim_vendor:
            args += ["--sim-vendor", str(self.sim_vendor)]
        return custodes_cmd(*args, *self.extra_args)

    def start(self, timeout: float = 30.0) -> CasProcess:
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy()
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_pump, args=(self.proc.stdout, lines, None), daemon=True).start()
        threading.Thread(target=_pump, args=(self.proc.stderr, None, self.stderr_lines), daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"CAS exited with {self.proc.returncode}: {''.join(self.stderr_lines)}"
                    ) from None
                continue
            match = _LISTENING.search(line)
            if match:
                self.url = match.group(1)
                return self
        self.stop()
        raise RuntimeError("CAS did not start in time")

    @property
    def cert(self) -> Path:
        return self.data_dir / "cas-cert.pem"

    def client(self) -> CasClient:
        return CasClient(self.url, self.cert)

    def env(self) -> dict[str, str]:
        return {**os.environ, "CUSTODES_CAS": self.url, "CUSTODES_CAS_CERT": str(self.cert)}

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def _pump(stream, into_queue, into_list) -> None:  # type: ignore[no-untyped-def]
    for line in stream:
        if into_queue is not None:
            into_queue.put(line)
        if into_list is not None:
            into_list.append(line)


@dataclass
class Owner:
    """A policy owner's key pair, referenced in policies by fingerprint or PEM."""

    name: str
    key: PrivateKey = field(default_factory=generate_key)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key.public_key())

    @property
    def pem(self) -> str:
        return public_pem(self.key.public_key())


@dataclass
class Workload:
    """A simulated workload: a platform directory and the files it measures."""

    platform: Path
    files: list[Path]
    debug: bool = False

    @property
    def measurement(self) -> str:
        return measure_paths(self.files).hex()

    def provider(self) -> SimulatedProvider:
        return SimulatedProvider(self.platform, self.files, debug=self.debug)


def flock_free(path: Path) -> bool:
    """Whether a new open file description could take ``path``'s flock right now (it is released at once)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def put_policy(client: CasClient, text: str, owner: Owner, *, create: bool = True) -> str:
    """Create (or update) a policy signed by its owner; returns its hash."""
    policy = load_policy(text)
    client.put_policy(
        text,
        name=policy.name,
        policy_hash=policy.hash,
        predecessor=policy.predecessor,
        signers=[("owner", owner.key)],
        create=create,
    )
    return policy.hash


def make_sim(path: Path, platforms: int = 2, tcb_level: int = 2) -> SimVendor:
    return SimVendor.init(path, platforms=platforms, tcb_level=tcb_level, now=utcnow())


def alive(pid: int) -> bool:
    """Running (a zombie counts as dead: it holds nothing any more)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False
