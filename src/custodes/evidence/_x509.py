"""X.509 helpers shared by the DCAP and SNP verifiers.

Two paths, on purpose:

* Intel certificates are ordinary RFC 5280 certificates: ``cryptography`` parses them and checks signatures.
* AMD VCEK/VLEK leaves carry serial number 0, which RFC 5280 forbids; ``cryptography`` warns about it today and
  announces an exception for a future release. :class:`RawCertificate` therefore parses such leaves with our own
  strict DER reader and checks their RSASSA-PSS signature directly with the issuer's public key, so no warning
  is ever emitted and a stricter ``cryptography`` cannot break SEV-SNP verification.

Every function raises :class:`ValueError` (or :class:`~cryptography.exceptions.InvalidSignature`) on bad input;
the verifiers map these to their documented error codes.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, load_der_public_key

from custodes.evidence import _der

__all__ = [
    "RawCertificate",
    "cert_fingerprint",
    "load_pem_chain",
    "within",
]

_OID_RSASSA_PSS = "1.2.840.113549.1.1.10"
_OID_MGF1 = "1.2.840.113549.1.1.8"
_OID_SHA384 = "2.16.840.1.101.3.4.2.2"


def cert_fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER encoding, lower-case hex (how trust anchors are pinned)."""
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


_PEM_CHAIN = re.compile(rb"(?:-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n*)+")
_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----\n([A-Za-z0-9+/=\n]+)-----END CERTIFICATE-----")


def load_pem_chain(pem: bytes, *, allow_crlf: bool = False) -> list[x509.Certificate]:
    """All certificates of a canonical PEM bundle, in order.

    Strict on purpose (quotes): the chain must be byte-for-byte the canonical encoding of its certificates
    (64-column base64, one ``\n`` after each block), followed only by NUL padding as in DCAP cert data, so that no
    byte of a quote's chain is malleable without failing verification. ``allow_crlf`` relaxes this for
    hand-managed collateral files: ``\r\n``, leading and repeated newlines, other line widths.
    """
    text = pem.rstrip(b"\x00")
    if allow_crlf:
        text = text.replace(b"\r\n", b"\n").lstrip(b"\n")
    if not _PEM_CHAIN.fullmatch(text):
        raise ValueError("not a canonical PEM certificate chain")
    ders = [base64.b64decode(m.group(1).replace(b"\n", b""), validate=True) for m in _PEM_BLOCK.finditer(text)]
    if not allow_crlf and text != b"".join(_canonical_pem(der) for der in ders):
        # Byte-exact: 64-column base64 with canonical padding bits, one newline after each block. Otherwise a
        # changed padding bit or newline inside a quote's (unsigned) cert data would still verify.
        raise ValueError("not a canonical PEM certificate chain")
    try:
        return [x509.load_der_x509_certificate(der) for der in ders]
    except x509.InvalidVersion:  # not a ValueError in cryptography; the callers map ValueError to their codes
        raise ValueError("a certificate in the chain has an invalid version") from None


def _canonical_pem(der: bytes) -> bytes:
    body = base64.b64encode(der)
    lines = b"\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return b"-----BEGIN CERTIFICATE-----\n" + lines + b"\n-----END CERTIFICATE-----\n"


def within(not_before: datetime, not_after: datetime, now: datetime) -> bool:
    """True iff ``not_before <= now <= not_after`` (both ends inclusive, as RFC 5280 validity)."""
    return not_before <= now <= not_after


def _parse_time(tlv: _der.Tlv) -> datetime:
    text = tlv.value.decode("ascii")
    if tlv.tag == 0x17 and len(text) == 13 and text.endswith("Z"):
        year = int(text[:2])
        full = ("19" if year >= 50 else "20") + text
    elif tlv.tag == 0x18 and len(text) == 15 and text.endswith("Z"):
        full = text
    else:
        raise _der.DerError("bad certificate time")
    return datetime.strptime(full, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)


