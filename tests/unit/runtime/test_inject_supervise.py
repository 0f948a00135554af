"""File materialisation (modes, atomicity, ownership-aware cleanup), the app environment, and the supervisor."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from _support import alive
from custodes.errors import CustodesError
from custodes.policy import RenderedConfig, RenderedFile
from custodes.runtime import LeaseLost
from custodes.runtime.inject import child_environment, write_files
from custodes.runtime.supervisor import Supervisor, exit_code_of


def test_files_get_exact_modes_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        done = write_files([RenderedFile(str(tmp_path / "a" / "b" / "x"), 0o644, b"x"),
                            RenderedFile(str(tmp_path / "y"), 0o400, b"y")])
    finally:
        os.umask(old)
    assert (tmp_path / "a" / "b" / "x").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "y").stat().st_mode & 0o777 == 0o400
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o700
    done.cleanup()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_cleanup_leaves_another_instances_file_alone(tmp_path: Path) -> None:
    """Two instances write the same path (a rolling update on one host): the first to stop removes nothing of the
    second's, because the path is no longer its inode."""
    path = str(tmp_path / "shared" / "conf")
    first = write_files([RenderedFile(path, 0o600, b"same")])
    second = write_files([RenderedFile(path, 0o600, b"same")])
    first.cleanup()
    assert Path(path).read_bytes() == b"same"
    second.cleanup()
    assert not Path(path).exists()
    assert (tmp_path / "shared").is_dir()  # the first instance made it but could not remove it while in use


def test_an_existing_symlink_at_the_path_is_replaced_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("untouched")
    (tmp_path / "link").symlink_to(target)
    write_files([RenderedFile(str(tmp_path / "link"), 0o600, b"secret")])
    assert target.read_text() == "untouched"
    assert not (tmp_path / "link").is_symlink() and (tmp_path / "link").read_bytes() == b"secret"


@pytest.mark.parametrize("bad", ["relative/path", "/a/../b", "/"])
def test_paths_must_be_plain_absolute(bad: str) -> None:
    with pytest.raises(CustodesError) as err:
        write_files([RenderedFile(bad, 0o600, b"")])
    assert err.value.code == "FILE_PATH_INVALID"


