"""Encoded processing: slowdown against the unencoded code (same run) and campaign detection/SDC figures.

Usage: ``python benchmarks/encoded.py [--smoke] [--faults N] [--seed S] [--only c_scalar,numpy,...]``. Prints
one JSON document (``--only`` runs some parts; the exhaustive campaigns run with both campaign parts):

* ``scalar``: per built-in kernel, the median time of the original Python function and of its ``@encoded`` form
  (AN, ANB, ANBD with deferred checks, the default, and ANBD with every-op checks; the production, inline form),
  and the slowdown ratios, without the deep copy of list arguments (made before the timed calls); for list
  arguments also the ratios with that copy added to both sides (``*_with_copy_slowdown``);
* ``numpy``: per vector kernel, plain numpy (int32) against ``VectorOps`` in eager and deferred check modes;
* ``profile``: where the encoded scalar time goes (cProfile, share of total time per function);
* ``campaign``: per kernel and fault model, outcome counts for the encoded (ANBD) and unencoded variants, and the
  overall SDC rates with Wilson 95% intervals; ``exhaustive``: every 1- and 2-bit flip of the dosage kernel.
* ``c_scalar``: the C backend (``@encoded(backend="c")``) per kernel, same run: (a) ``in_c_ratio``, encoded C
  against the plain function compiled by the same backend, both timed inside C by a generated harness (list
  inputs restored before every call, inputs read through pointers so nothing is constant-folded); (b)
  ``per_call_ratio``, a call of the C kernel from Python through its extension fast path (what
  ``@encoded(backend="c")`` calls: argument checks, encoding and write-back in C) against the plain Python function,
  and ``ctypes_per_call_ratio``, the same through the checked ctypes path; the Python backend's figures for the
  same kernel are in ``scalar``;
* ``c_profile``: in-C time of measurement-only copies of the generated program (its check macro rewritten to
  pass, or its barrier macro emptied, or both) as ratios to plain C, which splits the encoded cost into
  arithmetic, checks and barriers; and the per-call cost of the bare ctypes call;
* ``numpy`` also has ``<kernel>/c-deferred`` and ``<kernel>/c-eager`` (``VectorOps(backend="c")``, one C loop per
  operation; ``matmul`` checks its operands inside the product's loop) and ``<kernel>/c-fused``
  (``vfused.fuse``: one C loop per kernel, element-wise kernels only);
* ``c_campaign``: the campaign on the instrumented C build (``--backend c``); ``c_exhaustive``: every 1- and 2-bit
  flip of the dosage kernel in C.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import json
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from custodes.encoded import Code, EncodedOps, VectorOps
from custodes.encoded._cgen import translate
from custodes.encoded.campaign import Outcome, Tally, encoded_variant, exhaustive, run_campaign, unencoded_variant
from custodes.encoded.cbackend import CKernel, program_source
from custodes.encoded.faults import FaultModel
from custodes.encoded.kernels import KERNELS
from custodes.encoded.vfused import fuse


def _median_time(fn: Callable[[], Any], repeats: int, number: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def _call(fn: Callable[..., Any], args: tuple[Any, ...]) -> Callable[[], Any]:
    if any(isinstance(a, list) for a in args):
        return lambda: fn(*copy.deepcopy(args))
    return lambda: fn(*args)


def _batch(fn: Callable[..., Any], args: tuple[Any, ...], number: int) -> float:
    """Mean time of ``number`` calls; list arguments are deep-copied *before* the timed loop (calls may mutate)."""
    batch = [copy.deepcopy(args) for _ in range(number)] if any(isinstance(a, list) for a in args) else [args] * number
    start = time.perf_counter()
    for a in batch:
        fn(*a)
    return (time.perf_counter() - start) / number


def scalar(repeats: int, number: int) -> dict[str, Any]:
    """Original vs encoded scalar kernels. Samples are interleaved (plain, then each variant, per repeat), so that
    load on the shared machine hits all of them alike; each figure is the median over the repeats. Times exclude
    the deep copy of list arguments (``copy_us`` reports it; ``*_with_copy_slowdown`` adds it to both sides)."""
    out: dict[str, Any] = {}
    variants = {
        "AN": EncodedOps(Code.an()),
        "ANB": EncodedOps(Code.anb()),
        "ANBD": EncodedOps(Code.anbd()),
        "ANBD_every-op": EncodedOps(Code.anbd(), "every-op"),
    }
    for name, kernel in KERNELS.items():
        args = kernel.default_args()
        fns = {"plain": kernel.fn.original} | {k: kernel.fn.bind(ops) for k, ops in variants.items()}
        samples: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(repeats):
            for k, fn in fns.items():
                samples[k].append(_batch(fn, args, number))
        t = {k: statistics.median(v) * 1e6 for k, v in samples.items()}
        has_lists = any(isinstance(a, list) for a in args)
        copy_us = 1e6 * _median_time(lambda a=args: copy.deepcopy(a), repeats, number) if has_lists else 0.0
        row: dict[str, Any] = {"plain_us": t["plain"], "copy_us": copy_us}
        for k in variants:
            row[f"{k}_us"] = t[k]
            row[f"{k}_slowdown"] = t[k] / t["plain"]
            if has_lists:
                row[f"{k}_with_copy_slowdown"] = (t[k] + copy_us) / (t["plain"] + copy_us)
        out[name] = row
    return out


def _vector_kernels(n: int, rng: np.random.Generator) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    """Plain numpy int32 and encoded implementations of the same computations."""
    kernels: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {}

    def make(v: VectorOps, fused: bool = False) -> dict[str, Callable[[], Any]]:
        x, y = rng.integers(-150, 150, n), rng.integers(-150, 150, n)
        w, d, c = rng.integers(1, 200, n), rng.integers(0, 100, n), rng.integers(1, 100, n)
        side = int(np.sqrt(n) // 5) or 2
        ma, mb = rng.integers(-10, 10, (side, side)), rng.integers(-10, 10, (side, side))
        err, integ, prev = rng.integers(-100, 100, n), rng.integers(-200, 200, n), rng.integers(-100, 100, n)
        ex, ey, ew, ed, ec = v.encode(x, 1), v.encode(y, 2), v.encode(w, 3), v.encode(d, 4), v.encode(c, 5)
        ema, emb = v.encode(ma, 6), v.encode(mb, 7)
        eerr, einteg, eprev = v.encode(err, 8), v.encode(integ, 9), v.encode(prev, 10)
        # Constants are encoded once, as 0-d vectors, as the plain code uses Python scalars.
        cap, kp, ki, kd, k1000 = (v.encode(k, 11 + i) for i, k in enumerate((5000, 40, 30, 20, 1000)))
        rows = rng.integers(0, 256, (max(n // 100, 1), 100))
        erows, ones = v.encode(rows, 17), v.encode(np.ones((100, 1), dtype=np.int64), 18)
        e255 = v.encode(255, 19)
        x32, y32, w32, d32, c32 = (a.astype(np.int32) for a in (x, y, w, d, c))
        ma32, mb32, rows32 = ma.astype(np.int32), mb.astype(np.int32), rows.astype(np.int32)
        err32, integ32, prev32 = err.astype(np.int32), integ.astype(np.int32), prev.astype(np.int32)

        def enc_dosage() -> Any:
            rate = v.floordiv(v.mul(ew, ed, 20), ec, 21)
            return v.decode(v.where(v.compare("gt", rate, cap, 22), cap, rate, 23))

        def enc_pid() -> Any:
            p = v.add(v.mul(kp, eerr, 24), v.mul(ki, einteg, 25), 26)
            return v.decode(v.floordiv(v.add(p, v.mul(kd, v.sub(eerr, eprev, 27), 28), 29), k1000, 30))

        plain = {
            "axpy": lambda: x32 * y32 + x32,
            "dosage": lambda: np.minimum(w32 * d32 // c32, 5000),
            "matmul": lambda: ma32 @ mb32,
            "checksum": lambda: (rows32 @ np.ones((100, 1), dtype=np.int32)) % 255,
            "pid": lambda: (40 * err32 + 30 * integ32 + 20 * (err32 - prev32)) // 1000,
        }
        encoded = {
            "axpy": lambda: v.decode(v.add(v.mul(ex, ey, 31), ex, 32)),
            "dosage": enc_dosage,
            "matmul": lambda: v.decode(v.matmul(ema, emb, 33)),
            "checksum": lambda: v.decode(v.mod(v.matmul(erows, ones, 34), e255, 35)),
            "pid": enc_pid,
        }
        if fused:  # whole-kernel C loops (vfused.py) for the element-wise kernels
            axpy = fuse(v, lambda t, a, b: t.decode(t.add(t.mul(a, b, 31), a, 32)), 1, 2)
            dos = fuse(
                v,
                lambda t, a, b, c, k: t.decode(
                    t.where(t.compare("gt", r := t.floordiv(t.mul(a, b, 20), c, 21), k, 22), k, r, 23)
                ),
                3, 4, 5, 11,
            )  # fmt: skip
            pid = fuse(
                v,
                lambda t, p, e, i, q, d, pr, m: t.decode(
                    t.floordiv(
                        t.add(t.add(t.mul(p, e, 24), t.mul(i, q, 25), 26), t.mul(d, t.sub(e, pr, 27), 28), 29), m, 30
                    )
                ),
                12, 8, 13, 9, 14, 10, 15,
            )  # fmt: skip
            encoded = {
                "axpy": lambda: axpy(ex, ey),
                "dosage": lambda: dos(ew, ed, ec, cap),
                "pid": lambda: pid(kp, eerr, ki, einteg, kd, eprev, k1000),
            }
            plain = {k: plain[k] for k in encoded}
        for key, plain_fn in plain.items():  # both compute the same thing
            if not np.array_equal(np.asarray(plain_fn()).astype(np.int64), encoded[key]()):
                raise RuntimeError(f"vector kernel {key} disagrees with numpy")
        kernels.update({key: (plain[key], encoded[key]) for key in plain})
        return encoded

    out: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {}
    for label, ops in (
        ("eager", VectorOps(check="eager")),
        ("deferred", VectorOps(check="deferred")),
        ("c-eager", VectorOps(check="eager", backend="c")),
        ("c-deferred", VectorOps(check="deferred", backend="c")),
        ("c-fused", VectorOps(check="deferred")),
    ):
        kernels.clear()
        make(ops, fused=label == "c-fused")
        out |= {f"{k}/{label}": fns for k, fns in kernels.items()}
    return out


def vectors(n: int, repeats: int) -> dict[str, Any]:
    """Plain numpy vs VectorOps: samples interleaved (plain, encoded, plain, ...), medians of ``repeats``."""
    out: dict[str, Any] = {}
    for name, (plain, enc) in _vector_kernels(n, np.random.default_rng(1)).items():
        tps, tes = [], []
        for _ in range(repeats):
            tps.append(_median_time(plain, 1, 3))
            tes.append(_median_time(enc, 1, 3))
        tp, te = statistics.median(tps), statistics.median(tes)
        ratio = statistics.median(e / p for e, p in zip(tes, tps, strict=True))
        out[name] = {"plain_ms": 1e3 * tp, "encoded_ms": 1e3 * te, "slowdown": ratio, "elements": n}
    return out


def c_scalar(repeats: int, iters: int, number: int) -> dict[str, Any]:
    """The C backend per kernel: in-C ratio to plain C (the papers' ratio) and per-call ratio to plain Python."""
    out: dict[str, Any] = {}
    for name, kernel in KERNELS.items():
        args = kernel.default_args()
        enc_c, plain_c = kernel.fn.c_kernel(Code()), kernel.fn.c_kernel(None)
        inner: dict[str, list[float]] = {"plain": [], "encoded": []}
        calls: dict[str, list[float]] = {"python": [], "c": [], "ctypes": []}
        for _ in range(repeats):  # interleaved, so that load on the shared machine hits both alike
            for label, k in (("plain", plain_c), ("encoded", enc_c)):
                start = time.perf_counter()
                k.bench(args, iters)
                inner[label].append((time.perf_counter() - start) / iters)
            calls["python"].append(_batch(kernel.fn.original, args, number))
            calls["c"].append(_batch(enc_c.entry, args, number))  # the extension's fast path (what @encoded calls)
            calls["ctypes"].append(_batch(enc_c._slow_call, args, number))  # the checked ctypes path
        ratios = [e / p for e, p in zip(inner["encoded"], inner["plain"], strict=True)]
        out[name] = {
            "plain_c_ns": 1e9 * statistics.median(inner["plain"]),
            "encoded_c_ns": 1e9 * statistics.median(inner["encoded"]),
            "in_c_ratio": statistics.median(ratios),
            "plain_python_us": 1e6 * statistics.median(calls["python"]),
            "c_per_call_us": 1e6 * statistics.median(calls["c"]),
            "per_call_ratio": statistics.median(c / p for c, p in zip(calls["c"], calls["python"], strict=True)),
            "ctypes_per_call_us": 1e6 * statistics.median(calls["ctypes"]),
            "ctypes_per_call_ratio": statistics.median(
                c / p for c, p in zip(calls["ctypes"], calls["python"], strict=True)
            ),
        }
    return out


def c_profile(repeats: int, iters: int) -> dict[str, Any]:
    """Where the in-C time goes: measurement-only builds (checks passing, no barriers) as ratios to plain C."""
    out: dict[str, Any] = {}
    no_check = ("#define PASS(c) (c)", "#define PASS(c) 1")
    no_barrier = ('#define OPAQUE(v) __asm__ __volatile__("" : "+r"(v))', "#define OPAQUE(v) ((void)0)")
    edits: dict[str, list[tuple[str, str]]] = {"encoded": [], "no_checks": [no_check], "no_barriers": [no_barrier]}
    edits["arithmetic_only"] = [no_check, no_barrier]
    for name, kernel in KERNELS.items():
        cfn = translate(kernel.fn._module(kernel.fn._target(EncodedOps(Code()), inline=False)))
        builds: dict[str, CKernel] = {"plain": kernel.fn.c_kernel(None)}
        for label, changes in edits.items():  # measurement-only copies of the generated program, never used for results
            source = program_source(cfn, Code())
            for old, new in changes:
                if old not in source:
                    raise RuntimeError(f"measurement copy: {old!r} not found in the generated program")
                source = source.replace(old, new)
            builds[label] = CKernel(cfn, Code(), source=source)
        args = kernel.default_args()
        samples: dict[str, list[float]] = {k: [] for k in builds}
        for _ in range(repeats):
            for k, b in builds.items():
                start = time.perf_counter()
                b.bench(args, iters)
                samples[k].append(time.perf_counter() - start)
        plain = statistics.median(samples["plain"])
        out[name] = {k: statistics.median(v) / plain for k, v in samples.items() if k != "plain"}
    dosage = KERNELS["dosage"]
    enc_c = dosage.fn.c_kernel(Code())
    _, addr = enc_c._out()
    args = dosage.default_args()
    out["per_call_us"] = {
        "bare_ctypes_call": 1e6 * _median_time(lambda: enc_c._callf(addr, *args), repeats, 2000),
        "ctypes_wrapper": 1e6 * _median_time(lambda: enc_c._slow_call(*args), repeats, 2000),
        "fast_path": 1e6 * _median_time(lambda: enc_c.entry(*args), repeats, 2000),
        "plain_python": 1e6 * _median_time(lambda: dosage.fn.original(*args), repeats, 2000),
    }
    return out


def profile(number: int) -> dict[str, Any]:
    """Share of the encoded scalar time by function (cProfile tottime)."""
    out: dict[str, Any] = {}
    for name in ("dosage", "matmul"):
        kernel = KERNELS[name]
        args = kernel.default_args()
        run = _call(kernel.fn, args)
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(number):
            run()
        prof.disable()
        stats = pstats.Stats(prof)
        total = stats.total_tt  # type: ignore[attr-defined]
        rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:6]  # type: ignore[attr-defined]
        out[name] = {f"{func[2]} ({os.path.basename(func[0])})": round(v[2] / total, 3) for func, v in rows}
    return out


