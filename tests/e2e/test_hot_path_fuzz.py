"""Property-based fuzzing of the attestation routes on a real CAS: no body makes them answer anything but a 4xx
with a stable code, and the CAS still attests afterwards.

The two routes are served directly by the HTTP server (``CasApp.hot`` in server/app.py, not FastAPI), which reads and
validates request bodies itself, so they get their own fuzzing beside the table of named bad inputs in
test_bad_input.py.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _support import CasProcess, Workload
from conftest import uploaded_workload
from custodes.client import cas_ssl_context

CODE = re.compile(r"^[A-Z][A-Z0-9_]*$")
FIELDS = ["policy", "service", "nonce", "evidence", "public_key", "lease_id", "type", "data", "aux"]
POLICY = "fuzz/hot"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8),
                                                                  inner, max_size=5),
    max_leaves=12,
)
b64 = st.binary(max_size=900).map(lambda b: base64.b64encode(b).decode())
attest_shaped = st.fixed_dictionaries(
    {
        "policy": st.sampled_from([POLICY, "fuzz/none", ""]) | st.text(max_size=20),
        "service": st.sampled_from(["app", "nope"]) | st.text(max_size=10),
        "nonce": b64 | st.text(max_size=50),
        "evidence": st.fixed_dictionaries({"type": st.sampled_from(["simulated", "sgx-dcap", "tdx", "sev-snp", "x"]),
                                           "data": b64}),
        "public_key": b64,
    },
    optional={"lease_id": st.text(max_size=30) | st.none()},
)


@pytest.fixture(scope="module")
def http(cas: CasProcess, sim) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=cas.url, verify=cas_ssl_context(cas.cert)) as client:
        yield client


@pytest.fixture(scope="module")
def policy_ready(cas: CasProcess, sim, tmp_path_factory) -> Workload:  # type: ignore[no-untyped-def]
    return uploaded_workload(cas, sim, tmp_path_factory.mktemp("fuzz"), POLICY)


def _refused_cleanly(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    assert CODE.match(error["code"]), error
    assert isinstance(error["message"], str) and isinstance(error["reasons"], list)


_SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_SETTINGS
@given(body=st.binary(max_size=600))
def test_any_bytes_are_refused_cleanly(http: httpx.Client, policy_ready: Workload, body: bytes) -> None:
    for path in ("/v1/attest/challenge", "/v1/attest"):
        _refused_cleanly(http.post(path, content=body, headers={"content-type": "application/json"}))


@_SETTINGS
@given(body=json_values)
def test_any_json_is_refused_cleanly(http: httpx.Client, policy_ready: Workload, body: object) -> None:
    for path in ("/v1/attest/challenge", "/v1/attest"):
        response = http.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
        if response.status_code == 200:  # only a well-formed challenge for the real policy and service succeeds
            assert path == "/v1/attest/challenge" and body == {"policy": POLICY, "service": "app"}
            continue
        _refused_cleanly(response)


@_SETTINGS
@given(body=attest_shaped)
def test_attest_shaped_bodies_with_bogus_evidence_are_refused(
    http: httpx.Client, policy_ready: Workload, body: dict
) -> None:
    _refused_cleanly(http.post("/v1/attest", json=body))


def test_the_cas_still_attests_and_logged_no_internal_error(cas: CasProcess, policy_ready: Workload) -> None:
    with cas.client() as client:
        result = client.attest(POLICY, "app", policy_ready.provider())
    assert result.lease["id"]
    assert not [line for line in cas.stderr_lines if "internal error" in line]
