"""Evidence from Linux configfs-tsm (``/sys/kernel/config/tsm/report``): TDX quotes and SEV-SNP reports.

The protocol (kernel >= 6.7; ``../shared/docs/evidence-formats.md`` §3.1): make a request directory, read
``provider`` (``tdx_guest`` or ``sev_guest``), read ``generation``, write the 64 bytes of report data to ``inblob``,
read the evidence from ``outblob`` (and, on SNP, the certificate table from ``auxblob``), then read ``generation``
again: it must have grown by exactly one write, ours, or another process raced us and the outblob may be theirs.

The provider also parses what it got back and checks that its ``report_data`` is exactly the 64 bytes it wrote, so a
raced or stale outblob is caught here, not as a confusing refusal from the CAS.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from pathlib import Path

from custodes.client import EvidenceSource
from custodes.errors import CustodesError, EvidenceError

__all__ = ["DEFAULT_TSM_ROOT", "TSM_PROVIDERS", "TsmProvider"]

DEFAULT_TSM_ROOT = Path("/sys/kernel/config/tsm/report")
# configfs-tsm provider name -> custodes evidence type
TSM_PROVIDERS = {"tdx_guest": "tdx", "sev_guest": "sev-snp"}
_ATTEMPTS = 3
_MAX_BLOB = 1 << 20


def _make_request_dir(path: Path) -> None:
    """On configfs, ``mkdir`` makes the kernel create the request's attribute files."""
    os.mkdir(path, 0o700)


def _read(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(_MAX_BLOB + 1)
    if len(data) > _MAX_BLOB:
        raise EvidenceError("PROVIDER_FAILED", f"configfs-tsm: {path.name} is larger than {_MAX_BLOB} bytes")
    return data


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)  # never O_CREAT: the kernel provides the attribute
    with os.fdopen(fd, "wb", buffering=0) as fh:
        fh.write(data)


def _generation(request: Path) -> int:
    try:
        return int(_read(request / "generation").decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise EvidenceError("PROVIDER_FAILED", "configfs-tsm: generation is not a number") from None


def _bound_report_data(evidence_type: str, outblob: bytes) -> bytes:
    # The parsers are imported on first use, so that ``custodes run`` with another provider never loads them.
    from custodes.evidence._dcap_quote import DcapQuote  # noqa: PLC0415
    from custodes.evidence._snp_report import SnpReport  # noqa: PLC0415

    if evidence_type == "tdx":
        quote = DcapQuote.from_bytes(outblob)
        if quote.tee != "tdx":
            raise EvidenceError("PROVIDER_FAILED", "configfs-tsm: tdx_guest returned a non-TDX quote")
        return quote.body.report_data
    return SnpReport.from_bytes(outblob).report_data


class TsmProvider(EvidenceSource):
    """TDX or SEV-SNP evidence through configfs-tsm. The evidence type comes from the kernel's ``provider``.

    Args:
        root: the ``tsm/report`` directory (tests point it at a fake tree).
        privlevel: SNP only: the VMPL to request (written to ``privlevel``); ``None`` keeps the kernel default.

    Raises:
        CustodesError: ``PROVIDER_UNAVAILABLE`` when ``root`` is not there; ``PROVIDER_UNSUPPORTED`` for a provider
            other than ``tdx_guest``/``sev_guest``.
    """

    def __init__(self, root: Path = DEFAULT_TSM_ROOT, *, privlevel: int | None = None) -> None:
        self._root = Path(root)
        self._privlevel = privlevel
        self._lock = threading.Lock()
        if not self._root.is_dir():
            raise CustodesError("PROVIDER_UNAVAILABLE", f"configfs-tsm is not available at {self._root}")
        with self._request() as request:
            self.evidence_type = self._provider_type(request)

    @contextlib.contextmanager
    def _request(self):  # type: ignore[no-untyped-def]
        request = self._root / f"custodes-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            _make_request_dir(request)
        except OSError as exc:
            raise EvidenceError("PROVIDER_FAILED", f"configfs-tsm: cannot create a report request: {exc}") from None
        try:
            yield request
        finally:
            with contextlib.suppress(OSError):
                os.rmdir(request)

    @staticmethod
    def _provider_type(request: Path) -> str:
        try:
            name = _read(request / "provider").decode("ascii", "replace").strip()
        except OSError as exc:
            raise EvidenceError("PROVIDER_FAILED", f"configfs-tsm: cannot read provider: {exc.strerror}") from None
        evidence_type = TSM_PROVIDERS.get(name)
        if evidence_type is None:
            raise CustodesError("PROVIDER_UNSUPPORTED", f"configfs-tsm provider {name!r} is not supported")
        return evidence_type

    def evidence(self, report_data: bytes) -> tuple[bytes, bytes | None]:
        """One report over ``report_data`` (64 bytes). Returns ``(outblob, auxblob or None)``.

        Raises:
            EvidenceError: ``PROVIDER_FAILED`` (I/O, a persistent race), ``REPORT_DATA_MISMATCH`` (the evidence
                does not carry our report data), or the parser's code for malformed evidence.
        """
        if len(report_data) != 64:
            raise EvidenceError("PROVIDER_FAILED", "report data must be exactly 64 bytes")
        with self._lock:
            for _ in range(_ATTEMPTS):
                result = self._once(report_data)
                if result is not None:
                    return result
        raise EvidenceError("PROVIDER_FAILED", "configfs-tsm: another writer raced every report request")

    def _once(self, report_data: bytes) -> tuple[bytes, bytes | None] | None:
        with self._request() as request:
            if self._provider_type(request) != self.evidence_type:
                raise EvidenceError("PROVIDER_FAILED", "configfs-tsm: the provider changed")
            try:
                if self._privlevel is not None:
                    _write(request / "privlevel", str(self._privlevel).encode())
                before = _generation(request)
                _write(request / "inblob", report_data)
                outblob = _read(request / "outblob")
                aux: bytes | None = None
                if self.evidence_type == "sev-snp":
                    with contextlib.suppress(FileNotFoundError):
                        aux = _read(request / "auxblob") or None
                after = _generation(request)
            except OSError as exc:
                raise EvidenceError("PROVIDER_FAILED", f"configfs-tsm: {exc.strerror or exc}") from None
        if after != before + 1:
            return None
        if _bound_report_data(self.evidence_type, outblob) != report_data:
            raise EvidenceError("REPORT_DATA_MISMATCH", "configfs-tsm returned evidence over other report data")
        return outblob, aux
