"""The CAS service layer: policies, challenges, attestation, secrets and leases. No HTTP here.

State that must survive a restart (policies, secrets, the CAS identity) lives in the encrypted store and is
acknowledged only once durable. Soft state lives in memory that every worker process of this CAS shares
(:mod:`custodes.server.shared`): nonces (short-lived by design) and leases (a workload re-establishes its lease by
re-attesting; after a CAS restart its renewal is a fresh attestation). Each worker caches the policies and
reloads them when another worker's write bumps the shared generation.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from custodes import __version__
from custodes.appraisal import Verdict, appraise
from custodes.clock import FlooredClock, rfc3339
from custodes.errors import EvidenceError
from custodes.evidence.claims import Claims
from custodes.ledger.keys import fingerprint, load_public_key
from custodes.ledger.note import NoteError, NoteKey, SignedNote, parse_note, verify_note
from custodes.ledger.requests import parse_proposal, parse_read
from custodes.policy import Policy, load_policy, render_service, secret_order
from custodes.protocol import PUBLIC_KEY_BYTES, b64d, b64e, report_data_for, seal_config
from custodes.secrets import SecretMaterial, generate_secret
from custodes.server.binding import ReportDataBinding, StrictBinding
from custodes.server.ear import sign_ear
from custodes.server.errors import ApiError
from custodes.server.identity import CasIdentity
from custodes.server.shared import NonceRing, NonceStatus, SharedState, binding_of
from custodes.server.verifiers import Verifiers
from custodes.store import SqliteStore

__all__ = ["Cas", "Lease"]

log = logging.getLogger("custodes.cas")

DEFAULT_NONCE_TTL = timedelta(seconds=60)
EAR_PROFILE = "tag:github.com,2023:veraison/ear"
_READ_BINDING = binding_of("custodes/read")
_START = time.monotonic()


@dataclass(frozen=True, slots=True)
class Lease:
    id: str
    expires_at: datetime
    renew_after: datetime
    renewals: int = 0


@dataclass(slots=True)
class _LoadedPolicy:
    policy: Policy
    yaml: str
    serial: int


@dataclass
class _State:
    policies: dict[str, _LoadedPolicy] = field(default_factory=dict)
    secrets: dict[tuple[str, str], tuple[str, SecretMaterial]] = field(default_factory=dict)


_Verified = tuple[Claims, Verdict, str]


def _definition_hash(spec: Any, issuer: SecretMaterial | None) -> str:
    """What a secret's material was made from: its spec and, for a certificate, its issuer's certificate. Material
    whose definition changed is generated anew, so a leaf is reissued when its CA is."""
    digest = hashlib.sha256(json.dumps(spec.model_dump(mode="json", warnings=False), sort_keys=True).encode())
    if issuer is not None and issuer.chain:
        digest.update(b"\nissuer " + hashlib.sha256(issuer.chain[0]).digest())
    return digest.hexdigest()


class Cas:
    """The CAS. One instance per worker process; its methods are called from the HTTP layer's event loop.

    ``verify_threads`` > 0 runs the signature-heavy part of an attestation on that many threads beside the event
    loop (the right choice for a single worker on a multi-core machine); 0 runs it inline, which is cheaper when
    several worker processes already keep the cores busy.
    """

    def __init__(
        self,
        *,
        store: SqliteStore,
        identity: CasIdentity,
        verifiers: Verifiers,
        clock: FlooredClock,
        nonce_ttl: timedelta = DEFAULT_NONCE_TTL,
        shared: SharedState,
        binding: ReportDataBinding | None = None,
        verify_threads: int = 0,
        workers: int = 1,
        worker: int = 0,
    ) -> None:
        self.workers, self.worker = workers, worker
        # Open connections per worker, for /v1/status; set by the server that runs this CAS (server/serve.py).
        self.open_connections: Callable[[], list[int]] = list
        self.store = store
        self.shared = shared
        self.identity = identity
        self.verifiers = verifiers
        self.clock = clock
        self._state = _State()
        self._rendered: dict[tuple[str, str, str], tuple[bytes, datetime | None]] = {}
        self.nonce_ttl = nonce_ttl
        self.binding = binding or StrictBinding()
        self._verify_pool = (
            ThreadPoolExecutor(max_workers=verify_threads, thread_name_prefix="verify") if verify_threads else None
        )
        self._floor_seen = 0.0
        self._lead_seen = 0.0
        if verifiers.newest_signed_time:
            self._observe_signed(verifiers.newest_signed_time)
        self._generation = -1
        self._sync_policies()

    # ------------------------------------------------------------------------------------------ time

    def _observe_signed(self, ts: datetime) -> None:
        """Raise the clock floor of this worker and, through the shared tables, of every other."""
        self.clock.observe_signed(ts)
        self.shared.raise_floor(ts.timestamp())
        self._floor_seen = max(self._floor_seen, ts.timestamp())

    def _now(self) -> datetime:
        """The floored time, after taking up a floor or a clock lead another worker raised, so that no worker's time
        is behind another's when the host winds its clock back."""
        floor = self.shared.floor
        if floor > self._floor_seen:
            self._floor_seen = floor
            self.clock.observe_signed(datetime.fromtimestamp(floor, UTC))
        lead = self.shared.lead
        if lead > self._lead_seen:
            self._lead_seen = lead
            self.clock.raise_lead(lead)
        now = self.clock.now()
        if self.clock.lead > self._lead_seen:  # rarely: a step forward, or a new maximum of the reading jitter
            self._lead_seen = self.clock.lead
            self.shared.raise_lead(self._lead_seen)
        return now

    # ------------------------------------------------------------------------------------------ policies

    def _sync_policies(self) -> None:
        """Reload the policy cache from the store if any worker has written since this one last looked.

        The generation is read before the store, so a write that lands meanwhile is seen at the next call."""
        generation = self.shared.generation
        if generation == self._generation:
            return
        for name in self.store.names("policy/"):
            raw = self.store.get(name)
            if raw is None:
                continue
            record = json.loads(raw)
            cached = self._state.policies.get(name.removeprefix("policy/"))
            if cached is not None and cached.serial == record["serial"] and cached.policy.hash == record["hash"]:
                continue
            policy = load_policy(record["yaml"], source=name)
            self._state.policies[policy.name] = _LoadedPolicy(policy, record["yaml"], record["serial"])
            self._forget_rendered(policy.name)
        self._generation = generation

    def _forget_rendered(self, name: str) -> None:
        """Drop what this worker derived from a policy that changed: its rendered configs and its copies of the
        policy's secrets. Another worker may have generated secrets anew for a version in between (a spec changed
        and changed back), so they are read from the store again, never trusted because their definition matches."""
        self._rendered = {k: v for k, v in self._rendered.items() if k[0] != name}
        self._state.secrets = {k: v for k, v in self._state.secrets.items() if k[0] != name}

    def _policy(self, name: str) -> _LoadedPolicy:
        self._sync_policies()
        loaded = self._state.policies.get(name)
        if loaded is None:
            raise ApiError(404, "POLICY_NOT_FOUND", f"no policy named {name!r}")
        return loaded

    def _note_keys(self, policy: Policy, names: tuple[str, ...] | list[str], supplied: list[str]) -> list[NoteKey]:
        """The verification keys of the named policy keys. Fingerprint-only keys are taken from ``supplied``."""
        by_fp: dict[str, Any] = {}
        for pem in supplied:
            key = load_public_key(pem)
            by_fp[fingerprint(key)] = key
        keys = []
        for name in dict.fromkeys(names):
            spec = policy.keys[name]
            pub = by_fp.get(spec.lower()) if spec.startswith("sha256:") else load_public_key(spec)
            if pub is not None:
                keys.append(NoteKey(name, pub))
        return keys

    def _authorize(
        self, note: SignedNote, policy: Policy, names: tuple[str, ...], threshold: int, supplied: list[str]
    ) -> list[str]:
        try:
            signers = verify_note(note, self._note_keys(policy, names, supplied))
        except NoteError as exc:
            if exc.code == "NOTE_UNSIGNED":
                raise ApiError(
                    403, "SIGNER_NOT_AUTHORIZED", "no signature by a key that policy access allows"
                ) from None
            raise ApiError(403, exc.code, exc.message) from None
        if len(signers) < threshold:
            raise ApiError(
                403,
                "SIGNATURE_THRESHOLD_NOT_MET",
                f"{len(signers)} of the required {threshold} distinct signers signed",
                reasons=[f"signed by: {', '.join(signers)}"],
            )
        return signers

    async def put_policy(
        self, yaml_text: str, note_text: str, keys: list[str], *, create: bool, url_name: str | None = None
    ) -> dict[str, Any]:
        """Create (``create=True``) or update a policy. The note must be a proposal for exactly this policy,
        signed by enough keys: the new policy's own update signers when creating (the first creator owns the
        name), the *current* policy's when updating."""
        new = load_policy(yaml_text, source="policy")
        if url_name is not None and url_name != new.name:
            raise ApiError(400, "REQUEST_INVALID", "the policy name in the URL differs from the policy's name")
        note = parse_note(note_text)
        proposal = parse_proposal(note.text)
        now = self._now()
        if proposal.name != new.name or proposal.policy_hash != new.hash:
            raise ApiError(403, "NOTE_POLICY_MISMATCH", "the signed proposal is for a different policy")
        if proposal.not_after < int(now.timestamp()):
            raise ApiError(403, "NOTE_EXPIRED", "the signed proposal's not-after time has passed")
        if proposal.predecessor != new.predecessor:
            raise ApiError(403, "NOTE_POLICY_MISMATCH", "the signed proposal names a different predecessor")
        async with self.shared.write_lock():
            self._sync_policies()
            current = self._state.policies.get(new.name)
            if create:
                if current is not None:
                    raise ApiError(409, "POLICY_EXISTS", f"policy {new.name} exists; update it instead")
                if new.predecessor is not None:
                    raise ApiError(409, "PREDECESSOR_MISMATCH", "a new policy has no predecessor", ["current: -"])
                rule = new.access.update
                signers = self._authorize(note, new, rule.signers, rule.threshold, keys)
                serial = 1
            else:
                if current is None:
                    raise ApiError(404, "POLICY_NOT_FOUND", f"no policy named {new.name!r}")
                if new.predecessor != current.policy.hash:
                    raise ApiError(
                        409,
                        "PREDECESSOR_MISMATCH",
                        f"predecessor must be the current hash {current.policy.hash}",
                        [f"current: {current.policy.hash}"],
                    )
                rule = current.policy.access.update
                signers = self._authorize(note, current.policy, rule.signers, rule.threshold, keys)
                serial = current.serial + 1
            record = json.dumps({"yaml": yaml_text, "hash": new.hash, "serial": serial, "signers": signers}).encode()
            puts = {f"policy/{new.name}": record, f"policyhist/{new.name}/{serial:08d}": record}
            expect = {f"policy/{new.name}": None if create else self.store.version_of(f"policy/{new.name}")}
            await asyncio.to_thread(self.store.commit, puts, expect=expect)
            self._state.policies[new.name] = _LoadedPolicy(new, yaml_text, serial)
            self._forget_rendered(new.name)
            self._generation = self.shared.bump_generation()
        log.info("policy %s %s by %s: %s", new.name, "created" if create else "updated", ",".join(signers), new.hash)
        return {
            "name": new.name,
            "hash": new.hash,
            "serial": serial,
            "signers": signers,
            "warnings": list(new.warnings),
        }

    def auth_challenge(self) -> dict[str, str]:
        """A single-use nonce for signing a read request."""
        nonce, expires = self._issue_nonce(self.shared.read_nonces, _READ_BINDING, retain=timedelta(0))
        return {"nonce": nonce.hex(), "expires_at": rfc3339(expires)}

    def _issue_nonce(self, ring: NonceRing, binding: bytes, *, retain: timedelta) -> tuple[bytes, datetime]:
        now = self._now()
        expires = now + self.nonce_ttl
        with self.shared.tables():
            nonce = ring.issue(binding, now.timestamp(), expires.timestamp(), retain.total_seconds())
        if nonce is None:
            raise ApiError(429, "NONCE_LIMIT", "too many outstanding challenges")
        return nonce, expires

    def read_policy(self, name: str, note_text: str, keys: list[str]) -> dict[str, Any]:
        """Return a policy to a key named in its ``access.read`` (or ``access.update.signers``)."""
        note = parse_note(note_text)
        request = parse_read(note.text)
        if request.name != name:
            raise ApiError(403, "NOTE_POLICY_MISMATCH", "the signed read request is for another policy")
        try:
            nonce = bytes.fromhex(request.nonce)
        except ValueError:
            nonce = b""
        with self.shared.tables():
            used = self.shared.read_nonces.consume(nonce)
        if (
            used.status is not NonceStatus.FRESH
            or used.binding != _READ_BINDING
            or used.expires_at < self._now().timestamp()
        ):
            raise ApiError(403, "NONCE_UNKNOWN", "the read request's nonce is unknown, used or expired")
        loaded = self._policy(name)
        access = loaded.policy.access
        self._authorize(note, loaded.policy, (*access.read, *access.update.signers), 1, keys)
        return {"name": name, "hash": loaded.policy.hash, "serial": loaded.serial, "policy": loaded.yaml}

    # ------------------------------------------------------------------------------------------ attestation

    def challenge(self, policy: str, service: str) -> dict[str, str]:
        loaded = self._policy(policy)
        if loaded.policy.service(service) is None:
            raise ApiError(404, "SERVICE_UNKNOWN", f"policy {policy} has no service {service!r}")
        # A used nonce is retained for another TTL after it expires, so that a replay is named as one.
        nonce, expires = self._issue_nonce(self.shared.nonces, binding_of(policy, service), retain=self.nonce_ttl)
        return {"nonce": b64e(nonce), "expires_at": rfc3339(expires)}

    def _consume_nonce(self, nonce: bytes, policy: str, service: str, now: datetime) -> None:
        with self.shared.tables():
            used = self.shared.nonces.consume(nonce)
        if used.status is NonceStatus.UNKNOWN:
            raise ApiError(403, "NONCE_UNKNOWN", "the nonce was not issued by this CAS (or is long expired)")
        if used.status is NonceStatus.REUSED:
            raise ApiError(403, "NONCE_REUSED", "the nonce was already used")
        if used.expires_at < now.timestamp():
            raise ApiError(403, "NONCE_EXPIRED", "the nonce has expired; request a new challenge")
        if used.binding != binding_of(policy, service):
            raise ApiError(403, "NONCE_MISMATCH", "the nonce was issued for another policy or service")

    async def attest(
        self,
        *,
        policy_name: str,
        service_name: str,
        nonce: str,
        public_key: str,
        evidence_type: str,
        evidence: str,
        aux: str | None = None,
        lease_id: str | None = None,
    ) -> dict[str, Any]:
        """Verify, appraise, render, seal. Returns the sealed config, a lease and a signed EAR token. The byte
        fields arrive as the request's base64url text."""
        now = self._now()
        nonce_bytes = b64d(nonce, field="nonce", max_len=64)
        public_key_bytes = b64d(public_key, field="public_key", max_len=64)
        if len(public_key_bytes) != PUBLIC_KEY_BYTES:  # a malformed request does not spend the nonce
            raise ApiError(400, "REQUEST_INVALID", "public_key is not a 32-byte X25519 key")
        self._consume_nonce(nonce_bytes, policy_name, service_name, now)
        loaded = self._policy(policy_name)
        service = loaded.policy.service(service_name)
        if service is None:  # removed by an update since the challenge
            raise ApiError(404, "SERVICE_UNKNOWN", f"policy {policy_name} has no service {service_name!r}")
        data = b64d(evidence, field="evidence.data")
        aux_bytes = b64d(aux, field="evidence.aux") if aux else None
        try:
            claims, verdict, token = await self._run_verify(
                self._verify_and_appraise,
                evidence_type,
                data,
                aux_bytes,
                report_data_for(nonce_bytes, public_key_bytes),
                loaded.policy,
                service_name,
                nonce_bytes,
                now,
            )
        except (EvidenceError, ApiError):
            # The workload's evidence was refused (it does not verify, or does not bind this nonce and key): a
            # renewal refused on its evidence ends the lease. A CollateralError is the CAS's own (stale or missing
            # collateral) and leaves the lease to its expiry.
            if lease_id:
                self._revoke_lease(lease_id, policy_name, service_name)
            raise
        if claims.collateral_issued_at:
            self._observe_signed(claims.collateral_issued_at)
        if not verdict.accepted:
            if lease_id:
                self._revoke_lease(lease_id, policy_name, service_name)
            raise ApiError(403, verdict.reasons[0], verdict.messages[0], list(verdict.reasons))
        payload = await self._payload(loaded.policy, service_name, now)
        # Sealed before the lease is issued or renewed: a key HPKE refuses (a low-order point) leaves no lease.
        sealed = seal_config(public_key_bytes, nonce_bytes, payload)
        lease = self._lease(lease_id, policy_name, service_name, service.lease.ttl, verdict, now)
        return {
            "sealed_config": b64e(sealed),
            "lease": {
                "id": lease.id,
                "issued_at": rfc3339(now),
                "expires_at": rfc3339(lease.expires_at),
                "renew_after": rfc3339(lease.renew_after),
                "stop_grace": service.lease.stop_grace.total_seconds(),
            },
            "policy_version": loaded.policy.hash,
            "verdict": verdict.to_json(),
            "attestation_token": token,
        }

    async def _run_verify(self, fn: Callable[..., _Verified], *args: Any) -> _Verified:
        if self._verify_pool is None:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._verify_pool, fn, *args)

    def _verify_and_appraise(
        self,
        evidence_type: str,
        data: bytes,
        aux: bytes | None,
        report_data: bytes,
        policy: Policy,
        service: str,
        nonce: bytes,
        now: datetime,
    ) -> tuple[Claims, Verdict, str]:
        """The signature-heavy, pure part of an attestation, run on ``_verify_pool``: verify the evidence, check
        its binding, appraise it and, if accepted, sign the EAR token. ECDSA and Ed25519 release the GIL, so on a
        verification pool this runs beside the event loop on another core."""
        claims = self.verifiers.verify(evidence_type, data, aux, now=now)
        if not self.binding.binds(claims, data, report_data):
            raise ApiError(403, "REPORT_DATA_MISMATCH", "the evidence does not bind this nonce and public key")
        verdict = appraise(claims, policy, service, now)
        token = self._ear(claims.platform_id, policy, nonce, verdict.warnings, now) if verdict.accepted else ""
        return claims, verdict, token

    def _lease(
        self, lease_id: str | None, policy: str, service: str, ttl: timedelta, verdict: Any, now: datetime
    ) -> Lease:
        """Issue a lease, or renew the named one. It expires at ``min(now + ttl, verdict deadline)``."""
        expires = now + ttl
        if verdict.deadline is not None and verdict.deadline < expires:
            expires = verdict.deadline
        renew_after = now + (expires - now) / 2
        binding = binding_of(policy, service)
        leases = self.shared.leases
        with self.shared.tables():
            if lease_id:
                found = leases.find(lease_id)
                if found is None or found[1].binding != binding:
                    raise ApiError(403, "LEASE_UNKNOWN", "no such lease for this policy and service")
                slot, current = found
                if current.expires_at <= now.timestamp():
                    leases.revoke(slot)
                    raise ApiError(403, "LEASE_EXPIRED", "the lease expired before it was renewed")
                record = leases.renew(slot, current, expires.timestamp(), renew_after.timestamp())
            else:
                record = leases.issue(binding, now.timestamp(), expires.timestamp(), renew_after.timestamp())
                if record is None:
                    raise ApiError(503, "LEASE_LIMIT", f"all {leases.capacity} lease slots hold live leases")
        return Lease(record.id, expires, renew_after, record.renewals)

    def _revoke_lease(self, lease_id: str, policy: str, service: str) -> None:
        """A renewal refused on its evidence ends the lease: it cannot be renewed later, even with good evidence."""
        with self.shared.tables():
            found = self.shared.leases.find(lease_id)
            if found is not None and found[1].binding == binding_of(policy, service):
                self.shared.leases.revoke(found[0])

    def _ear(self, platform: str, policy: Policy, nonce: bytes, warnings: tuple[str, ...], now: datetime) -> str:
        """An EAR attestation-result token (draft-ietf-rats-ear) for relying parties, signed with EdDSA."""
        status = "warning" if warnings else "affirming"
        claims = {
            "eat_profile": EAR_PROFILE,
            "iat": int(now.timestamp()),
            "eat_nonce": b64e(nonce),
            "ear.verifier-id": {"developer": "custodes", "build": __version__},
            "submods": {
                "workload": {
                    "ear.status": status,
                    "ear.appraisal-policy-id": f"{policy.name}@{policy.hash}",
                    "custodes.platform": platform,
                }
            },
        }
        return sign_ear(claims, self.identity.signing_key)

    # ------------------------------------------------------------------------------------------ secrets

    async def _payload(self, policy: Policy, service: str, now: datetime) -> bytes:
        """The plaintext config for a service. Rendering is pure, so its result is cached per policy version and
        service until the first certificate in it expires; services with per-instance secrets render every time."""
        key = (policy.name, policy.hash, service)
        cached = self._rendered.get(key)
        if cached is not None and (cached[1] is None or cached[1] > now):
            return cached[0]
        materials = await self._materials(policy, service, now)
        rendered = render_service(policy, service, materials)
        payload = {
            "policy": policy.name,
            "service": service,
            "policy_version": policy.hash,
            "config": json.loads(rendered.to_json_bytes()),
        }
        data = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        specs = {spec.name: spec for spec in policy.secrets}
        if not any(getattr(specs[name], "per_instance", False) for name in materials):
            expiries = [m.not_after for m in materials.values() if m.not_after is not None]
            self._rendered[key] = (data, min(expiries) if expiries else None)
        return data

    async def _materials(self, policy: Policy, service: str, now: datetime) -> dict[str, SecretMaterial]:
        """The service's secrets, generated on first use and durable before first release. They are keyed by
        policy name and secret name, so every instance and every later policy version sees the same values."""
        materials: dict[str, SecretMaterial] = {}
        specs = {spec.name: spec for spec in policy.secrets}
        for name in secret_order(policy, service):
            spec = specs[name]
            issuer = materials.get(spec.issuer) if getattr(spec, "issuer", None) else None
            if getattr(spec, "per_instance", False):
                materials[name] = generate_secret(spec, issuer=issuer, now=now)
                continue
            cached = self._state.secrets.get((policy.name, name))
            definition = _definition_hash(spec, issuer)
            if cached is not None and cached[0] == definition and not _needs_reissue(cached[1], now):
                materials[name] = cached[1]
                continue
            materials[name] = await self._load_or_generate(policy.name, spec, definition, issuer, now)
        return materials

    async def _load_or_generate(
        self, policy_name: str, spec: Any, definition: str, issuer: SecretMaterial | None, now: datetime
    ) -> SecretMaterial:
        record_name = f"secret/{policy_name}/{spec.name}"
        async with self.shared.write_lock():
            raw = self.store.get(record_name)
            if raw is not None:
                record = json.loads(raw)
                material = SecretMaterial.from_bytes(b64d(record["material"], field="secret"))
                if record["spec"] == definition and not _needs_reissue(material, now):
                    self._state.secrets[(policy_name, spec.name)] = (definition, material)
                    return material
            material = generate_secret(spec, issuer=issuer, now=now)
            record = {"spec": definition, "material": b64e(material.to_bytes()), "generated_at": rfc3339(now)}
            # ``expect`` as a second line of defence: never overwrite material another worker may have handed out.
            expect = {record_name: self.store.version_of(record_name) if raw is not None else None}
            await asyncio.to_thread(self.store.commit, {record_name: json.dumps(record).encode()}, expect=expect)
            self._state.secrets[(policy_name, spec.name)] = (definition, material)
            log.info("secret %s/%s generated (%s)", policy_name, spec.name, spec.kind)
            return material

    # ------------------------------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        head = self.store.head
        return {
            "version": __version__,
            "simulated_vendor_trusted": self.verifiers.simulated_trusted,
            "policies": len(self._state.policies),
            "leases": self.shared.leases.live(self._now().timestamp()),
            "workers": self.workers,
            "worker": self.worker,
            "worker_pid": os.getpid(),
            "connections": self.open_connections(),
            "store": {"epoch": head.epoch, "version": head.version},
            "time": rfc3339(self._now()),
            "uptime_s": round(time.monotonic() - _START, 1),
        }


def _needs_reissue(material: SecretMaterial, now: datetime) -> bool:
    """Certificates are re-issued when they have expired (with the same key names and issuer)."""
    not_after = material.not_after
    return not_after is not None and not_after <= now
