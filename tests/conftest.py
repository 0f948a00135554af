"""Shared fixtures. The CAS runs as a real process over TLS on loopback (see tests/_support.py)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from _support import CasProcess, Owner, Workload, make_sim, put_policy
from custodes.evidence.simvendor import SimVendor


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> SimVendor:
    return make_sim(tmp_path_factory.mktemp("sim"), platforms=2)


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory, sim: SimVendor) -> Iterator[CasProcess]:
    process = CasProcess(tmp_path_factory.mktemp("cas"), sim.path).start()
    yield process
    process.stop()


@pytest.fixture
def owner() -> Owner:
    return Owner("owner")


@pytest.fixture
def workload(tmp_path: Path, sim: SimVendor) -> Workload:
    app = tmp_path / "app.py"
    app.write_text(f"print('hello from {tmp_path.name}')\n")
    return Workload(sim.platforms()[0].path, [app])


def simple_policy(
    name: str,
    owner: Owner,
    measurement: str,
    *,
    predecessor: str | None = None,
    allow_simulated: bool = True,
    allow_debug: bool = False,
    accept: str = "[UpToDate]",
    grace: str = "7d",
    deprecated: str | None = None,
    readers: str = "[owner]",
    extra_keys: str = "",
    update: str = "{signers: [owner], threshold: 1}",
) -> str:
    """A small valid policy for attack tests: one service, one secret."""
    dep = f", deprecated: {deprecated}" if deprecated else ""
    return textwrap.dedent(
        f"""\
        name: {name}
        predecessor: {predecessor or "~"}
        keys:
          owner: "{owner.fingerprint}"
        {extra_keys}
        access:
          read: {readers}
          update: {update}
        security:
          allow_debug: {str(allow_debug).lower()}
          allow_simulated: {str(allow_simulated).lower()}
          tcb: {{accept: {accept}, grace: {grace}}}
        services:
          - name: app
            measurements:
              - {{tee: simulated, measurement: "{measurement}"{dep}}}
            command: [python3, app.py, "$$custodes::password$$"]
        secrets:
          - {{name: password, kind: ascii, size: 16}}
        """
    )


def uploaded_workload(cas: CasProcess, sim: SimVendor, directory: Path, policy_name: str) -> Workload:
    """A one-file simulated workload in ``directory`` and a simple policy for it, created on ``cas`` by its owner."""
    app = directory / "app.py"
    app.write_text(f"print({policy_name!r})\n")
    workload = Workload(sim.platforms()[0].path, [app])
    owner = Owner("owner")
    with cas.client() as client:
        put_policy(client, simple_policy(policy_name, owner, workload.measurement), owner)
    return workload
