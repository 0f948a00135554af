"""``custodes policy check`` and ``hash`` (offline)."""

from __future__ import annotations

from pathlib import Path

from policy_fixtures import FULL_YAML, MINIMAL
from typer.testing import CliRunner

from custodes.cli._policy import policy_app
from custodes.policy import load_policy


def run(*args: str):
    return CliRunner().invoke(policy_app, list(args))


def test_check_prints_ok_hash_and_warnings(tmp_path: Path) -> None:
    path = tmp_path / "full.yaml"
    path.write_text(FULL_YAML)
    result = run("check", str(path))
    assert result.exit_code == 0
    assert result.stdout == f"OK {load_policy(FULL_YAML).hash}\n"
    assert result.stderr.splitlines() == [
        f"warning: {path}:93:49: secrets[4].value: explicit secret values belong in encrypted policies",
        f"warning: {path}:94:44: secrets[5].value: explicit secret values belong in encrypted policies",
    ]


def test_check_prints_every_error_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(MINIMAL.replace("signers: [alice]", "signers: [alice, bob]").replace("::pw$$", "::nope$$"))
    result = run("check", str(path))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}:4:29: access.update.signers[1]: key 'bob' is not declared under keys",
        f"{path}:9:20: services[0].command[1]: placeholder names unknown secret 'nope'",
    ]


def test_hash_prints_only_the_hash(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(MINIMAL)
    result = run("hash", str(path))
    assert result.exit_code == 0
    assert result.stdout == load_policy(MINIMAL).hash + "\n"


def test_hash_of_invalid_or_missing_file_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [")
    result = run("hash", str(bad))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"{bad}:2:1: YAML syntax error: did not find expected node content\n"
    missing = run("hash", str(tmp_path / "missing.yaml"))
    assert missing.exit_code == 1
    assert missing.stderr == f"{tmp_path / 'missing.yaml'}: cannot read file (No such file or directory)\n"


def test_oversized_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (3 * 1024 * 1024))
    result = run("check", str(path))
    assert result.exit_code == 1
    assert result.stderr == f"{path}:1:1: policy is larger than 1048576 bytes\n"
