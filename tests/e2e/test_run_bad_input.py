"""Bad input: one ``error: CODE: message`` line, a documented non-zero exit code, and the app never starts."""

from __future__ import annotations

import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from test_run_harness import ProbeSetup, error_lines

from _support import CasProcess, Owner
from custodes.evidence.simvendor import SimVendor
from custodes.runtime import ExitCode


@pytest.fixture
def setup(tmp_path: Path, cas: CasProcess, owner: Owner, sim: SimVendor) -> ProbeSetup:
    return ProbeSetup(tmp_path, cas, owner, sim.platforms()[0].path, mode="exit:0")


def run_once(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, done.stderr


def assert_refused(setup: ProbeSetup, code: int, stderr: str, expected_code: int, error_code: str) -> None:
    assert code == expected_code, stderr
    lines = error_lines(stderr)
    assert len(lines) == 1 and lines[0].startswith(f"error: {error_code}: "), stderr
    assert not setup.report.exists(), "the application must never start"
    assert not setup.secret_file.exists()


def replace_arg(argv: list[str], flag: str, value: str) -> list[str]:
    i = argv.index(flag)
    return [*argv[: i + 1], value, *argv[i + 2 :]]


def test_unknown_policy(setup: ProbeSetup) -> None:
    setup.create_policy()
    code, err = run_once(replace_arg(setup.argv(), "--policy", "e2e/no-such-policy"), setup.env())
    assert_refused(setup, code, err, ExitCode.REFUSED, "POLICY_NOT_FOUND")


def test_unknown_service(setup: ProbeSetup) -> None:
    setup.create_policy()
    code, err = run_once(replace_arg(setup.argv(), "--service", "no-such-service"), setup.env())
    assert_refused(setup, code, err, ExitCode.REFUSED, "SERVICE_UNKNOWN")


def test_cas_certificate_mismatch(setup: ProbeSetup, tmp_path: Path) -> None:
    """The runtime pins a certificate that is not the CAS's: the TLS handshake fails, nothing is retried."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not the CAS")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256())
    )
    wrong = tmp_path / "wrong-cert.pem"
    wrong.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    setup.create_policy()
    code, err = run_once(setup.argv(), {**setup.env(), "CUSTODES_CAS_CERT": str(wrong)})
    assert_refused(setup, code, err, ExitCode.CAS_UNTRUSTED, "CAS_TLS_FAILED")


def test_unreadable_cas_certificate(setup: ProbeSetup, tmp_path: Path) -> None:
    setup.create_policy()
    code, err = run_once(setup.argv(), {**setup.env(), "CUSTODES_CAS_CERT": str(tmp_path / "missing.pem")})
    assert_refused(setup, code, err, ExitCode.USAGE, "CAS_CERT_INVALID")


def test_unwritable_file_path(setup: ProbeSetup, tmp_path: Path) -> None:
    """The second file's parent "directory" is a regular file: the first file, already written, is removed again."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where a directory should be")
    setup.create_policy(file_paths=[str(setup.secret_file), str(blocker / "sub" / "public.txt")])
    code, err = run_once(setup.argv(), setup.env())
    assert_refused(setup, code, err, ExitCode.USAGE, "FILE_PATH_UNWRITABLE")
    assert str(blocker / "sub") in err
    assert not setup.files_dir.exists()


@pytest.mark.parametrize("tee", ["auto", "tsm", "gramine"])
def test_missing_evidence_provider(setup: ProbeSetup, tmp_path: Path, tee: str) -> None:
    setup.create_policy()
    argv = [*setup.argv(tee=tee), "--tsm-root", str(tmp_path / "no-tsm"), "--gramine-root", str(tmp_path / "no-dev")]
    code, err = run_once(argv, setup.env())
    assert_refused(setup, code, err, ExitCode.USAGE, "PROVIDER_UNAVAILABLE")


def test_simulated_provider_without_a_platform(setup: ProbeSetup, tmp_path: Path) -> None:
    setup.create_policy()
    code, err = run_once(replace_arg(setup.argv(), "--sim-platform", str(tmp_path)), setup.env())
    assert_refused(setup, code, err, ExitCode.USAGE, "PROVIDER_UNAVAILABLE")


def test_unreachable_cas_at_start_is_retried_then_given_up(setup: ProbeSetup) -> None:
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    setup.create_policy()
    argv = [*setup.argv(), "--start-timeout", "1"]
    code, err = run_once(argv, {**setup.env(), "CUSTODES_CAS": f"https://127.0.0.1:{port}"})
    assert_refused(setup, code, err, ExitCode.CAS_UNREACHABLE, "CAS_UNREACHABLE")
    assert "retrying in" in err  # it did retry before giving up


@pytest.mark.parametrize("how", ["flag", "env"])
def test_runtime_dir_that_is_a_file(setup: ProbeSetup, tmp_path: Path, how: str) -> None:
    """--runtime-dir (or CUSTODES_RUNTIME_DIR) naming a regular file: one line and 64, not a NotADirectoryError
    traceback (exit 1) after the attestation."""
    not_a_dir = tmp_path / "rt-file"
    not_a_dir.write_text("x")
    setup.create_policy()
    if how == "flag":
        code, err = run_once(replace_arg(setup.argv(), "--runtime-dir", str(not_a_dir)), setup.env())
    else:
        argv = setup.argv()
        i = argv.index("--runtime-dir")
        code, err = run_once(argv[:i] + argv[i + 2 :], setup.env(CUSTODES_RUNTIME_DIR=str(not_a_dir)))
    assert_refused(setup, code, err, ExitCode.USAGE, "RUNTIME_DIR_UNWRITABLE")
    assert "Traceback" not in err and f"{not_a_dir} as the runtime directory: it is not a directory" in err
    assert not_a_dir.read_text() == "x"


def test_runtime_dir_writable_by_others(setup: ProbeSetup, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    setup.create_policy()
    code, err = run_once(replace_arg(setup.argv(), "--runtime-dir", str(shared)), setup.env())
    assert_refused(setup, code, err, ExitCode.USAGE, "RUNTIME_DIR_UNWRITABLE")
    assert "other users can write to it (mode 0777)" in err
    assert list(shared.iterdir()) == []
