"""configfs-tsm and Gramine providers against fake trees the tests build (no TEE here).

The fake "kernel" is a thread behind FIFOs: it reads what the provider writes to ``inblob`` / ``user_report_data``
and answers on ``outblob`` / ``quote`` with a real recorded quote or report (``../shared/testvectors``) whose
report-data field it sets to the bytes it received, as the hardware would. So the tests check the exact bytes the
provider hands to the CAS and the ``report_data`` binding the CAS checks.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from custodes.errors import CustodesError, EvidenceError
from custodes.evidence._dcap_quote import DcapQuote
from custodes.evidence._snp_report import SnpReport
from custodes.protocol import report_data_for
from custodes.runtime import providers, tsm
from custodes.runtime.gramine import GramineProvider
from custodes.runtime.tsm import TsmProvider

VECTORS = Path(__file__).resolve().parents[3].parent / "shared" / "testvectors"
TDX_QUOTE = VECTORS / "tdx" / "dcap-qvl-tdx-v4-20a06f" / "quote.bin"
SGX_QUOTE = VECTORS / "sgx" / "dcap-qvl-sgx-v3" / "quote.bin"
SNP_REPORT = VECTORS / "snp" / "virtee-milan-v2" / "report.bin"
OFFSETS = {"tdx": 48 + 520, "sgx": 48 + 320, "snp": 0x50}
REPORT_DATA = report_data_for(b"n" * 32, b"k" * 32)


def with_report_data(blob: bytes, kind: str, data: bytes) -> bytes:
    at = OFFSETS[kind]
    return blob[:at] + data + blob[at + 64 :]


def serve_once(inbox: Path, outbox: Path, answer, before_answer=None) -> threading.Thread:  # type: ignore[no-untyped-def]
    """One request: read the input FIFO to EOF, then write the answer into the output FIFO."""

    def run() -> None:
        with open(inbox, "rb") as fh:
            received = fh.read()
        if before_answer:
            before_answer(received)
        with open(outbox, "wb") as fh:
            fh.write(answer(received))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


class FakeConfigfs:
    """``tsm/report`` where mkdir creates the attributes, as configfs does; each request is answered by a thread."""

    def __init__(self, root: Path, provider: str, blob: bytes, kind: str, *, aux: bytes = b"", race: bool = False):
        self.root, self.provider, self.blob, self.kind, self.aux, self.race = root, provider, blob, kind, aux, race
        root.mkdir(parents=True)
        self.requests: list[Path] = []
        self.received: list[bytes] = []

    def mkdir(self, path: Path) -> None:
        os.mkdir(path, 0o700)
        self.requests.append(path)
        (path / "provider").write_text(self.provider + "\n")
        (path / "generation").write_text("0\n")
        (path / "auxblob").write_bytes(self.aux)
        os.mkfifo(path / "inblob")
        os.mkfifo(path / "outblob")
        if len(self.requests) > 1:  # the first mkdir is the constructor's probe
            serve_once(path / "inblob", path / "outblob", self.answer, lambda data: self.bump(path, data))

    def bump(self, path: Path, data: bytes) -> None:
        self.received.append(data)
        (path / "generation").write_text("2\n" if self.race else "1\n")

    def answer(self, data: bytes) -> bytes:
        return with_report_data(self.blob, self.kind, data)


@pytest.fixture
def configfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def make(provider: str, blob: bytes, kind: str, **kwargs) -> FakeConfigfs:  # type: ignore[no-untyped-def]
        fake = FakeConfigfs(tmp_path / "tsm" / "report", provider, blob, kind, **kwargs)
        monkeypatch.setattr(tsm, "_make_request_dir", fake.mkdir)
        # real configfs removes the attributes with the directory; the fake must empty it first
        real_rmdir = os.rmdir

        def rmdir(path):  # type: ignore[no-untyped-def]
            for name in ("provider", "generation", "auxblob", "inblob", "outblob", "privlevel"):
                p = Path(path) / name
                if p.exists() or p.is_fifo():
                    p.unlink()
            real_rmdir(path)

        monkeypatch.setattr(tsm.os, "rmdir", rmdir)
        return fake

    return make


def test_tsm_fake_configfs_tdx_quote_carries_our_report_data(configfs) -> None:  # type: ignore[no-untyped-def]
    fake = configfs("tdx_guest", TDX_QUOTE.read_bytes(), "tdx")
    provider = TsmProvider(fake.root)
    assert provider.evidence_type == "tdx"
    data, aux = provider.evidence(REPORT_DATA)
    assert fake.received == [REPORT_DATA]  # exactly the 64 bytes, written to inblob
    assert data == with_report_data(TDX_QUOTE.read_bytes(), "tdx", REPORT_DATA)  # outblob, byte for byte
    assert DcapQuote.from_bytes(data).body.report_data == REPORT_DATA
    assert aux is None
    assert list(fake.root.iterdir()) == []  # every request directory removed


def test_tsm_fake_configfs_snp_report_and_auxblob(configfs) -> None:  # type: ignore[no-untyped-def]
    fake = configfs("sev_guest", SNP_REPORT.read_bytes(), "snp", aux=b"\x01" * 40)
    provider = TsmProvider(fake.root)
    assert provider.evidence_type == "sev-snp"
    data, aux = provider.evidence(REPORT_DATA)
    assert SnpReport.from_bytes(data).report_data == REPORT_DATA
    assert data == with_report_data(SNP_REPORT.read_bytes(), "snp", REPORT_DATA)
    assert aux == b"\x01" * 40


def test_tsm_fake_configfs_outblob_over_other_report_data_is_refused(configfs) -> None:  # type: ignore[no-untyped-def]
    fake = configfs("tdx_guest", TDX_QUOTE.read_bytes(), "tdx")
    fake.answer = lambda data: TDX_QUOTE.read_bytes()  # a stale quote: not over our report data
    with pytest.raises(EvidenceError) as err:
        TsmProvider(fake.root).evidence(REPORT_DATA)
    assert err.value.code == "REPORT_DATA_MISMATCH"


def test_tsm_fake_configfs_generation_race_is_detected(configfs) -> None:  # type: ignore[no-untyped-def]
    fake = configfs("tdx_guest", TDX_QUOTE.read_bytes(), "tdx", race=True)
    with pytest.raises(EvidenceError) as err:
        TsmProvider(fake.root).evidence(REPORT_DATA)
    assert err.value.code == "PROVIDER_FAILED" and "raced" in err.value.message
    assert len(fake.received) == 3  # it retried before giving up


def test_tsm_fake_configfs_unknown_provider(configfs) -> None:  # type: ignore[no-untyped-def]
    fake = configfs("arm_cca_guest", b"", "tdx")
    with pytest.raises(CustodesError) as err:
        TsmProvider(fake.root)
    assert err.value.code == "PROVIDER_UNSUPPORTED"


def make_fake_dev_attestation(root: Path, kind: str = "dcap") -> Path:
    root.mkdir()
    (root / "attestation_type").write_text(kind + "\n")
    os.mkfifo(root / "user_report_data")
    os.mkfifo(root / "quote")
    return root


def test_gramine_fake_dev_attestation_quote_carries_our_report_data(tmp_path: Path) -> None:
    root = make_fake_dev_attestation(tmp_path / "attestation")
    received: list[bytes] = []
    thread = serve_once(
        root / "user_report_data", root / "quote",
        lambda data: with_report_data(SGX_QUOTE.read_bytes(), "sgx", data), received.append,
    )
    data, aux = GramineProvider(root).evidence(REPORT_DATA)
    thread.join(5)
    assert received == [REPORT_DATA]
    assert data == with_report_data(SGX_QUOTE.read_bytes(), "sgx", REPORT_DATA)
    assert DcapQuote.from_bytes(data).body.report_data == REPORT_DATA and aux is None


def test_gramine_fake_dev_attestation_stale_quote_is_refused(tmp_path: Path) -> None:
    root = make_fake_dev_attestation(tmp_path / "attestation")
    serve_once(root / "user_report_data", root / "quote", lambda data: SGX_QUOTE.read_bytes())
    with pytest.raises(EvidenceError) as err:
        GramineProvider(root).evidence(REPORT_DATA)
    assert err.value.code == "REPORT_DATA_MISMATCH"


def test_gramine_fake_dev_attestation_without_dcap_is_unavailable(tmp_path: Path) -> None:
    root = make_fake_dev_attestation(tmp_path / "attestation", kind="epid")
    with pytest.raises(CustodesError) as err:
        GramineProvider(root)
    assert err.value.code == "PROVIDER_UNAVAILABLE"


def test_auto_picks_gramine_then_tsm_and_never_simulation(tmp_path: Path, configfs) -> None:  # type: ignore[no-untyped-def]
    fake = configfs("tdx_guest", TDX_QUOTE.read_bytes(), "tdx")
    gramine = make_fake_dev_attestation(tmp_path / "attestation")
    assert isinstance(providers.select_provider("auto", tsm_root=fake.root, gramine_root=gramine), GramineProvider)
    assert isinstance(
        providers.select_provider("auto", tsm_root=fake.root, gramine_root=tmp_path / "none"), TsmProvider
    )
    with pytest.raises(CustodesError) as err:
        providers.select_provider("auto", tsm_root=tmp_path / "x", gramine_root=tmp_path / "y")
    assert err.value.code == "PROVIDER_UNAVAILABLE"


def test_report_data_must_be_64_bytes(tmp_path: Path) -> None:
    root = make_fake_dev_attestation(tmp_path / "attestation")
    with pytest.raises(EvidenceError):
        GramineProvider(root).evidence(b"short")