def campaign(n: int, seed: int, backend: str = "python") -> dict[str, Any]:
    """All kernels, all models, ANBD vs unencoded; counts plus overall SDC rates."""
    per: dict[str, Any] = {}
    totals = {"encoded": Tally(), "unencoded": Tally()}
    for name in KERNELS:
        res = run_campaign(name, list(FaultModel), n, seed=seed, backend=backend)
        per[name] = {m: {v: t.counts for v, t in vs.items()} for m, vs in res.items()}
        for vs in res.values():
            for v, t in vs.items():
                for o in Outcome:
                    totals[v].counts[o.value] += t.counts[o.value]
    summary = {}
    for v, t in totals.items():
        rate, lo, hi = t.rate(Outcome.SDC)
        det = t.counts["detected"]
        summary[v] = {
            "injected": t.total,
            **t.counts,
            "sdc_rate": rate,
            "sdc_ci95": [lo, hi],
            "detection_of_activated": det / (det + t.counts["sdc"]) if det + t.counts["sdc"] else None,
        }
    return {
        "faults_per_cell": n,
        "seed": seed,
        "backend": backend,
        "code": "ANBD A=58659 32/64",
        "summary": summary,
        "cells": per,
    }


PARTS: tuple[str, ...] = ("scalar", "numpy", "profile", "campaign", "c_scalar", "c_profile", "c_campaign")


