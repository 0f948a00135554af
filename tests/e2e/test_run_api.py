"""The Python API (``custodes.runtime.Session`` / ``fetch_config``) against a real CAS process."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from test_run_harness import ProbeSetup

from _support import CasProcess, Owner
from custodes.client import CasError
from custodes.evidence.simvendor import SimVendor
from custodes.runtime import LeaseLost, Session, SimulatedProvider, fetch_config


@pytest.fixture
def setup(tmp_path: Path, cas: CasProcess, owner: Owner, sim: SimVendor) -> ProbeSetup:
    return ProbeSetup(tmp_path, cas, owner, sim.platforms()[0].path, ttl="1s")


def test_fetch_config_returns_the_rendered_config(setup: ProbeSetup) -> None:
    setup.create_policy()
    source = SimulatedProvider(setup.platform, [setup.probe])
    config = fetch_config(setup.name, "probe", source=source, cas=setup.cas.url, cas_cert=setup.cas.cert).rendered()
    assert len(config.environment["PASSWORD"]) == 20 and config.command[-1] == "two words"
    with pytest.raises(CasError) as err:
        fetch_config("e2e/none", "probe", source=source, cas=setup.cas.url, cas_cert=setup.cas.cert)
    assert err.value.code == "POLICY_NOT_FOUND"


def test_session_renews_writes_files_and_reports_a_refusal(setup: ProbeSetup) -> None:
    current = setup.create_policy()
    lost: list[LeaseLost] = []
    done = threading.Event()
    source = SimulatedProvider(setup.platform, [setup.probe])
    with Session.open(setup.name, "probe", source=source, cas=setup.cas.url, cas_cert=setup.cas.cert,
                      materialise_files=True, on_lost=lambda e: (lost.append(e), done.set())) as session:
        assert setup.secret_file.read_bytes().startswith(b"password=")
        assert "PASSWORD" in session.config.environment and "PASSWORD" not in repr(session)
        stop = threading.Event()
        while session.renewals < 2 and not stop.wait(0.05):
            pass
        other = "{tee: simulated, measurement: " + json.dumps("ef" * 48) + "}"
        setup.create_policy(measurements=[other], predecessor=current)
        assert session.wait_lost(30) is not None
        assert done.wait(5)
    assert lost[0].reason == "refused" and lost[0].code == "MEASUREMENT_MISMATCH"
    assert not setup.secret_file.exists()
