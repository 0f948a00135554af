"""The simulated TEE: development and CI only.

It mirrors the trust structure of Intel DCAP so that the whole attestation and CVE lifecycle can be exercised
without hardware (DESIGN.md §4):

* a simulated **vendor** owns a root key (ECDSA P-256) and certifies **platforms** with X.509 certificates that
  carry the platform id (subject serialNumber) and the platform's TCB level (extension :data:`TCB_LEVEL_OID`);
* each platform certifies an **attestation key** (as a PCK certifies the QE's attestation key), and the
  attestation key signs each evidence document, so verification costs two P-256 verifies, as a DCAP quote does;
* the vendor signs **TCB info** with Intel's semantics: levels ordered newest first, each with a ``tcbDate``,
  a ``tcbStatus`` and ``advisoryIDs``. Publishing a new TCB info makes older platforms out of date.

Evidence layout (all integers big-endian; :data:`EVIDENCE_MAGIC` first)::

    offset size  field
    0      4     magic  b"CSIM"
    4      2     version (1)
    6      2     flags  (bit 0: debug; other bits must be zero)
    8      48    measurement (SHA-384, see custodes.evidence.measure)
    56     64    report_data
    120    65    attestation public key (uncompressed P-256 point)
    185    64    attestation key endorsement: r||s by the platform key over AK_CONTEXT || ak_pub
    249    2     platform certificate length N (1..4096)
    251    N     platform certificate (DER)
    251+N  64    signature: r||s by the attestation key over bytes [0, 251+N)

Trailing bytes are an error: evidence is exactly ``315 + N`` bytes long.

Everything here is pure: bytes, keys and ``now`` in; :class:`Claims` out. Every result carries
``simulated=True`` so that no appraisal can mistake it for hardware evidence.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from custodes.clock import require_utc
from custodes.errors import CollateralError, EvidenceError
from custodes.evidence.claims import TCB_STATUSES, Claims, TcbStatus

__all__ = [
    "EVIDENCE_MAGIC",
    "TCB_LEVEL_OID",
    "SimEvidence",
    "SimTcbInfo",
    "SimTcbLevel",
    "SimVerifier",
    "endorse_attestation_key",
    "issue_platform_certificate",
    "make_evidence",
    "parse_evidence",
    "sign_tcb_info",
]

EVIDENCE_MAGIC = b"CSIM"
EVIDENCE_VERSION = 1
AK_CONTEXT = b"custodes/sim/attestation-key/v1\n"
TCB_INFO_CONTEXT = b"custodes/sim/tcb-info/v1\n"
#: Private-arc OID for the platform's TCB level in a simulated platform certificate.
TCB_LEVEL_OID = "1.3.6.1.4.1.55555.1.1"
FLAG_DEBUG = 0x0001
_HEADER = struct.Struct(">4sHH48s64s65s64sH")
_SIG_LEN = 64
MAX_CERT_LEN = 4096


def _x509():  # type: ignore[no-untyped-def]
    """cryptography's X.509 modules, imported on first use: the workload side (``custodes run`` in simulation)
    only signs evidence and never parses a certificate, and this import is a fifth of its start-up time."""
    from cryptography import x509  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    return x509, NameOID


def _raw_sig(der_sig: bytes) -> bytes:
    r, s = decode_dss_signature(der_sig)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _der_sig(raw: bytes) -> bytes:
    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return _raw_sig(key.sign(data, _ECDSA_SHA256))


def _verify(pub: ec.EllipticCurvePublicKey, raw_sig: bytes, data: bytes) -> bool:
    try:
        pub.verify(_der_sig(raw_sig), data, _ECDSA_SHA256)
    except InvalidSignature:
        return False
    return True


# --------------------------------------------------------------------------------------------- evidence format


@dataclass(frozen=True, slots=True)
class SimEvidence:
    """A structurally valid (not yet verified) simulated evidence document."""

    debug: bool
    measurement: bytes
    report_data: bytes
    ak_public: bytes
    ak_endorsement: bytes
    platform_cert_der: bytes
    signature: bytes
    signed_bytes: bytes


def parse_evidence(data: bytes) -> SimEvidence:
    """Parse simulated evidence. Raises :class:`EvidenceError` (``SIM_EVIDENCE_MALFORMED``) on any defect."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise EvidenceError("SIM_EVIDENCE_MALFORMED", "evidence must be bytes")
    data = bytes(data)
    if len(data) < _HEADER.size:
        raise EvidenceError("SIM_EVIDENCE_MALFORMED", f"evidence truncated: {len(data)} bytes")
    magic, version, flags, measurement, report_data, ak_pub, ak_end, cert_len = _HEADER.unpack_from(data)
    if magic != EVIDENCE_MAGIC:
        raise EvidenceError("SIM_EVIDENCE_MALFORMED", "not simulated evidence (bad magic)")
    if version != EVIDENCE_VERSION:
        raise EvidenceError("SIM_EVIDENCE_MALFORMED", f"unsupported simulated evidence version {version}")
    if flags & ~FLAG_DEBUG:
        raise EvidenceError("SIM_EVIDENCE_MALFORMED", "reserved flag bits set")
    if not 0 < cert_len <= MAX_CERT_LEN:
        raise EvidenceError("SIM_EVIDENCE_MALFORMED", f"bad platform certificate length {cert_len}")
    end = _HEADER.size + cert_len
    if len(data) != end + _SIG_LEN:
        raise EvidenceError(
            "SIM_EVIDENCE_MALFORMED", f"evidence is {len(data)} bytes, its length fields say {end + _SIG_LEN}"
        )
    return SimEvidence(
        debug=bool(flags & FLAG_DEBUG),
        measurement=measurement,
        report_data=report_data,
        ak_public=ak_pub,
        ak_endorsement=ak_end,
        platform_cert_der=data[_HEADER.size : end],
        signature=data[end:],
        signed_bytes=data[:end],
    )


