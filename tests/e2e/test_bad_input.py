"""Bad input gets a clear 4xx with a code from the API, and one line with a non-zero exit from the CLI."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from _support import CasProcess, Owner, Workload, custodes_cmd, make_sim
from conftest import simple_policy
from custodes.client import cas_ssl_context
from custodes.ledger.keys import fingerprint, load_private_key, write_key_pair
from custodes.policy import load_policy


@pytest.fixture
def http(cas: CasProcess):  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=cas.url, verify=cas_ssl_context(cas.cert)) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("POST", "/v1/attest/challenge", {"content": b"{not json"}, 400, "REQUEST_INVALID"),
        ("POST", "/v1/attest/challenge", {"json": {"policy": "x", "service": "y", "extra": 1}}, 400, "REQUEST_INVALID"),
        ("POST", "/v1/attest/challenge", {"json": {"policy": "../../etc", "service": "y"}}, 400, "REQUEST_INVALID"),
        ("POST", "/v1/attest/challenge", {"json": {"policy": "no/such", "service": "y"}}, 404, "POLICY_NOT_FOUND"),
        ("POST", "/v1/attest", {"json": {"policy": "a", "service": "b", "nonce": "!!", "public_key": "x",
                                         "evidence": {"type": "simulated", "data": "AA"}}}, 400, "REQUEST_INVALID"),
        ("POST", "/v1/attest", {"content": b"x" * (3 << 20), "headers": {"content-type": "application/json"}},
         413, "REQUEST_TOO_LARGE"),
        ("POST", "/v1/attest", {"content": (b"x" * (1 << 16) for _ in range(48)),
                                "headers": {"content-type": "application/json"}}, 413, "REQUEST_TOO_LARGE"),
        ("POST", "/v1/attest/challenge", {"json": ["policy", "service"]}, 400, "REQUEST_INVALID"),
        ("POST", "/v1/attest", {"content": b"", "headers": {"content-type": "application/json"}}, 400,
         "REQUEST_INVALID"),
        ("GET", "/v1/nowhere", {}, 404, "NOT_FOUND"),
        ("DELETE", "/v1/attest", {}, 405, "METHOD_NOT_ALLOWED"),
        ("POST", "/v1/policies", {"json": {"policy": "name: [", "note": "x"}}, 400, "POLICY_INVALID"),
        ("GET", "/v1/policies/no/such", {"headers": {"Custodes-Note": "!!"}}, 400, "REQUEST_INVALID"),
    ],
    ids=["not-json", "extra-field", "bad-name", "unknown-policy", "bad-base64", "too-large", "too-large-chunked",
         "not-an-object", "empty-body", "no-route",
         "bad-method", "bad-policy", "bad-note-header"],
)
def test_api_refuses_bad_input_with_a_code(http, method, path, kwargs, status, code) -> None:  # type: ignore[no-untyped-def]
    response = http.request(method, path, **kwargs)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert "Traceback" not in response.text


def test_openapi_document_is_served(http) -> None:  # type: ignore[no-untyped-def]
    doc = http.get("/v1/openapi.json").json()
    assert {"/v1/attest", "/v1/attest/challenge", "/v1/policies"} <= set(doc["paths"])


def test_validation_errors_never_echo_values(http) -> None:  # type: ignore[no-untyped-def]
    secret = "hunter2-super-secret-value"
    response = http.post("/v1/attest", json={"policy": "a", "service": "b", "nonce": secret, "public_key": secret,
                                             "evidence": {"type": "simulated", "data": 5}})
    assert response.status_code == 400
    assert secret not in response.text


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(custodes_cmd(*args), capture_output=True, text=True, env=env, timeout=60, check=False)


def test_cli_policy_check_reports_file_line_col(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: a/b\nservices:\n  - name: x\n    measurments: []\n")
    result = run_cli("policy", "check", str(bad))
    assert result.returncode == 1
    assert f"{bad}:4:5:" in result.stderr


@pytest.fixture(scope="module")
def known_policy(cas: CasProcess, sim) -> str:  # type: ignore[no-untyped-def]
    owner = Owner("owner")
    text = simple_policy("cli/known", owner, "ab" * 48)
    p = load_policy(text)
    with cas.client() as client:
        client.put_policy(text, name=p.name, policy_hash=p.hash, predecessor=None,
                          signers=[("owner", owner.key)], create=True)
    return p.name


@pytest.mark.parametrize(
    ("policy", "service", "code"),
    [("cli/missing", "app", "POLICY_NOT_FOUND"), ("cli/known", "nope", "SERVICE_UNKNOWN"),
     ("cli/known", "app", "MEASUREMENT_MISMATCH")],
    ids=["unknown-policy", "unknown-service", "wrong-measurement"],
)
def test_cli_attest_errors_are_one_line(cas: CasProcess, workload: Workload, known_policy: str, policy: str,
                                        service: str, code: str) -> None:
    result = run_cli("attest", "--policy", policy, "--service", service, "--sim-platform", str(workload.platform),
                     "--sim-measure", str(workload.files[0]), env=cas.env())
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(f"error: {code}:")


def test_cli_attest_without_a_platform_is_an_argument_error(cas: CasProcess, workload: Workload) -> None:
    result = run_cli("attest", "--policy", "cli/known", "--service", "app", env=cas.env())
    assert result.returncode == 1
    assert result.stderr.startswith("error: ARGUMENT_INVALID:")


def test_cli_refuses_a_cas_with_another_certificate(cas: CasProcess, workload: Workload, tmp_path: Path) -> None:
    other = CasProcess(tmp_path / "other", None).start()
    try:
        env = {**cas.env(), "CUSTODES_CAS_CERT": str(other.cert)}
        result = run_cli("attest", "--policy", "x/y", "--service", "s", "--sim-platform", str(workload.platform),
                         "--sim-measure", str(workload.files[0]), env=env)
    finally:
        other.stop()
    assert result.returncode == 1
    assert result.stderr.startswith("error: CAS_TLS_FAILED:")


@pytest.fixture(scope="module")
def cli_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated vendor, an owner key, a valid policy, and files that are not UTF-8 (nothing may change them)."""
    tmp_path = tmp_path_factory.mktemp("cli")
    make_sim(tmp_path / "sim", platforms=1)
    write_key_pair(tmp_path, "owner")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe name: x\n")
    (tmp_path / "note.txt").write_bytes(b"custodes/proposal/v1\n\xff\n")
    owner = fingerprint(load_private_key(tmp_path / "owner.key").public_key())
    (tmp_path / "ok.yaml").write_text(
        f"name: a/b\nkeys: {{owner: \"{owner}\"}}\n"
        "access: {read: [owner], update: {signers: [owner], threshold: 1}}\n"
        "security: {allow_simulated: true, tcb: {accept: [UpToDate], grace: 7d}}\n"
        f"services:\n  - name: s\n    measurements: [{{tee: simulated, measurement: \"{'0' * 96}\"}}]\n"
        "    command: [python3, app.py]\n"
    )
    return tmp_path


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["sim", "tcb", "publish", "sim", "--level", "3", "--date", "garbage"], "ARGUMENT_INVALID", "--date"),
        (["sim", "tcb", "publish", "sim", "--level", "3", "--date", "2026-01-01T00:00:00"], "ARGUMENT_INVALID",
         "--date"),
        (["sim", "tcb", "publish", "sim", "--level", "3", "--date", "0001-01-01T00:00:00-01:00"], "ARGUMENT_INVALID",
         "--date"),
        (["sim", "tcb", "publish", "sim", "--level", "99999999999999999999"], "ARGUMENT_INVALID", "--level"),
        (["sim", "init", "sim2", "--tcb-level", "99999999999999999999"], "ARGUMENT_INVALID", "--tcb-level"),
        (["sim", "platform", "upgrade", "sim", "any", "--level", "4294967296"], "ARGUMENT_INVALID", "--level"),
        (["policy", "create", "bin.yaml", "--key", "owner.key"], "POLICY_INVALID", "bin.yaml:1:1: policy is not valid"),
        (["policy", "sign", "bin.yaml", "--key", "owner.key"], "POLICY_INVALID", "bin.yaml:1:1: policy is not valid"),
        (["policy", "update", "ok.yaml", "--note", "note.txt"], "NOTE_MALFORMED", "UTF-8"),
        (["policy", "create", "ok.yaml", "--key", "owner.key", "--pub", "bin.yaml"], "ARGUMENT_INVALID",
         "--pub bin.yaml is not valid UTF-8"),
    ],
    ids=["bad-date", "date-without-zone", "date-out-of-range", "huge-level", "huge-init-level", "huge-upgrade-level",
         "policy-not-utf8", "sign-policy-not-utf8", "note-not-utf8", "pub-not-utf8"],
)
def test_cli_bad_input_is_one_line_not_a_traceback(cli_inputs: Path, args: list[str], code: str,
                                                   fragment: str) -> None:
    env = {**os.environ, "CUSTODES_CAS": "https://127.0.0.1:1", "CUSTODES_CAS_CERT": "/nonexistent"}
    result = subprocess.run(custodes_cmd(*args), cwd=cli_inputs, capture_output=True, text=True, timeout=60,
                            env=env, check=False)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"error: {code}: "), result.stderr
    assert fragment in result.stderr
    if args[:3] == ["sim", "tcb", "publish"]:
        listed = run_cli("sim", "platform", "list", str(cli_inputs / "sim"))  # a refused publish changed nothing
        assert listed.returncode == 0 and "UpToDate" in listed.stdout, listed.stderr
    assert not (cli_inputs / "sim2").exists()
