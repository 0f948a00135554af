"""Evidence from Gramine's ``/dev/attestation`` pseudo-filesystem (SGX DCAP quotes).

Write 64 bytes to ``user_report_data``, read a DCAP v3 quote from ``quote`` (``../shared/docs/evidence-formats.md``
§3.2). The pseudo-files are process-wide state, so one lock serialises requests. As with configfs-tsm, the quote is
parsed and its REPORTDATA compared with what was written before it is handed to the CAS.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from custodes.client import EvidenceSource
from custodes.errors import CustodesError, EvidenceError

__all__ = ["DEFAULT_GRAMINE_ROOT", "GramineProvider"]

DEFAULT_GRAMINE_ROOT = Path("/dev/attestation")
_MAX_QUOTE = 1 << 20


class GramineProvider(EvidenceSource):
    """SGX DCAP evidence inside a Gramine enclave.

    Raises:
        CustodesError: ``PROVIDER_UNAVAILABLE`` when ``root/quote`` is missing or ``attestation_type`` is not
            ``dcap`` (EPID and "none" cannot produce evidence the CAS verifies).
    """

    evidence_type = "sgx-dcap"

    def __init__(self, root: Path = DEFAULT_GRAMINE_ROOT) -> None:
        self._root = Path(root)
        self._lock = threading.Lock()
        if not (self._root / "quote").exists():
            raise CustodesError("PROVIDER_UNAVAILABLE", f"Gramine attestation is not available at {self._root}")
        try:
            kind = (self._root / "attestation_type").read_bytes().decode("ascii", "replace").strip()
        except OSError:
            kind = "unknown"
        if kind != "dcap":
            raise CustodesError("PROVIDER_UNAVAILABLE", f"Gramine attestation type is {kind!r}, not 'dcap'")

    def evidence(self, report_data: bytes) -> tuple[bytes, bytes | None]:
        """A DCAP quote over ``report_data`` (64 bytes).

        Raises:
            EvidenceError: ``PROVIDER_FAILED`` (I/O), ``REPORT_DATA_MISMATCH``, or the quote parser's code.
        """
        if len(report_data) != 64:
            raise EvidenceError("PROVIDER_FAILED", "report data must be exactly 64 bytes")
        with self._lock:
            try:
                fd = os.open(self._root / "user_report_data", os.O_WRONLY | os.O_CLOEXEC)
                with os.fdopen(fd, "wb", buffering=0) as fh:
                    fh.write(report_data)
                fd = os.open(self._root / "quote", os.O_RDONLY | os.O_CLOEXEC)
                with os.fdopen(fd, "rb") as fh:
                    quote = fh.read(_MAX_QUOTE + 1)
            except OSError as exc:
                raise EvidenceError("PROVIDER_FAILED", f"Gramine /dev/attestation: {exc.strerror or exc}") from None
        if len(quote) > _MAX_QUOTE:
            raise EvidenceError("PROVIDER_FAILED", "Gramine returned an oversized quote")
        from custodes.evidence._dcap_quote import DcapQuote  # noqa: PLC0415  (on first use: start-up time)

        parsed = DcapQuote.from_bytes(quote)
        if parsed.tee != "sgx" or parsed.body.report_data != report_data:
            raise EvidenceError("REPORT_DATA_MISMATCH", "the Gramine quote is not over this report data")
        return quote, None
