"""Which evidence the CAS can verify, and against which roots of trust.

* ``sgx-dcap`` and ``tdx`` quotes verify against the pinned Intel SGX Root CA with collateral (TCB info, QE
  identity, CRLs) imported into the CAS's collateral store (``custodes collateral import --store DIR``): the CAS
  never fetches anything from the network.
* ``sev-snp`` reports verify against the pinned AMD ARKs with a VCEK/VLEK from the collateral store.
* ``simulated`` evidence: without ``--sim-vendor`` the CAS trusts no simulated evidence at all and refuses it with
  ``SIMULATED_UNTRUSTED`` before any parsing. With it, every verdict carries a SIMULATED warning.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from pathlib import Path

from custodes.errors import CollateralError, EvidenceError
from custodes.evidence.claims import Claims
from custodes.evidence.collateral import CollateralStore
from custodes.evidence.sgx import verify_sgx_quote
from custodes.evidence.simulated import SimVerifier, verify_tcb_info
from custodes.evidence.simvendor import load_sim_verifier, read_vendor_public_key
from custodes.evidence.snp import verify_snp_report
from custodes.evidence.tdx import verify_tdx_quote

__all__ = ["EVIDENCE_TYPES", "Verifiers"]

log = logging.getLogger("custodes.cas")

EVIDENCE_TYPES = ("simulated", "sgx-dcap", "tdx", "sev-snp")
_RELOAD_INTERVAL_S = 1.0


class Verifiers:
    """Dispatches evidence to its verifier. The simulated vendor's TCB info is re-read when its file changes
    (that is how ``custodes sim tcb publish`` reaches a running CAS); older TCB info is refused."""

    def __init__(self, sim_vendor_dir: Path | None = None, collateral_dir: Path | None = None) -> None:
        self._collateral = CollateralStore(collateral_dir) if collateral_dir else None
        self._sim_dir = sim_vendor_dir
        self._sim: SimVerifier | None = load_sim_verifier(sim_vendor_dir) if sim_vendor_dir else None
        self._sim_mtime = self._tcb_mtime()
        self._checked_at = time.monotonic()
        self._lock = threading.Lock()

    @property
    def simulated_trusted(self) -> bool:
        return self._sim is not None

    @property
    def newest_signed_time(self) -> datetime | None:
        return self._sim.tcb_info.issue_date if self._sim else None

    def _tcb_mtime(self) -> int | None:
        if self._sim_dir is None:
            return None
        try:
            return (self._sim_dir / "vendor" / "tcb-info.json").stat().st_mtime_ns
        except OSError:
            return None

    def _refresh_sim(self) -> None:
        now = time.monotonic()
        if self._sim is None or self._sim_dir is None or now - self._checked_at < _RELOAD_INTERVAL_S:
            return
        with self._lock:
            self._checked_at = now
            mtime = self._tcb_mtime()
            if mtime == self._sim_mtime:
                return
            self._sim_mtime = mtime
            try:
                vendor = read_vendor_public_key(self._sim_dir)
                info = verify_tcb_info((self._sim_dir / "vendor" / "tcb-info.json").read_bytes(), vendor)
                self._sim = self._sim.with_tcb_info(info)
                log.warning("simulated vendor published TCB info #%d", info.evaluation_number)
            except (OSError, CollateralError) as exc:
                # Keep the last verified TCB info: a broken or older file must not weaken appraisal.
                log.error("ignoring new simulated TCB info: %s", exc)

    def verify(self, evidence_type: str, data: bytes, aux: bytes | None, *, now: datetime) -> Claims:
        """Verify evidence of any supported type. Raises :class:`EvidenceError` / :class:`CollateralError`."""
        if evidence_type == "simulated":
            self._refresh_sim()
            if self._sim is None:
                raise EvidenceError(
                    "SIMULATED_UNTRUSTED", "this CAS trusts no simulated vendor (it was started without --sim-vendor)"
                )
            return self._sim.verify(data, now=now)
        if evidence_type in ("sgx-dcap", "tdx", "sev-snp"):
            if self._collateral is None:
                raise CollateralError("COLLATERAL_NOT_FOUND", "this CAS has no collateral store")
            if evidence_type == "sev-snp":
                return verify_snp_report(data, self._collateral.snp_for_report(data), now=now)
            collateral = self._collateral.dcap_for_quote(data)
            verify = verify_sgx_quote if evidence_type == "sgx-dcap" else verify_tdx_quote
            return verify(data, collateral, now=now)
        raise EvidenceError(  # never quotes the request's value
            "EVIDENCE_TYPE_UNSUPPORTED",
            "unknown evidence type",
            ["supported: simulated, sgx-dcap, tdx, sev-snp"],
        )
