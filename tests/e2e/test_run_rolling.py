"""A rolling update with real processes: two versions side by side with identical secrets; then the old version is
deprecated, and once its grace has passed its renewal is refused and it is stopped while the new one runs on."""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime
from pathlib import Path

from test_run_harness import ProbeSetup, error_lines, finish, pid_alive

from _support import CasProcess, Owner
from custodes.evidence.simvendor import SimVendor
from custodes.runtime import ExitCode


def status_renewals(root: Path) -> int:
    try:
        return json.loads(next((root / "rt").glob("*/status.json")).read_text())["renewals"]
    except (StopIteration, OSError, ValueError):
        return -1


def test_rolling_update_then_deprecation_stops_only_the_old_version(
    tmp_path: Path, cas: CasProcess, owner: Owner, sim: SimVendor
) -> None:
    name = "e2e/rolling"
    # One service, one argv (`python probe.py` in the instance's own directory, as one image per pod would be),
    # the same file paths; v2's probe differs by a line, so it measures differently.
    old = ProbeSetup(tmp_path / "old", cas, owner, sim.platforms()[0].path, ttl="2s", grace="2s", name=name,
                     relative=True)
    new = ProbeSetup(tmp_path / "new", cas, owner, sim.platforms()[1].path, ttl="2s", grace="2s", name=name,
                     relative=True)
    new.probe.write_text(new.probe.read_text() + "\n# version 2\n")
    assert old.measurement != new.measurement

    v1 = f"{{tee: simulated, measurement: {json.dumps(old.measurement)}}}"
    v2 = f"{{tee: simulated, measurement: {json.dumps(new.measurement)}}}"
    first = old.create_policy(measurements=[v1])
    v1_proc = old.start()
    old.wait_for(old.started, proc=v1_proc)

    # The update: v2's measurement is added; v1 keeps its lease (same policy, still listed).
    second = old.create_policy(measurements=[v1, v2], predecessor=first)
    v2_proc = new.start()
    new.wait_for(lambda: len(old.read_report_lines()) >= 2, proc=v2_proc)
    r1, r2 = old.read_report_lines()[:2]
    assert r1["pid"] != r2["pid"] and pid_alive(r1["pid"]) and pid_alive(r2["pid"])
    assert r1["env"] == r2["env"]  # identical secrets (digests of every value)
    assert r1["files"] == r2["files"]

    # The owner deprecates v1 with an advisory; the policy's grace D is 2 s.
    since = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    v1_dep = f"{{tee: simulated, measurement: {json.dumps(old.measurement)}, " \
             f"deprecated: {{since: {since}, advisory: CVE-2026-0001}}}}"
    old.create_policy(measurements=[v1_dep, v2], predecessor=second)

    code, _, err = finish(v1_proc)
    assert code == ExitCode.LEASE_REFUSED
    [line] = error_lines(err)
    assert line.startswith("error: MEASUREMENT_DEPRECATED: lease renewal refused")
    assert not pid_alive(r1["pid"])
    # v2 is unaffected: still running, still renewing, its files still in place.
    before = status_renewals(tmp_path / "new")
    new.wait_for(lambda: status_renewals(tmp_path / "new") > before, proc=v2_proc)
    assert pid_alive(r2["pid"]) and v2_proc.poll() is None
    assert old.secret_file.exists()
    v2_proc.send_signal(signal.SIGTERM)
    assert finish(v2_proc)[0] == 0
