"""Structural parsing of Intel DCAP quotes (SGX v3, TDX v4, v5): bytes -> frozen values. No crypto, no I/O.

Every length is taken from the quote's own length fields, never from the buffer size. Trailing-bytes rule:
bytes after the signature data are outside the signed region; **all-zero padding is accepted** (Azure, GCP and
dstack pad quote buffers to a fixed size) and its length is reported, while **any non-zero trailing byte is
refused** (``QUOTE_TRAILING_DATA``), since it is unauthenticated data that some other parser might read.
Nested structures must fill their container exactly. All failures raise :class:`EvidenceError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

from custodes.errors import EvidenceError

__all__ = [
    "INTEL_QE_VENDOR_ID",
    "TEE_TYPE_SGX",
    "TEE_TYPE_TDX",
    "DcapQuote",
    "QeCertification",
    "SgxReportBody",
    "TdReportBody",
]

INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
TEE_TYPE_SGX = 0x00000000
TEE_TYPE_TDX = 0x00000081
_HEADER = 48
_SGX_BODY = 384
_TD10_BODY = 584
_TD15_BODY = 648
_V5_BODY_SIZES = {1: _SGX_BODY, 2: _TD10_BODY, 3: _TD15_BODY}
_CERT_PCK_CHAIN = 5
_CERT_QE_REPORT = 6


def _fail(code: str, message: str) -> EvidenceError:
    return EvidenceError(code, message)


@dataclass(frozen=True, slots=True)
class SgxReportBody:
    """An SGX REPORT body (384 bytes): the enclave's identity, or the QE's in the QE report."""

    raw: bytes
    cpusvn: bytes
    miscselect: int
    isv_ext_prod_id: bytes
    attributes: bytes
    mrenclave: bytes
    mrsigner: bytes
    config_id: bytes
    isv_prod_id: int
    isv_svn: int
    config_svn: int
    isv_family_id: bytes
    report_data: bytes

    @classmethod
    def from_bytes(cls, raw: bytes) -> SgxReportBody:
        if len(raw) != _SGX_BODY:
            raise _fail("QUOTE_MALFORMED", "SGX report body must be 384 bytes")
        (miscselect,) = struct.unpack_from("<I", raw, 16)
        isv_prod_id, isv_svn, config_svn = struct.unpack_from("<HHH", raw, 256)
        return cls(
            raw=bytes(raw),
            cpusvn=raw[0:16],
            miscselect=miscselect,
            isv_ext_prod_id=raw[32:48],
            attributes=raw[48:64],
            mrenclave=raw[64:96],
            mrsigner=raw[128:160],
            config_id=raw[192:256],
            isv_prod_id=isv_prod_id,
            isv_svn=isv_svn,
            config_svn=config_svn,
            isv_family_id=raw[304:320],
            report_data=raw[320:384],
        )

    @property
    def debug(self) -> bool:
        """ATTRIBUTES.DEBUG (flags bit 1): the enclave's memory is readable by the host."""
        return bool(self.attributes[0] & 0x02)


@dataclass(frozen=True, slots=True)
class TdReportBody:
    """A TD report body: 1.0 (584 bytes) or 1.5 (648 bytes, with TEE_TCB_SVN2 and MRSERVICETD)."""

    raw: bytes
    tee_tcb_svn: bytes
    mrseam: bytes
    mrsignerseam: bytes
    seam_attributes: bytes
    td_attributes: bytes
    xfam: bytes
    mrtd: bytes
    mrconfigid: bytes
    mrowner: bytes
    mrownerconfig: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes
    tee_tcb_svn2: bytes | None
    mrservicetd: bytes | None

    @classmethod
    def from_bytes(cls, raw: bytes) -> TdReportBody:
        if len(raw) not in (_TD10_BODY, _TD15_BODY):
            raise _fail("QUOTE_MALFORMED", "TD report body must be 584 or 648 bytes")
        v15 = len(raw) == _TD15_BODY
        return cls(
            raw=bytes(raw),
            tee_tcb_svn=raw[0:16],
            mrseam=raw[16:64],
            mrsignerseam=raw[64:112],
            seam_attributes=raw[112:120],
            td_attributes=raw[120:128],
            xfam=raw[128:136],
            mrtd=raw[136:184],
            mrconfigid=raw[184:232],
            mrowner=raw[232:280],
            mrownerconfig=raw[280:328],
            rtmrs=(raw[328:376], raw[376:424], raw[424:472], raw[472:520]),
            report_data=raw[520:584],
            tee_tcb_svn2=raw[584:600] if v15 else None,
            mrservicetd=raw[600:648] if v15 else None,
        )

    @property
    def debug(self) -> bool:
        """TDATTRIBUTES.DEBUG (bit 0 of the little-endian u64): the TD is debuggable by the host."""
        return bool(self.td_attributes[0] & 0x01)


@dataclass(frozen=True, slots=True)
class QeCertification:
    """The quoting enclave's report, its PCK signature, its auth data and the PCK chain (PEM)."""

    qe_report: SgxReportBody
    qe_report_signature: bytes
    qe_auth_data: bytes
    pck_chain_pem: bytes


class _Reader:
    """Bounds-checked little-endian reads inside ``data[start:end]``."""

    def __init__(self, data: bytes, start: int, end: int, code: str) -> None:
        self.data, self.pos, self.end, self.code = data, start, end, code

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise _fail(self.code, f"{what} runs past its container")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "little")

    def u32(self, what: str) -> int:
        return int.from_bytes(self.take(4, what), "little")

    def done(self, what: str) -> None:
        if self.pos != self.end:
            raise _fail("QUOTE_MALFORMED", f"{self.end - self.pos} unexpected bytes after {what}")


