"""Start-up overhead of ``custodes run`` against starting the same app directly, and a rolling-update burst.

1. Overhead: a trivial app (``python3 app.py`` that writes its marker and exits 0) started directly (the baseline,
   measured in the same run) and under ``custodes run --tee simulated`` against a real CAS process on loopback.
   The breakdown: interpreter start-up plus imports of the runtime, one attestation over a fresh TLS connection
   (challenge, simulated evidence, attest, unseal), and the rest (files, spawn, supervision, exit).
2. Burst: N ``custodes run`` instances started at once, as in a rolling update: the time until every app has its
   config (its marker file exists), and the error count (runtimes that failed, CAS log lines at ERROR).

    python benchmarks/run_overhead.py            # 15 sequential runs, a burst of 200
    python benchmarks/run_overhead.py --smoke    # 3 runs, a burst of 10 (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import re
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

APP = "import os, sys\nopen(sys.argv[1] + '/' + str(os.getpid()), 'w').close()\n"
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
    from custodes.cli._app import app  # noqa: PLC0415

    if any(c.name == "run" for c in app.registered_commands):
        return [sys.executable, "-m", "custodes", "run"]
    return [sys.executable, "-m", "custodes.cli._run"]


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


def timed(argv: list[str], **kwargs) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--runs", type=int, default=15)
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
            env = {**os.environ, "CUSTODES_CAS": url, "CUSTODES_CAS_CERT": str(cert), "CUSTODES_RUNTIME_DIR": tmp}
            argv = [*run_command(), "--policy", policy.name, "--service", "app", "--tee", "simulated",
                    "--sim-platform", str(platform), "--sim-measure", str(app_dir / "app.py")]
            direct = [sys.executable, "app.py", str(markers)]
            imports = [sys.executable, "-c", "import custodes.cli._run, custodes.runtime.launcher"]
            timed(argv, cwd=app_dir, env=env)  # warm the CAS's render cache and the page cache
            baseline = statistics.median(timed(direct, cwd=app_dir) for _ in range(runs))
            under_run = statistics.median(timed(argv, cwd=app_dir, env=env) for _ in range(runs))
            startup = statistics.median(timed(imports) for _ in range(runs))
            source = SimulatedProvider(platform, [app_dir / "app.py"])
            attest_s = []
            for _ in range(runs):
                started = time.perf_counter()
                with CasClient(url, cert) as client:  # a fresh TLS connection, as each custodes run makes
                    client.attest(policy.name, "app", source)
                attest_s.append(time.perf_counter() - started)
            attest = statistics.median(attest_s)

            for marker in markers.iterdir():
                marker.unlink()
            started = time.perf_counter()
            procs = [subprocess.Popen(argv, cwd=app_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True) for _ in range(burst)]
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
    overhead = under_run - baseline
    print(json.dumps({
        "benchmark": "run_overhead",
        "smoke": args.smoke,
        "runs": runs,
        "baseline_direct_start_ms": round(baseline * 1000, 1),
        "custodes_run_total_ms": round(under_run * 1000, 1),
        "added_overhead_ms": round(overhead * 1000, 1),
        "target_added_ms": 150,
        "breakdown_ms": {
            "python_start_and_imports": round(startup * 1000, 1),
            "attestation_fresh_tls": round(attest * 1000, 1),
            "files_spawn_supervise_exit": round((under_run - startup - attest - baseline) * 1000, 1),
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
