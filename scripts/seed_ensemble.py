"""Does averaging model seeds help? Cross-gene Spearman of each seed's test predictions for a model and of their
mean (each seed's predictions standardised first), on the test genes every seed predicts (docs/learning.md).

    python scripts/seed_ensemble.py BENCH_DIR [BENCH_DIR ...] [--model GTA]

Each BENCH_DIR is a `gta benchmark` output folder (results.json + predictions/) trained on the same data.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_acceptance import _cross_gene_predictions  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bench", type=Path, nargs="+")
    ap.add_argument("--model", default="GTA")
    args = ap.parse_args()
    preds = []
    for bench in args.bench:
        res = json.loads((bench / "results.json").read_text())
        p = _cross_gene_predictions(bench, res, args.model)
        if p is None:
            raise SystemExit(f"{bench}: no test predictions of {args.model!r}")
        preds.append(p)
    genes = sorted(set.intersection(*(set(p.index) for p in preds)))
    y = preds[0].loc[genes, "y_true"].to_numpy()
    z = [((p.loc[genes, "y_pred"] - p.loc[genes, "y_pred"].mean()) / p.loc[genes, "y_pred"].std()).to_numpy()
         for p in preds]
    for bench, zi in zip(args.bench, z, strict=True):
        print(f"{bench}: {spearmanr(zi, y)[0]:.3f}")
    mean = np.mean(z, axis=0)
    rng = np.random.default_rng(0)
    boot = [spearmanr(mean[i], y[i])[0] for i in (rng.integers(0, len(y), len(y)) for _ in range(1000))]
    print(f"mean of {len(z)} seeds ({len(genes)} test genes): {spearmanr(mean, y)[0]:.3f} "
          f"[{np.percentile(boot, 2.5):.3f}, {np.percentile(boot, 97.5):.3f}]")
    print(pd.Series([spearmanr(zi, y)[0] for zi in z]).describe()[["mean", "min", "max"]].round(3).to_dict())


if __name__ == "__main__":
    main()
