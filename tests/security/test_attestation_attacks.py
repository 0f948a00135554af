"""Attacks on attestation, each performed against a real CAS process and refused with its exact code."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from _support import CasProcess, Owner, Workload, make_sim, put_policy
from conftest import simple_policy
from custodes.client import CasClient, CasError, EvidenceSource
from custodes.clock import utcnow
from custodes.evidence.simvendor import SimVendor
from custodes.protocol import RuntimeKey, b64d, b64e, report_data_for


def refused(call: Callable[[], object]) -> CasError:
    with pytest.raises(CasError) as info:
        call()
    assert 400 <= info.value.status < 500, info.value
    return info.value


class Tampering(EvidenceSource):
    """Wraps a provider and changes its evidence or the report data it binds."""

    evidence_type = "simulated"

    def __init__(
        self,
        inner: EvidenceSource,
        *,
        evidence: Callable[[bytes], bytes] = lambda b: b,
        report_data: Callable[[bytes], bytes] = lambda r: r,
    ) -> None:
        self.inner, self.mutate, self.rd = inner, evidence, report_data

    def evidence(self, report_data: bytes) -> tuple[bytes, bytes | None]:
        data, aux = self.inner.evidence(self.rd(report_data))
        return self.mutate(data), aux


def test_wrong_measurement_is_refused(cas: CasProcess, workload: Workload, owner: Owner) -> None:
    with cas.client() as client:
        put_policy(client, simple_policy("attack/wrong-measurement", owner, "ab" * 48), owner)
        err = refused(lambda: client.attest("attack/wrong-measurement", "app", workload.provider()))
    assert err.code == "MEASUREMENT_MISMATCH"


def test_debug_evidence_without_allow_debug_is_refused(cas: CasProcess, workload: Workload, owner: Owner) -> None:
    workload.debug = True
    with cas.client() as client:
        put_policy(client, simple_policy("attack/debug", owner, workload.measurement), owner)
        err = refused(lambda: client.attest("attack/debug", "app", workload.provider()))
    assert err.code == "DEBUG_NOT_ALLOWED"


def test_simulated_evidence_without_allow_simulated_is_refused(
    cas: CasProcess, workload: Workload, owner: Owner
) -> None:
    with cas.client() as client:
        put_policy(client, simple_policy("attack/nosim", owner, workload.measurement, allow_simulated=False), owner)
        err = refused(lambda: client.attest("attack/nosim", "app", workload.provider()))
    assert err.code == "SIMULATED_NOT_ALLOWED"


def test_evidence_from_an_unknown_vendor_is_refused(
    cas: CasProcess, workload: Workload, owner: Owner, tmp_path: Path
) -> None:
    rogue = make_sim(tmp_path / "rogue-vendor", platforms=1)
    impostor = Workload(rogue.platforms()[0].path, workload.files)
    with cas.client() as client:
        put_policy(client, simple_policy("attack/vendor", owner, workload.measurement), owner)
        err = refused(lambda: client.attest("attack/vendor", "app", impostor.provider()))
    assert err.code == "SIM_PLATFORM_UNTRUSTED"


def test_simulated_evidence_is_refused_by_a_cas_without_sim_vendor(
    tmp_path: Path, workload: Workload, owner: Owner
) -> None:
    production = CasProcess(tmp_path / "cas", None).start()
    try:
        with production.client() as client:
            put_policy(client, simple_policy("attack/prod", owner, workload.measurement), owner)
            err = refused(lambda: client.attest("attack/prod", "app", workload.provider()))
    finally:
        production.stop()
    assert err.code == "SIMULATED_UNTRUSTED"


@pytest.mark.parametrize("offset", [10, 100, 200, 300, -1], ids=["measurement", "report-data", "ak", "cert", "sig"])
def test_one_tampered_evidence_byte_is_refused(cas: CasProcess, workload: Workload, owner: Owner, offset: int) -> None:
    def flip(data: bytes) -> bytes:
        raw = bytearray(data)
        raw[offset] ^= 0x01
        return bytes(raw)

    name = f"attack/tamper{offset}".replace("-", "m")
    with cas.client() as client:
        put_policy(client, simple_policy(name, owner, workload.measurement), owner)
        err = refused(lambda: client.attest(name, "app", Tampering(workload.provider(), evidence=flip)))
    assert err.code in {"SIM_SIGNATURE_INVALID", "SIM_PLATFORM_UNTRUSTED", "SIM_EVIDENCE_MALFORMED"}
    # The report-data and measurement bytes are covered by the signature: that is the exact refusal.
    if offset in (10, 100, -1):
        assert err.code == "SIM_SIGNATURE_INVALID"


@pytest.mark.parametrize("what", ["nonce", "public-key"])
def test_report_data_that_does_not_bind_nonce_and_key_is_refused(
    cas: CasProcess, workload: Workload, owner: Owner, what: str
) -> None:
    name = f"attack/binding-{what}"
    with cas.client() as client:
        put_policy(client, simple_policy(name, owner, workload.measurement), owner)
        challenge = client.request("POST", "/v1/attest/challenge", json={"policy": name, "service": "app"})
        nonce = b64d(challenge["nonce"])
        key = RuntimeKey.generate()
        other = RuntimeKey.generate().public_bytes
        bound = report_data_for(b"\x00" * 32, key.public_bytes) if what == "nonce" else report_data_for(nonce, other)
        data, _ = workload.provider().evidence(bound)
        body = {
            "policy": name,
            "service": "app",
            "nonce": challenge["nonce"],
            "evidence": {"type": "simulated", "data": b64e(data)},
            "public_key": b64e(key.public_bytes),
        }
        err = refused(lambda: client.request("POST", "/v1/attest", json=body))
    assert err.code == "REPORT_DATA_MISMATCH"


def _attest_raw(client: CasClient, name: str, workload: Workload, nonce_b64: str) -> dict:
    key = RuntimeKey.generate()
    data, _ = workload.provider().evidence(report_data_for(b64d(nonce_b64), key.public_bytes))
    body = {
        "policy": name,
        "service": "app",
        "nonce": nonce_b64,
        "evidence": {"type": "simulated", "data": b64e(data)},
        "public_key": b64e(key.public_bytes),
    }
    return client.request("POST", "/v1/attest", json=body)


def test_reused_nonce_is_refused(cas: CasProcess, workload: Workload, owner: Owner) -> None:
    with cas.client() as client:
        put_policy(client, simple_policy("attack/replay", owner, workload.measurement), owner)
        nonce = client.request("POST", "/v1/attest/challenge", json={"policy": "attack/replay", "service": "app"})
        assert "sealed_config" in _attest_raw(client, "attack/replay", workload, nonce["nonce"])
        err = refused(lambda: _attest_raw(client, "attack/replay", workload, nonce["nonce"]))
    assert err.code == "NONCE_REUSED"


def test_one_nonce_raced_on_many_connections_is_accepted_once(
    cas: CasProcess, workload: Workload, owner: Owner
) -> None:
    """The same evidence and nonce sent at once on 12 connections. The CAS verifies evidence on a thread pool, so
    attestations overlap; the nonce must still be consumed exactly once (checked and marked with no await between)."""
    name = "attack/replay-race"
    with cas.client() as client:
        put_policy(client, simple_policy(name, owner, workload.measurement), owner)
        nonce = client.request("POST", "/v1/attest/challenge", json={"policy": name, "service": "app"})["nonce"]
    key = RuntimeKey.generate()
    data, _ = workload.provider().evidence(report_data_for(b64d(nonce), key.public_bytes))
    body = {"policy": name, "service": "app", "nonce": nonce, "evidence": {"type": "simulated", "data": b64e(data)},
            "public_key": b64e(key.public_bytes)}
    clients = [cas.client() for _ in range(12)]
    barrier = threading.Barrier(len(clients))

    def attempt(client: CasClient) -> str:
        with client:
            barrier.wait()
            try:
                client.request("POST", "/v1/attest", json=body)
            except CasError as exc:
                return exc.code
            return "ACCEPTED"

    with ThreadPoolExecutor(len(clients)) as pool:
        outcomes = sorted(pool.map(attempt, clients))
    assert outcomes == ["ACCEPTED"] + ["NONCE_REUSED"] * (len(clients) - 1)


def test_unknown_nonce_is_refused(cas: CasProcess, workload: Workload, owner: Owner) -> None:
    with cas.client() as client:
        put_policy(client, simple_policy("attack/forged-nonce", owner, workload.measurement), owner)
        err = refused(lambda: _attest_raw(client, "attack/forged-nonce", workload, b64e(b"\x07" * 32)))
    assert err.code == "NONCE_UNKNOWN"


def test_expired_nonce_is_refused(tmp_path: Path, sim: SimVendor, workload: Workload, owner: Owner) -> None:
    short = CasProcess(tmp_path / "cas", sim.path, extra_args=["--challenge-ttl", "1s"]).start()
    try:
        with short.client() as client:
            put_policy(client, simple_policy("attack/expired", owner, workload.measurement), owner)
            nonce = client.request("POST", "/v1/attest/challenge", json={"policy": "attack/expired", "service": "app"})
            time.sleep(1.5)
            err = refused(lambda: _attest_raw(client, "attack/expired", workload, nonce["nonce"]))
    finally:
        short.stop()
    assert err.code == "NONCE_EXPIRED"


def test_deprecated_measurement_after_its_deadline_is_refused(
    cas: CasProcess, workload: Workload, owner: Owner
) -> None:
    since = (utcnow() - timedelta(days=8)).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = simple_policy(
        "attack/deprecated",
        owner,
        workload.measurement,
        grace="7d",
        deprecated=f"{{since: {since}, advisory: CVE-2026-0001}}",
    )
    with cas.client() as client:
        put_policy(client, text, owner)
        err = refused(lambda: client.attest("attack/deprecated", "app", workload.provider()))
    assert err.code == "MEASUREMENT_DEPRECATED"


def test_deprecated_measurement_within_its_grace_gets_a_lease_bounded_by_the_deadline(
    cas: CasProcess, workload: Workload, owner: Owner
) -> None:
    since = utcnow() - timedelta(days=7) + timedelta(minutes=5)
    text = simple_policy(
        "attack/deprecated-grace",
        owner,
        workload.measurement,
        grace="7d",
        deprecated=f"{{since: {since.strftime('%Y-%m-%dT%H:%M:%SZ')}, advisory: CVE-2026-0002}}",
    )
    with cas.client() as client:
        put_policy(client, text, owner)
        result = client.attest("attack/deprecated-grace", "app", workload.provider())
    deadline = since.replace(microsecond=0) + timedelta(days=7)
    assert result.verdict["measurement_deadline"] == deadline.isoformat().replace("+00:00", "Z")
    assert result.lease["expires_at"] <= result.verdict["measurement_deadline"]


def test_platform_out_of_date_past_its_grace_is_refused(tmp_path: Path, workload: Workload, owner: Owner) -> None:
    vendor = make_sim(tmp_path / "sim", platforms=2, tcb_level=2)
    server = CasProcess(tmp_path / "cas", vendor.path).start()
    stale, patched = vendor.platforms()
    try:
        with server.client() as client:
            put_policy(client, simple_policy("attack/tcb", owner, workload.measurement, grace="7d"), owner)
            client.attest("attack/tcb", "app", Workload(stale.path, workload.files).provider())
            # The vendor fixes CVE-2026-1234 with TCB level 3, released 8 days ago; one platform gets patched.
            vendor.publish(level=3, now=utcnow(), tcb_date=utcnow() - timedelta(days=8), advisories=("CVE-2026-1234",))
            vendor.upgrade_platform(patched.platform_id, tcb_level=3, now=utcnow())
            time.sleep(1.2)  # the CAS re-reads the vendor's TCB info at most once a second
            err = refused(lambda: client.attest("attack/tcb", "app", Workload(stale.path, workload.files).provider()))
            ok = client.attest("attack/tcb", "app", Workload(patched.path, workload.files).provider())
    finally:
        server.stop()
    assert err.code == "TCB_STATUS_NOT_ACCEPTED"
    assert "CVE-2026-1234" in err.message
    assert ok.verdict["accepted"] is True
