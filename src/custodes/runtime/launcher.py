"""``custodes run``: attest, inject, start, supervise, renew, fail-stop. The orchestration; the parts are siblings.

Order matters and is the contract: (1) attest, retrying only while the CAS is unreachable or overloaded, up to
``start_timeout``; (2) unseal and parse the config; (3) write every file; (4) only then start the application. A
failure at any step before (4) exits non-zero and the application never runs. Once it runs, the lease keeper renews
in a background thread while the main thread forwards signals and reaps; when the lease is lost the application's
process group gets SIGTERM, ``stop_grace`` seconds, then SIGKILL, and the runtime exits with
:attr:`ExitCode.LEASE_REFUSED` or :attr:`ExitCode.LEASE_EXPIRED`. Once the application has started, every way out of
:func:`run_workload` (an exception included) stops it and what it started; files are removed on every exit path.
Progress and error lines on stderr are best-effort and never interrupt any of this.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import IntEnum
from pathlib import Path
from typing import TextIO

from custodes.client import Attestation, CasClient, CasError, EvidenceSource
from custodes.errors import CustodesError
from custodes.runtime.inject import MaterialisedFiles, child_environment, write_files
from custodes.runtime.keeper import LeaseKeeper, LeaseLost
from custodes.runtime.lease import Backoff, LeaseTimes, is_transient, parse_stop_grace
from custodes.runtime.rundir import RuntimeDir, default_runtime_base
from custodes.runtime.supervisor import Supervisor, become_subreaper

__all__ = ["ExitCode", "RunSpec", "attest_at_start", "exit_code_for", "run_workload"]


class ExitCode(IntEnum):
    """Exit codes of ``custodes run`` other than the application's own (documented in docs/runtime.md)."""

    USAGE = 64  # bad input: arguments, missing evidence provider, unwritable file path, bad CAS certificate file
    CAS_UNREACHABLE = 69  # the CAS could not be reached within --start-timeout; the app never started
    CAS_UNTRUSTED = 76  # the CAS's TLS identity does not match the pin, or its answer is malformed
    REFUSED = 77  # the CAS refused the first attestation (unknown policy/service, measurement, TCB, ...)
    LEASE_REFUSED = 78  # a renewal was refused: the app was stopped
    LEASE_EXPIRED = 79  # the lease expired unrenewed (CAS unreachable): the app was stopped
    APP_START_FAILED = 126  # the program exists but cannot be executed
    APP_NOT_FOUND = 127  # no such program (on the application's PATH) or working directory


FINAL_ANSWER_WAIT_S = 3.0
_UNTRUSTED = frozenset({"CAS_TLS_FAILED", "CONFIG_MISMATCH", "CONFIG_UNSEAL_FAILED", "CONFIG_INVALID", "LEASE_INVALID"})
_USAGE = frozenset({"CAS_CERT_INVALID", "CAS_NOT_CONFIGURED", "CAS_URL_INVALID"})


def exit_code_for(error: CustodesError) -> int:
    """The exit code for an error before the application started."""
    if error.code == "APP_NOT_FOUND":
        return ExitCode.APP_NOT_FOUND
    if error.code == "APP_START_FAILED":
        return ExitCode.APP_START_FAILED
    if error.code in _UNTRUSTED:
        return ExitCode.CAS_UNTRUSTED
    if isinstance(error, CasError) and error.code not in _USAGE:
        return ExitCode.CAS_UNREACHABLE if is_transient(error) else ExitCode.REFUSED
    return ExitCode.USAGE


@dataclass(frozen=True)
class RunSpec:
    """Everything ``custodes run`` needs. ``stop_grace`` is used unless the CAS's lease names its own."""

    policy: str
    service: str
    cas_url: str
    cas_cert: Path
    source: EvidenceSource
    start_timeout: float = 60.0
    stop_grace: float = 10.0
    runtime_base: Path | None = None
    reap_orphans: bool = True
    backoff: Backoff = field(default_factory=Backoff)


