"""On-disk layout of a simulated vendor and its platforms (``custodes sim``). Development and CI only.

This is the one module of ``custodes.evidence`` that touches files; the verification logic stays in
:mod:`custodes.evidence.simulated`. Layout of a directory made by ``custodes sim init DIR``::

    DIR/SIMULATED.txt                      a warning: nothing here is a hardware root of trust
    DIR/vendor/root-key.pem                the vendor's private root key (0600)
    DIR/vendor/root.pem                    the vendor's public root key: what ``cas serve --sim-vendor`` trusts
    DIR/vendor/tcb-info.json               the current signed TCB info
    DIR/platforms/<id>/platform-key.pem    the platform key (0600), as fused into a CPU
    DIR/platforms/<id>/platform-cert.der   the vendor's certificate for it (platform id and TCB level)
    DIR/platforms/<id>/attestation-key.pem the attestation key (0600), as a quoting enclave holds it

Private keys live in the same tree as the public ones only because this is a simulation.
"""

from __future__ import annotations

import functools
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from custodes.errors import CollateralError, CustodesError
from custodes.evidence.simulated import (
    TCB_LEVEL_OID,
    SimTcbInfo,
    SimTcbLevel,
    SimVerifier,
    endorse_attestation_key,
    issue_platform_certificate,
    make_evidence,
    sign_tcb_info,
    verify_tcb_info,
)

__all__ = ["SimPlatform", "SimVendor", "load_sim_verifier"]

VENDOR_NAME = "custodes SIMULATED vendor root (development only)"
_WARNING = (
    "This directory holds a SIMULATED TEE vendor and SIMULATED platforms made by `custodes sim init`.\n"
    "They are for development and CI only. Their private keys are in plain files: they prove nothing.\n"
)


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)


def _read_private(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CustodesError("SIM_DIR_INVALID", f"{path} is not an EC private key")
    return key


def _replace(path: Path, data: bytes) -> None:
    """Atomic replace, so a concurrent reader never sees half a file."""
    tmp = path.with_name(path.name + f".tmp{secrets.token_hex(4)}")
    tmp.write_bytes(data)
    tmp.replace(path)


def read_vendor_public_key(sim_dir: Path) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key((sim_dir / "vendor" / "root.pem").read_bytes())
    except (OSError, ValueError) as exc:
        raise CustodesError("SIM_DIR_INVALID", f"{sim_dir} is not a simulated vendor directory") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CustodesError("SIM_DIR_INVALID", "simulated vendor root is not an EC key")
    return key


def load_sim_verifier(sim_dir: Path) -> SimVerifier:
    """What the CAS loads for ``--sim-vendor DIR``: the public root key and the verified TCB info."""
    vendor = read_vendor_public_key(sim_dir)
    try:
        document = (sim_dir / "vendor" / "tcb-info.json").read_bytes()
    except OSError as exc:
        raise CollateralError("COLLATERAL_MISSING", f"no TCB info in {sim_dir}") from exc
    return SimVerifier(vendor, verify_tcb_info(document, vendor))


@dataclass(frozen=True)
class SimPlatform:
    """A simulated platform directory: produces evidence the way a CPU's quoting enclave would."""

    path: Path

    @property
    def platform_id(self) -> str:
        return self.path.name

    @functools.cached_property
    def _keys(self) -> tuple[bytes, ec.EllipticCurvePrivateKey, ec.EllipticCurvePrivateKey, bytes]:
        """The platform's certificate and keys, loaded once (a quoting enclave keeps them in memory)."""
        try:
            cert = (self.path / "platform-cert.der").read_bytes()
            platform_key = _read_private(self.path / "platform-key.pem")
            attestation_key = _read_private(self.path / "attestation-key.pem")
        except OSError as exc:
            raise CustodesError("SIM_DIR_INVALID", f"{self.path} is not a simulated platform directory") from exc
        return cert, platform_key, attestation_key, endorse_attestation_key(platform_key, attestation_key)

    def evidence(self, *, measurement: bytes, report_data: bytes, debug: bool = False) -> bytes:
        cert, platform_key, attestation_key, endorsement = self._keys
        return make_evidence(
            platform_cert_der=cert,
            platform_key=platform_key,
            attestation_key=attestation_key,
            measurement=measurement,
            report_data=report_data,
            debug=debug,
            ak_endorsement=endorsement,
        )

    @property
    def tcb_level(self) -> int:
        from cryptography import x509  # noqa: PLC0415  (see custodes.evidence.simulated._x509)

        cert = x509.load_der_x509_certificate((self.path / "platform-cert.der").read_bytes())
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(TCB_LEVEL_OID)).value
        return int.from_bytes(ext.value, "big")  # type: ignore[attr-defined]


