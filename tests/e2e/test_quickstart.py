"""The README's first command: `custodes quickstart` must keep exiting 0, with every step behaving."""

from __future__ import annotations

import subprocess

from _support import custodes_cmd


def test_quickstart_runs_every_step_and_exits_zero() -> None:
    result = subprocess.run(custodes_cmd("quickstart"), capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "quickstart OK" in out
    assert "MEASUREMENT_MISMATCH" in out  # the tampered app is refused
    assert "MEASUREMENT_DEPRECATED" in out  # the deprecated version is stopped
