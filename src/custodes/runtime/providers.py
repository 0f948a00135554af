"""Evidence providers: where a workload gets its TEE evidence, and how ``--tee`` picks one.

``auto`` picks the hardware provider that is present: Gramine's ``/dev/attestation`` (SGX), then configfs-tsm
(TDX, SEV-SNP). It never picks the simulated TEE: simulation must be asked for by name (``--tee simulated``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from custodes.client import EvidenceSource
from custodes.errors import CustodesError
from custodes.runtime.gramine import DEFAULT_GRAMINE_ROOT, GramineProvider
from custodes.runtime.tsm import DEFAULT_TSM_ROOT, TsmProvider

if TYPE_CHECKING:
    from custodes.evidence.simvendor import SimPlatform

__all__ = ["PROVIDER_NAMES", "SimulatedProvider", "select_provider"]

PROVIDER_NAMES = ("auto", "simulated", "tsm", "gramine")


class SimulatedProvider(EvidenceSource):
    """Simulated evidence from a platform made by ``custodes sim init`` (development only).

    The measurement is computed over ``measure`` as ``custodes measure`` does; in a real TEE the hardware measures
    what it loads, here the caller names the files.
    """

    evidence_type = "simulated"

    def __init__(self, platform_dir: Path, measure: Sequence[str | Path], *, debug: bool = False) -> None:
        # Imported here: the simulated vendor's X.509 machinery is needed only when simulation is asked for, and
        # start-up with a hardware provider should not pay for it.
        from custodes.evidence.measure import measure_paths  # noqa: PLC0415
        from custodes.evidence.simvendor import SimPlatform  # noqa: PLC0415

        self._platform: SimPlatform = SimPlatform(Path(platform_dir))
        self._measurement = measure_paths(measure)
        self._debug = debug

    @property
    def measurement(self) -> bytes:
        return self._measurement

    def evidence(self, report_data: bytes) -> tuple[bytes, bytes | None]:
        return self._platform.evidence(measurement=self._measurement, report_data=report_data, debug=self._debug), None


def select_provider(
    tee: str,
    *,
    sim_platform: Path | None = None,
    sim_measure: Sequence[Path] = (),
    sim_debug: bool = False,
    tsm_root: Path = DEFAULT_TSM_ROOT,
    gramine_root: Path = DEFAULT_GRAMINE_ROOT,
) -> EvidenceSource:
    """The evidence provider named by ``tee`` (one of :data:`PROVIDER_NAMES`).

    Raises:
        CustodesError: ``ARGUMENT_INVALID`` (unknown name, simulated without platform or files),
            ``PROVIDER_UNAVAILABLE`` (the named or any hardware provider is absent), ``PROVIDER_UNSUPPORTED``.
    """
    if tee == "simulated":
        if sim_platform is None or not sim_measure:
            raise CustodesError(
                "ARGUMENT_INVALID", "--tee simulated needs --sim-platform DIR and at least one --sim-measure PATH"
            )
        if not (Path(sim_platform) / "platform-cert.der").is_file():
            raise CustodesError("PROVIDER_UNAVAILABLE", f"no simulated platform at {sim_platform}")
        try:
            return SimulatedProvider(sim_platform, sim_measure, debug=sim_debug)
        except (OSError, ValueError) as exc:
            raise CustodesError("PROVIDER_UNAVAILABLE", f"simulated platform {sim_platform}: {exc}") from None
    if tee == "tsm":
        return TsmProvider(tsm_root)
    if tee == "gramine":
        return GramineProvider(gramine_root)
    if tee == "auto":
        if (Path(gramine_root) / "quote").exists():
            return GramineProvider(gramine_root)
        if Path(tsm_root).is_dir():
            return TsmProvider(tsm_root)
        raise CustodesError(
            "PROVIDER_UNAVAILABLE",
            f"no TEE evidence provider found ({gramine_root}, {tsm_root}); simulation needs --tee simulated",
        )
    raise CustodesError("ARGUMENT_INVALID", f"unknown evidence provider {tee!r} (one of {', '.join(PROVIDER_NAMES)})")
