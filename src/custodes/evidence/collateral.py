"""Collateral for offline (air-gapped) verification: bundle types and the on-disk :class:`CollateralStore`.

Bundle formats (documented in ``docs/evidence.md``):

* DCAP: the JSON object of dcap-qvl's ``QuoteCollateralV3`` (nine fields), exactly as in the test vectors.
* SEV-SNP: a VCEK/VLEK certificate, DER or PEM; a PEM may carry the ASK/ASVK and ARK after the leaf (as KDS
  ``cert_chain`` appended to a VCEK); or JSON ``{"vcek"|"vlek": PEM, "chain": PEM?, "crl": hex?}``.

Imports are verified (signatures and chains to the pinned roots, not time) before they are written, so the store
only ever holds genuine vendor material; verification at use re-checks everything against ``now``.
The CAS never needs the network: fetching from Intel PCS or AMD KDS is a separate, manual step.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from custodes.clock import rfc3339
from custodes.errors import CollateralError, EvidenceError
from custodes.evidence._bundles import DCAP_FIELDS, DcapCollateral, SnpCollateral, load_json
from custodes.evidence._dcap_quote import DcapQuote
from custodes.evidence._pck import PckInfo
from custodes.evidence._snp_report import SnpReport, TcbVersion
from custodes.evidence._x509 import load_pem_chain
from custodes.evidence.dcap import DcapVerifier
from custodes.evidence.snp import SnpVerifier

__all__ = ["CollateralStore", "DcapCollateral", "SnpCollateral", "StoredBundle", "parse_bundle"]


@dataclass(frozen=True, slots=True)
class StoredBundle:
    """One imported bundle and what identifies it (``key`` is the lookup key)."""

    kind: str  # "dcap" | "snp"
    key: dict[str, object]
    issued_at: datetime | None
    next_update: datetime | None
    path: Path

    def summary(self) -> dict[str, object]:
        def ts(v: datetime | None) -> str | None:
            return rfc3339(v) if v else None

        return {"kind": self.kind, **self.key, "issued_at": ts(self.issued_at), "next_update": ts(self.next_update)}


def parse_bundle(data: bytes) -> DcapCollateral | SnpCollateral:
    """Recognise a bundle by its documented shape (JSON object, PEM, or DER certificate)."""
    stripped = data.lstrip()
    if stripped.startswith(b"{"):
        obj = load_json(data, "bundle")
        if isinstance(obj, dict) and set(DCAP_FIELDS) & set(obj):
            return DcapCollateral.from_dict(obj)
        return SnpCollateral.from_dict(obj)
    if stripped.startswith(b"-----BEGIN"):
        return SnpCollateral.from_pem(data)
    if data[:1] == b"\x30":
        return SnpCollateral(bytes(data))
    raise CollateralError("COLLATERAL_MALFORMED", "not a DCAP JSON bundle, nor an SNP certificate (PEM/DER)")


_Description = tuple[str, dict[str, object], datetime | None, datetime | None]


def _describe(bundle: DcapCollateral | SnpCollateral) -> _Description:
    if isinstance(bundle, DcapCollateral):
        tcb, qe, ca = DcapVerifier.intel().check_collateral(bundle)
        key = {"tee": tcb.id.lower(), "fmspc": tcb.fmspc.hex(), "ca": ca, "tcb_evaluation": tcb.evaluation_data_number}
        return "dcap", key, max(tcb.issue_date, qe.issue_date), min(tcb.next_update, qe.next_update)
    info = SnpVerifier.amd().check_collateral(bundle)
    key = {k: info[k] for k in ("key_type", "product", "hwid", "spl")}
    nb, na = info["not_before"], info["not_after"]
    return "snp", key, nb if isinstance(nb, datetime) else None, na if isinstance(na, datetime) else None


def _serialise(bundle: DcapCollateral | SnpCollateral) -> bytes:
    return (json.dumps(bundle.to_dict(), indent=1, sort_keys=False) + "\n").encode()


class CollateralStore:
    """A directory of verified collateral bundles (``dcap/*.json``, ``snp/*.json``).

    Lookups: :meth:`dcap_for` (FMSPC, TEE, PCK CA; newest TCB evaluation data number, then newest issue date),
    :meth:`dcap_for_quote`, :meth:`snp_for_report` (the VCEK whose hwID and SPLs match, or a matching VLEK).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._loaded: dict[tuple[str, int, int, int], tuple[DcapCollateral | SnpCollateral, StoredBundle]] = {}

    def import_bytes(self, data: bytes) -> StoredBundle:
        """Verify a bundle's signatures and chains, then store it atomically. Idempotent."""
        bundle = parse_bundle(data)
        kind, key, issued, nxt = _describe(bundle)
        folder = self.root / kind
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{bundle.digest.hex()[:32]}.json"
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(_serialise(bundle))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return StoredBundle(kind, key, issued, nxt, path)

    def import_file(self, path: str | os.PathLike[str]) -> StoredBundle:
        return self.import_bytes(Path(path).read_bytes())

    def _load(self, path: Path) -> tuple[DcapCollateral | SnpCollateral, StoredBundle]:
        """Parse and verify a stored bundle, once per version of the file.

        Lookups run on every attestation, so a bundle is kept (in memory) until its file's identity changes;
        imports replace files atomically, which always changes it. A file edited in place behind our back keeps
        serving the version that was verified, never an unverified one.
        """
        st = path.stat()
        identity = (str(path), st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._loaded.get(identity)
        if cached is None:
            bundle = parse_bundle(path.read_bytes())
            kind, key, issued, nxt = _describe(bundle)
            cached = (bundle, StoredBundle(kind, key, issued, nxt, path))
            self._loaded = {k: v for k, v in self._loaded.items() if k[0] != str(path)}
            self._loaded[identity] = cached
        return cached

    def _all(self, kind: str) -> list[tuple[DcapCollateral | SnpCollateral, StoredBundle]]:
        folder = self.root / kind
        return [self._load(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []

    def entries(self) -> list[StoredBundle]:
        """Every stored bundle (each verified when its file is first read: a tampered file raises)."""
        return [entry for kind in ("dcap", "snp") for _, entry in self._all(kind)]

    def dcap_for(self, fmspc: str, *, tee: str, ca: str) -> DcapCollateral:
        """The newest DCAP bundle for an FMSPC (hex), TEE (``sgx``/``tdx``) and PCK CA (``processor``/``platform``)."""
        found = [
            (b, e)
            for b, e in self._all("dcap")
            if e.key["fmspc"] == fmspc.lower() and e.key["tee"] == tee and e.key["ca"] == ca
        ]
        if not found:
            raise CollateralError("COLLATERAL_NOT_FOUND", f"no {tee} collateral for FMSPC {fmspc} ({ca} CA)")
        bundle, _ = max(found, key=lambda be: (be[1].key["tcb_evaluation"], be[1].issued_at))
        if not isinstance(bundle, DcapCollateral):
            raise CollateralError("COLLATERAL_MALFORMED", "stored DCAP bundle has the wrong type")
        return bundle

    def dcap_for_quote(self, quote: bytes) -> DcapCollateral:
        """Parse the quote's PCK leaf for its FMSPC and CA, then :meth:`dcap_for`."""
        q = DcapQuote.from_bytes(quote)
        try:
            leaf = load_pem_chain(q.qe.pck_chain_pem)[0]
        except ValueError as exc:
            raise EvidenceError("PCK_CHAIN_INVALID", "the PCK certificate chain is not PEM") from exc
        pck = PckInfo.from_certificate(leaf)
        return self.dcap_for(pck.fmspc.hex(), tee=q.tee, ca=pck.ca)

    def snp_for_report(self, report: bytes) -> SnpCollateral:
        """The stored VCEK (hwID == CHIP_ID) or VLEK whose SPLs equal the report's REPORTED_TCB."""
        rep = SnpReport.from_bytes(report)
        wanted_type = {0: "vcek", 1: "vlek"}.get(rep.signing_key)
        for bundle, entry in self._all("snp"):
            key = entry.key
            if key["key_type"] != wanted_type or not isinstance(bundle, SnpCollateral):
                continue
            if TcbVersion.decode(rep.reported_tcb, str(key["product"])).as_dict() != key["spl"]:
                continue
            hwid = key["hwid"]
            if wanted_type == "vcek" and not rep.chip_id_masked and hwid != rep.chip_id[: len(str(hwid)) // 2].hex():
                continue
            return bundle
        raise CollateralError("COLLATERAL_NOT_FOUND", "no stored VCEK/VLEK matches this report's chip and TCB")