def main() -> None:
    """Run and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few seconds, for CI")
    parser.add_argument("--faults", type=int, default=None, help="injections per kernel, model and variant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--c-faults", type=int, default=None, help="injections per cell of the C campaign")
    parser.add_argument(
        "--only", default="", help=f"comma-separated parts to run (default: all): {', '.join(PARTS)}"
    )
    ns = parser.parse_args()
    smoke = ns.smoke
    faults = ns.faults or (10 if smoke else 2000)
    only = {p for p in ns.only.split(",") if p} or set(PARTS)
    if only - set(PARTS):
        parser.error(f"unknown part(s): {', '.join(sorted(only - set(PARTS)))}")
    started = time.perf_counter()
    parts: dict[str, Callable[[], Any]] = {
        "scalar": lambda: scalar(repeats=3 if smoke else 7, number=20 if smoke else 200),
        "numpy": lambda: vectors(n=20_000 if smoke else 1_000_000, repeats=3 if smoke else 7),
        "profile": lambda: profile(number=5 if smoke else 100),
        "campaign": lambda: campaign(faults, ns.seed),
        "c_scalar": lambda: c_scalar(
            repeats=3 if smoke else 9, iters=2_000 if smoke else 100_000, number=20 if smoke else 300
        ),
        "c_profile": lambda: c_profile(repeats=3 if smoke else 7, iters=2_000 if smoke else 50_000),
        "c_campaign": lambda: campaign(ns.c_faults or faults, ns.seed, backend="c"),
    }
    doc: dict[str, Any] = {
        "machine": {"python": sys.version.split()[0], "numpy": np.__version__, "platform": platform.platform()},
    }
    doc |= {name: run() for name, run in parts.items() if name in only}
    if not smoke and only >= {"campaign", "c_campaign"}:
        k = KERNELS["dosage"]
        doc["exhaustive"] = {
            v.name: exhaustive(k, v, k.default_args()).counts for v in (encoded_variant(Code()), unencoded_variant())
        }
        doc["c_exhaustive"] = {
            v.name: exhaustive(k, v, k.default_args()).counts
            for v in (encoded_variant(Code(), backend="c"), unencoded_variant("c"))
        }
    doc["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
