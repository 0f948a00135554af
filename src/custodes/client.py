"""A Python client for the CAS API, used by the CLI, the runtime and the tests.

Trust in the CAS comes from a pinned certificate: in simulation, the ``cas-cert.pem`` that the CAS wrote at its
first start. The TLS context trusts that certificate alone (TLS 1.3 only), so only the holder of the CAS's key can
answer. (Pinning by CAS self-attestation is a later issue.)
"""

from __future__ import annotations

import json
import os
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from custodes.errors import CustodesError
from custodes.ledger.keys import public_pem
from custodes.ledger.note import PrivateKey, SignedNote, add_signature
from custodes.ledger.requests import proposal_text, read_text
from custodes.policy import RenderedConfig
from custodes.protocol import RuntimeKey, b64d, b64e, report_data_for

__all__ = ["Attestation", "CasClient", "CasError", "EvidenceSource", "cas_ssl_context"]

DEFAULT_PROPOSAL_VALIDITY_S = 3600


class CasError(CustodesError):
    """The CAS refused a request (``code`` is its error code, ``status`` the HTTP status), or was unreachable."""

    def __init__(self, code: str, message: str, reasons: list[str] | None = None, status: int = 0) -> None:
        super().__init__(code, message, reasons)
        self.status = status


def cas_ssl_context(cert_path: Path) -> ssl.SSLContext:
    """Trust exactly the pinned CAS certificate; TLS 1.3 only."""
    try:
        ctx = ssl.create_default_context(cafile=str(cert_path))
    except (OSError, ssl.SSLError) as exc:
        raise CasError("CAS_CERT_INVALID", f"cannot load the CAS certificate {cert_path}") from exc
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False  # the pinned self-signed certificate is the identity, not the host name
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class EvidenceSource:
    """Something that produces TEE evidence over 64 bytes of report data (the runtime's providers)."""

    evidence_type: str

    def evidence(self, report_data: bytes) -> tuple[bytes, bytes | None]:
        raise NotImplementedError


@dataclass(frozen=True)
class Attestation:
    """A successful attestation. ``config`` holds secrets: never print it unredacted."""

    config: dict[str, Any]
    lease: dict[str, str]
    policy_version: str
    verdict: dict[str, Any]
    attestation_token: str

    def rendered(self) -> RenderedConfig:
        """The config as the policy rendered it: argv, environment, files (with their secrets)."""
        return RenderedConfig.from_json_bytes(json.dumps(self.config).encode())

    def __repr__(self) -> str:
        return f"Attestation(policy_version={self.policy_version!r}, lease={self.lease!r}, config=<sealed>)"


class CasClient:
    """A synchronous CAS client. Use as a context manager."""

    def __init__(self, url: str, cert_path: Path, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, verify=cas_ssl_context(cert_path), timeout=timeout)

    @classmethod
    def from_env(cls, url: str | None = None, cert: Path | None = None) -> CasClient:
        """``--cas``/``CUSTODES_CAS`` and ``--cas-cert``/``CUSTODES_CAS_CERT``."""
        url = url or os.environ.get("CUSTODES_CAS")
        cert_text = str(cert) if cert else os.environ.get("CUSTODES_CAS_CERT")
        if not url or not cert_text:
            raise CasError(
                "CAS_NOT_CONFIGURED", "name the CAS with --cas/CUSTODES_CAS and --cas-cert/CUSTODES_CAS_CERT"
            )
        return cls(url, Path(cert_text))

    def __enter__(self) -> CasClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            code = "CAS_TLS_FAILED" if isinstance(exc.__context__, ssl.SSLError) or "SSL" in str(exc) else None
            raise CasError(
                code or "CAS_UNREACHABLE", f"cannot reach the CAS at {self.url}: {type(exc).__name__}"
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and isinstance(body, dict):
            return body
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            raise CasError(
                str(error.get("code")),
                str(error.get("message")),
                list(error.get("reasons") or []),
                response.status_code,
            )
        raise CasError(
            "CAS_PROTOCOL_ERROR", f"unexpected HTTP {response.status_code} from the CAS", status=response.status_code
        )

    # ---------------------------------------------------------------------------------------- attestation

    def attest(self, policy: str, service: str, source: EvidenceSource, *, lease_id: str | None = None) -> Attestation:
        """Challenge, evidence over (nonce, fresh key), attest, unseal. Raises :class:`CasError` on refusal."""
        challenge = self.request("POST", "/v1/attest/challenge", json={"policy": policy, "service": service})
        nonce = b64d(challenge["nonce"], field="nonce")
        key = RuntimeKey.generate()
        data, aux = source.evidence(report_data_for(nonce, key.public_bytes))
        body: dict[str, Any] = {
            "policy": policy,
            "service": service,
            "nonce": challenge["nonce"],
            "evidence": {"type": source.evidence_type, "data": b64e(data), "aux": b64e(aux) if aux else None},
            "public_key": b64e(key.public_bytes),
        }
        if lease_id:
            body["lease_id"] = lease_id
        result = self.request("POST", "/v1/attest", json=body)
        payload = key.open(b64d(result["sealed_config"], field="sealed_config"), nonce)
        if (payload.get("policy"), payload.get("service")) != (policy, service):
            raise CasError("CONFIG_MISMATCH", "the sealed config is for another policy or service")
        return Attestation(
            payload["config"], result["lease"], result["policy_version"], result["verdict"], result["attestation_token"]
        )

    # ---------------------------------------------------------------------------------------- policies

    def put_policy(
        self,
        policy_yaml: str,
        *,
        name: str,
        policy_hash: str,
        predecessor: str | None,
        signers: Sequence[tuple[str, PrivateKey]] = (),
        note: SignedNote | None = None,
        public_keys: Sequence[str] = (),
        create: bool,
    ) -> dict[str, Any]:
        """Create or update a policy. Signs a proposal note with each (key name, private key), or sends a
        note that was signed elsewhere (offline approvals). ``public_keys`` are PEMs of signers whose policy
        entry is only a ``sha256:`` fingerprint."""
        if note is None:
            text = proposal_text(name, predecessor, policy_hash, int(time.time()) + DEFAULT_PROPOSAL_VALIDITY_S)
            for key_name, key in signers:
                note = add_signature(note or text, key_name, key)
        if note is None:
            raise CasError("NOTE_UNSIGNED", "a policy change needs at least one signer")
        keys = list(dict.fromkeys([*public_keys, *(public_pem(key.public_key()) for _, key in signers)]))
        body = {"policy": policy_yaml, "note": note.render(), "keys": keys}
        if create:
            return self.request("POST", "/v1/policies", json=body)
        return self.request("PUT", f"/v1/policies/{name}", json=body)

    def read_policy(self, name: str, key_name: str, key: PrivateKey) -> dict[str, Any]:
        nonce = self.request("POST", "/v1/auth/challenge")["nonce"]
        note = add_signature(read_text(name, nonce), key_name, key)
        headers = {
            "Custodes-Note": b64e(note.render().encode()),
            "Custodes-Keys": b64e(public_pem(key.public_key()).encode()),
        }
        return self.request("GET", f"/v1/policies/{name}", headers=headers)

    def status(self) -> dict[str, Any]:
        return self.request("GET", "/v1/status")
