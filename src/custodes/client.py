"""A Python client for the CAS API, used by the CLI, the runtime and the tests.

Trust in the CAS comes from a pinned certificate: in simulation, the ``cas-cert.pem`` that the CAS wrote at its
first start. The TLS context trusts that certificate alone (TLS 1.3 only), so only the holder of the CAS's key can
answer. (Pinning by CAS self-attestation is a later issue.)

The client uses only the standard library's ``http.client`` (plus ``cryptography`` for HPKE): it is on the start-up
path of ``custodes run``, whose overhead budget is 150 ms (docs/runtime.md).
"""

from __future__ import annotations

import http.client
import json as jsonlib
import os
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from custodes.config import RenderedConfig
from custodes.errors import CustodesError
from custodes.protocol import RuntimeKey, b64d, b64e, report_data_for

if TYPE_CHECKING:
    from custodes.ledger.note import PrivateKey, SignedNote

__all__ = ["Attestation", "CasClient", "CasError", "EvidenceSource", "cas_ssl_context"]

DEFAULT_PROPOSAL_VALIDITY_S = 3600
MAX_RESPONSE_BYTES = 32 << 20
# TLS errors that mean "the connection went away", not "this is not the pinned CAS".
_SSL_DROPPED = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)


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


def transport_error(exc: BaseException, url: str) -> CasError:
    """Classify a failed exchange: a TLS failure (wrong certificate, protocol) is ``CAS_TLS_FAILED`` and is never
    retried; anything else (refused, reset, dropped, timed out, garbled) is ``CAS_UNREACHABLE``."""
    if isinstance(exc, ssl.SSLError) and not isinstance(exc, _SSL_DROPPED):
        return CasError("CAS_TLS_FAILED", f"TLS with the CAS at {url} failed: {exc.reason or type(exc).__name__}")
    return CasError("CAS_UNREACHABLE", f"cannot reach the CAS at {url}: {type(exc).__name__}")


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
        return RenderedConfig.from_json_dict(self.config)

    def __repr__(self) -> str:
        return f"Attestation(policy_version={self.policy_version!r}, lease={self.lease!r}, config=<sealed>)"


class CasClient:
    """A synchronous CAS client over one kept-alive HTTPS connection (stdlib ``http.client``, so that
    ``custodes run`` starts fast). Use as a context manager. Safe to share between threads: requests are
    serialised on the connection.

    A request that fails on a reused connection (the CAS closed it while idle) is sent once more on a fresh
    connection; a timeout is not retried, since the CAS may still be working on the request.
    """

    def __init__(self, url: str, cert_path: Path, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        try:
            parts = urlsplit(self.url)
            port = parts.port or 443
        except ValueError:
            raise CasError("CAS_URL_INVALID", "the CAS URL is not a valid https:// URL") from None
        if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment or parts.username:
            raise CasError("CAS_URL_INVALID", "the CAS URL must be https://HOST[:PORT][/PATH]")  # never echoed
        self._host, self._port, self._prefix = parts.hostname, port, parts.path
        self._context = cas_ssl_context(cert_path)
        self._timeout = timeout
        self._conn: http.client.HTTPSConnection | None = None
        self._lock = threading.Lock()

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
        with self._lock:
            self._drop()

    def __repr__(self) -> str:
        return f"CasClient({self.url!r})"

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connect(self) -> http.client.HTTPSConnection:
        conn = http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout, context=self._context)
        try:
            conn.connect()  # the TLS handshake happens here, so its failure is never taken for a dropped connection
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _exchange(self, method: str, target: str, body: bytes | None, headers: Mapping[str, str]) -> tuple[int, bytes]:
        retried = False
        while True:
            reused = self._conn is not None
            try:
                conn = self._conn or self._connect()
                conn.request(method, target, body=body, headers=dict(headers))
                response = conn.getresponse()
                data = response.read(MAX_RESPONSE_BYTES + 1)
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                if reused and not retried and not isinstance(exc, TimeoutError):
                    retried = True
                    continue
                raise transport_error(exc, self.url) from None
            if len(data) > MAX_RESPONSE_BYTES or response.will_close or not response.isclosed():
                self._drop()
            if len(data) > MAX_RESPONSE_BYTES:
                raise CasError("CAS_PROTOCOL_ERROR", "the CAS's answer is too large", status=response.status)
            return response.status, data

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send one request; return the JSON object of a 2xx answer.

        Raises:
            CasError: the CAS's own error code and HTTP status; ``CAS_UNREACHABLE``, ``CAS_TLS_FAILED``;
                ``CAS_PROTOCOL_ERROR`` for an answer that is not a JSON object.
        """
        sent: dict[str, str] = {"Accept": "application/json"}
        if json is not None:
            content = jsonlib.dumps(json).encode()
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        with self._lock:
            status, data = self._exchange(method, self._prefix + path, content, sent)
        try:
            body = jsonlib.loads(data) if data else None
        except (ValueError, RecursionError):
            body = None
        if 200 <= status < 300 and isinstance(body, dict):
            return body
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            raise CasError(str(error.get("code")), str(error.get("message")), list(error.get("reasons") or []), status)
        raise CasError("CAS_PROTOCOL_ERROR", f"unexpected HTTP {status} from the CAS", status=status)

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
        # The ledger is imported here, not at the top: the workload runtime never administers policies and must
        # not pay for loading it at start-up.
        from custodes.ledger.keys import public_pem  # noqa: PLC0415
        from custodes.ledger.note import add_signature  # noqa: PLC0415
        from custodes.ledger.requests import proposal_text  # noqa: PLC0415

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
        """Read a policy: the CAS's challenge, signed by one of the policy's readers."""
        from custodes.ledger.keys import public_pem  # noqa: PLC0415  (see put_policy)
        from custodes.ledger.note import add_signature  # noqa: PLC0415
        from custodes.ledger.requests import read_text  # noqa: PLC0415

        nonce = self.request("POST", "/v1/auth/challenge")["nonce"]
        note = add_signature(read_text(name, nonce), key_name, key)
        headers = {
            "Custodes-Note": b64e(note.render().encode()),
            "Custodes-Keys": b64e(public_pem(key.public_key()).encode()),
        }
        return self.request("GET", f"/v1/policies/{name}", headers=headers)

    def status(self) -> dict[str, Any]:
        return self.request("GET", "/v1/status")
