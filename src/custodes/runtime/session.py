"""The Python API: attested config for an application that embeds custodes instead of running under
``custodes run``. The same rules apply: no config without attestation, renewal in the background, and a lost lease
ends the process (by default SIGTERM to itself) unless the application takes charge through ``on_lost``.

Example::

    from custodes.runtime import Session, select_provider

    with Session.open("clinic/dosage", "dosage", source=select_provider("auto")) as session:
        password = session.config.environment["DB_PASSWORD"]
        ...  # serve; session.lost is set (and on_lost called) if the CAS stops renewing
"""

from __future__ import annotations

import os
import random
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from custodes.client import Attestation, CasClient, EvidenceSource
from custodes.config import RenderedConfig
from custodes.runtime.inject import MaterialisedFiles, write_files
from custodes.runtime.keeper import LeaseKeeper, LeaseLost
from custodes.runtime.launcher import attest_at_start
from custodes.runtime.lease import Backoff, LeaseTimes

__all__ = ["Session", "fetch_config", "terminate_self"]


def terminate_self(lost: LeaseLost) -> None:
    """The default reaction to a lost lease: SIGTERM to this process (fail-stop, as under ``custodes run``)."""
    os.kill(os.getpid(), signal.SIGTERM)


def fetch_config(
    policy: str,
    service: str,
    *,
    source: EvidenceSource,
    cas: str | None = None,
    cas_cert: Path | None = None,
    start_timeout: float = 60.0,
) -> Attestation:
    """Attest once (retrying an unreachable CAS up to ``start_timeout`` s) and return the attestation; its
    ``rendered()`` is the config. No lease is kept: use :class:`Session` for a long-running process.

    Raises:
        CasError: a refusal, or the CAS stayed unreachable.
    """
    with CasClient.from_env(cas, cas_cert) as client:
        attestation, _ = attest_at_start(
            client, policy, service, source, timeout=start_timeout, backoff=Backoff(), rng=random.SystemRandom()
        )
    return attestation


class Session:
    """An attested config plus a kept-alive lease. Create with :meth:`open`; close (or leave the ``with``) to stop
    renewing and remove any files it wrote."""

    def __init__(
        self, client: CasClient, attestation: Attestation, keeper: LeaseKeeper, files: MaterialisedFiles | None
    ) -> None:
        self._client = client
        self._attestation = attestation
        self._keeper = keeper
        self._files = files
        self._lost_event = threading.Event()
        self._lost: LeaseLost | None = None

    @classmethod
    def open(
        cls,
        policy: str,
        service: str,
        *,
        source: EvidenceSource,
        cas: str | None = None,
        cas_cert: Path | None = None,
        start_timeout: float = 60.0,
        materialise_files: bool = False,
        on_lost: Callable[[LeaseLost], None] = terminate_self,
    ) -> Session:
        """Attest, optionally write the policy's files, and start renewing.

        Args:
            materialise_files: write ``config.files`` at their paths (removed again by :meth:`close`).
            on_lost: called once, from a background thread, when the lease is refused or expires: at the lease's
                local expiry at the latest, even while a renewal request is still waiting for the CAS.

        Raises:
            CasError: refusal or unreachable CAS; CustodesError: ``FILE_PATH_*`` when files cannot be written.
        """
        client = CasClient.from_env(cas, cas_cert)
        try:
            attestation, sent = attest_at_start(
                client, policy, service, source, timeout=start_timeout, backoff=Backoff(), rng=random.SystemRandom()
            )
            times = LeaseTimes.from_wire(attestation.lease, sent_at=sent, deadline=attestation.verdict.get("deadline"))
            files = write_files(attestation.rendered().files) if materialise_files else None
        except BaseException:
            client.close()
            raise
        session: Session

        def lost(event: LeaseLost) -> None:
            session._lost = event
            session._lost_event.set()
            on_lost(event)

        def renewed(new: Attestation, _times: LeaseTimes) -> None:
            session._attestation = new

        keeper = LeaseKeeper(
            lambda lease_id: client.attest(policy, service, source, lease_id=lease_id),
            times,
            on_lost=lost,
            on_renewed=renewed,
            watchdog=True,  # on_lost at the expiry even while a renewal request hangs
        )
        session = cls(client, attestation, keeper, files)
        keeper.start()
        return session

    @property
    def config(self) -> RenderedConfig:
        """The config (argv, environment, files with their secrets) from the latest attestation."""
        return self._attestation.rendered()

    @property
    def attestation(self) -> Attestation:
        return self._attestation

    @property
    def renewals(self) -> int:
        return self._keeper.renewals

    @property
    def lost(self) -> LeaseLost | None:
        return self._lost

    def wait_lost(self, timeout: float | None = None) -> LeaseLost | None:
        """Block until the lease is lost (or ``timeout``); returns why, or None."""
        self._lost_event.wait(timeout)
        return self._lost

    def close(self) -> None:
        self._keeper.stop(timeout=1.0)
        self._client.close()
        if self._files is not None:
            self._files.cleanup()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Session(lease={self._keeper.times.lease_id!r}, lost={self._lost!r}, config=<redacted>)"