def make_evidence(
    *,
    platform_cert_der: bytes,
    platform_key: ec.EllipticCurvePrivateKey,
    attestation_key: ec.EllipticCurvePrivateKey,
    measurement: bytes,
    report_data: bytes,
    debug: bool = False,
    ak_endorsement: bytes | None = None,
) -> bytes:
    """Produce signed simulated evidence (the workload-side "quote" operation).

    ``ak_endorsement`` may be passed from :func:`endorse_attestation_key` to skip re-signing it, as a quoting
    enclave keeps its certified key.
    """
    if len(measurement) != 48 or len(report_data) != 64:
        raise ValueError("measurement must be 48 bytes and report_data 64 bytes")
    ak_pub = attestation_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    if ak_endorsement is None:
        ak_endorsement = endorse_attestation_key(platform_key, attestation_key)
    body = (
        _HEADER.pack(
            EVIDENCE_MAGIC,
            EVIDENCE_VERSION,
            FLAG_DEBUG if debug else 0,
            measurement,
            report_data,
            ak_pub,
            ak_endorsement,
            len(platform_cert_der),
        )
        + platform_cert_der
    )
    return body + _sign(attestation_key, body)


def endorse_attestation_key(
    platform_key: ec.EllipticCurvePrivateKey, attestation_key: ec.EllipticCurvePrivateKey
) -> bytes:
    """The platform key's signature over the attestation key (as a PCK signs the QE report)."""
    ak_pub = attestation_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return _sign(platform_key, AK_CONTEXT + ak_pub)


# --------------------------------------------------------------------------------------------- platform certs


