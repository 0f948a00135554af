"""Start-up overhead of ``custodes run`` against starting the same app directly, and a rolling-update burst.

1. Overhead: a trivial app (``python app.py``, which records the monotonic time at which it started and exits 0)
   started directly (the baseline) and under ``custodes run --tee simulated`` against a real CAS process on loopback,
   alternately in the same run. ``added_startup_ms`` is the median over pairs of (time until the app started under
   ``custodes run`` − time until it started directly): the start-up overhead, the runtime's Python start-up
   included. ``added_total_ms`` is the same for the time until the command exited (it adds the runtime's supervision
   and its own exit). The breakdown of the start-up overhead (medians, measured in a probe process in the same run):
   the runtime's interpreter start-up, the imports of the ``run`` entry point, the simulated evidence provider (its
   X.509 imports, the measurement), one attestation over a fresh TLS connection (challenge, evidence, attest,
   unseal), and the rest (arguments, TLS context, files, runtime directory, spawn).
2. Burst: N ``custodes run`` instances started at once, as in a rolling update: the time until every app has its
   config (its marker file exists), and the error count (runtimes that failed, CAS log lines at ERROR).

Byte-code: an installed package carries its compiled byte-code, but a development checkout under
``PYTHONDONTWRITEBYTECODE=1`` compiles every ``custodes`` module on each start. The benchmark therefore gives the
baseline and the runtime a byte-code cache in its temporary directory (``PYTHONPYCACHEPREFIX``, warmed first), and
reports the start without it too (``added_startup_without_bytecode_ms``).

    python benchmarks/run_overhead.py            # 21 alternating pairs, a burst of 200
    python benchmarks/run_overhead.py --smoke    # 3 runs, a burst of 10 (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from custodes.client import CasClient
from custodes.clock import utcnow
from custodes.evidence.measure import measure_paths
from custodes.evidence.simvendor import SimVendor
from custodes.ledger.keys import fingerprint, generate_key
from custodes.policy import load_policy
from custodes.runtime.providers import SimulatedProvider

APP = """\
import time
started = time.monotonic()
import os, sys
with open(sys.argv[1] + "/" + str(os.getpid()), "w") as marker:
    marker.write(repr(started))
"""
PROBE = """\
import time
t0 = time.monotonic()
import sys, custodes.cli, custodes.cli._run
t1 = time.monotonic()
from custodes.runtime.providers import SimulatedProvider
SimulatedProvider(sys.argv[1], [sys.argv[2]])
print(t0, t1, time.monotonic())
"""
POLICY = """\
name: bench/run
predecessor: ~
keys: {{owner: "{owner}"}}
access: {{read: [owner], update: {{signers: [owner]}}}}
security: {{allow_simulated: true}}
services:
  - name: app
    measurements: [{{tee: simulated, measurement: "{measurement}"}}]
    command: [{python}, app.py, {markers}]
    environment: {{DB_PASSWORD: "$$custodes::password$$"}}
    files:
      - {{path: "{files}/db.conf", content: "password=$$custodes::password$$"}}
secrets:
  - {{name: password, kind: ascii, size: 32}}
"""


def run_command() -> list[str]:
    """The installed ``custodes`` console script (what a container's entrypoint runs), else ``python -m``."""
    script = Path(sys.executable).parent / "custodes"
    if script.is_file():
        return [str(script), "run"]
    return [sys.executable, "-m", "custodes", "run"]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def start_cas(data: Path, sim: Path, log: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "custodes", "cas", "serve", "--data-dir", str(data), "--listen", "127.0.0.1:0",
         "--sim-vendor", str(sim)],
        stdout=subprocess.PIPE, stderr=log.open("w"), text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    match = re.search(r"listening on (https://\S+)", line)
    if not match:
        raise SystemExit(f"the CAS did not start: {log.read_text()}")
    return proc, match.group(1)


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], markers: Path, **kwargs) -> tuple[float, float, float]:
    """Run once; return the seconds until the app started (its marker), until the command exited, and the CPU
    seconds it used with its descendants (which, unlike wall time, hardly depends on load from elsewhere)."""
    for marker in markers.iterdir():
        marker.unlink()
    cpu = cpu_of_children()
    launched = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kwargs)
    exited = time.monotonic() - launched
    (marker,) = markers.iterdir()
    return float(marker.read_text()) - launched, exited, cpu_of_children() - cpu


def probe(argv: list[str], **kwargs) -> tuple[float, float, float]:
    """The probe's interpreter start-up, entry-point imports and simulated provider set-up, in seconds."""
    launched = time.monotonic()
    out = subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs).stdout
    t0, t1, t2 = (float(x) for x in out.split())
    return t0 - launched, t1 - t0, t2 - t1


