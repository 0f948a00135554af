"""End to end: ``custodes run`` (a real process) attests to a real CAS, writes the files, and starts a real app."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from test_run_harness import ProbeSetup, error_lines, finish, sha

from _support import CasProcess, Owner
from custodes.evidence.simvendor import SimVendor
from custodes.runtime import ExitCode, SimulatedProvider


@pytest.fixture
def setup(tmp_path: Path, cas: CasProcess, owner: Owner, sim: SimVendor) -> ProbeSetup:
    return ProbeSetup(tmp_path, cas, owner, sim.platforms()[0].path)


def expected_config(setup: ProbeSetup):  # type: ignore[no-untyped-def]
    """What the CAS gives this service, fetched independently of ``custodes run``."""
    with setup.cas.client() as client:
        return client.attest(setup.name, "probe", SimulatedProvider(setup.platform, [setup.probe])).rendered()


def test_app_receives_exactly_the_policys_argv_env_files_and_cwd(setup: ProbeSetup) -> None:
    setup.mode = "exit:0"
    setup.create_policy()
    code, _, err = finish(setup.start())
    assert code == 0, err
    report = setup.read_report()
    config = expected_config(setup)
    assert report["argv"] == [sha(a) for a in config.command]
    assert len(config.command) == 6 and config.command[-1] == "two words"
    # The runtime's own environment (CUSTODES_CAS, RUNTIME_ONLY_SECRET, PATH, HOME...) does not leak in; only
    # INHERITED_OK, which inherit_env names, does (ALSO_INHERITED is named too, but the runtime does not have it).
    expected_env = {k: sha(v) for k, v in config.environment.items()} | {"INHERITED_OK": sha("inherited ok")}
    assert report["env"] == dict(sorted(expected_env.items()))
    assert "RUNTIME_ONLY_SECRET" in setup.env() and "CUSTODES_CAS" in setup.env()
    assert report["files"] == {
        str(setup.secret_file): {"sha256": sha(config.files[0].content), "mode": "0o600"},
        str(setup.public_file): {"sha256": sha(b"hello, world\n"), "mode": "0o644"},
    }
    assert config.files[0].content.startswith(b"password=") and len(config.files[0].content) == 30
    assert report["cwd"] == str(setup.workdir)


def test_files_and_runtime_dir_are_removed_on_exit(setup: ProbeSetup) -> None:
    setup.mode = "exit:0"
    setup.create_policy()
    code, _, err = finish(setup.start())
    assert code == 0, err
    assert setup.read_report()["files"]  # they existed while the app ran
    assert not setup.secret_file.exists() and not setup.public_file.exists()
    assert not setup.files_dir.exists()  # the directories the runtime created are gone too
    assert list((setup.root / "rt").iterdir()) == []


@pytest.mark.parametrize("app_code", [0, 3, 42])
def test_exit_code_is_propagated(setup: ProbeSetup, app_code: int) -> None:
    setup.mode = f"exit:{app_code}"
    setup.create_policy()
    code, _, err = finish(setup.start())
    assert code == app_code
    assert error_lines(err) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signals_are_forwarded_to_the_app(setup: ProbeSetup, signum: int) -> None:
    setup.create_policy()
    proc = setup.start()
    setup.wait_for(setup.started, proc=proc)
    proc.send_signal(signum)
    code, _, err = finish(proc)
    assert code == 0, err  # the probe exits 0 after recording the signal
    assert f"signal {int(signum)}" in setup.event_lines()


def test_orphaned_grandchildren_are_reaped(setup: ProbeSetup) -> None:
    """The app leaves a grandchild behind; the runtime (a subreaper, as PID 1 would be) reaps it: no zombie."""
    setup.mode = "orphan"
    setup.create_policy()
    proc = setup.start()
    setup.wait_for(lambda: any(line.startswith("orphan") for line in setup.event_lines()), proc=proc)
    orphan = int(next(line for line in setup.event_lines() if line.startswith("orphan")).split()[1])
    status = Path(f"/proc/{orphan}/status")
    if status.exists():  # re-parented to the runtime while it ran
        assert f"PPid:\t{proc.pid}\n" in status.read_text() or not status.exists()
    # An unreaped orphan would stay a zombie (and its /proc entry) for as long as the runtime lives.
    setup.wait_for(lambda: not status.exists(), proc=proc)
    proc.send_signal(signal.SIGTERM)
    assert finish(proc)[0] == 0


def test_stdout_and_stderr_are_passed_through(setup: ProbeSetup) -> None:
    setup.mode = "exit:0"
    setup.probe.write_text("import sys\nprint('to stdout')\nprint('to stderr', file=sys.stderr)\n")
    setup.create_policy()
    code, out, err = finish(setup.start())
    assert code == 0, err
    assert out == "to stdout\n"
    assert "to stderr\n" in err


def test_runtime_status_file_has_no_secrets(setup: ProbeSetup) -> None:
    setup.create_policy()
    proc = setup.start()
    setup.wait_for(setup.started, proc=proc)
    status_files = list((setup.root / "rt").glob("*/status.json"))
    assert len(status_files) == 1
    text = status_files[0].read_text()
    password = expected_config(setup).environment["PASSWORD"]
    assert password not in text and '"state": "running"' in text
    proc.send_signal(signal.SIGTERM)
    assert finish(proc)[0] == 0
    assert not status_files[0].exists()


def test_unknown_exit_codes_do_not_collide_with_the_documented_ones() -> None:
    codes = [int(c) for c in ExitCode]
    assert len(set(codes)) == len(codes)
    assert all(64 <= c <= 127 for c in codes) and os.EX_USAGE == ExitCode.USAGE
