"""The workload side: evidence providers, attestation, injection, supervision and lease renewal.

Run a command under a lease with ``custodes run`` (:func:`run_workload`), or embed it in a Python application with
:class:`Session` / :func:`fetch_config`. See docs/runtime.md.
"""

from custodes.runtime.keeper import LeaseKeeper, LeaseLost
from custodes.runtime.launcher import ExitCode, RunSpec, run_workload
from custodes.runtime.providers import SimulatedProvider, select_provider
from custodes.runtime.session import Session, fetch_config

__all__ = [
    "ExitCode",
    "LeaseKeeper",
    "LeaseLost",
    "RunSpec",
    "Session",
    "SimulatedProvider",
    "fetch_config",
    "run_workload",
    "select_provider",
]
