"""AMD SEV-SNP attestation reports (v2, v3, v5; Milan, Genoa, Turin; VCEK or VLEK): bytes -> :class:`Claims`.

Chain: pinned ARK -> ASK (VCEK) or ASVK (VLEK) -> leaf, RSASSA-PSS/SHA-384. The leaf (serial number 0) is parsed
by our own DER reader, so ``cryptography`` never sees it (no deprecation warning, no breakage when it tightens).
The report signature is ECDSA P-384/SHA-384 with little-endian r and s. REPORTED_TCB must equal the leaf's SPL
extensions, and a VCEK's hwID must equal CHIP_ID unless the host masked the chip id.

AMD publishes no signed TCB status: ``Claims.tcb.status`` is ``UpToDate`` with no dates, and
``details["tcb_evaluated"]`` is False; appraisal must compare ``details["reported_tcb"]`` with a policy minimum.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from custodes.clock import require_utc
from custodes.errors import CollateralError, EvidenceError
from custodes.evidence import _der, _roots
from custodes.evidence._bundles import SnpCollateral
from custodes.evidence._cache import LruCache
from custodes.evidence._snp_report import SnpReport, TcbVersion
from custodes.evidence._x509 import RawCertificate, cert_fingerprint, within
from custodes.evidence.claims import Claims, TcbStatus

__all__ = ["SnpVerifier", "verify_snp_report"]

_EXT = "1.3.6.1.4.1.3704.1."
_SPL_OIDS = {"bootloader": "3.1", "tee": "3.2", "snp": "3.3", "microcode": "3.8", "fmc": "3.9"}
_KEY_TYPES = {"vcek": 0, "vlek": 1}


@dataclass(frozen=True, slots=True)
class _CheckedLeaf:
    leaf: RawCertificate
    key: ec.EllipticCurvePublicKey
    chain: _roots.AmdChain
    spl: dict[str, int]
    hwid: bytes | None
    product_name: str
    csp_id: str | None
    crl: x509.CertificateRevocationList | None


def _ext_int(ext: dict[str, bytes], suffix: str) -> int | None:
    raw = ext.get(_EXT + suffix)
    if raw is None:
        return None
    value = _der.read_all(raw)
    if len(value) != 1:
        raise _der.DerError("extension holds more than one value")
    return value[0].as_int()


def _ext_str(ext: dict[str, bytes], suffix: str) -> str | None:
    raw = ext.get(_EXT + suffix)
    if raw is None:
        return None
    (value,) = _der.read_all(raw)
    if value.tag not in (_der.TAG_IA5STRING, 0x0C):
        raise _der.DerError("extension is not a string")
    return value.value.decode("ascii")


def _hwid(raw: bytes | None) -> bytes | None:
    """hwID is a DER OCTET STRING in current certificates and raw bytes in legacy ones: accept both."""
    if raw is None:
        return None
    if len(raw) in (66, 10) and raw[0] == _der.TAG_OCTETSTRING and raw[1] == len(raw) - 2:
        return raw[2:]
    if len(raw) in (64, 8):
        return raw
    raise _der.DerError("hwID has an unexpected size")


class SnpVerifier:
    """Verifies SNP reports against pinned AMD chains. Thread-safe; caches verified chains by content hash."""

    def __init__(self, *, chains: tuple[_roots.AmdChain, ...], cache_size: int = 256) -> None:
        self._chains = chains
        self._ark_fps = {cert_fingerprint(c.ark) for c in chains}
        self._cache: LruCache[_CheckedLeaf] = LruCache(cache_size)

    @classmethod
    @functools.cache
    def amd(cls) -> SnpVerifier:
        """The shared verifier pinned to AMD's ARKs for Milan, Genoa and Turin."""
        return cls(chains=_roots.amd_chains())

    def _pick_chain(self, leaf: RawCertificate, col: SnpCollateral) -> _roots.AmdChain:
        pinned = [c for c in self._chains if c.intermediate.subject.public_bytes() == leaf.issuer]
        if not col.chain:
            if not pinned:
                raise EvidenceError("SNP_CHAIN_INVALID", "the leaf's issuer is not a pinned AMD ASK/ASVK")
            return pinned[0]
        try:
            supplied = [x509.load_der_x509_certificate(der) for der in col.chain]
        except ValueError as exc:
            raise CollateralError("COLLATERAL_MALFORMED", "the SNP chain is not DER certificates") from exc
        inter, ark = supplied[0], supplied[-1]
        if cert_fingerprint(ark) not in self._ark_fps:
            raise EvidenceError("SNP_CHAIN_INVALID", "the supplied ARK is not a pinned AMD root key")
        try:
            ark.verify_directly_issued_by(ark)
            inter.verify_directly_issued_by(ark)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as exc:
            raise EvidenceError("SNP_CHAIN_INVALID", "the supplied ASK/ASVK is not signed by the ARK") from exc
        base = next(c for c in self._chains if cert_fingerprint(c.ark) == cert_fingerprint(ark))
        key_type = "vlek" if "VLEK" in inter.subject.rfc4514_string() else "vcek"
        return _roots.AmdChain(base.product, key_type, inter, ark)

    def _check(self, col: SnpCollateral) -> _CheckedLeaf:
        try:
            leaf = RawCertificate.from_der(col.leaf)
        except ValueError as exc:
            raise EvidenceError("SNP_CERT_MALFORMED", "the VCEK/VLEK certificate is malformed") from exc
        chain = self._pick_chain(leaf, col)
        try:
            leaf.verify_issued_by(chain.intermediate)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as exc:
            raise EvidenceError("SNP_CHAIN_INVALID", "the VCEK/VLEK is not signed by its ASK/ASVK") from exc
        key = leaf.public_key
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
            raise EvidenceError("SNP_CERT_MALFORMED", "the VCEK/VLEK key is not ECDSA P-384")
        try:
            spl = {name: _ext_int(leaf.extensions, oid) for name, oid in _SPL_OIDS.items()}
            hwid = _hwid(leaf.extensions.get(_EXT + "4"))
            product_name = _ext_str(leaf.extensions, "2") or ""
            csp_id = _ext_str(leaf.extensions, "5")
        except (ValueError, UnicodeDecodeError) as exc:
            raise EvidenceError("SNP_CERT_MALFORMED", "the VCEK/VLEK extensions are malformed") from exc
        if any(spl[k] is None for k in ("bootloader", "tee", "snp", "microcode")) or (
            chain.product == "Turin" and spl["fmc"] is None
        ):
            raise EvidenceError("SNP_CERT_MALFORMED", "the VCEK/VLEK lacks TCB (SPL) extensions")
        if chain.key_type == "vcek" and hwid is None:
            raise EvidenceError("SNP_CERT_MALFORMED", "the VCEK lacks the hwID extension")
        crl = None
        if col.crl is not None:
            try:
                crl = x509.load_der_x509_crl(col.crl)
                valid = crl.issuer == chain.ark.subject and crl.is_signature_valid(chain.ark.public_key())  # type: ignore[arg-type]
            except (ValueError, TypeError) as exc:
                raise CollateralError("COLLATERAL_MALFORMED", "the AMD CRL is not a DER CRL") from exc
            if not valid or crl.next_update_utc is None:
                raise CollateralError("CRL_SIGNATURE_INVALID", "the AMD CRL is not signed by the ARK")
        return _CheckedLeaf(
            leaf, key, chain, {k: v for k, v in spl.items() if v is not None}, hwid, product_name, csp_id, crl
        )

    def check_collateral(self, col: SnpCollateral) -> dict[str, object]:
        """Verify the leaf's chain, ignoring time (for import). Returns key type, product, hwID and SPLs."""
        checked = self._cache.get_or_compute(col.digest, lambda: self._check(col))
        return {
            "key_type": checked.chain.key_type,
            "product": checked.chain.product,
            "hwid": checked.hwid.hex() if checked.hwid else None,
            "spl": dict(checked.spl),
            "not_before": checked.leaf.not_before,
            "not_after": checked.leaf.not_after,
        }

    def verify(self, report: bytes, collateral: SnpCollateral, *, now: datetime) -> Claims:
        """Verify a report at ``now``. Raises EvidenceError / CollateralError (codes in docs/evidence.md)."""
        now = require_utc(now)
        rep = SnpReport.from_bytes(report)
        if rep.signature_algo != 1:
            raise EvidenceError("SNP_SIGNATURE_ALGO_UNSUPPORTED", f"signature algorithm {rep.signature_algo}")
        if not isinstance(collateral, SnpCollateral):
            raise CollateralError("COLLATERAL_MALFORMED", "SNP verification needs SnpCollateral")
        checked = self._cache.get_or_compute(collateral.digest, lambda: self._check(collateral))
        chain = checked.chain
        for label, nb, na in (
            ("VCEK/VLEK", checked.leaf.not_before, checked.leaf.not_after),
            ("ASK/ASVK", chain.intermediate.not_valid_before_utc, chain.intermediate.not_valid_after_utc),
            ("ARK", chain.ark.not_valid_before_utc, chain.ark.not_valid_after_utc),
        ):
            if not within(nb, na, now):
                raise EvidenceError("SNP_CERT_EXPIRED", f"the {label} certificate is not valid at {now.isoformat()}")
        if checked.crl is not None:
            crl = checked.crl
            if not within(crl.last_update_utc, crl.next_update_utc or crl.last_update_utc, now):
                raise CollateralError("COLLATERAL_EXPIRED", "the AMD CRL is not valid at this time")
            if crl.get_revoked_certificate_by_serial_number(chain.intermediate.serial_number) is not None:
                raise EvidenceError("SNP_CERT_REVOKED", "the ASK/ASVK is revoked by AMD's CRL")
        if rep.signing_key != _KEY_TYPES[chain.key_type]:
            raise EvidenceError("SNP_KEY_INFO_INVALID", f"the report's signing key does not match a {chain.key_type}")
        signature = encode_dss_signature(rep.signature_r, rep.signature_s)
        try:
            checked.key.verify(signature, rep.signed_bytes, ec.ECDSA(hashes.SHA384()))
        except InvalidSignature as exc:
            raise EvidenceError("SNP_SIGNATURE_INVALID", "the report signature does not verify") from exc
        reported = TcbVersion.decode(rep.reported_tcb, chain.product)
        if reported.as_dict() != checked.spl:
            raise EvidenceError("SNP_TCB_MISMATCH", "REPORTED_TCB differs from the certificate's TCB")
        hwid = checked.hwid
        if chain.key_type == "vcek" and not rep.chip_id_masked and hwid != rep.chip_id[: len(hwid or b"")]:
            raise EvidenceError("SNP_CHIP_ID_MISMATCH", "CHIP_ID differs from the VCEK's hwID")
        return _claims(rep, checked)


