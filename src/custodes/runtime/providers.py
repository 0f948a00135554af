"""Evidence providers: where a workload gets its TEE evidence. (configfs-tsm and Gramine: a later issue.)"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from custodes.client import EvidenceSource
from custodes.evidence.measure import measure_paths
from custodes.evidence.simvendor import SimPlatform

__all__ = ["SimulatedProvider"]


class SimulatedProvider(EvidenceSource):
    """Simulated evidence from a platform made by ``custodes sim init`` (development only).

    The measurement is computed over ``measure`` as ``custodes measure`` does; in a real TEE the hardware measures
    what it loads, here the caller names the files.
    """

    evidence_type = "simulated"

    def __init__(self, platform_dir: Path, measure: Sequence[str | Path], *, debug: bool = False) -> None:
        self._platform = SimPlatform(Path(platform_dir))
        self._measurement = measure_paths(measure)
        self._debug = debug

    @property
    def measurement(self) -> bytes:
        return self._measurement

    def evidence(self, report_data: bytes) -> tuple[bytes, bytes | None]:
        return self._platform.evidence(measurement=self._measurement, report_data=report_data, debug=self._debug), None