def issue_platform_certificate(
    *,
    vendor_key: ec.EllipticCurvePrivateKey,
    vendor_name: str,
    platform_public_key: ec.EllipticCurvePublicKey,
    platform_id: str,
    tcb_level: int,
    now: datetime,
    valid_for: timedelta = timedelta(days=3650),
) -> bytes:
    """The vendor certifies a platform key, its id and its TCB level (as Intel's PCK certificate does)."""
    x509, name_oid = _x509()
    level_extension = x509.UnrecognizedExtension(x509.ObjectIdentifier(TCB_LEVEL_OID), struct.pack(">I", tcb_level))
    subject = x509.Name(
        [
            x509.NameAttribute(name_oid.COMMON_NAME, "custodes simulated platform"),
            x509.NameAttribute(name_oid.SERIAL_NUMBER, platform_id),
        ]
    )
    issuer = x509.Name([x509.NameAttribute(name_oid.COMMON_NAME, vendor_name)])
    now = require_utc(now)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(platform_public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + valid_for)
        .add_extension(level_extension, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(vendor_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True, slots=True)
class _Platform:
    platform_id: str
    tcb_level: int
    public_key: ec.EllipticCurvePublicKey
    not_before: datetime
    not_after: datetime


# --------------------------------------------------------------------------------------------- TCB info


@dataclass(frozen=True, slots=True)
class SimTcbLevel:
    """One TCB level: platforms at ``level`` or above (and below the next higher level) have ``status``."""

    level: int
    tcb_date: datetime
    status: str
    advisories: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SimTcbInfo:
    """Verified, vendor-signed TCB info. Levels are ordered newest (highest) first."""

    issue_date: datetime
    next_update: datetime
    evaluation_number: int
    levels: tuple[SimTcbLevel, ...]

    def match(self, platform_level: int) -> TcbStatus:
        """Intel's rule: the first (highest) level that the platform's level reaches is the matched one."""
        for index, lvl in enumerate(self.levels):
            if platform_level >= lvl.level:
                superseded = self.levels[index - 1].tcb_date if index > 0 else None
                return TcbStatus(lvl.status, lvl.tcb_date, superseded, lvl.advisories)
        raise EvidenceError("TCB_LEVEL_NOT_FOUND", f"no TCB level matches platform level {platform_level}")


def _ts(value: datetime) -> str:
    """RFC 3339 in UTC, whole seconds. Not ``strftime("%Y")``: glibc writes year 999 as ``999``, which the parser
    (``datetime.fromisoformat``) refuses, so a published TCB info would break its own directory."""
    return require_utc(value).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def _parse_ts(value: object) -> datetime:
    if not isinstance(value, str) or not value.endswith("Z"):
        raise ValueError("timestamps are RFC 3339 UTC strings ending in Z")
    return datetime.fromisoformat(value[:-1]).replace(tzinfo=UTC)


def sign_tcb_info(
    vendor_key: ec.EllipticCurvePrivateKey,
    *,
    levels: Sequence[SimTcbLevel],
    issue_date: datetime,
    next_update: datetime,
    evaluation_number: int,
) -> bytes:
    """Serialise and sign TCB info. The result is the JSON file the vendor publishes."""
    body = {
        "id": "custodes-sim",
        "version": 1,
        "issueDate": _ts(issue_date),
        "nextUpdate": _ts(next_update),
        "tcbEvaluationDataNumber": evaluation_number,
        "tcbLevels": [
            {
                "tcb": {"level": lvl.level},
                "tcbDate": _ts(lvl.tcb_date),
                "tcbStatus": lvl.status,
                "advisoryIDs": list(lvl.advisories),
            }
            for lvl in sorted(levels, key=lambda lvl: lvl.level, reverse=True)
        ],
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    signature = _sign(vendor_key, TCB_INFO_CONTEXT + text.encode())
    return json.dumps({"tcbInfo": text, "signature": signature.hex()}, indent=1).encode() + b"\n"


def verify_tcb_info(document: bytes, vendor_public_key: ec.EllipticCurvePublicKey) -> SimTcbInfo:
    """Check the vendor's signature over TCB info and parse it. Raises :class:`CollateralError`."""
    try:
        outer = json.loads(document)
        text = outer["tcbInfo"]
        signature = bytes.fromhex(outer["signature"])
        if not isinstance(text, str) or len(signature) != 64:
            raise ValueError("bad field types")
        signed = TCB_INFO_CONTEXT + text.encode()  # UnicodeEncodeError (a ValueError) on a lone surrogate
    except (ValueError, KeyError, TypeError, RecursionError) as exc:  # RecursionError: JSON nested too deeply
        raise CollateralError("COLLATERAL_MALFORMED", "simulated TCB info is not well-formed") from exc
    if not _verify(vendor_public_key, signature, signed):
        raise CollateralError("COLLATERAL_SIGNATURE_INVALID", "simulated TCB info signature does not verify")
    try:
        body = json.loads(text)
        levels = tuple(
            SimTcbLevel(
                level=int(item["tcb"]["level"]),
                tcb_date=_parse_ts(item["tcbDate"]),
                status=str(item["tcbStatus"]),
                advisories=tuple(str(a) for a in item.get("advisoryIDs", ())),
            )
            for item in body["tcbLevels"]
        )
        info = SimTcbInfo(
            issue_date=_parse_ts(body["issueDate"]),
            next_update=_parse_ts(body["nextUpdate"]),
            evaluation_number=int(body["tcbEvaluationDataNumber"]),
            levels=tuple(sorted(levels, key=lambda lvl: lvl.level, reverse=True)),
        )
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise CollateralError("COLLATERAL_MALFORMED", "simulated TCB info body is not well-formed") from exc
    if not levels or any(lvl.status not in TCB_STATUSES for lvl in levels):
        raise CollateralError("COLLATERAL_MALFORMED", "simulated TCB info has no levels or an unknown status")
    return info


# --------------------------------------------------------------------------------------------- verifier


@lru_cache(maxsize=4096)
def _attestation_key(point: bytes) -> ec.EllipticCurvePublicKey:
    """Decode an attestation key; a platform uses the same one for every evidence document, so it is cached."""
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise EvidenceError("SIM_EVIDENCE_MALFORMED", "attestation key is not a P-256 point") from None


class SimVerifier:
    """Verifies simulated evidence against one trusted simulated vendor.

    The vendor root key and TCB info are verified once; platform certificates, and a platform's endorsement of its
    attestation key, once per distinct byte string (both are the same in every evidence document a platform
    produces, as a DCAP quote's PCK chain and QE report are). Only successes are cached, keyed by the exact bytes
    a verification read, so the per-evidence cost is one P-256 check: the attestation key's signature over it.
    """

    def __init__(self, vendor_public_key: ec.EllipticCurvePublicKey, tcb_info: SimTcbInfo) -> None:
        self._vendor = vendor_public_key
        self._tcb_info = tcb_info
        self._platform = lru_cache(maxsize=4096)(self._verify_platform_cert)
        self._endorsed = lru_cache(maxsize=4096)(self._verify_endorsement)

    @property
    def tcb_info(self) -> SimTcbInfo:
        return self._tcb_info

    def with_tcb_info(self, tcb_info: SimTcbInfo) -> SimVerifier:
        """A verifier for newer TCB info. Older TCB info (a lower evaluation number) is refused: no rollback."""
        if tcb_info.evaluation_number < self._tcb_info.evaluation_number:
            raise CollateralError(
                "COLLATERAL_ROLLBACK",
                f"TCB info evaluation number {tcb_info.evaluation_number} is older than the current "
                f"{self._tcb_info.evaluation_number}",
            )
        return SimVerifier(self._vendor, tcb_info)

    def _verify_endorsement(self, platform_cert_der: bytes, ak_public: bytes, endorsement: bytes) -> bool:
        if not _verify(self._platform(platform_cert_der).public_key, endorsement, AK_CONTEXT + ak_public):
            raise EvidenceError("SIM_SIGNATURE_INVALID", "attestation key is not endorsed by the platform key")
        return True

    def _verify_platform_cert(self, der: bytes) -> _Platform:
        x509, name_oid = _x509()
        try:
            cert = x509.load_der_x509_certificate(der)
            if cert.serial_number <= 0:  # RFC 5280 §4.1.2.2; cryptography only warns about it (for now)
                raise ValueError("certificate serial number is not positive")
            pub = cert.public_key()
            if not isinstance(pub, ec.EllipticCurvePublicKey) or not isinstance(pub.curve, ec.SECP256R1):
                raise ValueError("platform key is not P-256")
            ids = cert.subject.get_attributes_for_oid(name_oid.SERIAL_NUMBER)
            level_ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(TCB_LEVEL_OID)).value
            if len(ids) != 1 or not isinstance(level_ext, x509.UnrecognizedExtension) or len(level_ext.value) != 4:
                raise ValueError("platform id or TCB level missing")
            platform_id = str(ids[0].value)
            (tcb_level,) = struct.unpack(">I", level_ext.value)
            sig_hash = cert.signature_hash_algorithm
        except Exception as exc:  # untrusted DER: whatever the X.509 parser objects to is a malformed certificate
            raise EvidenceError("SIM_EVIDENCE_MALFORMED", "platform certificate is malformed") from exc
        if not isinstance(sig_hash, hashes.SHA256):
            raise EvidenceError("SIM_PLATFORM_UNTRUSTED", "platform certificate uses an unexpected hash")
        try:
            self._vendor.verify(cert.signature, cert.tbs_certificate_bytes, _ECDSA_SHA256)
        except InvalidSignature:
            raise EvidenceError(
                "SIM_PLATFORM_UNTRUSTED", "platform certificate is not signed by the trusted simulated vendor"
            ) from None
        return _Platform(platform_id, tcb_level, pub, cert.not_valid_before_utc, cert.not_valid_after_utc)

    def verify(self, data: bytes, *, now: datetime) -> Claims:
        """Verify simulated evidence. Raises :class:`EvidenceError` or :class:`CollateralError`."""
        now = require_utc(now)
        ev = parse_evidence(data)
        platform = self._platform(ev.platform_cert_der)
        if not platform.not_before <= now <= platform.not_after:
            raise EvidenceError("SIM_PLATFORM_UNTRUSTED", "platform certificate is outside its validity period")
        self._endorsed(ev.platform_cert_der, ev.ak_public, ev.ak_endorsement)
        ak = _attestation_key(ev.ak_public)
        if not _verify(ak, ev.signature, ev.signed_bytes):
            raise EvidenceError("SIM_SIGNATURE_INVALID", "evidence signature does not verify")
        info = self._tcb_info
        if not info.issue_date <= now <= info.next_update:
            raise CollateralError(
                "COLLATERAL_EXPIRED",
                f"simulated TCB info is valid {_ts(info.issue_date)}..{_ts(info.next_update)}, now is {_ts(now)}",
            )
        return Claims(
            tee="simulated",
            measurements={"measurement": ev.measurement.hex()},
            debug=ev.debug,
            report_data=ev.report_data,
            platform_id=platform.platform_id,
            tcb=info.match(platform.tcb_level),
            collateral_issued_at=info.issue_date,
            collateral_next_update=info.next_update,
            simulated=True,
            details={"tcb_level": platform.tcb_level, "evidence_sha256": hashlib.sha256(data).hexdigest()},
        )
