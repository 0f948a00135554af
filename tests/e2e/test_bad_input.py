"""Bad input gets a clear 4xx with a code from the API, and one line with a non-zero exit from the CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from _support import CasProcess, Owner, Workload, custodes_cmd
from conftest import simple_policy
from custodes.client import cas_ssl_context
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
