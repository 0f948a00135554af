"""The Intel SGX extension of PCK leaf certificates (OID 1.2.840.113741.1.13.1): FMSPC, TCB SVNs, PPID."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from custodes.errors import EvidenceError
from custodes.evidence import _der

__all__ = ["SGX_EXTENSION_OID", "PckInfo"]

SGX_EXTENSION_OID = "1.2.840.113741.1.13.1"
_TCB = SGX_EXTENSION_OID + ".2"


@dataclass(frozen=True, slots=True)
class PckInfo:
    """What the PCK leaf certifies about the platform.

    Attributes:
        ca: ``processor`` or ``platform`` (which Intel CA issued the leaf; selects the PCK CRL).
        comp_svns: the 16 SGX TCB component SVNs (compared component-wise against TCB levels).
    """

    ppid: bytes
    comp_svns: tuple[int, ...]
    pcesvn: int
    cpusvn: bytes
    pce_id: bytes
    fmspc: bytes
    sgx_type: int
    ca: str

    @classmethod
    def from_certificate(cls, leaf: x509.Certificate) -> PckInfo:
        """Parse the SGX extension. Raises ``EvidenceError(PCK_EXTENSION_INVALID)``.

        The leaf may be unverified (the collateral store reads it from a quote before any signature check).
        """
        try:
            ext = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_EXTENSION_OID)).value
            issuer_cn = leaf.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        except Exception as exc:  # untrusted DER: cryptography decodes extensions and names lazily, here, and
            # raises its own types besides ValueError (DuplicateExtension, UnsupportedGeneralNameType, ...)
            raise EvidenceError("PCK_EXTENSION_INVALID", "the PCK certificate's SGX extension is malformed") from exc
        try:
            return cls._parse(ext, issuer_cn)
        except (ValueError, KeyError, IndexError) as exc:
            raise EvidenceError("PCK_EXTENSION_INVALID", "the PCK certificate's SGX extension is malformed") from exc

    @classmethod
    def _parse(cls, ext: x509.ExtensionType, issuer_cn: list[x509.NameAttribute]) -> PckInfo:
        if not isinstance(ext, x509.UnrecognizedExtension):
            raise ValueError("unexpected extension type")
        top, end = _der.read_one(ext.value)
        if end != len(ext.value):
            raise ValueError("trailing bytes")
        fields = _pairs(top, SGX_EXTENSION_OID)
        tcb = _pairs(fields[".2"], _TCB)
        comp = tuple(tcb[f".{i}"].as_int() for i in range(1, 17))
        if any(not 0 <= svn <= 255 for svn in comp):
            raise ValueError("component SVN out of range")
        pcesvn = tcb[".17"].as_int()
        if not 0 <= pcesvn <= 0xFFFF:
            raise ValueError("PCESVN out of range")
        cn = str(issuer_cn[0].value) if issuer_cn else ""
        ca = {"Intel SGX PCK Processor CA": "processor", "Intel SGX PCK Platform CA": "platform"}.get(cn)
        if ca is None:
            raise ValueError("unknown PCK issuer")
        return cls(
            ppid=_octets(fields[".1"], 16),
            comp_svns=comp,
            pcesvn=pcesvn,
            cpusvn=_octets(tcb[".18"], 16),
            pce_id=_octets(fields[".3"], 2),
            fmspc=_octets(fields[".4"], 6),
            sgx_type=fields[".5"].as_int(),
            ca=ca,
        )


def _octets(tlv: _der.Tlv, size: int) -> bytes:
    value = tlv.expect(_der.TAG_OCTETSTRING).value
    if len(value) != size:
        raise ValueError("wrong octet string size")
    return value


def _pairs(seq: _der.Tlv, prefix: str) -> dict[str, _der.Tlv]:
    """A SEQUENCE of SEQUENCE { OID, value } under ``prefix`` -> {'.suffix': value}; duplicates refused."""
    out: dict[str, _der.Tlv] = {}
    for item in seq.expect(_der.TAG_SEQUENCE).children():
        parts = item.expect(_der.TAG_SEQUENCE).children()
        if len(parts) != 2:
            raise ValueError("extension entry is not an (OID, value) pair")
        oid = _der.decode_oid(parts[0].expect(_der.TAG_OID).value)
        if not oid.startswith(prefix + "."):
            raise ValueError("foreign OID")
        key = oid[len(prefix) :]
        if key in out:
            raise ValueError("duplicate entry")
        out[key] = parts[1]
    return out
