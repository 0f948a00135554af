"""The README's first command: `custodes quickstart` must keep exiting 0, with every step behaving."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from _support import custodes_cmd
from custodes.cli._quickstart import _Instance, _stop_all


def test_quickstart_runs_every_step_and_exits_zero() -> None:
    result = subprocess.run(custodes_cmd("quickstart"), capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "quickstart OK" in out
    assert "MEASUREMENT_MISMATCH" in out  # the tampered app is refused
    assert "MEASUREMENT_DEPRECATED" in out  # the deprecated version is stopped


RUNTIME_STANDIN = r'''
import signal, sys, time
marker = sys.argv[1]
def stop(signum, frame):
    open(marker, "w").write("stopped its app and removed its files")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop if sys.argv[2] == "cooperative" else signal.SIG_IGN)
open(marker + ".ready", "w").close()
while True:
    time.sleep(0.05)
'''


def test_quickstart_stops_its_runtimes_with_sigterm_before_sigkill(tmp_path: Path) -> None:
    """On a failure or Ctrl-C the quickstart used to SIGKILL its `custodes run` children, which then could neither stop
    their apps nor remove their files. Now they get SIGTERM, and SIGKILL only if they are still running after the
    timeout."""
    script = tmp_path / "runtime.py"
    script.write_text(RUNTIME_STANDIN)
    polite, stubborn = tmp_path / "polite", tmp_path / "stubborn"
    instances = [
        _Instance(name, tmp_path, [sys.executable, str(script), str(marker), name], {})
        for name, marker in (("cooperative", polite), ("stubborn", stubborn))
    ]
    deadline = time.monotonic() + 30
    while not all(Path(f"{m}.ready").exists() for m in (polite, stubborn)):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    _stop_all(instances, timeout=1.0)
    assert instances[0].proc.returncode == 0 and polite.read_text().startswith("stopped its app")
    assert instances[1].proc.returncode == -9 and not stubborn.exists()
