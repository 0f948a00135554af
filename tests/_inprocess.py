"""A CAS in the test's own process, on clocks the test moves, with its shared tables open for inspection.

For attacks that need control of the host clock, or two "workers" side by side, which a CAS process cannot give.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from _support import Owner, Workload, make_sim
from conftest import simple_policy
from custodes.clock import FixedClock, FlooredClock, utcnow
from custodes.ledger.keys import public_pem
from custodes.ledger.note import add_signature
from custodes.ledger.requests import proposal_text
from custodes.policy import load_policy
from custodes.protocol import RuntimeKey, b64d, b64e, report_data_for
from custodes.server.cas import Cas
from custodes.server.serve import ServeOptions, build_cas
from custodes.server.shared import SharedState

POLICY = "inproc/app"


class MovableMonotonic:
    """A monotonic clock the test advances (the host cannot wind a real one back, so neither does the test)."""

    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


class InProcessCas:
    """One CAS (a "worker") with a policy ``inproc/app`` for a simulated workload.

    ``wall`` is the host's wall clock, which the test may move either way; ``mono`` the monotonic clock, which it
    may only advance. :meth:`sibling` opens a second worker on the same data and shared tables, with its own clock.
    """

    def __init__(self, tmp_path: Path, *, policy: str | None = None, **policy_args: Any) -> None:
        sim = make_sim(tmp_path / "sim", platforms=1)
        self.t0 = utcnow() + timedelta(minutes=5)
        self.wall = FixedClock(self.t0)
        self.mono = MovableMonotonic()
        self.options = ServeOptions(data_dir=tmp_path / "cas", sim_vendor=sim.path)
        self.options.data_dir.mkdir()
        self.shared = SharedState(self.options.data_dir, nonce_capacity=16, read_nonce_capacity=16,
                                  lease_capacity=16).attach()
        self.cas = self._worker()
        app = tmp_path / "app.py"
        app.write_text("print('app')\n")
        self.workload = Workload(sim.platforms()[0].path, [app])
        self.owner = Owner("owner")
        text = policy or simple_policy(POLICY, self.owner, self.workload.measurement, **policy_args)
        parsed = load_policy(text)
        note = add_signature(proposal_text(POLICY, None, parsed.hash, int(self.t0.timestamp()) + 3600), "owner",
                             self.owner.key)
        asyncio.run(self.cas.put_policy(text, note.render(), [public_pem(self.owner.key.public_key())], create=True))

    def _worker(self) -> Cas:
        return build_cas(self.options, shared=self.shared, clock=FlooredClock(self.wall, monotonic=self.mono))

    def sibling(self) -> InProcessCas:
        """A second worker: same data, same shared tables, same host clocks, its own FlooredClock."""
        other = object.__new__(InProcessCas)
        other.__dict__.update(self.__dict__)
        other.cas = self._worker()
        return other

    def set_wall(self, at: datetime, *, elapsed: timedelta | None = None) -> None:
        """Move the host's wall clock to ``at``; ``elapsed`` real time passes on the monotonic clock meanwhile."""
        self.wall.set(at)
        if elapsed is not None:
            self.mono.value += elapsed.total_seconds()

    def challenge(self) -> str:
        return self.cas.challenge(POLICY, "app")["nonce"]

    def attest(self, public_key: bytes | None = None, *, nonce: str | None = None,
               lease_id: str | None = None) -> dict[str, Any]:
        public_key = public_key if public_key is not None else RuntimeKey.generate().public_bytes
        nonce = nonce or self.challenge()
        data, _ = self.workload.provider().evidence(report_data_for(b64d(nonce), public_key))
        return asyncio.run(self.cas.attest(policy_name=POLICY, service_name="app", nonce=nonce,
                                           public_key=b64e(public_key), evidence_type="simulated",
                                           evidence=b64e(data), lease_id=lease_id))

    def lease(self, lease_id: str) -> Any:
        with self.shared.tables():
            found = self.shared.leases.find(lease_id)
        return found[1] if found else None
