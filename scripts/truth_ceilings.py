"""What a model that knew part of the simulator's truth could reach: cross-gene Spearman on the test chromosomes
between the observed mean log expression and sums of the truth's per-gene components (truth/genes.tsv,
truth/elements.tsv). These are ceilings for model families, e.g. "sequence only" (no annotation: the category's
baseline is unknowable) or "blind to insulation". Writes benchmarks/results/truth_ceilings.{json,md}.

    python scripts/truth_ceilings.py --data SIM_DIR [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from gta.provenance import source_commit

ROOT = Path(__file__).resolve().parents[1]
# an insulated element's effect is its free effect times the product of (1 - eta) over the pairs in the way
# (docs/simulator.md, eta = 0.95): dividing by 0.05 undoes one pair, which is what "blind to insulation" sees
ONE_PAIR = 0.05


def observed_means(sim: Path) -> pd.Series:
    expr = pd.read_csv(sim / "expression.tsv", sep="\t")
    values = np.log1p(expr.iloc[:, 4:].to_numpy(float)).mean(axis=1)
    return pd.Series(values, index=expr["TargetID"].str.split(".").str[0])


def ceilings(sim: Path) -> dict:
    genes = pd.read_csv(sim / "truth" / "genes.tsv", sep="\t")
    genes.index = genes["gene_id"].str.split(".").str[0]
    elements = pd.read_csv(sim / "truth" / "elements.tsv", sep="\t")
    elements["gene"] = elements["gene_id"].str.split(".").str[0]
    acting = elements[elements["kind"].isin(["enhancer", "repressor"])]
    blind = np.where(acting["insulated"], acting["effect"] / ONE_PAIR, acting["effect"])
    blind_sum = pd.Series(blind, index=acting.index).groupby(acting["gene"]).sum().reindex(genes.index).fillna(0)
    obs = observed_means(sim).reindex(genes.index).to_numpy()
    test = (genes["split"] == "test").to_numpy()
    parts = {
        "everything (noise-free mean)": genes["noise_free_mean"],
        "sequence only: promoter + proximal + distal": genes[["promoter", "proximal", "distal"]].sum(axis=1),
        "sequence only, blind to insulation": genes["promoter"] + blind_sum,
        "annotation only: the category's baseline": genes["baseline"],
        "baseline + promoter + proximal (nothing beyond 20 kb)": genes[["baseline", "promoter", "proximal"]].sum(
            axis=1),
        "promoter only": genes["promoter"],
    }
    rows = {name: float(spearmanr(v.to_numpy()[test], obs[test])[0]) for name, v in parts.items()}
    return {"data": str(sim), "n_test_genes": int(test.sum()), "spearman": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="a `gta simulate` output folder")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    res = ceilings(args.data)
    res["commit"] = source_commit()
    res["date"] = time.strftime("%Y-%m-%d %H:%M %Z")
    cfg = (args.data / "dataset.yaml").read_text()
    res["dataset"] = next((ln.split(":", 1)[1].strip() for ln in cfg.splitlines() if ln.startswith("name:")), "")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "truth_ceilings.json").write_text(json.dumps(res, indent=1) + "\n")
    lines = [f"# Ceilings from the simulator's truth ({res['dataset']}, {res['n_test_genes']} test genes)\n",
             f"Written by `scripts/truth_ceilings.py` at commit {res['commit']}, {res['date']}. Cross-gene Spearman "
             "between the observed mean log1p expression and the sum of the named truth components.\n",
             "| a model that knew exactly | Spearman |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in res["spearman"].items()]
    (args.out / "truth_ceilings.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
