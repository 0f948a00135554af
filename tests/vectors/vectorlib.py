"""Test helpers: locate the shared vectors where they lie, and forge DCAP evidence under a test PKI.

The vectors are read from ``<project root>/../shared/testvectors`` and never copied. The forge re-signs a real
quote's QE report (and optionally its body, with a fresh attestation key) under a throw-away PKI, so tests can
exercise revocation, identity mismatches and debug enclaves that no real Intel key would sign for us.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from custodes.evidence._dcap_quote import DcapQuote
from custodes.evidence._pck import SGX_EXTENSION_OID
from custodes.evidence._x509 import load_pem_chain
from custodes.evidence.collateral import DcapCollateral
from custodes.evidence.dcap import DcapVerifier

PROJECT_ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
VECTORS = PROJECT_ROOT.parent / "shared" / "testvectors"


def load_vector(relative: str) -> bytes:
    return (VECTORS / relative).read_bytes()


def expected(set_path: str) -> dict:
    return json.loads(load_vector(f"{set_path}/expected.json"))


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class DcapCase:
    set_path: str
    quote_file: str
    tee: str
    now: datetime
    length: int | None = None  # verify only the first N bytes (go-tdx-guest SPR_E4 trailing text)

    @property
    def quote(self) -> bytes:
        data = load_vector(f"{self.set_path}/{self.quote_file}")
        return data[: self.length] if self.length else data

    @property
    def collateral(self) -> DcapCollateral:
        return DcapCollateral.from_json(load_vector(f"{self.set_path}/collateral.json"))

    @property
    def expected(self) -> dict:
        return expected(self.set_path)[self.quote_file]


DCAP_CASES = [
    DcapCase("sgx/dcap-qvl-sgx-v3", "quote.bin", "sgx", ts("2025-07-04T10:28:44Z")),
    DcapCase("tdx/dcap-qvl-tdx-v4-b0c06f", "quote.bin", "tdx", ts("2025-07-04T10:16:31Z")),
    DcapCase("tdx/dcap-qvl-tdx-v4-20a06f", "quote.bin", "tdx", ts("2025-09-17T07:22:55Z")),
    DcapCase("tdx/trustee-tdx-v4-00a06d", "quote.bin", "tdx", ts("2025-11-04T20:45:20Z")),
    DcapCase("tdx/go-tdx-guest-v4-50806f-2023", "quote_trustee_v4.bin", "tdx", ts("2023-07-01T01:00:00Z")),
    DcapCase("tdx/go-tdx-guest-v4-50806f-2023", "quote_spr_e4.bin", "tdx", ts("2023-07-01T01:00:00Z"), 4935),
    DcapCase("tdx/tdx-v5-90c06f-2026", "quote_v5_gotdx.bin", "tdx", ts("2026-03-05T10:50:03Z")),
    DcapCase("tdx/tdx-v5-90c06f-2026", "quote_v5_tcb_unmatched.bin", "tdx", ts("2026-03-05T10:50:03Z")),
    DcapCase("tdx/tdx-v5-90c06f-2026", "quote_v5_trustee.bin", "tdx", ts("2026-03-05T10:50:03Z")),
]
SGX = DCAP_CASES[0]
TDX_V4 = DCAP_CASES[1]
TDX_V5 = DCAP_CASES[6]

SNP_CASES = [
    # (set, report, leaf file, fixed now)
    ("snp/go-sev-guest-milan-v2", "report.bin", "vcek.der", ts("2025-01-01T00:00:00Z")),
    ("snp/virtee-milan-v2", "report.bin", "vcek.der", ts("2025-01-01T00:00:00Z")),
    ("snp/trustee-milan-v2", "report.bin", "vcek.der", ts("2025-01-01T00:00:00Z")),
    ("snp/trustee-milan-vlek-v3", "report.bin", "vlek.der", ts("2025-06-01T00:00:00Z")),
    ("snp/azure-hcl-milan-genoa", "report_milan.bin", "vcek_chain_milan.pem", ts("2025-06-01T00:00:00Z")),
    ("snp/azure-hcl-milan-genoa", "report_genoa.bin", "vcek_genoa.pem", ts("2025-06-01T00:00:00Z")),
]


# -- quote surgery -------------------------------------------------------------------------------------------
def rebuild_quote(q: DcapQuote, **changes: bytes) -> bytes:
    """Serialise a parsed quote again, replacing any of: signed_region, signature, attestation_key,
    qe_report, qe_report_signature, qe_auth_data, pck_chain_pem."""
    parts = {
        "signed_region": q.signed_region,
        "signature": q.signature,
        "attestation_key": q.attestation_key,
        "qe_report": q.qe.qe_report.raw,
        "qe_report_signature": q.qe.qe_report_signature,
        "qe_auth_data": q.qe.qe_auth_data,
        "pck_chain_pem": q.qe.pck_chain_pem,
    } | changes
    qe = (
        parts["qe_report"]
        + parts["qe_report_signature"]
        + struct.pack("<H", len(parts["qe_auth_data"]))
        + parts["qe_auth_data"]
        + struct.pack("<HI", 5, len(parts["pck_chain_pem"]))
        + parts["pck_chain_pem"]
    )
    if q.version != 3:
        qe = struct.pack("<HI", 6, len(qe)) + qe
    sig_data = parts["signature"] + parts["attestation_key"] + qe
    return parts["signed_region"] + struct.pack("<I", len(sig_data)) + sig_data


def _raw_sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)])


class TestPki:
    """A throw-away Intel-shaped PKI: root, PCK CA, PCK leaf (real SGX extension), TCB signer, CRLs."""

    __test__ = False

    def __init__(self, real_quote: DcapQuote, *, start: datetime, end: datetime) -> None:
        self.start, self.end = start, end
        real_leaf, real_ca = load_pem_chain(real_quote.qe.pck_chain_pem)[:2]
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = self._cert(_name("Test SGX Root CA"), self.root_key, self.root_key, None, ca=True)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = real_ca.subject
        self.ca = self._cert(ca_name, self.ca_key, self.root_key, self.root, ca=True)
        self.leaf_key = ec.generate_private_key(ec.SECP256R1())
        ext = real_leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_EXTENSION_OID)).value
        self.leaf = self._cert(
            _name("Intel SGX PCK Certificate"), self.leaf_key, self.ca_key, self.ca, ca=False, extra=ext
        )
        self.signer_key = ec.generate_private_key(ec.SECP256R1())
        self.signer = self._cert(_name("Test TCB Signing"), self.signer_key, self.root_key, self.root, ca=False)
        self.verifier = DcapVerifier(root_ca=self.root)

    def _cert(self, name, key, issuer_key, issuer, *, ca: bool, extra=None) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer.subject if issuer else name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.start)
            .not_valid_after(self.end)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if extra is not None:
            builder = builder.add_extension(extra, critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def crl(self, issuer: x509.Certificate, key, revoked: list[int], this: datetime, nxt: datetime) -> bytes:
        builder = x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
        builder = builder.last_update(this).next_update(nxt)
        for serial in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(this).build()
            )
        return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def pem(self, *certs: x509.Certificate) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)

    def forge_quote(self, q: DcapQuote, *, body: bytes | None = None) -> bytes:
        """Re-sign the QE report with the test PCK key; with ``body``, also replace the body under a new AK."""
        changes: dict[str, bytes] = {"pck_chain_pem": self.pem(self.leaf, self.ca, self.root) + b"\x00"}
        qe_report = q.qe.qe_report.raw
        if body is not None:
            ak_key = ec.generate_private_key(ec.SECP256R1())
            point = ak_key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )[1:]
            binding = hashlib.sha256(point + q.qe.qe_auth_data).digest() + bytes(32)
            qe_report = qe_report[:320] + binding
            head = len(q.signed_region) - len(body)
            signed = q.signed_region[:head] + body
            changes |= {"signed_region": signed, "attestation_key": point, "signature": _raw_sign(ak_key, signed)}
        changes |= {"qe_report": qe_report, "qe_report_signature": _raw_sign(self.leaf_key, qe_report)}
        return rebuild_quote(q, **changes)

    def collateral(
        self,
        real: DcapCollateral,
        *,
        now: datetime,
        tcb_info: str | None = None,
        qe_identity: str | None = None,
        revoked_pck: list[int] | None = None,
        revoked_by_root: list[int] | None = None,
    ) -> DcapCollateral:
        """The real TCB info / QE identity (or edited texts), re-signed by the test TCB signer, plus test CRLs."""
        tcb_text = tcb_info if tcb_info is not None else real.tcb_info
        qe_text = qe_identity if qe_identity is not None else real.qe_identity
        day = timedelta(days=1)
        return replace(
            real,
            pck_crl_issuer_chain=self.pem(self.ca, self.root).decode(),
            root_ca_crl=self.crl(self.root, self.root_key, revoked_by_root or [], now - day, now + day),
            pck_crl=self.crl(self.ca, self.ca_key, revoked_pck or [], now - day, now + day),
            tcb_info_issuer_chain=self.pem(self.signer, self.root).decode(),
            tcb_info=tcb_text,
            tcb_info_signature=_raw_sign(self.signer_key, tcb_text.encode()),
            qe_identity_issuer_chain=self.pem(self.signer, self.root).decode(),
            qe_identity=qe_text,
            qe_identity_signature=_raw_sign(self.signer_key, qe_text.encode()),
        )


def forge_for(case: DcapCase) -> tuple[TestPki, DcapQuote]:
    q = DcapQuote.from_bytes(case.quote)
    return TestPki(q, start=datetime(2020, 1, 1, tzinfo=UTC), end=datetime(2040, 1, 1, tzinfo=UTC)), q
