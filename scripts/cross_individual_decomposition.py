"""Where a run's cross-individual accuracy is lost: per-gene Spearman over the held-out individuals of additive
reconstructions, each individual's expression rebuilt from the per-variant effects of its two haplotypes, with the
run's predicted effects swapped for the simulator's true ones piece by piece (causal or not, sign or size).

    python scripts/cross_individual_decomposition.py --data W/data --features W/features.zarr \
        --genes W/test_genes.txt --run W/cos_s0 --cache alt_cache.npz --out benchmarks/results/xind_decomposition

The simulator's noise-free expression is exactly this reconstruction with the true effects when variants act alone
(docs/simulator.md: h is a sum of element terms; two variants in one element interact), so the "truth" row is the
reconstruction's ceiling and the "model" row approximates what `gta predict` on haplotype windows scores (it ignores
the model's interactions between variants). Per-variant effects as `scripts/variant_runs.py` predicts them
(ALT - REF on the reference window, the run's prompt and mirror average). Writes OUT.json and OUT.md.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from variant_runs import encode_alts, haplotype_alleles, log_expression, predict_effects  # beside this script

from gta.atomic import atomic_write_text
from gta.provenance import source_commit


def reconstruct(effects: np.ndarray, truth: pd.DataFrame, hap: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Per gene, each individual's log((e^h1 + e^h2) / 2) with h = the sum of its haplotype's variant effects."""
    out = {}
    for gid, group in truth.groupby("gene_id", sort=False):
        h = np.zeros((n, 2))
        for i, vid in zip(group.index, group.variant_id, strict=True):
            if effects[i] != 0 and vid in hap:
                h += hap[vid] * effects[i]
        out[gid] = np.log(np.exp(h).mean(axis=1))
    return out


def median_rho(rebuilt: dict[str, np.ndarray], target: pd.DataFrame, genes: list[str]) -> float:
    """Median over ``genes`` of the Spearman across individuals; a reconstruction that does not vary scores 0."""
    return float(np.median([spearmanr(rebuilt[g], target.loc[g].to_numpy())[0] if rebuilt[g].std() > 1e-12 else 0.0
                            for g in genes]))


def cases(pred: np.ndarray, effect: np.ndarray, kind: np.ndarray) -> dict[str, np.ndarray]:
    """The run's effects, and the same with one part replaced by the truth (or removed)."""
    causal = np.abs(effect) > 1e-6
    scaled = pred.copy()
    for k in np.unique(kind[causal]):  # each kind's causal predictions scaled by its least-squares slope on the truth
        m = causal & (kind == k)
        if m.sum() > 2 and np.dot(pred[m], pred[m]) > 0:
            scaled[m] = pred[m] * np.dot(pred[m], effect[m]) / np.dot(pred[m], pred[m])
    return {"true effects (the reconstruction's ceiling)": effect,
            "the run's effects": pred,
            "the run's, non-causal variants set to 0": np.where(causal, pred, 0.0),
            "the run's, causal ones rescaled per element kind": scaled,
            "the run's sign x true size on causal variants": np.where(causal, np.sign(pred) * np.abs(effect), pred),
            "true effects on causal variants, the run's elsewhere": np.where(causal, effect, pred)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="simulated data folder (dataset.yaml, truth/)")
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--genes", type=Path, required=True, help="gene ids, whitespace-separated (the test genes)")
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=None, help="ALT features of the variants (variant_runs.py's)")
    ap.add_argument("--effects", type=Path, default=None, help="the run's predicted effects (.npy): read if it "
                    "exists, else predicted and saved there")
    ap.add_argument("--out", type=Path, required=True, help="OUT.json and OUT.md")
    args = ap.parse_args()
    from gta.io.dataset import open_dataset

    t0 = time.time()
    genes = args.genes.read_text().split()
    alts = encode_alts(args.data, args.features, genes, args.cache)
    if args.effects is not None and args.effects.exists():
        pred = np.load(args.effects).astype(np.float64)
    else:
        pred = predict_effects(args.run, args.data, args.features, alts).astype(np.float64)
        if args.effects is not None:
            np.save(args.effects, pred)
    truth = pd.read_csv(args.data / "truth" / "variants.tsv", sep="\t")
    truth = truth[truth.gene_id.isin(set(genes))].reset_index(drop=True)
    samples = list(open_dataset(args.data / "dataset.yaml").individual_splits()[1])
    hap = haplotype_alleles(args.data / "variants.vcf.gz", set(truth.variant_id), samples)
    observed = log_expression(args.data / "expression.tsv", samples)
    noise_free = log_expression(args.data / "truth" / "expression_noise_free.tsv", samples)
    effect = truth.effect.to_numpy(np.float64)
    varying = [g for g in truth.gene_id.unique() if noise_free.loc[g].std() > 1e-12]  # the ceiling's genes
    rows = []
    for name, eff in cases(pred, effect, alts["kind"]).items():
        rebuilt = reconstruct(eff, truth, hap, len(samples))
        rows.append({"effects": name, "observed": median_rho(rebuilt, observed, varying),
                     "noise_free": median_rho(rebuilt, noise_free, varying)})
    ceiling = median_rho({g: noise_free.loc[g].to_numpy() for g in varying}, observed, varying)
    causal = np.abs(effect) > 1e-6
    res = {"run": str(args.run), "rows": rows, "n_genes": len(varying), "noise_ceiling": ceiling,
           "n_individuals": len(samples),
           "pred_sd_causal": float(pred[causal].std()), "pred_sd_noncausal": float(pred[~causal].std()),
           "true_sd_causal": float(effect[causal].std()), "commit": source_commit(),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "seconds": round(time.time() - t0)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(res, indent=1))
    atomic_write_text(args.out.with_suffix(".md"), render(res))
    print(render(res))


def render(res: dict) -> str:
    lines = [f"# Cross-individual accuracy of `{Path(res['run']).name}`, decomposed", "",
             f"Written by `scripts/cross_individual_decomposition.py` at commit {res['commit']}, {res['date']}. "
             f"Per test gene whose noise-free expression varies ({res['n_genes']}), Spearman over the "
             f"{res['n_individuals']} held-out individuals between an additive "
             "reconstruction (each haplotype's sum of variant effects) and the observed (or noise-free) expression; "
             f"median over genes (a reconstruction that does not vary scores 0). The observed data's noise ceiling on "
             f"the same rows: {res['noise_ceiling']:.3f}. "
             f"Predicted effect sd: causal variants {res['pred_sd_causal']:.3f} (true {res['true_sd_causal']:.3f}), "
             f"non-causal {res['pred_sd_noncausal']:.4f} (true 0).", "",
             "| effects | median rho, observed | median rho, noise-free |", "|---|---|---|"]
    lines += [f"| {r['effects']} | {r['observed']:.3f} | {r['noise_free']:.3f} |" for r in res["rows"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