def attest_at_start(
    client: CasClient,
    policy: str,
    service: str,
    source: EvidenceSource,
    *,
    timeout: float,
    backoff: Backoff,
    rng: random.Random,
    sleep: Callable[[float], bool] = lambda s: bool(time.sleep(s)),
    on_retry: Callable[[CasError, float], None] = lambda e, d: None,
) -> tuple[Attestation, float]:
    """Attest, retrying transient failures with backoff until ``timeout`` seconds have passed.

    Returns the attestation and the monotonic time its request was sent. ``sleep`` returns True to give up early
    (a stop signal arrived).

    Raises:
        CasError: the refusal, or the last transient error once the time is up (or ``sleep`` gave up).
    """
    give_up_at = time.monotonic() + timeout
    delays = backoff.delays(rng)
    while True:
        sent = time.monotonic()
        try:
            return client.attest(policy, service, source), sent
        except CasError as exc:
            if not is_transient(exc):
                raise
            delay = next(delays)
            if time.monotonic() + delay > give_up_at:
                raise
            on_retry(exc, delay)
            if sleep(delay):
                raise
    # unreachable


def _emit(out: TextIO, line: str) -> None:
    """Progress and error lines are best-effort: a stderr that nobody reads any more (a log shipper restarted,
    ``custodes run ... 2>&1 | head``) or that is full must never stop supervision, renewal or cleanup."""
    try:
        out.write(line + "\n")
        out.flush()
    except BrokenPipeError:
        _discard(out)
    except (OSError, ValueError):  # ValueError: closed
        pass


def _discard(out: TextIO) -> None:
    """The reader is gone for good (EPIPE): later lines, and what is still buffered, go to /dev/null, so that neither
    they nor the interpreter's final flush fail (a failed final flush would turn the exit code into 120)."""
    with contextlib.suppress(OSError, ValueError):
        fd = out.fileno()
        null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)
        out.flush()


def _say(out: TextIO, text: str) -> None:
    _emit(out, f"custodes: {text}")


def _fail(out: TextIO, code: str, message: str) -> None:
    first = message.splitlines()[0] if message else code
    _emit(out, f"error: {code}: {first}")