def _check_pss_sha384(alg: _der.Tlv) -> None:
    """Require RSASSA-PSS with SHA-384, MGF1-SHA-384 and a 48-byte salt (AMD's only signature scheme)."""
    parts = alg.expect(_der.TAG_SEQUENCE).children()
    if len(parts) != 2 or _der.decode_oid(parts[0].expect(_der.TAG_OID).value) != _OID_RSASSA_PSS:
        raise _der.DerError("not RSASSA-PSS")
    hash_oid = mgf_oid = mgf_hash = None
    salt, trailer = 20, 1
    for field in parts[1].expect(_der.TAG_SEQUENCE).children():
        (inner,) = field.children()
        if field.tag == 0xA0:
            hash_oid = _der.decode_oid(inner.children()[0].expect(_der.TAG_OID).value)
        elif field.tag == 0xA1:
            mgf = inner.children()
            mgf_oid = _der.decode_oid(mgf[0].expect(_der.TAG_OID).value)
            mgf_hash = _der.decode_oid(mgf[1].children()[0].expect(_der.TAG_OID).value)
        elif field.tag == 0xA2:
            salt = inner.as_int()
        elif field.tag == 0xA3:
            trailer = inner.as_int()
        else:
            raise _der.DerError("unknown PSS parameter")
    if (hash_oid, mgf_oid, mgf_hash, salt, trailer) != (_OID_SHA384, _OID_MGF1, _OID_SHA384, 48, 1):
        raise _der.DerError("unsupported PSS parameters")


@dataclass(frozen=True, slots=True)
class RawCertificate:
    """The fields of an AMD leaf certificate that SNP verification needs, parsed without ``cryptography.x509``.

    Attributes:
        der: the full encoding.
        tbs: the signed ``tbsCertificate`` bytes.
        signature: the signature value.
        issuer: the issuer Name, DER (compared byte-for-byte with the issuing certificate's subject).
        not_before / not_after: the validity window (UTC).
        public_key: the subject public key.
        extensions: extension OID (dotted) -> extnValue content bytes.
    """

    der: bytes
    tbs: bytes
    signature: bytes
    issuer: bytes
    not_before: datetime
    not_after: datetime
    public_key: PublicKeyTypes
    extensions: dict[str, bytes]

    @classmethod
    def from_der(cls, der: bytes) -> RawCertificate:
        """Parse a DER certificate; raise ``ValueError`` if it is malformed or not RSASSA-PSS/SHA-384 signed."""
        try:
            return cls._parse(der)
        except (UnsupportedAlgorithm, TypeError, IndexError) as exc:
            raise ValueError("unsupported or malformed certificate") from exc

    @classmethod
    def _parse(cls, der: bytes) -> RawCertificate:
        cert, end = _der.read_one(der)
        if end != len(der):
            raise _der.DerError("trailing bytes after certificate")
        tbs, outer_alg, sig = cert.expect(_der.TAG_SEQUENCE).children()
        fields = tbs.expect(_der.TAG_SEQUENCE).children()
        if len(fields) < 7 or fields[0].tag != 0xA0:
            raise _der.DerError("not an X.509 v3 certificate")
        _serial, inner_alg, issuer, validity, _subject, spki = fields[1:7]
        if inner_alg.raw != outer_alg.raw:
            raise _der.DerError("signature algorithm mismatch")
        _check_pss_sha384(outer_alg)
        sig_bits = sig.expect(_der.TAG_BITSTRING).value
        if not sig_bits or sig_bits[0] != 0:
            raise _der.DerError("bad signature bit string")
        nb, na = (_parse_time(t) for t in validity.expect(_der.TAG_SEQUENCE).children())
        extensions: dict[str, bytes] = {}
        for extra in fields[7:]:
            if extra.tag != 0xA3:
                continue
            (seq,) = extra.children()
            for ext in seq.expect(_der.TAG_SEQUENCE).children():
                parts = ext.children()
                oid = _der.decode_oid(parts[0].expect(_der.TAG_OID).value)
                if oid in extensions:
                    raise _der.DerError("duplicate extension")
                extensions[oid] = parts[-1].expect(_der.TAG_OCTETSTRING).value
        return cls(
            der=bytes(der),
            tbs=tbs.raw,
            signature=sig_bits[1:],
            issuer=issuer.expect(_der.TAG_SEQUENCE).raw,
            not_before=nb,
            not_after=na,
            public_key=load_der_public_key(spki.expect(_der.TAG_SEQUENCE).raw),
            extensions=extensions,
        )

    def verify_issued_by(self, issuer: x509.Certificate) -> None:
        """Check the issuer name and the RSASSA-PSS signature; raise ``ValueError``/``InvalidSignature``."""
        if issuer.subject.public_bytes() != self.issuer:
            raise ValueError("issuer name does not match the issuing certificate")
        key = issuer.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError("issuer key is not RSA")
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
        key.verify(self.signature, self.tbs, pss, hashes.SHA384())
