"""Interpretation of two groups of `gta train` runs (one run per model seed) against the simulator's truth, on the
sample `gta benchmark` reads: gradient x input AUPRC on 50 held-out genes and variant effects near 25 of them.

    python scripts/interpret_runs.py --data W/data/dataset.yaml --features W/features.zarr \
        --a W/ema20_s0 W/ema20_s1 --b W/benchmark/runs/GTA W/cur_s1 --names "EMA" "default" \
        --work W/interpret_runs --out benchmarks/results/ema_interpretation

Each run's metrics are cached in ``--work`` (one folder per run); OUT.json and OUT.md carry the commit and date.
The genes and the computation are `gta benchmark`'s (``gta.evaluate.benchmark.interpret_run``), so a run's numbers
equal its benchmark's interpretation.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
from compare_runs import seed_of  # beside this script

from gta.atomic import atomic_write_text
from gta.evaluate.benchmark import INTERPRET_DEFAULTS, interpret_run
from gta.provenance import source_commit

KEYS = ("auprc", "distal_auprc", "pearson", "sign")


def run_metrics(run: Path, data, store: Path, work: Path) -> dict:
    """The run's importance and variant-effect metrics (cached in ``work``)."""
    folder = work / hashlib.sha256(str(run.resolve()).encode()).hexdigest()[:12]
    cached = folder / "metrics.json"
    if cached.exists():
        return json.loads(cached.read_text())
    imp, effects = interpret_run(run, data, store, folder, INTERPRET_DEFAULTS["n_genes"],
                                 INTERPRET_DEFAULTS["variant_genes"])
    g, eff = imp["methods"]["gradxinput"], effects["overall"]
    rec = {"run": str(run), "auprc": g["auprc"], "distal_auprc": g["distal_auprc"],
           "random": imp["reference"]["random"]["auprc"], "distance_prior": imp["reference"]["distance_prior"]["auprc"],
           "pearson": eff["pearson"], "sign": eff["sign_agreement"], "n_variants": eff["n"],
           "n_causal": eff["n_causal"], "n_genes": len(imp["genes"])}
    atomic_write_text(cached, json.dumps(rec, indent=1))
    return rec


def markdown(out: dict) -> str:
    names = list(out["groups"])
    ref = next(iter(out["groups"][names[0]]))
    lines = [f"<!-- written by scripts/interpret_runs.py; commit {out['commit']}, {out['date']} -->", "",
             f"# Interpretation: {names[0]} vs {names[1]}, per model seed", "",
             f"Gradient x input AUPRC on {ref['n_genes']} held-out genes (random {ref['random']:.3f}, distance prior "
             f"{ref['distance_prior']:.3f}); variant effects near the first "
             f"{INTERPRET_DEFAULTS['variant_genes']} of them ({ref['n_variants']} variants, {ref['n_causal']} causal):"
             " Pearson with the true effect, and the share of causal variants whose sign is right.", "",
             "| group | seed | AUPRC | distal AUPRC | variant Pearson | sign right | run |",
             "|---|---|---|---|---|---|---|"]
    for name, rows in out["groups"].items():
        for r in rows:
            lines.append(f"| {name} | {r['seed']} | {r['auprc']:.3f} | {r['distal_auprc']:.3f} | {r['pearson']:.3f} | "
                         f"{r['sign']:.0%} | `{r['run']}` |")
        m = out["means"][name]
        lines.append(f"| **{name}** | mean | **{m['auprc']:.3f}** | **{m['distal_auprc']:.3f}** | "
                     f"**{m['pearson']:.3f}** | **{m['sign']:.0%}** | |")
    higher = out["a_higher"]
    lines += ["", f"Seeds where {names[0]} is higher: " + ", ".join(f"{k} {v} of {len(out['groups'][names[0]])}"
                                                                   for k, v in higher.items()) + "."]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--a", type=Path, nargs="+", required=True)
    ap.add_argument("--b", type=Path, nargs="+", required=True)
    ap.add_argument("--names", nargs=2, default=["A", "B"])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if len(args.a) != len(args.b):
        ap.error("--a and --b need one run per seed each, in the same seed order")
    from gta.io.dataset import open_dataset

    data = open_dataset(args.data)
    groups = {}
    for name, runs in zip(args.names, (args.a, args.b), strict=True):
        groups[name] = []
        for run in runs:
            groups[name].append({"seed": seed_of(run), **run_metrics(run, data, args.features, args.work)})
            print(name, json.dumps(groups[name][-1]), flush=True)
    means = {n: {k: float(np.mean([r[k] for r in rows])) for k in KEYS} for n, rows in groups.items()}
    a, b = groups.values()
    out = {"commit": source_commit(dirty=True), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "groups": groups, "means": means,
           "a_higher": {k: int(sum(x[k] > y[k] for x, y in zip(a, b, strict=True))) for k in KEYS}}
    text = markdown(out)
    print(text)
    if args.out:
        atomic_write_text(args.out.with_suffix(".json"), json.dumps(out, indent=1))
        atomic_write_text(args.out.with_suffix(".md"), text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
