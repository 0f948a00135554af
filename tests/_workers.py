"""Test support for a CAS with several worker processes: connections pinned to a known worker."""

from __future__ import annotations

from typing import Any

from _support import CasProcess
from custodes.client import CasClient, EvidenceSource
from custodes.protocol import RuntimeKey, b64d, b64e, report_data_for


def clients_per_worker(cas: CasProcess, workers: int, attempts: int = 200) -> dict[int, CasClient]:
    """One open client (one keep-alive connection) per worker. The supervisor sends each new connection to the
    least-loaded worker, so this takes ``workers`` connections unless others are open. Spares stay open until every
    worker is found: closed at once, they would leave the same worker least loaded (after a restart, say)."""
    found: dict[int, CasClient] = {}
    spares: list[CasClient] = []
    try:
        for _ in range(attempts):
            client = cas.client()
            index = client.status()["worker"]
            if index in found:
                spares.append(client)
            else:
                found[index] = client
            if len(found) == workers:
                return found
    finally:
        for client in spares:
            client.close()
    for client in found.values():
        client.close()
    raise AssertionError(f"only workers {sorted(found)} accepted connections in {attempts} attempts")


def challenge(client: CasClient, policy: str, service: str) -> str:
    return client.request("POST", "/v1/attest/challenge", json={"policy": policy, "service": service})["nonce"]


def attest_with(
    client: CasClient,
    policy: str,
    service: str,
    nonce: str,
    source: EvidenceSource,
    *,
    lease_id: str | None = None,
    key: RuntimeKey | None = None,
) -> tuple[dict[str, Any], RuntimeKey]:
    """Answer a challenge (possibly issued by another worker) on ``client``'s connection."""
    key = key or RuntimeKey.generate()
    data, aux = source.evidence(report_data_for(b64d(nonce, field="nonce"), key.public_bytes))
    body: dict[str, Any] = {
        "policy": policy,
        "service": service,
        "nonce": nonce,
        "evidence": {"type": source.evidence_type, "data": b64e(data), "aux": b64e(aux) if aux else None},
        "public_key": b64e(key.public_bytes),
    }
    if lease_id:
        body["lease_id"] = lease_id
    return client.request("POST", "/v1/attest", json=body), key
