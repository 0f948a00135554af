"""Benchmark of the Mode A store (SqliteStore): put/get throughput and latency, against raw AES-256-GCM.

The baseline is the raw AES-256-GCM encrypt rate for one value of the same size, measured in the same run, so the
ratio "store op / raw AEAD op" holds on a noisy machine. Every put is one durable commit (WAL, synchronous=FULL), so
puts are bound by fsync; a second baseline, a plain SQLite commit with the same settings timed in alternation with
the puts, separates the store's own cost from the disk's.

    python benchmarks/store.py            # full run
    python benchmarks/store.py --smoke    # a few seconds, for CI

Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from custodes.store import SqliteStore


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _timed(op: Callable[[int], object], n: int) -> dict[str, float]:
    """Run ``op(i)`` n times; ops/s from the summed latencies, p50/p99 latency in microseconds."""
    lat = []
    for i in range(n):
        t = time.perf_counter()
        op(i)
        lat.append(time.perf_counter() - t)
    return _summary(lat)


def _timed_pair(op_a: Callable[[int], object], op_b: Callable[[int], object], n: int) -> tuple[dict, dict]:
    """Time two operations in alternation, so both see the same disk (fsync cost drifts a lot on a shared VM)."""
    lat_a, lat_b = [], []
    for i in range(n):
        t = time.perf_counter()
        op_a(i)
        t2 = time.perf_counter()
        op_b(i)
        lat_a.append(t2 - t)
        lat_b.append(time.perf_counter() - t2)
    return _summary(lat_a), _summary(lat_b)


def _summary(lat: list[float]) -> dict[str, float]:
    return {
        "ops": len(lat),
        "ops_per_s": round(len(lat) / sum(lat), 1),
        "p50_us": round(_percentile(lat, 0.50) * 1e6, 1),
        "p99_us": round(_percentile(lat, 0.99) * 1e6, 1),
        "mean_us": round(statistics.fmean(lat) * 1e6, 1),
    }


def _raw_sqlite(directory: Path, value_size: int) -> tuple[sqlite3.Connection, Callable[[int], object]]:
    """Baseline for puts: one plain SQLite insert-or-replace commit with the same durability settings."""
    conn = sqlite3.connect(directory / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE kv(k BLOB PRIMARY KEY, v BLOB)")
    value = os.urandom(value_size + 28)

    def commit(i: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (f"rec/{i % 1000:07d}".encode(), value))
        conn.execute("COMMIT")

    return conn, commit


def bench_aead(value_size: int, n: int) -> dict[str, float]:
    """Raw AES-256-GCM: fresh random nonce + encrypt with a short AD, as the store does per record."""
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    value, ad = os.urandom(value_size), b"rec|name|epoch|ver"
    return _timed(lambda _i: aead.encrypt(os.urandom(12), value, ad), n)


def bench_store(directory: Path, records: int, value_size: int, ops: int, threads: int) -> dict[str, object]:
    rng = random.Random(1)
    key = os.urandom(32)
    value = os.urandom(value_size)
    out: dict[str, object] = {}
    with SqliteStore.open(directory / "bench.db", key) as store:
        # Preload in batches so that reads and single puts run against a store of realistic size.
        t = time.perf_counter()
        for start in range(0, records, 500):
            store.commit({f"rec/{i:07d}": value for i in range(start, min(records, start + 500))})
        out["preload_records_per_s"] = round(records / (time.perf_counter() - t), 1)

        raw_conn, raw_commit = _raw_sqlite(directory, value_size)
        out["baseline_raw_sqlite_commit"], out["put"] = _timed_pair(
            raw_commit, lambda i: store.commit({f"rec/{rng.randrange(records):07d}": value}), ops
        )
        raw_conn.close()
        out["put_new"] = _timed(lambda i: store.commit({f"new/{i:07d}": value}), ops)
        def put_after_read(i: int) -> None:
            name = f"rec/{i % records:07d}"  # the CAS pattern: read the version, then write expecting it
            store.commit({name: value}, expect={name: store.version_of(name)})

        out["put_expect"] = _timed(put_after_read, ops)
        out["get"] = _timed(lambda i: store.get(f"rec/{rng.randrange(records):07d}"), ops)
        out["get_absent"] = _timed(lambda i: store.get(f"absent/{i}"), ops)
        out["get_many_10"] = _timed(
            lambda i: store.get_many([f"rec/{rng.randrange(records):07d}" for _ in range(10)]), max(1, ops // 10)
        )
        if threads > 1:
            out[f"get_{threads}_threads"] = _threaded(store, records, ops, threads)
        t = time.perf_counter()
        store.verify_all()
        out["verify_all_s"] = round(time.perf_counter() - t, 3)
    db_size = sum(p.stat().st_size for p in directory.iterdir())
    out["db_bytes"] = db_size
    return out


def _threaded(store: SqliteStore, records: int, ops: int, threads: int) -> dict[str, float]:
    """Aggregate get throughput with several threads sharing one store (the CAS thread-pool pattern)."""
    barrier = threading.Barrier(threads + 1)

    def work(seed: int) -> None:
        rng = random.Random(seed)
        barrier.wait()
        for _ in range(ops // threads):
            store.get(f"rec/{rng.randrange(records):07d}")

    pool = [threading.Thread(target=work, args=(s,)) for s in range(threads)]
    for th in pool:
        th.start()
    barrier.wait()
    t = time.perf_counter()
    for th in pool:
        th.join()
    done = (ops // threads) * threads
    return {"ops": done, "ops_per_s": round(done / (time.perf_counter() - t), 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny run for CI")
    p.add_argument("--records", type=int, default=10_000)
    p.add_argument("--value-size", type=int, default=256)
    p.add_argument("--ops", type=int, default=2_000)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--dir", type=Path, default=None, help="where to put the database (default: a temp dir)")
    args = p.parse_args(argv)
    if args.smoke:
        args.records, args.ops = 300, 100
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        aead = bench_aead(args.value_size, max(args.ops * 10, 1000))
        store = bench_store(Path(tmp), args.records, args.value_size, args.ops, args.threads)
    result = {
        "benchmark": "store.sqlite",
        "smoke": args.smoke,
        "params": {"records": args.records, "value_size": args.value_size, "ops": args.ops, "threads": args.threads},
        "env": {
            "python": sys.version.split()[0],
            "sqlite": sqlite3.sqlite_version,
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        },
        "baseline_aes256gcm_encrypt": aead,
        "store": store,
        "ratio_aead_to_put": round(aead["ops_per_s"] / store["put"]["ops_per_s"], 1),  # type: ignore[index]
        "ratio_aead_to_get": round(aead["ops_per_s"] / store["get"]["ops_per_s"], 1),  # type: ignore[index]
        "ratio_raw_sqlite_commit_to_put": round(
            store["baseline_raw_sqlite_commit"]["ops_per_s"] / store["put"]["ops_per_s"], 2  # type: ignore[index]
        ),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
