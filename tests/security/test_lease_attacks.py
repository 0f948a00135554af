"""Attacks on leases and on the attestation request's public key.

A renewal refused on its evidence must end the lease, whichever check refused it; a request whose key HPKE cannot
seal to must be refused as a client error before any lease is issued or renewed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from _inprocess import InProcessCas
from _support import CasProcess, Owner, Workload, make_sim, put_policy
from conftest import simple_policy
from custodes.client import CasClient, CasError, EvidenceSource
from custodes.errors import CollateralError, CustodesError
from custodes.protocol import RuntimeKey, b64d, b64e, report_data_for

LOW_ORDER_KEY = bytes(32)  # the all-zero X25519 point: every exchange with it gives the all-zero secret


class Altered(EvidenceSource):
    """A workload's provider whose evidence, or the report data it binds, is changed on the way."""

    evidence_type = "simulated"

    def __init__(self, inner: EvidenceSource, *, bind_zeros: bool = False, flip_last_byte: bool = False) -> None:
        self.inner, self.bind_zeros, self.flip = inner, bind_zeros, flip_last_byte

    def evidence(self, report_data: bytes) -> tuple[bytes, bytes | None]:
        data, aux = self.inner.evidence(bytes(64) if self.bind_zeros else report_data)
        if self.flip:
            data = data[:-1] + bytes([data[-1] ^ 1])
        return data, aux


def refused(call: Callable[[], object]) -> CasError:
    with pytest.raises(CasError) as info:
        call()
    return info.value


def raw_attest(client: CasClient, name: str, workload: Workload, public_key: bytes, nonce: str | None = None,
               lease_id: str | None = None) -> dict[str, Any]:
    """POST /v1/attest with evidence that binds ``public_key`` (whatever it is) and the nonce."""
    if nonce is None:
        nonce = client.request("POST", "/v1/attest/challenge", json={"policy": name, "service": "app"})["nonce"]
    data, _ = workload.provider().evidence(report_data_for(b64d(nonce), public_key))
    body: dict[str, Any] = {"policy": name, "service": "app", "nonce": nonce,
                            "evidence": {"type": "simulated", "data": b64e(data)}, "public_key": b64e(public_key)}
    if lease_id:
        body["lease_id"] = lease_id
    return client.request("POST", "/v1/attest", json=body)


@pytest.mark.parametrize(
    ("how", "code"),
    [("rogue-platform", "SIM_PLATFORM_UNTRUSTED"), ("report-data", "REPORT_DATA_MISMATCH"),
     ("tampered", "SIM_SIGNATURE_INVALID")],
)
def test_renewal_refused_on_its_evidence_ends_the_lease(
    cas: CasProcess, workload: Workload, owner: Owner, tmp_path: Path, how: str, code: str
) -> None:
    name = f"attack/renew-{how}"
    with cas.client() as client:
        put_policy(client, simple_policy(name, owner, workload.measurement), owner)
        lease = client.attest(name, "app", workload.provider()).lease["id"]
        if how == "rogue-platform":
            rogue = make_sim(tmp_path / "rogue", platforms=1)
            bad: EvidenceSource = Workload(rogue.platforms()[0].path, workload.files).provider()
        else:
            bad = Altered(workload.provider(), bind_zeros=how == "report-data", flip_last_byte=how == "tampered")
        assert refused(lambda: client.attest(name, "app", bad, lease_id=lease)).code == code
        # Good evidence cannot bring the lease back.
        again = refused(lambda: client.attest(name, "app", workload.provider(), lease_id=lease))
        assert again.code == "LEASE_UNKNOWN"


@pytest.mark.parametrize("key", [LOW_ORDER_KEY, b"\x09" * 31], ids=["low-order", "31-bytes"])
def test_unusable_public_key_is_a_client_error_and_leaves_no_lease(
    cas: CasProcess, workload: Workload, owner: Owner, key: bytes
) -> None:
    name = f"attack/key-{len(key)}-{key[0]}"
    with cas.client() as client:
        put_policy(client, simple_policy(name, owner, workload.measurement), owner)
        nonce = client.request("POST", "/v1/attest/challenge", json={"policy": name, "service": "app"})["nonce"]
        before = client.status()["leases"]
        err = refused(lambda: raw_attest(client, name, workload, key, nonce=nonce))
        assert (err.status, err.code) == (400, "REQUEST_INVALID")
        assert client.status()["leases"] == before
        if len(key) != 32:  # refused before the nonce was spent: it is still good for a well-formed request
            assert raw_attest(client, name, workload, RuntimeKey.generate().public_bytes, nonce=nonce)["lease"]


def test_service_removed_since_the_challenge_is_404_service_unknown(
    cas: CasProcess, workload: Workload, owner: Owner
) -> None:
    name = "attack/service-gone"
    with cas.client() as client:
        first = put_policy(client, simple_policy(name, owner, workload.measurement), owner)
        nonce = client.request("POST", "/v1/attest/challenge", json={"policy": name, "service": "app"})["nonce"]
        renamed = simple_policy(name, owner, workload.measurement, predecessor=first).replace(
            "- name: app", "- name: app2"
        )
        put_policy(client, renamed, owner, create=False)
        err = refused(lambda: raw_attest(client, name, workload, RuntimeKey.generate().public_bytes, nonce=nonce))
        assert (err.status, err.code) == (404, "SERVICE_UNKNOWN")


@pytest.mark.parametrize("bad_key", [LOW_ORDER_KEY, b"\x09" * 31], ids=["low-order", "31-bytes"])
def test_renewal_with_an_unusable_key_leaves_the_lease_as_it_was(tmp_path: Path, bad_key: bytes) -> None:
    cas = InProcessCas(tmp_path)
    lease_id = cas.attest()["lease"]["id"]
    before = cas.lease(lease_id)
    cas.set_wall(cas.t0 + timedelta(minutes=20), elapsed=timedelta(minutes=20))
    with pytest.raises(CustodesError) as info:
        cas.attest(bad_key, lease_id=lease_id)
    assert info.value.code == "REQUEST_INVALID"
    after = cas.lease(lease_id)
    assert (after.renewals, after.expires_at) == (before.renewals, before.expires_at)


def test_renewal_refused_for_the_cas_own_stale_collateral_does_not_end_the_lease(tmp_path: Path) -> None:
    cas = InProcessCas(tmp_path)
    lease_id = cas.attest()["lease"]["id"]
    cas.set_wall(cas.t0 + timedelta(days=31))  # past the simulated TCB info's nextUpdate (30 days)
    with pytest.raises(CollateralError) as info:
        cas.attest(lease_id=lease_id)
    assert info.value.code == "COLLATERAL_EXPIRED"
    assert cas.lease(lease_id) is not None