def median_ms(values: list[float]) -> float:
    return ms(statistics.median(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--burst", type=int, default=200)
    args = parser.parse_args()
    runs, burst = (3, 10) if args.smoke else (args.runs, args.burst)
    with tempfile.TemporaryDirectory(prefix="custodes-bench-run-") as tmp:
        work = Path(tmp)
        sim = SimVendor.init(work / "sim", platforms=1, tcb_level=2, now=utcnow())
        platform = sim.platforms()[0].path
        app_dir, markers = work / "app", work / "markers"
        app_dir.mkdir()
        markers.mkdir()
        (app_dir / "app.py").write_text(APP)
        owner = generate_key()
        measurement = measure_paths([app_dir / "app.py"]).hex()
        text = POLICY.format(owner=fingerprint(owner.public_key()), measurement=measurement,
                             python=json.dumps(sys.executable), markers=json.dumps(str(markers)), files=work / "files")
        policy = load_policy(text, source="bench")
        cas_proc, url = start_cas(work / "cas", work / "sim", work / "cas.log")
        cert = work / "cas" / "cas-cert.pem"
        try:
            with CasClient(url, cert) as client:
                client.put_policy(text, name=policy.name, policy_hash=policy.hash, predecessor=None,
                                  signers=[("owner", owner)], create=True)
            base_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            env = {**base_env, "PYTHONPYCACHEPREFIX": str(work / "pycache")}
            run_env = {**env, "CUSTODES_CAS": url, "CUSTODES_CAS_CERT": str(cert), "CUSTODES_RUNTIME_DIR": tmp}
            argv = [*run_command(), "--policy", policy.name, "--service", "app", "--tee", "simulated",
                    "--sim-platform", str(platform), "--sim-measure", str(app_dir / "app.py")]
            direct = [sys.executable, "app.py", str(markers)]
            probe_argv = [sys.executable, "-c", PROBE, str(platform), str(app_dir / "app.py")]
            for _ in range(2):  # warm the byte-code cache, the CAS's render cache and the page cache
                timed(argv, markers, cwd=app_dir, env=run_env)
                timed(direct, markers, cwd=app_dir, env=env)
            pairs = []
            for _ in range(runs):  # alternate, so that load from elsewhere on the machine hits both alike
                pairs.append((timed(direct, markers, cwd=app_dir, env=env),
                              timed(argv, markers, cwd=app_dir, env=run_env)))
            added_start = [run[0] - base[0] for base, run in pairs]
            added_total = [run[1] - base[1] for base, run in pairs]
            # as in a checkout under PYTHONDONTWRITEBYTECODE: the interpreter's own byte-code, none for custodes
            plain = {k: v for k, v in run_env.items() if k != "PYTHONPYCACHEPREFIX"}
            no_bytecode = [timed(argv, markers, cwd=app_dir, env={**plain, "PYTHONDONTWRITEBYTECODE": "1"})[0]
                           - timed(direct, markers, cwd=app_dir, env=env)[0] for _ in range(runs)]
            probes = [probe(probe_argv, env=env) for _ in range(runs)]
            source = SimulatedProvider(platform, [app_dir / "app.py"])
            attest_s = []
            for _ in range(runs):
                started = time.perf_counter()
                with CasClient(url, cert) as client:  # a fresh TLS connection, as each custodes run makes
                    client.attest(policy.name, "app", source)
                attest_s.append(time.perf_counter() - started)

            for marker in markers.iterdir():
                marker.unlink()
            started = time.perf_counter()
            procs = [subprocess.Popen(argv, cwd=app_dir, env=run_env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True) for _ in range(burst)]
            all_configured = None
            while all_configured is None:
                if sum(1 for _ in markers.iterdir()) >= burst:
                    all_configured = time.perf_counter() - started
                elif all(p.poll() is not None for p in procs):
                    break
                else:
                    time.sleep(0.01)
            failures = 0
            for p in procs:
                p.communicate()
                failures += p.returncode != 0
            cas_errors = sum(" ERROR " in line or "Traceback" in line
                             for line in (work / "cas.log").read_text().splitlines())
        finally:
            cas_proc.terminate()
            cas_proc.wait(timeout=10)
    interpreter, imports, simulated = (statistics.median(p[i] for p in probes) for i in range(3))
    startup, attest = statistics.median(added_start), statistics.median(attest_s)
    print(json.dumps({
        "benchmark": "run_overhead",
        "smoke": args.smoke,
        "runs": runs,
        "cpus": os.cpu_count(),
        "command": " ".join(Path(a).name if i == 0 else a for i, a in enumerate(run_command())),
        "direct_app_started_ms": median_ms([base[0] for base, _ in pairs]),
        "direct_app_exited_ms": median_ms([base[1] for base, _ in pairs]),
        "under_run_app_started_ms": median_ms([run[0] for _, run in pairs]),
        "under_run_exited_ms": median_ms([run[1] for _, run in pairs]),
        "added_startup_ms": ms(startup),
        "added_startup_min_ms": ms(min(added_start)),
        "added_startup_p90_ms": ms(sorted(added_start)[int(0.9 * (len(added_start) - 1))]),
        "target_added_ms": 150,
        "added_total_ms": median_ms(added_total),
        "added_cpu_ms": median_ms([run[2] - base[2] for base, run in pairs]),
        "added_startup_without_bytecode_ms": median_ms(no_bytecode),
        "startup_breakdown_ms": {
            "runtime_interpreter_start": ms(interpreter),
            "runtime_imports": ms(imports),
            "simulated_provider": ms(simulated),
            "attestation_fresh_tls": ms(attest),
            "arguments_files_spawn": ms(startup - interpreter - imports - simulated - attest),
        },
        "burst": {
            "instances": burst,
            "all_configured_s": round(all_configured, 2) if all_configured is not None else None,
            "runtime_failures": failures,
            "cas_errors": cas_errors,
        },
    }, indent=2))


if __name__ == "__main__":
    main()
