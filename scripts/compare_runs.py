"""Two groups of `gta train` runs (e.g. a setting and the default, one run per model seed) on the same data: each
run's test-gene Spearman with its bootstrap interval, each group's mean and range, and the paired difference of the
runs matched by seed (paired bootstrap over the same test genes).

    python scripts/compare_runs.py --a W/gem_s0 W/gem_s1 W/gem_s2 --b W/benchmark/runs/GTA W/verdict7/seed1/runs/GTA \
        W/ref_s2 --names "GeM + mirror" "default" --out benchmarks/results/gem_mirror_seeds

A run's predictions are its ``predictions/test.parquet`` (gene rows) or, for a benchmark's run folder, the
benchmark's ``predictions/<model>.parquet``. Writes OUT.json and OUT.md with the commit and date when --out is given.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from gta.atomic import atomic_write_text
from gta.evaluate.metrics import cross_gene, gene_rows, paired_call, paired_spearman_difference
from gta.provenance import source_commit


def table(run: Path) -> pd.DataFrame:
    """The run's prediction table: its own ``predictions/test.parquet``, or its benchmark's."""
    own = run / "predictions" / "test.parquet"
    if own.exists():
        return pd.read_parquet(own)
    return pd.read_parquet(run.parent.parent / "predictions" / f"{run.name}.parquet")  # <benchmark>/runs/<model>


def seed_of(run: Path) -> int:
    return int(yaml.safe_load((run / "config.yaml").read_text())["seed"])


def summarise(runs: list[Path]) -> list[dict]:
    out = []
    for run in runs:
        cg = cross_gene(table(run), n_boot=1000, split="test")
        out.append({"run": str(run), "seed": seed_of(run), "spearman": cg["spearman"], "ci": cg["spearman_ci"],
                    "n_genes": cg["n_genes"]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", type=Path, nargs="+", required=True)
    ap.add_argument("--b", type=Path, nargs="+", required=True)
    ap.add_argument("--names", nargs=2, default=["A", "B"])
    ap.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.md")
    args = ap.parse_args()
    groups = {name: summarise(runs) for name, runs in zip(args.names, (args.a, args.b), strict=True)}
    by_seed = {name: {r["seed"]: Path(r["run"]) for r in rows} for name, rows in groups.items()}
    a, b = args.names
    pairs = []
    for seed in sorted(set(by_seed[a]) & set(by_seed[b])):
        ra, rb = (gene_rows(table(by_seed[n][seed]), split="test") for n in (a, b))
        joined = ra.join(rb["y_pred"].rename("y_pred_b"), how="inner")
        d = paired_spearman_difference(joined["y_true"], joined["y_pred"], joined["y_pred_b"], 1000, 0)
        pairs.append({"seed": seed, **d})
    rec = {"commit": source_commit(dirty=True), "date": time.strftime("%Y-%m-%d %H:%M %Z"), "groups": groups,
           "paired_by_seed": pairs}
    lines = [f"<!-- written by scripts/compare_runs.py; commit {rec['commit']}, {rec['date']} -->", "",
             f"# {a} vs {b}: test-gene Spearman per model seed", "", "| group | seed | Spearman [95% CI] | run |",
             "|---|---|---|---|"]
    for name, rows in groups.items():
        for r in rows:
            lines.append(f"| {name} | {r['seed']} | {r['spearman']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] | "
                         f"`{r['run']}` |")
        v = [r["spearman"] for r in rows]
        lines.append(f"| **{name}** | mean [min, max] | **{np.mean(v):.3f}** [{min(v):.3f}, {max(v):.3f}] | |")
    lines += ["", f"Paired by seed ({a} - {b}, the same test genes, 1,000 bootstrap resamples):", "",
              "| seed | difference | 95% CI | call |", "|---|---|---|---|"]
    for p in pairs:
        lines.append(f"| {p['seed']} | {p['difference']:+.3f} | [{p['ci'][0]:+.3f}, {p['ci'][1]:+.3f}] | "
                     f"{paired_call(p['ci'])} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out.with_suffix(".json"), json.dumps(rec, indent=1) + "\n")
        atomic_write_text(args.out.with_suffix(".md"), text)


if __name__ == "__main__":
    main()