def _qe_section(r: _Reader) -> QeCertification:
    qe_report = SgxReportBody.from_bytes(r.take(_SGX_BODY, "QE report"))
    qe_sig = r.take(64, "QE report signature")
    auth = r.take(r.u16("QE auth data size"), "QE auth data")
    cert_type = r.u16("certification data type")
    size = r.u32("certification data size")
    if cert_type != _CERT_PCK_CHAIN:
        raise _fail("QUOTE_CERT_DATA_UNSUPPORTED", f"certification data type {cert_type}; only 5 works offline")
    chain = r.take(size, "PCK certificate chain")
    return QeCertification(qe_report, qe_sig, auth, chain)


@dataclass(frozen=True, slots=True)
class DcapQuote:
    """A structurally valid DCAP quote. Nothing here is verified yet.

    Attributes:
        signed_region: header plus body (v5: plus the 6-byte body descriptor), which the attestation key signs.
        trailing_bytes: count of zero bytes after the quote (padding); non-zero trailing data is refused.
    """

    version: int
    tee: Literal["sgx", "tdx"]
    body_type: int
    qe_svn: int
    pce_svn: int
    user_data: bytes
    body: SgxReportBody | TdReportBody
    signed_region: bytes
    signature: bytes
    attestation_key: bytes
    qe: QeCertification
    trailing_bytes: int

    @classmethod
    def from_bytes(cls, data: bytes) -> DcapQuote:
        """Parse a quote. Raises :class:`EvidenceError` with a ``QUOTE_*`` code."""
        data = bytes(data)
        if len(data) < _HEADER:
            raise _fail("QUOTE_TRUNCATED", "shorter than the 48-byte quote header")
        version, att_key_type, tee_type, qe_svn, pce_svn = struct.unpack_from("<HHIHH", data, 0)
        if version not in (3, 4, 5):
            raise _fail("QUOTE_VERSION_UNSUPPORTED", f"quote version {version}; supported: 3, 4, 5")
        if att_key_type != 2:
            raise _fail("QUOTE_ATT_KEY_TYPE_UNSUPPORTED", f"attestation key type {att_key_type}; supported: 2")
        if tee_type not in (TEE_TYPE_SGX, TEE_TYPE_TDX) or (version == 3 and tee_type != TEE_TYPE_SGX):
            raise _fail("QUOTE_TEE_TYPE_UNSUPPORTED", f"TEE type 0x{tee_type:08x} in a v{version} quote")
        if data[12:28] != INTEL_QE_VENDOR_ID:
            raise _fail("QUOTE_QE_VENDOR_UNKNOWN", "QE vendor is not Intel")
        tee: Literal["sgx", "tdx"] = "sgx" if tee_type == TEE_TYPE_SGX else "tdx"
        pos = _HEADER
        if version == 5:
            if len(data) < pos + 6:
                raise _fail("QUOTE_TRUNCATED", "quote ends inside the v5 body descriptor")
            body_type, body_size = struct.unpack_from("<HI", data, pos)
            if _V5_BODY_SIZES.get(body_type) != body_size:
                raise _fail("QUOTE_BODY_TYPE_UNSUPPORTED", f"v5 body type {body_type} with size {body_size}")
            if (body_type == 1) != (tee == "sgx"):
                raise _fail("QUOTE_BODY_TYPE_MISMATCH", f"v5 body type {body_type} does not fit TEE type {tee}")
            pos += 6
        else:
            body_type = 1 if tee == "sgx" else 2
            body_size = _V5_BODY_SIZES[body_type]
        if len(data) < pos + body_size + 4:
            raise _fail("QUOTE_TRUNCATED", "quote ends inside the report body")
        raw_body = data[pos : pos + body_size]
        body = SgxReportBody.from_bytes(raw_body) if body_type == 1 else TdReportBody.from_bytes(raw_body)
        signed_end = pos + body_size
        (sig_len,) = struct.unpack_from("<I", data, signed_end)
        sig_start = signed_end + 4
        sig_end = sig_start + sig_len
        if sig_end > len(data):
            raise _fail("QUOTE_TRUNCATED", f"signature data of {sig_len} bytes runs past the end of the quote")
        trailing = data[sig_end:]
        if trailing.strip(b"\x00"):
            raise _fail("QUOTE_TRAILING_DATA", f"{len(trailing)} trailing bytes after the quote are not zero padding")
        r = _Reader(data, sig_start, sig_end, "QUOTE_MALFORMED")
        signature = r.take(64, "quote signature")
        attestation_key = r.take(64, "attestation key")
        if version == 3:
            qe = _qe_section(r)
        else:
            cert_type = r.u16("certification data type")
            size = r.u32("certification data size")
            if cert_type != _CERT_QE_REPORT:
                raise _fail("QUOTE_CERT_DATA_UNSUPPORTED", f"certification data type {cert_type}; v4/v5 need type 6")
            inner = _Reader(data, r.pos, r.pos + size, "QUOTE_MALFORMED")
            r.take(size, "QE report certification data")
            qe = _qe_section(inner)
            inner.done("QE report certification data")
        r.done("signature data")
        return cls(
            version=version,
            tee=tee,
            body_type=body_type,
            qe_svn=qe_svn,
            pce_svn=pce_svn,
            user_data=data[28:48],
            body=body,
            signed_region=data[:signed_end],
            signature=signature,
            attestation_key=attestation_key,
            qe=qe,
            trailing_bytes=len(trailing),
        )
