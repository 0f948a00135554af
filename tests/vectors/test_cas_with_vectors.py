"""Real hardware evidence attests to a real CAS process (with the test-only binding of unsafe_vector_cas.py)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from vectorlib import VECTORS

from _support import CasProcess, Owner
from custodes.client import CasError, EvidenceSource
from custodes.evidence.collateral import CollateralStore
from custodes.policy import load_policy

SCRIPT = Path(__file__).with_name("unsafe_vector_cas.py")


@dataclass
class Vector:
    tee: str
    quote: str
    collateral: str
    at: str
    measurement: str  # a YAML flow mapping for the policy's measurement entry
    accept: str
    debug: bool = False


SGX = Vector(
    "sgx-dcap", "sgx/dcap-qvl-sgx-v3/quote.bin", "sgx/dcap-qvl-sgx-v3/collateral.json", "2025-07-04T10:28:44Z",
    '{tee: sgx-dcap, mrenclave: "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb", '
    'mrsigner: "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6", isv_prod_id: 0}',
    "[UpToDate, ConfigurationAndSWHardeningNeeded]",
)
SNP = Vector(
    "sev-snp", "snp/go-sev-guest-milan-v2/report.bin", "snp/go-sev-guest-milan-v2/vcek.der", "2026-01-01T00:00:00Z",
    '{tee: sev-snp, measurement: "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b'
    '6bdf8a9ece31a5a608eb0cf2e4872b01", min_tcb: {bootloader: 2, tee: 0, snp: 5, microcode: 68}}',
    "[UpToDate]",
    debug=True,  # policy 0xb0000 sets bit 19: a debug guest
)


class Recorded(EvidenceSource):
    """Sends recorded evidence: it cannot bind our nonce (only the test-only CAS accepts that)."""

    def __init__(self, tee: str, data: bytes) -> None:
        self.evidence_type, self.data = tee, data

    def evidence(self, report_data: bytes) -> tuple[bytes, bytes | None]:
        return self.data, None


def policy(owner: Owner, vector: Vector, name: str, *, strict: bool) -> str:
    accept = "[UpToDate]" if strict else vector.accept
    debug = "false" if strict else str(vector.debug).lower()
    return textwrap.dedent(f"""\
        name: {name}
        keys: {{owner: "{owner.fingerprint}"}}
        access: {{update: {{signers: [owner]}}}}
        security: {{allow_debug: {debug}, tcb: {{accept: {accept}}}}}
        services:
          - name: svc
            measurements: [{vector.measurement}]
            command: [app, "$$custodes::token:hex$$"]
        secrets: [{{name: token, kind: binary, size: 16}}]
        """)


class VectorCas(CasProcess):
    def __init__(self, data_dir: Path, vector: Vector) -> None:
        super().__init__(data_dir, None)
        self.vector = vector

    def start(self, timeout: float = 30.0) -> VectorCas:
        store = CollateralStore(self.data_dir / "collateral")
        store.import_file(VECTORS / self.vector.collateral)
        digest = hashlib.sha256((VECTORS / self.vector.quote).read_bytes()).hexdigest()
        self._argv = [sys.executable, str(SCRIPT), "--data-dir", str(self.data_dir), "--at", self.vector.at,
                      "--allow", digest]
        return super().start(timeout)

    def command(self) -> list[str]:
        return self._argv


@pytest.mark.parametrize("vector", [SGX, SNP], ids=["sgx-dcap", "sev-snp"])
def test_recorded_hardware_evidence_attests_to_a_real_cas(tmp_path: Path, vector: Vector) -> None:
    owner = Owner("owner")
    server = VectorCas(tmp_path / "cas", vector).start()
    try:
        with server.client() as client:
            for name, strict in (("hw/ok", False), ("hw/strict", True)):
                text = policy(owner, vector, name, strict=strict)
                p = load_policy(text)
                client.put_policy(text, name=p.name, policy_hash=p.hash, predecessor=None,
                                  signers=[("owner", owner.key)], create=True)
            source = Recorded(vector.tee, (VECTORS / vector.quote).read_bytes())
            result = client.attest("hw/ok", "svc", source)
            with pytest.raises(CasError) as info:
                client.attest("hw/strict", "svc", source)
    finally:
        server.stop()
    config = result.rendered()
    assert len(bytes.fromhex(config.command[1])) == 16
    assert result.verdict["warnings"] == []  # hardware evidence: no SIMULATED warning
    # The SGX platform is ConfigurationAndSWHardeningNeeded with no later level (no grace); the SNP guest is debug.
    assert info.value.code == ("DEBUG_NOT_ALLOWED" if vector.debug else "TCB_STATUS_NOT_ACCEPTED")


def test_snp_evidence_below_the_policys_min_tcb_is_refused(tmp_path: Path) -> None:
    owner = Owner("owner")
    floor = SNP.measurement.replace("microcode: 68", "microcode: 69")
    server = VectorCas(tmp_path / "cas", SNP).start()
    try:
        with server.client() as client:
            for name, measurement in (("hw/floor", floor), ("hw/nofloor", floor.split(", min_tcb")[0] + "}")):
                text = policy(owner, Vector(**{**SNP.__dict__, "measurement": measurement}), name, strict=False)
                p = load_policy(text)
                client.put_policy(text, name=p.name, policy_hash=p.hash, predecessor=None,
                                  signers=[("owner", owner.key)], create=True)
            source = Recorded("sev-snp", (VECTORS / SNP.quote).read_bytes())
            codes = []
            for name in ("hw/floor", "hw/nofloor"):
                with pytest.raises(CasError) as info:
                    client.attest(name, "svc", source)
                codes.append(info.value.code)
    finally:
        server.stop()
    assert codes == ["TCB_BELOW_MINIMUM", "TCB_NOT_EVALUATED"]


def test_the_custodes_command_offers_no_way_to_skip_the_binding() -> None:
    out = subprocess.run([sys.executable, "-m", "custodes", "cas", "serve", "--help"], capture_output=True,
                         text=True, check=True).stdout.lower()
    assert "binding" not in out and "unsafe" not in out and "--at" not in out
