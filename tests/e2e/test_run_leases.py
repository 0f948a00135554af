"""Leases end to end: renewal keeps the app running; a refusal or an expiry stops it (SIGTERM, grace, SIGKILL)."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_run_harness import ProbeSetup, error_lines, finish, pid_alive

from _support import CasProcess, Owner
from custodes.evidence.simvendor import SimVendor
from custodes.runtime import ExitCode


def renewals(setup: ProbeSetup) -> int:
    status = list((setup.root / "rt").glob("*/status.json"))
    try:
        return json.loads(status[0].read_text())["renewals"] if status else 0
    except (OSError, ValueError):  # replaced while being read
        return 0


@pytest.fixture
def setup(tmp_path: Path, cas: CasProcess, owner: Owner, sim: SimVendor) -> ProbeSetup:
    return ProbeSetup(tmp_path, cas, owner, sim.platforms()[0].path, ttl="1s")


@pytest.fixture
def own_cas(tmp_path_factory: pytest.TempPathFactory, sim: SimVendor) -> Iterator[CasProcess]:
    process = CasProcess(tmp_path_factory.mktemp("own-cas"), sim.path).start()
    yield process
    process.stop()


def test_normal_renewal_keeps_the_app_running_across_three_renewals(setup: ProbeSetup) -> None:
    setup.create_policy()
    proc = setup.start()
    setup.wait_for(setup.started, proc=proc)
    pid = setup.read_report()["pid"]
    setup.wait_for(lambda: renewals(setup) >= 3, proc=proc)
    assert pid_alive(pid) and proc.poll() is None
    assert setup.event_lines() == ["started"]  # no signal reached the app
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc)
    assert code == 0 and error_lines(err) == []
    assert err.count("custodes: lease renewed until") >= 3


def test_refused_renewal_stops_the_app_with_sigterm_then_sigkill(setup: ProbeSetup) -> None:
    """The owner drops the running version's measurement: its next renewal is refused. The app ignores SIGTERM,
    so after ``lease.stop_grace`` (1 s) it is killed, and ``custodes run`` exits LEASE_REFUSED."""
    setup.mode = "ignore-term"
    current = setup.create_policy()
    proc = setup.start("--stop-grace", "1")
    setup.wait_for(setup.started, proc=proc)
    pid = setup.read_report()["pid"]
    other = "{tee: simulated, measurement: " + json.dumps("ab" * 48) + "}"
    setup.create_policy(measurements=[other], predecessor=current)
    code, _, err = finish(proc)
    assert code == ExitCode.LEASE_REFUSED
    [line] = error_lines(err)
    assert line.startswith("error: MEASUREMENT_MISMATCH: lease renewal refused")
    assert "SIGKILL" in line
    assert setup.event_lines() == ["started", "signal 15"]  # it got SIGTERM first, ignored it, and was killed
    assert not pid_alive(pid)
    assert not setup.secret_file.exists()


def test_refused_renewal_with_a_cooperative_app_ends_at_sigterm(setup: ProbeSetup) -> None:
    current = setup.create_policy()
    proc = setup.start()
    setup.wait_for(setup.started, proc=proc)
    other = "{tee: simulated, measurement: " + json.dumps("cd" * 48) + "}"
    setup.create_policy(measurements=[other], predecessor=current)
    code, _, err = finish(proc)
    assert code == ExitCode.LEASE_REFUSED
    [line] = error_lines(err)
    assert line.endswith("application stopped (SIGTERM)")
    assert setup.event_lines() == ["started", "signal 15"]


def test_lease_expiring_while_the_cas_is_unreachable_stops_the_app(
    tmp_path: Path, own_cas: CasProcess, owner: Owner, sim: SimVendor
) -> None:
    setup = ProbeSetup(tmp_path, own_cas, owner, sim.platforms()[0].path, ttl="2s")
    setup.create_policy()
    proc = setup.start()
    setup.wait_for(setup.started, proc=proc)
    own_cas.stop()  # every renewal now fails with CAS_UNREACHABLE; the runtime must not extend the lease itself
    code, _, err = finish(proc)
    assert code == ExitCode.LEASE_EXPIRED
    [line] = error_lines(err)
    assert line.startswith("error: LEASE_EXPIRED: lease expired")
    assert setup.event_lines() == ["started", "signal 15"]
    assert not setup.secret_file.exists()
