"""Structural parsing of AMD SEV-SNP attestation reports (versions 2 to 5): bytes -> frozen value. No crypto.

The report is 1184 (0x4A0) bytes; the signature covers bytes 0x000..0x29F. Trailing bytes after the report
follow the DCAP rule: zero padding is accepted, non-zero data is refused (``SNP_REPORT_TRAILING_DATA``).
Fields that older versions leave reserved (CPUID in v2; mitigation vectors before v5) are read only by version.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from custodes.errors import EvidenceError

__all__ = ["REPORT_SIZE", "SIGNED_SIZE", "SnpReport", "TcbVersion"]

REPORT_SIZE = 0x4A0
SIGNED_SIZE = 0x2A0
_SUPPORTED_VERSIONS = (2, 3, 4, 5)


@dataclass(frozen=True, slots=True)
class TcbVersion:
    """A TCB_VERSION decoded for a product: Turin adds an FMC SPL and moves the other fields."""

    raw: bytes
    bootloader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None

    @classmethod
    def decode(cls, raw: bytes, product: str) -> TcbVersion:
        if product == "Turin":
            return cls(raw, bootloader=raw[1], tee=raw[2], snp=raw[3], microcode=raw[7], fmc=raw[0])
        return cls(raw, bootloader=raw[0], tee=raw[1], snp=raw[6], microcode=raw[7], fmc=None)

    def as_dict(self) -> dict[str, int]:
        out = {"bootloader": self.bootloader, "tee": self.tee, "snp": self.snp, "microcode": self.microcode}
        if self.fmc is not None:
            out["fmc"] = self.fmc
        return out


@dataclass(frozen=True, slots=True)
class SnpReport:
    """A structurally valid SNP report; nothing verified yet. TCB fields stay raw until the product is known."""

    raw: bytes
    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: bytes
    platform_info: int
    key_info: int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: bytes
    cpuid: tuple[int, int, int] | None
    chip_id: bytes
    committed_tcb: bytes
    current_version: tuple[int, int, int]
    committed_version: tuple[int, int, int]
    launch_tcb: bytes
    launch_mit_vector: int | None
    current_mit_vector: int | None
    signature_r: int
    signature_s: int
    trailing_bytes: int

    @classmethod
    def from_bytes(cls, data: bytes) -> SnpReport:
        """Parse a report. Raises :class:`EvidenceError` with an ``SNP_*`` code."""
        data = bytes(data)
        if len(data) < REPORT_SIZE:
            raise EvidenceError("SNP_REPORT_TRUNCATED", f"an SNP report is {REPORT_SIZE} bytes, got {len(data)}")
        if data[REPORT_SIZE:].strip(b"\x00"):
            raise EvidenceError("SNP_REPORT_TRAILING_DATA", "non-zero bytes after the SNP report")
        version, guest_svn, policy = struct.unpack_from("<IIQ", data, 0)
        if version not in _SUPPORTED_VERSIONS:
            raise EvidenceError("SNP_VERSION_UNSUPPORTED", f"SNP report version {version}; supported: 2 to 5")
        vmpl, sig_algo = struct.unpack_from("<II", data, 0x30)
        (platform_info,) = struct.unpack_from("<Q", data, 0x40)
        (key_info,) = struct.unpack_from("<I", data, 0x48)
        if vmpl > 3:
            raise EvidenceError("SNP_REPORT_MALFORMED", f"VMPL {vmpl} is out of range 0..3")
        if any(data[0x330:REPORT_SIZE]):
            raise EvidenceError("SNP_REPORT_MALFORMED", "the reserved bytes of the signature field are not zero")
        r = data[0x2A0:0x2E8]
        s = data[0x2E8:0x330]
        return cls(
            raw=data[:REPORT_SIZE],
            version=version,
            guest_svn=guest_svn,
            policy=policy,
            family_id=data[0x10:0x20],
            image_id=data[0x20:0x30],
            vmpl=vmpl,
            signature_algo=sig_algo,
            current_tcb=data[0x38:0x40],
            platform_info=platform_info,
            key_info=key_info,
            report_data=data[0x50:0x90],
            measurement=data[0x90:0xC0],
            host_data=data[0xC0:0xE0],
            id_key_digest=data[0xE0:0x110],
            author_key_digest=data[0x110:0x140],
            report_id=data[0x140:0x160],
            report_id_ma=data[0x160:0x180],
            reported_tcb=data[0x180:0x188],
            cpuid=(data[0x188], data[0x189], data[0x18A]) if version >= 3 else None,
            chip_id=data[0x1A0:0x1E0],
            committed_tcb=data[0x1E0:0x1E8],
            current_version=(data[0x1EA], data[0x1E9], data[0x1E8]),
            committed_version=(data[0x1EE], data[0x1ED], data[0x1EC]),
            launch_tcb=data[0x1F0:0x1F8],
            launch_mit_vector=struct.unpack_from("<Q", data, 0x1F8)[0] if version >= 5 else None,
            current_mit_vector=struct.unpack_from("<Q", data, 0x200)[0] if version >= 5 else None,
            signature_r=int.from_bytes(r, "little"),
            signature_s=int.from_bytes(s, "little"),
            trailing_bytes=len(data) - REPORT_SIZE,
        )

    @property
    def signed_bytes(self) -> bytes:
        return self.raw[:SIGNED_SIZE]

    @property
    def signing_key(self) -> int:
        """KEY_INFO.SIGNING_KEY: 0 VCEK, 1 VLEK, 7 none."""
        return (self.key_info >> 2) & 0x7

    @property
    def debug(self) -> bool:
        """POLICY.DEBUG (bit 19): the hypervisor may debug (read) the guest."""
        return bool(self.policy >> 19 & 1)

    @property
    def chip_id_masked(self) -> bool:
        """KEY_INFO.MASK_CHIP_KEY, or an all-zero CHIP_ID (VLEK-signed reports)."""
        return bool(self.key_info & 0x2) or not any(self.chip_id)