def _claims(rep: SnpReport, checked: _CheckedLeaf) -> Claims:
    product = checked.chain.product
    if rep.chip_id_masked:
        spki = checked.key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        platform_id = f"{checked.chain.key_type}:{hashlib.sha256(spki).hexdigest()[:32]}"
    else:
        platform_id = rep.chip_id.hex()
    details: dict[str, object] = {
        "report_version": rep.version,
        "product": product,
        "product_name": checked.product_name,
        "signing_key": checked.chain.key_type.upper(),
        "csp_id": checked.csp_id,
        "guest_svn": rep.guest_svn,
        "family_id": rep.family_id.hex(),
        "image_id": rep.image_id.hex(),
        "author_key_digest": rep.author_key_digest.hex(),
        "report_id": rep.report_id.hex(),
        "report_id_ma": rep.report_id_ma.hex(),
        "platform_info": rep.platform_info,
        "policy_smt_allowed": bool(rep.policy >> 16 & 1),
        "policy_migrate_ma": bool(rep.policy >> 18 & 1),
        "policy_single_socket": bool(rep.policy >> 20 & 1),
        "policy_abi": f"{rep.policy >> 8 & 0xFF}.{rep.policy & 0xFF}",
        "chip_id_masked": rep.chip_id_masked,
        "reported_tcb": TcbVersion.decode(rep.reported_tcb, product).as_dict(),
        "current_tcb": TcbVersion.decode(rep.current_tcb, product).as_dict(),
        "committed_tcb": TcbVersion.decode(rep.committed_tcb, product).as_dict(),
        "launch_tcb": TcbVersion.decode(rep.launch_tcb, product).as_dict(),
        "current_firmware": "{}.{}.{}".format(*rep.current_version),
        "committed_firmware": "{}.{}.{}".format(*rep.committed_version),
        "cpuid": list(rep.cpuid) if rep.cpuid else None,
        "tcb_evaluated": False,
        "trailing_bytes": rep.trailing_bytes,
    }
    if rep.current_mit_vector is not None:
        details |= {"launch_mit_vector": rep.launch_mit_vector, "current_mit_vector": rep.current_mit_vector}
    crl = checked.crl
    return Claims(
        tee="sev-snp",
        measurements={
            "measurement": rep.measurement.hex(),
            "host_data": rep.host_data.hex(),
            "id_key_digest": rep.id_key_digest.hex(),
            "policy": rep.policy,
            "vmpl": rep.vmpl,
        },
        debug=rep.debug,
        report_data=rep.report_data,
        platform_id=platform_id,
        tcb=TcbStatus(status="UpToDate"),
        collateral_issued_at=crl.last_update_utc if crl else None,
        collateral_next_update=crl.next_update_utc if crl else None,
        details=details,
    )


def verify_snp_report(report: bytes, collateral: SnpCollateral, *, now: datetime) -> Claims:
    """Verify an SEV-SNP report with its VCEK/VLEK collateral at ``now`` against the pinned AMD roots.

    Args:
        report: the 1184-byte report (zero padding after it is tolerated).
        collateral: the VCEK or VLEK, optionally with ASK/ASVK, ARK and AMD's CRL.
        now: the verification time, timezone-aware.

    Returns:
        Claims with ``measurement``, ``host_data``, ``id_key_digest``, ``policy`` and ``vmpl``.

    Raises:
        EvidenceError, CollateralError: with the codes listed in ``docs/evidence.md``.
    """
    return SnpVerifier.amd().verify(report, collateral, now=now)
