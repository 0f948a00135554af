"""``custodes encoded``: fault-injection campaigns on the built-in encoded kernels (docs/encoded.md)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from custodes.encoded.campaign import (
    Outcome,
    Tally,
    encoded_variant,
    exhaustive,
    run_campaign,
    unencoded_variant,
)
from custodes.encoded.code import DEFAULT_A, Code, Scheme
from custodes.encoded.errors import EncodedUsageError
from custodes.encoded.faults import FaultModel
from custodes.encoded.kernels import KERNELS
from custodes.encoded.ops import DEFAULT_CHECKS

__all__ = ["encoded_app"]

encoded_app = typer.Typer(
    name="encoded",
    help="Encoded processing: fault-injection campaigns against the AN/ANB/ANBD encoder.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Results = dict[str, dict[str, dict[str, Tally]]]


@encoded_app.callback()
def _group() -> None:
    """Encoded processing: fault-injection campaigns against the AN/ANB/ANBD encoder."""


def _pct(t: Tally, o: Outcome) -> str:
    rate, lo, hi = t.rate(o)
    return f"{100 * rate:6.2f}% [{100 * lo:.2f}, {100 * hi:.2f}]"


def _table(results: Results) -> str:
    head = f"{'kernel':<11}{'model':<15}{'variant':<10}{'n':>7}  {'detected [95% CI]':<28}{'masked':>8}  "
    head += f"{'SDC [95% CI]':<28}{'crash':>7}{'timeout':>8}"
    lines = [head, "-" * len(head)]
    for kernel, models in results.items():
        for model, variants in models.items():
            for variant, t in variants.items():
                if not t.total:
                    lines.append(f"{kernel:<11}{model:<15}{variant:<10}{0:>7}  (no injection point in this kernel)")
                    continue
                c = t.counts
                lines.append(
                    f"{kernel:<11}{model:<15}{variant:<10}{t.total:>7}  {_pct(t, Outcome.DETECTED):<28}"
                    f"{c['masked']:>8}  {_pct(t, Outcome.SDC):<28}{c['crash']:>7}{c['timeout']:>8}"
                )
    return "\n".join(lines)


def _summary(results: Results) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for models in results.values():
        for variants in models.values():
            for variant, t in variants.items():
                s = out.setdefault(variant, {"injected": 0, **{o.value: 0 for o in Outcome}})
                s["injected"] += t.total
                for o in Outcome:
                    s[o.value] += t.counts[o.value]
    for s in out.values():
        total = Tally({o.value: s[o.value] for o in Outcome})
        rate, lo, hi = total.rate(Outcome.SDC)
        s["sdc_rate"], s["sdc_low"], s["sdc_high"] = rate, lo, hi
    return out


@encoded_app.command("campaign")
def campaign(
    kernel: Annotated[list[str], typer.Option("--kernel", "-k", help=f"kernel: {', '.join(KERNELS)} or all")],
    faults: Annotated[
        int, typer.Option("--faults", "-n", min=1, help="injections per kernel, model and variant")
    ] = 1000,
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="fault model (repeatable; default: all)")
    ] = None,
    scheme: Annotated[str, typer.Option(help="AN, ANB or ANBD")] = "ANBD",
    a: Annotated[int, typer.Option("--A", help="the code constant (odd)")] = DEFAULT_A,
    bits: Annotated[int, typer.Option(min=1, max=8, help="bit flips flip 1..BITS bits")] = 2,
    seed: Annotated[int, typer.Option(help="sampling seed (campaigns are reproducible)")] = 0,
    checks: Annotated[
        str, typer.Option(help="operand checks: deferred (default: where an error could be masked) or every-op")
    ] = DEFAULT_CHECKS,
    exhaustive_mode: Annotated[
        bool, typer.Option("--exhaustive", help="every 1- and 2-bit flip at every injection point (small kernels)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON document")] = False,
    backend: Annotated[
        str, typer.Option(help="python (the ALU-call form) or c (the instrumented C build of the same program)")
    ] = "python",
) -> None:
    """Inject faults into built-in kernels, encoded and unencoded, and classify every run."""
    names = list(KERNELS) if "all" in kernel else kernel
    unknown = [k for k in names if k not in KERNELS]
    if unknown:
        raise typer.BadParameter(f"unknown kernel(s) {', '.join(unknown)}; choose from {', '.join(KERNELS)}")
    try:
        models = [FaultModel(m) for m in model] if model else list(FaultModel)
    except ValueError as e:
        raise typer.BadParameter(f"unknown model; choose from {', '.join(m.value for m in FaultModel)}") from e
    try:
        code = Code(a, 32, 64, Scheme(scheme.upper()))
        variant = encoded_variant(code, checks, backend)
        baseline = unencoded_variant(backend)
    except (ValueError, EncodedUsageError) as e:
        raise typer.BadParameter(f"invalid code, checks or backend: {e}") from e
    results: Results = {}
    for name in names:
        if exhaustive_mode:
            k = KERNELS[name]
            results[name] = {
                "bitflip-exhaustive": {
                    v.name: exhaustive(k, v, k.default_args(), max_bits=2) for v in (variant, baseline)
                }
            }
        else:
            pair = [variant, baseline]
            results[name] = run_campaign(name, models, faults, seed=seed, max_bits=bits, variants=pair)
    if as_json:
        doc = {
            "code": {"A": code.A, "scheme": code.scheme.value, "kbits": code.kbits, "nbits": code.nbits},
            "checks": checks,
            "backend": backend,
            "faults_per_cell": None if exhaustive_mode else faults,
            "seed": seed,
            "results": {
                k: {m: {v: t.to_json() for v, t in vs.items()} for m, vs in ms.items()} for k, ms in results.items()
            },
            "summary": _summary(results),
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    typer.echo(
        f"code: {code.scheme.value}, A={code.A}, {code.kbits}-bit values in {code.nbits}-bit words, checks={checks}, "
        f"backend={backend}"
    )
    typer.echo(_table(results))
    for variant, s in _summary(results).items():
        typer.echo(
            f"{variant:<10} injected {s['injected']:>8}  detected {s['detected']:>8}  SDC {s['sdc']:>6} "
            f"({100 * s['sdc_rate']:.4f}% [{100 * s['sdc_low']:.4f}, {100 * s['sdc_high']:.4f}])"
        )