def test_unwritable_parent_is_a_clear_error_and_nothing_remains(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(CustodesError) as err:
        write_files([RenderedFile(str(tmp_path / "ok" / "a"), 0o600, b"secret-bytes"),
                     RenderedFile(str(tmp_path / "file" / "sub" / "b"), 0o600, b"secret-bytes")])
    assert err.value.code == "FILE_PATH_UNWRITABLE"
    assert str(tmp_path / "file" / "sub") in err.value.message and "secret-bytes" not in str(err.value)
    assert not (tmp_path / "ok").exists()


def test_child_environment_is_the_policys_plus_the_allow_list_only() -> None:
    config = RenderedConfig(("app",), {"A": "policy", "B": "b"}, (), None, ("A", "HOME", "MISSING"))
    env = child_environment(config, {"A": "runtime", "HOME": "/root", "PATH": "/bin", "SECRET": "x"})
    assert env == {"A": "policy", "B": "b", "HOME": "/root"}


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_supervisor_stops_a_stubborn_app_with_sigkill_after_the_grace(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    with Supervisor() as sup:
        sup.spawn([*python("import signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                         "open(sys.argv[1], 'w').close()\ntime.sleep(60)"), str(ready)], {}, None)
        while not ready.exists():
            sup.interrupted(0.01)
        outcome = sup.supervise(lost=lambda: LeaseLost("refused", "X", "y"), stop_grace=0.3)
    assert outcome.killed and outcome.app_exit_code == 128 + signal.SIGKILL
    assert outcome.lost is not None and outcome.lost.code == "X"


def test_supervisor_stops_at_the_lease_deadline_even_without_a_report() -> None:
    import time  # noqa: PLC0415

    due = time.monotonic() + 0.2
    with Supervisor() as sup:
        sup.spawn(python("import time; time.sleep(60)"), {}, None)
        outcome = sup.supervise(deadline=lambda: due, stop_grace=5)
    assert outcome.lost is not None and outcome.lost.code == "LEASE_EXPIRED"
    assert outcome.app_exit_code == 128 + signal.SIGTERM and not outcome.killed


def test_supervisor_reports_a_missing_program_or_cwd(tmp_path: Path) -> None:
    with Supervisor() as sup:
        with pytest.raises(CustodesError) as err:
            sup.spawn(["no-such-program-custodes"], {"PATH": str(tmp_path)}, None)
        assert err.value.code == "APP_NOT_FOUND"
        with pytest.raises(CustodesError) as err:
            sup.spawn([sys.executable], {}, str(tmp_path / "missing"))
        assert err.value.code == "APP_NOT_FOUND" and "working directory" in err.value.message


def test_exit_code_of_a_signalled_process() -> None:
    assert exit_code_of(9) == 128 + 9  # raw wait status: killed by signal 9
    assert exit_code_of(3 << 8) == 3


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    import time  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)  # do not leave it behind; the test fails
            return False
        time.sleep(0.02)
    return True


# The app starts a child that ignores SIGTERM (in the app's process group), writes "APP CHILD" pids, then serves.
WITH_CHILD = (
    "import os, signal, subprocess, sys, time\n"
    "c = subprocess.Popen([sys.executable, '-c', 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    " time.sleep(60)'])\n"
    "open(sys.argv[1], 'w').write(f'{os.getpid()} {c.pid}')\n"
    "time.sleep(60)\n"
)


def spawn_with_child(sup: Supervisor, tmp_path: Path) -> tuple[int, int]:
    pids = tmp_path / "pids"
    sup.spawn([*python(WITH_CHILD), str(pids)], {}, None)
    while not (pids.exists() and len(pids.read_text().split()) == 2):
        sup.interrupted(0.01)
    app, child = (int(p) for p in pids.read_text().split())
    return app, child


def test_fail_stop_signals_the_apps_whole_process_group(tmp_path: Path) -> None:
    """The app dies at SIGTERM; its child ignores it and gets the rest of the grace, then SIGKILL with the group."""
    with Supervisor() as sup:
        app, child = spawn_with_child(sup, tmp_path)
        assert os.getpgid(app) == app and os.getsid(app) == app  # a session and group of its own
        assert os.getpgid(child) == app
        outcome = sup.supervise(lost=lambda: LeaseLost("refused", "X", "y"), stop_grace=0.3)
    assert outcome.app_exit_code == 128 + signal.SIGTERM and not outcome.killed  # the app itself went at SIGTERM
    assert wait_gone(child), "the app's child outlived the fail-stop"


def test_an_error_before_supervision_still_stops_the_app_and_its_group(tmp_path: Path) -> None:
    """Leaving the supervisor (an exception in the runtime) while the app runs stops the app and its group."""
    pids: list[int] = []

    def runtime_fails() -> None:
        with Supervisor() as sup:
            pids.extend(spawn_with_child(sup, tmp_path))
            raise RuntimeError("the runtime failed")

    with pytest.raises(RuntimeError):
        runtime_fails()
    assert len(pids) == 2 and [wait_gone(pid) for pid in pids] == [True, True]


def test_stop_is_sigterm_grace_sigkill_for_the_group(tmp_path: Path) -> None:
    with Supervisor() as sup:
        app, child = spawn_with_child(sup, tmp_path)
        outcome = sup.stop(0.2)
        assert outcome is not None and outcome.app_exit_code == 128 + signal.SIGTERM
        assert sup.stop(0.2) is None  # idempotent
    assert [wait_gone(app), wait_gone(child)] == [True, True]


PARENT_DEATH = r'''
import os, signal, sys, threading, time
from custodes.runtime.supervisor import Supervisor
if sys.argv[1] == "threaded":
    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
with Supervisor() as sup:
    pid = sup.spawn([sys.executable, "-c", "import time; time.sleep(30)"], {}, None)
    with open(sys.argv[2], "w") as fh:
        fh.write(f"{pid} {getattr(sup, 'parent_death_signal', None)}")
    os.kill(os.getpid(), signal.SIGKILL)  # the runtime dies outright
'''


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_the_app_dies_with_a_single_threaded_runtime_only_then_is_the_hook_used(tmp_path: Path) -> None:
    """A single-threaded runtime gives the app PR_SET_PDEATHSIG (it dies with the runtime); one with other threads
    running does not run Python code between fork and exec (no parent-death signal, documented)."""
    import subprocess  # noqa: PLC0415

    for mode, expected in (("single", True), ("threaded", False)):
        out = tmp_path / mode
        subprocess.run([sys.executable, "-c", PARENT_DEATH, mode, str(out)], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30, check=False)
        pid_text, flag = out.read_text().split()
        pid = int(pid_text)
        try:
            assert flag == str(expected)
            if expected:
                assert wait_gone(pid), "the app outlived its runtime"
            else:
                assert alive(pid)
        finally:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
