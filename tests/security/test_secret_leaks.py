"""Secrets never appear in the CAS's log, in error responses, or in the reprs a developer might print."""

from __future__ import annotations

import time

from _support import CasProcess, Owner, Workload
from conftest import simple_policy
from custodes.client import CasError
from custodes.policy import load_policy


def test_secret_values_never_reach_the_cas_log_or_reprs(cas: CasProcess, workload: Workload, owner: Owner) -> None:
    text = simple_policy("leak/log", owner, workload.measurement)
    policy = load_policy(text)
    with cas.client() as client:
        client.put_policy(text, name=policy.name, policy_hash=policy.hash, predecessor=None,
                          signers=[("owner", owner.key)], create=True)
        result = client.attest("leak/log", "app", workload.provider())
        try:
            client.attest("leak/log", "nope", workload.provider())
        except CasError as exc:
            refusal = repr(exc) + str(exc) + " ".join(exc.reasons)
    password = result.rendered().command[2]
    assert len(password) == 16
    time.sleep(0.2)  # let the log pump catch up
    log = "".join(cas.stderr_lines)
    assert "secret leak/log/password generated" in log  # the log does speak about the secret...
    assert password not in log  # ...but never shows it
    assert password not in refusal
    assert password not in repr(result)
    assert password not in repr(result.rendered())
    assert password not in str(result.rendered())