def run_workload(spec: RunSpec, *, err: TextIO | None = None, rng: random.Random | None = None) -> int:
    """Run the service's application under a lease. Returns the exit code for ``custodes run`` (see
    :class:`ExitCode`; otherwise the application's own code, or 128 + signal if a signal ended it)."""
    out = err or sys.stderr
    rng = rng or random.SystemRandom()
    if spec.reap_orphans and os.getpid() != 1:
        become_subreaper()
    try:
        client = CasClient(spec.cas_url, spec.cas_cert)
    except CustodesError as exc:
        _fail(out, exc.code, exc.message)
        return exit_code_for(exc)
    with client, Supervisor(reap_orphans=spec.reap_orphans) as sup:
        stop_signal: list[int] = []

        def sleep(seconds: float) -> bool:
            signum = sup.interrupted(seconds)
            if signum is not None:
                stop_signal.append(signum)
            return signum is not None

        def retrying(exc: CasError, delay: float) -> None:
            _say(out, f"{exc.code}: {exc.message}; retrying in {delay:.1f}s")

        rundir: RuntimeDir | None = None
        files: MaterialisedFiles | None = None
        try:
            attestation, sent = attest_at_start(
                client,
                spec.policy,
                spec.service,
                spec.source,
                timeout=spec.start_timeout,
                backoff=spec.backoff,
                rng=rng,
                sleep=sleep,
                on_retry=retrying,
            )
            times = LeaseTimes.from_wire(attestation.lease, sent_at=sent, deadline=attestation.verdict.get("deadline"))
            config = attestation.rendered()
            rundir = RuntimeDir.create(spec.runtime_base or default_runtime_base(os.environ), spec.service)
            files = write_files(config.files)
            if stop_signal or (signum := sup.interrupted(0.0)) is not None:
                signum = stop_signal[0] if stop_signal else signum
                _fail(out, "INTERRUPTED", f"signal {signum} before the application started")
                _cleanup(files, rundir)
                return 128 + int(signum or 0)
            pid = sup.spawn(config.command, child_environment(config, os.environ), config.cwd)
        except CustodesError as exc:
            if stop_signal:
                _fail(out, "INTERRUPTED", f"signal {stop_signal[0]} while waiting for the CAS ({exc.code})")
                _cleanup(files, rundir)
                return 128 + stop_signal[0]
            _fail(out, exc.code, exc.message)
            _cleanup(files, rundir)
            return exit_code_for(exc)
        except BaseException:
            _cleanup(files, rundir)
            raise

        # From here on the application runs: whatever happens (an exception included), the finally clause stops it
        # and what it started, and removes the files. Nothing between spawn and that clause may raise outside it.
        grace = parse_stop_grace(attestation.lease, spec.stop_grace)
        keeper: LeaseKeeper | None = None
        try:
            for warning in attestation.verdict.get("warnings", []):
                _say(out, f"WARNING: {warning}")
            _say(out, f"attested {spec.policy}/{spec.service}; lease {times.lease_id}; started pid {pid}")
            status = {"policy": spec.policy, "service": spec.service, "app_pid": pid, "state": "running", "renewals": 0}
            rundir.write_status(
                {**status, "lease_id": times.lease_id, "lease_expires_at": attestation.lease["expires_at"]}
            )
            lost_box: list[LeaseLost] = []
            answered = threading.Event()

            def on_lost(lost: LeaseLost) -> None:
                lost_box.append(lost)
                answered.set()
                sup.wake()

            def on_renewed(renewed: Attestation, new_times: LeaseTimes) -> None:
                status["renewals"] = int(status["renewals"]) + 1
                rundir.write_status({**status, "lease_expires_at": renewed.lease["expires_at"]})
                _say(out, f"lease renewed until {renewed.lease['expires_at']}")

            keeper = renewing = LeaseKeeper(
                lambda lease_id: client.attest(spec.policy, spec.service, spec.source, lease_id=lease_id),
                times,
                on_lost=on_lost,
                on_renewed=on_renewed,
                backoff=spec.backoff,
                rng=rng,
            ).start()
            outcome = sup.supervise(
                deadline=lambda: renewing.times.expires_at,
                lost=lambda: lost_box[0] if lost_box else None,
                stop_grace=grace,
            )
            if outcome.lost is not None and not lost_box and renewing.times.deadline_bound:
                # The lease ran into its CVE deadline; the keeper's final attempt names the CAS's reason.
                answered.wait(FINAL_ANSWER_WAIT_S)
                if lost_box and lost_box[0].reason == "refused":
                    outcome = replace(outcome, lost=lost_box[0])
        finally:
            try:
                if keeper is not None:
                    keeper.stop(timeout=0.2)
                sup.stop(grace)  # a no-op unless supervision ended early: then the application is stopped here
            finally:
                _cleanup(files, rundir)
    if outcome.lost is None:
        return outcome.app_exit_code
    how = "SIGKILL after the grace period" if outcome.killed else "SIGTERM"
    what = "lease renewal refused" if outcome.lost.reason == "refused" else "lease expired"
    _fail(out, outcome.lost.code, f"{what}: {outcome.lost.message}; application stopped ({how})")
    return ExitCode.LEASE_REFUSED if outcome.lost.reason == "refused" else ExitCode.LEASE_EXPIRED


def _cleanup(files: MaterialisedFiles | None, rundir: RuntimeDir | None) -> None:
    if files is not None:
        files.cleanup()
    if rundir is not None:
        rundir.cleanup()
