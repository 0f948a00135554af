"""Intel DCAP quote verification shared by SGX (v3) and TDX (v4, v5): bytes + collateral -> :class:`DcapResult`.

The procedure mirrors Intel's QVL (see ``docs/evidence.md`` for every step and error code). Expensive checks
whose outcome depends on content alone (collateral signatures and chains, the PCK chain carried in the quote) are
cached by content hash; everything that depends on time and revocation is re-checked on every call against the
caller's ``now``. Per quote, exactly two ECDSA P-256 verifications remain: the QE report and the quote itself.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, replace
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from custodes.clock import require_utc
from custodes.errors import CollateralError, EvidenceError
from custodes.evidence import _roots
from custodes.evidence._bundles import DcapCollateral
from custodes.evidence._cache import LruCache
from custodes.evidence._dcap_quote import DcapQuote, TdReportBody
from custodes.evidence._pck import PckInfo
from custodes.evidence._tcb_info import (
    EnclaveIdentity,
    IsvLevel,
    TcbInfo,
    TcbLevel,
    converge,
    masked_equal,
    match_isv,
    superseded_at,
)
from custodes.evidence._x509 import cert_fingerprint, load_pem_chain, within

__all__ = ["DcapResult", "DcapVerifier"]

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def _raw_sig(sig: bytes) -> bytes:
    return encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))


@functools.lru_cache(maxsize=4096)
def _attestation_key(raw: bytes) -> ec.EllipticCurvePublicKey:
    """Decode a quote's attestation key. A quoting enclave keeps its key, so the decoding is cached by value."""
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + raw)
    except ValueError as exc:
        raise EvidenceError("QUOTE_MALFORMED", "the attestation key is not a P-256 point") from exc


def _p256_ok(key: ec.EllipticCurvePublicKey, sig: bytes, data: bytes) -> bool:
    try:
        key.verify(_raw_sig(sig), data, _ECDSA_SHA256)
    except InvalidSignature:
        return False
    return True


def _in_window(label: str, start: datetime, end: datetime, now: datetime) -> None:
    if now < start:
        raise CollateralError("COLLATERAL_NOT_YET_VALID", f"{label} is not valid before {start.isoformat()}")
    if now > end:
        raise CollateralError("COLLATERAL_EXPIRED", f"{label} expired at {end.isoformat()}")


def _cert_id(cert: x509.Certificate) -> bytes:
    """Subject and public key: what must match between the PCK CRL's issuer and the quote's PCK CA."""
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return cert.subject.public_bytes() + spki


@dataclass(frozen=True, slots=True)
class _Crl:
    issuer: x509.Name
    serials: frozenset[int]
    this_update: datetime
    next_update: datetime


@dataclass(frozen=True, slots=True)
class _CheckedCollateral:
    """Collateral whose signatures and chains were verified (cached); time windows are checked per use."""

    root_crl: _Crl
    pck_crl: _Crl
    pck_crl_ca: x509.Certificate
    pck_crl_ca_id: bytes
    signer_serials: frozenset[int]
    windows: tuple[tuple[str, datetime, datetime], ...]
    tcb_info: TcbInfo
    qe_identity: EnclaveIdentity


@dataclass(frozen=True, slots=True)
class _CheckedPckChain:
    leaf: x509.Certificate
    ca: x509.Certificate
    leaf_key: ec.EllipticCurvePublicKey
    pck: PckInfo
    ca_id: bytes
    windows: tuple[tuple[str, datetime, datetime], ...]
    digest: bytes


@dataclass(frozen=True, slots=True)
class DcapResult:
    """A verified DCAP quote and its TCB evaluation.

    Attributes:
        status: the converged status (platform with QE and, for TDX, the TDX module).
        platform_level: the matched platform TCB level.
        superseded_at: the earliest next-recovery date among the matched platform, QE and TDX module levels.
        issued_at / next_update: newest issue date and earliest next update among TCB info, QE identity, CRLs.
    """

    quote: DcapQuote
    pck: PckInfo
    status: str
    advisories: tuple[str, ...]
    platform_level: TcbLevel
    qe_level: IsvLevel
    module_level: IsvLevel | None
    module_id: str | None
    superseded_at: datetime | None
    issued_at: datetime
    next_update: datetime
    tcb_evaluation_data_number: int