class SimVendor:
    """The simulated vendor's side: create platforms, publish TCB info, patch platforms."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key = _read_private(path / "vendor" / "root-key.pem")

    @classmethod
    def init(cls, path: Path, *, platforms: int, tcb_level: int, now: datetime) -> SimVendor:
        """Create a vendor with ``platforms`` platforms at ``tcb_level`` and TCB info in which that level is
        UpToDate and every lower level is OutOfDate."""
        if (path / "vendor").exists():
            raise CustodesError("SIM_DIR_EXISTS", f"{path} already holds a simulated vendor")
        if tcb_level < 1 or platforms < 1:
            raise CustodesError("SIM_ARGUMENT_INVALID", "need at least one platform and a TCB level >= 1")
        (path / "vendor").mkdir(parents=True)
        (path / "platforms").mkdir()
        (path / "SIMULATED.txt").write_text(_WARNING)
        key = ec.generate_private_key(ec.SECP256R1())
        _write_private(path / "vendor" / "root-key.pem", key)
        (path / "vendor" / "root.pem").write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        vendor = cls(path)
        levels = [SimTcbLevel(tcb_level, now - timedelta(days=1), "UpToDate")]
        levels += [
            SimTcbLevel(lvl, now - timedelta(days=30 * (tcb_level - lvl + 1)), "OutOfDate")
            for lvl in range(tcb_level - 1, 0, -1)
        ]
        vendor._write_tcb_info(levels, now=now, evaluation_number=1, valid_for=timedelta(days=30))
        for _ in range(platforms):
            vendor.add_platform(tcb_level=tcb_level, now=now)
        return vendor

    def tcb_info(self) -> SimTcbInfo:
        return verify_tcb_info((self.path / "vendor" / "tcb-info.json").read_bytes(), self._key.public_key())

    def _write_tcb_info(
        self, levels: list[SimTcbLevel], *, now: datetime, evaluation_number: int, valid_for: timedelta
    ) -> None:
        document = sign_tcb_info(
            self._key, levels=levels, issue_date=now, next_update=now + valid_for, evaluation_number=evaluation_number
        )
        _replace(self.path / "vendor" / "tcb-info.json", document)

    def add_platform(self, *, tcb_level: int, now: datetime) -> SimPlatform:
        platform_id = secrets.token_hex(8)
        pdir = self.path / "platforms" / platform_id
        pdir.mkdir()
        platform_key = ec.generate_private_key(ec.SECP256R1())
        _write_private(pdir / "platform-key.pem", platform_key)
        _write_private(pdir / "attestation-key.pem", ec.generate_private_key(ec.SECP256R1()))
        self._certify(pdir, platform_key.public_key(), platform_id, tcb_level, now)
        return SimPlatform(pdir)

    def _certify(
        self, pdir: Path, public_key: ec.EllipticCurvePublicKey, platform_id: str, tcb_level: int, now: datetime
    ) -> None:
        cert = issue_platform_certificate(
            vendor_key=self._key,
            vendor_name=VENDOR_NAME,
            platform_public_key=public_key,
            platform_id=platform_id,
            tcb_level=tcb_level,
            now=now,
        )
        _replace(pdir / "platform-cert.der", cert)

    def platforms(self) -> list[SimPlatform]:
        return sorted((SimPlatform(p) for p in (self.path / "platforms").iterdir() if p.is_dir()), key=str)

    def upgrade_platform(self, platform_id: str, *, tcb_level: int, now: datetime) -> None:
        """Patch a platform (as a microcode update does): the vendor re-certifies it at a new TCB level."""
        pdir = self.path / "platforms" / platform_id
        if not pdir.is_dir():
            raise CustodesError("SIM_PLATFORM_UNKNOWN", f"no simulated platform {platform_id}")
        key = _read_private(pdir / "platform-key.pem")
        self._certify(pdir, key.public_key(), platform_id, tcb_level, now)

    def publish(
        self,
        *,
        level: int,
        now: datetime,
        tcb_date: datetime | None = None,
        advisories: tuple[str, ...] = (),
        valid_for: timedelta = timedelta(days=30),
    ) -> SimTcbInfo:
        """Publish TCB info with a new top ``level`` (dated ``tcb_date``): every lower level becomes OutOfDate
        and lists ``advisories``. Publishing the current top level again just refreshes the dates."""
        current = self.tcb_info()
        top = current.levels[0].level
        if level < top:
            raise CustodesError("SIM_ARGUMENT_INVALID", f"level {level} is below the current top level {top}")
        levels = [SimTcbLevel(level, tcb_date or now, "UpToDate")]
        for old in current.levels:
            if old.level >= level:
                continue
            status = old.status if old.status in ("Revoked",) else "OutOfDate"
            merged = tuple(dict.fromkeys(old.advisories + advisories)) if level > top else old.advisories
            levels.append(SimTcbLevel(old.level, old.tcb_date, status, merged))
        self._write_tcb_info(levels, now=now, evaluation_number=current.evaluation_number + 1, valid_for=valid_for)
        return self.tcb_info()
