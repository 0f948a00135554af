"""``custodes evidence verify`` and ``custodes collateral import|show``: offline verification of real evidence.

Exit codes: 0 when the evidence is cryptographically valid (whatever its TCB status, which is printed);
1 with ``error: CODE: message`` on stderr otherwise. Nothing here touches the network.
"""

from __future__ import annotations

import json
import struct
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from custodes.cli._common import die, handles_errors, time_option
from custodes.clock import utcnow
from custodes.evidence.claims import Claims
from custodes.evidence.collateral import CollateralStore, DcapCollateral, SnpCollateral, parse_bundle
from custodes.evidence.sgx import verify_sgx_quote
from custodes.evidence.snp import verify_snp_report
from custodes.evidence.tdx import verify_tdx_quote

__all__ = ["collateral_app", "detect_type", "evidence_app"]

evidence_app = typer.Typer(help="Verify real TEE evidence offline.", no_args_is_help=True)
collateral_app = typer.Typer(help="Vendor collateral for offline verification.", no_args_is_help=True)



@evidence_app.callback()
def _evidence_group() -> None:
    """Verify real TEE evidence offline (kept a group so that ``verify`` stays a subcommand)."""


StoreOption = Annotated[
    Path, typer.Option("--store", envvar="CUSTODES_COLLATERAL_STORE", help="the collateral store directory")
]


class EvidenceType(StrEnum):
    auto = "auto"
    sgx_dcap = "sgx-dcap"
    tdx = "tdx"
    sev_snp = "sev-snp"


def detect_type(data: bytes) -> str:
    """Recognise evidence by its header: DCAP quotes start with version 3/4/5 and key type 2 (then TEE type
    0 = SGX, 0x81 = TDX); an SEV-SNP report starts with a u32 version 2..5 and is 1184 bytes or more."""
    if len(data) >= 8:
        version, key_type, tee_type = struct.unpack_from("<HHI", data, 0)
        if version in (3, 4, 5) and key_type == 2:
            return "tdx" if tee_type == 0x81 else "sgx-dcap"
        if struct.unpack_from("<I", data, 0)[0] in (2, 3, 4, 5) and len(data) >= 0x4A0:
            return "sev-snp"
    die("EVIDENCE_TYPE_UNKNOWN", "cannot tell the evidence type; pass --type")
    return ""  # unreachable: die() raises


def _when(value: str | None) -> datetime:
    return time_option("--at", value, code="BAD_TIME") if value else utcnow()


def _verify(kind: str, data: bytes, collateral: Path, now: datetime) -> Claims:
    if collateral.is_dir():
        store = CollateralStore(collateral)
        bundle: DcapCollateral | SnpCollateral = (
            store.snp_for_report(data) if kind == "sev-snp" else store.dcap_for_quote(data)
        )
    else:
        bundle = parse_bundle(collateral.read_bytes())
    if kind == "sev-snp":
        if not isinstance(bundle, SnpCollateral):
            die("COLLATERAL_MISMATCH", "SEV-SNP evidence needs a VCEK/VLEK, not DCAP collateral")
        return verify_snp_report(data, bundle, now=now)  # type: ignore[arg-type]
    if not isinstance(bundle, DcapCollateral):
        die("COLLATERAL_MISMATCH", "DCAP evidence needs a DCAP collateral bundle")
    verify = verify_tdx_quote if kind == "tdx" else verify_sgx_quote
    return verify(data, bundle, now=now)  # type: ignore[arg-type]


@evidence_app.command("verify")
@handles_errors
def verify(
    file: Path,
    collateral: Annotated[Path, typer.Option("--collateral", help="a bundle file or a collateral store directory")],
    at: Annotated[str | None, typer.Option("--at", help="verify as of this ISO 8601 time (default: now)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the claims as JSON")] = False,
    evidence_type: Annotated[EvidenceType, typer.Option("--type", help="evidence type")] = EvidenceType.auto,
) -> None:
    """Verify FILE (an SGX/TDX quote or an SEV-SNP report) with its collateral and print the claims."""
    now = _when(at)
    data = file.read_bytes()
    kind = detect_type(data) if evidence_type is EvidenceType.auto else evidence_type.value
    claims = _verify(kind, data, collateral, now)
    if as_json:
        print(json.dumps({"verified": True, "at": now.isoformat(), "claims": claims.to_json()}, indent=1))
        return
    print(f"VERIFIED {claims.tee} evidence at {now.isoformat()}")
    advisories = f" ({', '.join(claims.tcb.advisories)})" if claims.tcb.advisories else ""
    print(f"tcb status: {claims.tcb.status}{advisories}")
    if claims.tcb.tcb_date:
        print(f"tcb date: {claims.tcb.tcb_date.isoformat()}  superseded at: {claims.tcb.superseded_at}")
    print(f"debug: {claims.debug}")
    print(f"platform: {claims.platform_id}")
    for name, value in claims.measurements.items():
        print(f"{name}: {value}")
    print(f"report_data: {claims.report_data.hex()}")
    if claims.collateral_next_update:
        print(f"collateral valid until: {claims.collateral_next_update.isoformat()}")


@collateral_app.command("import")
@handles_errors
def import_(
    paths: Annotated[list[Path], typer.Argument(help="DCAP JSON bundles, VCEK/VLEK DER or PEM files")],
    store: StoreOption,
) -> None:
    """Verify collateral files (signatures and chains to the pinned roots) and add them to the store."""
    target = CollateralStore(store)
    for path in paths:
        entry = target.import_file(path)
        print(f"imported {path} -> {entry.path.name}: {json.dumps(entry.summary())}")


@collateral_app.command("show")
@handles_errors
def show(store: StoreOption, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the stored bundles with their validity windows."""
    entries = [e.summary() for e in CollateralStore(store).entries()]
    if as_json:
        print(json.dumps(entries, indent=1))
        return
    if not entries:
        print("no collateral stored")
    for e in entries:
        print(json.dumps(e))