class DcapVerifier:
    """Verifies DCAP quotes against one pinned root. Thread-safe; caches verified collateral by content hash.

    Use :meth:`intel` in production. Another root is only for tests that build their own PKI.
    """

    def __init__(self, *, root_ca: x509.Certificate, cache_size: int = 256) -> None:
        self._root = root_ca
        self._root_fp = cert_fingerprint(root_ca)
        self._collateral_cache: LruCache[_CheckedCollateral] = LruCache(cache_size)
        self._chain_cache: LruCache[_CheckedPckChain] = LruCache(cache_size * 4)
        self._eval_cache: LruCache[DcapResult] = LruCache(cache_size * 4)

    @classmethod
    @functools.cache
    def intel(cls) -> DcapVerifier:
        """The shared verifier pinned to the Intel SGX Root CA."""
        return cls(root_ca=_roots.intel_sgx_root_ca())

    # -- collateral -------------------------------------------------------------------------------------------
    def _signed_by_root(self, pem: str, what: str, code: str) -> tuple[x509.Certificate, ...]:
        try:
            certs = load_pem_chain(pem.encode(), allow_crlf=True)
        except ValueError as exc:
            raise CollateralError("COLLATERAL_MALFORMED", f"{what} issuer chain is not PEM") from exc
        if len(certs) > 1 and cert_fingerprint(certs[-1]) != self._root_fp:
            raise CollateralError(code, f"{what} issuer chain ends in an untrusted root")
        if len(certs) not in (1, 2):
            raise CollateralError(code, f"{what} issuer chain must be signer + root")
        try:
            certs[0].verify_directly_issued_by(self._root)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as exc:
            raise CollateralError(code, f"{what} signer is not issued by the pinned root") from exc
        return (certs[0],)

    def _crl(self, der: bytes, issuer: x509.Certificate, what: str) -> _Crl:
        try:
            crl = x509.load_der_x509_crl(der)
            next_update = crl.next_update_utc
            crl_issuer = crl.issuer  # decoded lazily, here: an invalid string in the name raises ValueError
        except ValueError as exc:
            raise CollateralError("COLLATERAL_MALFORMED", f"{what} is not a DER CRL") from exc
        if next_update is None:
            raise CollateralError("COLLATERAL_MALFORMED", f"{what} has no nextUpdate")
        if crl_issuer != issuer.subject or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            raise CollateralError("CRL_SIGNATURE_INVALID", f"{what} is not signed by {issuer.subject.rfc4514_string()}")
        return _Crl(crl_issuer, frozenset(r.serial_number for r in crl), crl.last_update_utc, next_update)

    def _check_collateral(self, col: DcapCollateral) -> _CheckedCollateral:
        root_crl = self._crl(col.root_ca_crl, self._root, "root CA CRL")
        try:
            pck_crl_chain = load_pem_chain(col.pck_crl_issuer_chain.encode(), allow_crlf=True)
        except ValueError as exc:
            raise CollateralError("COLLATERAL_MALFORMED", "PCK CRL issuer chain is not PEM") from exc
        pck_crl_ca = pck_crl_chain[0]
        try:
            pck_crl_ca.verify_directly_issued_by(self._root)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as exc:
            raise CollateralError("CRL_SIGNATURE_INVALID", "PCK CRL issuer is not issued by the pinned root") from exc
        pck_crl = self._crl(col.pck_crl, pck_crl_ca, "PCK CRL")
        tcb_signer = self._signed_by_root(col.tcb_info_issuer_chain, "TCB info", "TCB_SIGNING_CHAIN_INVALID")
        qe_signer = self._signed_by_root(col.qe_identity_issuer_chain, "QE identity", "TCB_SIGNING_CHAIN_INVALID")
        for signer, text, sig, code in (
            (tcb_signer[0], col.tcb_info, col.tcb_info_signature, "TCB_INFO_SIGNATURE_INVALID"),
            (qe_signer[0], col.qe_identity, col.qe_identity_signature, "QE_IDENTITY_SIGNATURE_INVALID"),
        ):
            key = signer.public_key()
            if not isinstance(key, ec.EllipticCurvePublicKey) or not _p256_ok(key, sig, text.encode()):
                raise CollateralError(code, "signature over the served JSON does not verify")
        tcb_info = TcbInfo.from_json(col.tcb_info)
        qe_identity = EnclaveIdentity.from_json(col.qe_identity)
        certs = (self._root, *tcb_signer, *qe_signer, pck_crl_ca)
        windows = tuple((c.subject.rfc4514_string(), c.not_valid_before_utc, c.not_valid_after_utc) for c in certs)
        windows += (
            ("root CA CRL", root_crl.this_update, root_crl.next_update),
            ("PCK CRL", pck_crl.this_update, pck_crl.next_update),
            ("TCB info", tcb_info.issue_date, tcb_info.next_update),
            ("QE identity", qe_identity.issue_date, qe_identity.next_update),
        )
        return _CheckedCollateral(
            root_crl=root_crl,
            pck_crl=pck_crl,
            pck_crl_ca=pck_crl_ca,
            pck_crl_ca_id=_cert_id(pck_crl_ca),
            signer_serials=frozenset(c.serial_number for c in (*tcb_signer, *qe_signer)),
            windows=windows,
            tcb_info=tcb_info,
            qe_identity=qe_identity,
        )

    def check_collateral(self, col: DcapCollateral) -> tuple[TcbInfo, EnclaveIdentity, str]:
        """Verify the collateral's signatures and chains, ignoring time (for import). Returns the parsed
        TCB info, QE identity and PCK CA kind (``processor`` or ``platform``)."""
        checked = self._collateral_cache.get_or_compute(col.digest, lambda: self._check_collateral(col))
        cn = checked.pck_crl_ca.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        ca = {"Intel SGX PCK Processor CA": "processor", "Intel SGX PCK Platform CA": "platform"}.get(
            str(cn[0].value) if cn else "", "unknown"
        )
        return checked.tcb_info, checked.qe_identity, ca

    def _collateral_at(self, col: DcapCollateral, now: datetime) -> _CheckedCollateral:
        checked = self._collateral_cache.get_or_compute(col.digest, lambda: self._check_collateral(col))
        for label, start, end in checked.windows:
            _in_window(label, start, end, now)
        if checked.signer_serials & checked.root_crl.serials:
            raise CollateralError("COLLATERAL_REVOKED", "the TCB signing certificate is revoked by the root CA CRL")
        return checked

    # -- PCK chain --------------------------------------------------------------------------------------------
    def _check_pck_chain(self, pem: bytes) -> _CheckedPckChain:
        try:
            certs = load_pem_chain(pem)
        except ValueError as exc:
            raise EvidenceError("PCK_CHAIN_INVALID", "the PCK certificate chain is not PEM") from exc
        if len(certs) not in (2, 3):
            raise EvidenceError("PCK_CHAIN_INVALID", "the PCK chain must be leaf, PCK CA and root")
        if len(certs) == 3 and cert_fingerprint(certs[2]) != self._root_fp:
            raise EvidenceError("PCK_CHAIN_INVALID", "the PCK chain ends in an untrusted root")
        leaf, ca = certs[0], certs[1]
        try:
            ca.verify_directly_issued_by(self._root)
            leaf.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as exc:
            raise EvidenceError("PCK_CHAIN_INVALID", "the PCK chain does not verify to the pinned root") from exc
        try:
            key = leaf.public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise EvidenceError("PCK_CHAIN_INVALID", "the PCK key cannot be loaded") from exc
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise EvidenceError("PCK_CHAIN_INVALID", "the PCK key is not ECDSA P-256")
        windows = tuple((c.subject.rfc4514_string(), c.not_valid_before_utc, c.not_valid_after_utc) for c in (leaf, ca))
        pck = PckInfo.from_certificate(leaf)
        return _CheckedPckChain(leaf, ca, key, pck, _cert_id(ca), windows, hashlib.sha256(pem).digest())

    def _pck_at(self, pem: bytes, checked: _CheckedCollateral, now: datetime) -> _CheckedPckChain:
        chain = self._chain_cache.get_or_compute(hashlib.sha256(pem).digest(), lambda: self._check_pck_chain(pem))
        for label, start, end in chain.windows:
            if not within(start, end, now):
                raise EvidenceError("PCK_CERT_EXPIRED", f"{label} is not valid at {now.isoformat()}")
        if checked.pck_crl_ca_id != chain.ca_id:
            raise CollateralError("CRL_ISSUER_MISMATCH", f"the PCK CRL is not for the {chain.pck.ca} CA")
        if chain.ca.serial_number in checked.root_crl.serials:
            raise EvidenceError("PCK_REVOKED", "the PCK CA certificate is revoked by the root CA CRL")
        if chain.leaf.serial_number in checked.pck_crl.serials:
            raise EvidenceError("PCK_REVOKED", "the PCK certificate is revoked by the PCK CRL")
        return chain

    # -- the quote --------------------------------------------------------------------------------------------
    def verify(self, quote: bytes, collateral: DcapCollateral, *, now: datetime, tee: str) -> DcapResult:
        """Verify a quote of the given TEE (``sgx`` or ``tdx``). Raises EvidenceError / CollateralError."""
        now = require_utc(now)
        q = DcapQuote.from_bytes(quote)
        if q.tee != tee:
            raise EvidenceError("QUOTE_TEE_TYPE_MISMATCH", f"expected a {tee} quote, got a {q.tee} quote")
        if not isinstance(collateral, DcapCollateral):
            raise CollateralError("COLLATERAL_MALFORMED", "DCAP verification needs DcapCollateral")
        col = self._collateral_at(collateral, now)
        tcb_info, qe_id = col.tcb_info, col.qe_identity
        chain = self._pck_at(q.qe.pck_chain_pem, col, now)
        pck = chain.pck
        if tcb_info.id != tee.upper() or (tee == "tdx" and tcb_info.version < 3):
            raise CollateralError("COLLATERAL_MISMATCH", f"TCB info {tcb_info.id} v{tcb_info.version} is not for {tee}")
        if tcb_info.fmspc != pck.fmspc or tcb_info.pce_id != pck.pce_id:
            raise CollateralError("COLLATERAL_MISMATCH", "TCB info is for another FMSPC or PCE")
        if qe_id.id != ("QE" if tee == "sgx" else "TD_QE"):
            raise CollateralError("COLLATERAL_MISMATCH", f"QE identity {qe_id.id} is not for {tee}")

        qe_report = q.qe.qe_report
        if not _p256_ok(chain.leaf_key, q.qe.qe_report_signature, qe_report.raw):
            raise EvidenceError("QE_REPORT_SIGNATURE_INVALID", "the QE report is not signed by the PCK key")
        binding = hashlib.sha256(q.attestation_key + q.qe.qe_auth_data).digest()
        if qe_report.report_data != binding + bytes(32):
            raise EvidenceError("QE_REPORT_DATA_MISMATCH", "the QE report does not bind the attestation key")
        if (
            qe_report.mrsigner != qe_id.mrsigner
            or qe_report.isv_prod_id != qe_id.isvprodid
            or not masked_equal(qe_report.raw[16:20], qe_id.miscselect_mask, qe_id.miscselect)
            or not masked_equal(qe_report.attributes, qe_id.attributes_mask, qe_id.attributes)
        ):
            raise EvidenceError("QE_IDENTITY_MISMATCH", "the quoting enclave is not the one Intel's QE identity names")
        qe_level = match_isv(qe_id.levels, qe_report.isv_svn)
        if qe_level is None:
            raise EvidenceError("QE_TCB_LEVEL_NOT_FOUND", "the QE's ISVSVN is below every QE identity TCB level")

        if not _p256_ok(_attestation_key(q.attestation_key), q.signature, q.signed_region):
            raise EvidenceError("QUOTE_SIGNATURE_INVALID", "the quote signature does not verify")

        # The TCB evaluation is a pure function of the collateral, the PCK certificate and these body fields.
        tdx_fields = q.body.raw[:120] if isinstance(q.body, TdReportBody) else b""
        key = collateral.digest + chain.digest + tdx_fields + qe_report.isv_svn.to_bytes(2, "little")
        cached = self._eval_cache.get_or_compute(key, lambda: self._evaluate(q, pck, col, qe_level))
        return replace(cached, quote=q)

    def _evaluate(self, q: DcapQuote, pck: PckInfo, col: _CheckedCollateral, qe_level: IsvLevel) -> DcapResult:
        tcb_info = col.tcb_info
        tee_tcb_svn = q.body.tee_tcb_svn if isinstance(q.body, TdReportBody) else None
        level = tcb_info.match(pck.comp_svns, pck.pcesvn, tee_tcb_svn)
        if level is None:
            raise EvidenceError("TCB_LEVEL_NOT_FOUND", "no TCB level in the TCB info matches this platform")
        dates = [lv.tcb_date for lv in tcb_info.levels]
        superseded = [superseded_at(dates, level.tcb_date)]
        status = converge(level.status, qe_level.status)
        advisories = [*level.advisories, *qe_level.advisories]
        superseded.append(superseded_at([lv.tcb_date for lv in col.qe_identity.levels], qe_level.tcb_date))
        module_level = module_id = None
        if isinstance(q.body, TdReportBody):
            module_level, module_id = self._module(q.body, tcb_info)
            if module_level is not None:
                status = converge(status, module_level.status)
                advisories += module_level.advisories
                mod = tcb_info.module_identity(q.body.tee_tcb_svn)
                mod_dates = [lv.tcb_date for lv in mod.levels] if mod else []
                superseded.append(superseded_at(mod_dates, module_level.tcb_date))
        known = [d for d in superseded if d is not None]
        return DcapResult(
            quote=q,
            pck=pck,
            status=status,
            advisories=tuple(dict.fromkeys(advisories)),
            platform_level=level,
            qe_level=qe_level,
            module_level=module_level,
            module_id=module_id,
            superseded_at=min(known) if known else None,
            issued_at=max(
                tcb_info.issue_date, col.qe_identity.issue_date, col.root_crl.this_update, col.pck_crl.this_update
            ),
            next_update=min(
                tcb_info.next_update, col.qe_identity.next_update, col.root_crl.next_update, col.pck_crl.next_update
            ),
            tcb_evaluation_data_number=min(tcb_info.evaluation_data_number, col.qe_identity.evaluation_data_number),
        )

    @staticmethod
    def _module(body: TdReportBody, tcb_info: TcbInfo) -> tuple[IsvLevel | None, str | None]:
        module = tcb_info.module_identity(body.tee_tcb_svn)
        if module is None:
            raise EvidenceError("TDX_MODULE_IDENTITY_NOT_FOUND", "the TCB info has no identity for this TDX module")
        if body.mrsignerseam != module.mrsigner or not masked_equal(
            body.seam_attributes, module.attributes_mask, module.attributes, mask_expected=True
        ):
            raise EvidenceError("TDX_MODULE_MISMATCH", "the TDX module signer or attributes do not match")
        if not module.levels:
            return None, module.id
        level = match_isv(module.levels, body.tee_tcb_svn[0])
        if level is None:
            raise EvidenceError("TDX_MODULE_TCB_LEVEL_NOT_FOUND", "the TDX module SVN is below every level")
        return level, module.id
