"""Does the simulated benchmark need distal sequence? A promoter-only ridge vs. the same ridge on the whole window.

On a simulated data set (default: ``gta simulate --preset demo --seed 0`` into a temp folder), count JASPAR motif
hits (log-odds >= ``--frac`` x the motif's maximum, either strand; a plain torch conv1d scan, not gta.encoders)
in each gene's output span, then fit scikit-learn ``RidgeCV`` on

* promoter-only counts (+-2 kb of the TSS), and
* counts per distance band over the whole +-57 kb output span,

to predict the gene's mean log1p expression. Train on train+val chromosomes, score on the test chromosomes
(Spearman, R^2), and also leave-one-chromosome-out over all genes. The noise ceiling is the same score
reached by the noise-free expression (truth/expression_noise_free.tsv).

    python scripts/promoter_ridge_check.py [--data DIR/dataset.yaml] [--seed 0] [--out benchmarks/results]

Writes ``promoter_ridge.json`` and ``promoter_ridge.md`` into ``--out`` (atomically: a reader never sees half a
file): machine, date, data set, seed, and every score of the table, plus the data set's own noise ceiling and
variance summary (truth/noise_ceiling.json, truth/summary.json). docs/simulator.md cites those files.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import pearsonr, spearmanr
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gta.atomic import atomic_write_text
from gta.geometry import Geometry
from gta.io.genome import Genome, one_hot
from gta.io.jaspar import DEFAULT_MOTIFS, load_motifs
from gta.io.manifest import load_manifest
from gta.io.types import Gene
from gta.provenance import machine

BANDS = (0, 2_000, 10_000, 20_000, 35_000, 57_344)
OUT = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
ROWS = (("promoter_only", "promoter-only (+-2 kb)"), ("whole_window", "whole window, per band"),
        ("noise_ceiling", "noise ceiling (noise-free)"))


def read_gtf_genes(path: Path) -> list[Gene]:
    """Gene lines of a GTF -> Gene (TSS from the strand)."""
    genes = []
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        f = line.split("\t")
        if len(f) < 9 or f[2] != "gene":
            continue
        gid = f[8].split('gene_id "')[1].split('"')[0].split(".")[0]
        start, end = int(f[3]) - 1, int(f[4])
        genes.append(Gene(gid, gid, f[0], start if f[6] == "+" else end - 1, f[6]))
    return genes


def hit_positions(seq: str, filters: torch.Tensor, thresholds: torch.Tensor, width: int) -> list[np.ndarray]:
    """Per motif, window indices (site centres) where either strand scores >= threshold."""
    x = torch.from_numpy(one_hot(seq).T.copy())[None]  # [1, 4, L]
    scores = torch.nn.functional.conv1d(x, filters)[0]  # [2M, L - w + 1]
    m = thresholds.numel()
    hits = (scores[:m] >= thresholds[:, None]) | (scores[m:] >= thresholds[:, None])
    return [torch.nonzero(h).flatten().numpy() + width // 2 for h in hits]


def features(data: Path, frac: float) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    man = load_manifest(data)
    geo: Geometry = man.geometry
    motifs = load_motifs(DEFAULT_MOTIFS)
    width = max(m.width for m in motifs)
    lo = np.zeros((len(motifs), 4, width), dtype=np.float32)  # left-aligned, zero-padded log-odds
    for i, m in enumerate(motifs):
        lo[i, :, : m.width] = m.log_odds()
    rc = np.zeros_like(lo)
    for i, m in enumerate(motifs):
        rc[i, :, : m.width] = m.log_odds()[::-1, ::-1]
    filters = torch.from_numpy(np.concatenate([lo, rc]))
    thresholds = torch.tensor([frac * m.log_odds().max(0).sum() for m in motifs], dtype=torch.float32)
    genome = Genome(man.genome)
    half = geo.output_span // 2
    prom, band = [], []
    genes = read_gtf_genes(man.genes)
    t0 = time.perf_counter()
    for g in genes:
        seq = genome.gene_window(g, geo)[geo.tss_index - half: geo.tss_index + half]
        pos = hit_positions(seq, filters, thresholds, width)
        dist = [np.abs(p - half) for p in pos]
        prom.append([int((d < 2_000).sum()) for d in dist])
        band.append([int(((d >= a) & (d < b)).sum()) for d in dist for a, b in zip(BANDS, BANDS[1:], strict=False)])
    print(f"scanned {len(genes)} windows of {geo.output_span:,} bp in {time.perf_counter() - t0:.1f} s")
    names = [m.name for m in motifs]
    ids = [g.gene_id for g in genes]
    prom_df = pd.DataFrame(prom, index=ids, columns=names)
    band_df = pd.DataFrame(band, index=ids, columns=[f"{n}@{a}-{b}" for n in names
                                                     for a, b in zip(BANDS, BANDS[1:], strict=False)])
    info = pd.DataFrame({"chrom": [g.chrom for g in genes]}, index=ids)
    info["split"] = ["test" if c in man.splits.test_chroms else "val" if c in man.splits.val_chroms else "train"
                     for c in info["chrom"]]
    for key, path in (("observed", man.expression), ("noise_free", man.truth / "expression_noise_free.tsv")):
        expr = pd.read_csv(path, sep="\t", index_col=0)
        expr.index = [i.split(".")[0] for i in expr.index]
        info[key] = np.log1p(expr.iloc[:, 3:]).mean(axis=1).reindex(ids).to_numpy()
    return prom_df, band_df, info


def fit_score(x: pd.DataFrame, info: pd.DataFrame, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 25)))
    model.fit(np.log1p(x.to_numpy()[train]), info["observed"].to_numpy()[train])
    return model.predict(np.log1p(x.to_numpy()[test]))


def scores(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    r2 = 1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    return float(spearmanr(y, pred)[0]), float(r2)


def run(data: Path | None, seed: int, frac: float) -> dict:
    """Simulate (unless ``data`` is given), scan, fit and score; the result record written to JSON."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if data is None:
            from gta.sim import simulate

            manifest = simulate("demo", seed, Path(tmp) / "demo", progress=False)
            source = f"gta simulate --preset demo --seed {seed} (temporary folder)"
        else:
            manifest, source = data, str(data)
        t_sim = time.perf_counter() - t0
        prom, band, info = features(manifest, frac)
        man = load_manifest(manifest)
        truth_ceiling = json.loads((man.truth / "noise_ceiling.json").read_text())
        summary = json.loads((man.truth / "summary.json").read_text())
        name = man.name
    y, nf = info["observed"].to_numpy(), info["noise_free"].to_numpy()
    test = (info["split"] == "test").to_numpy()
    scores_by_row: dict[str, dict[str, float]] = {}
    for key, x in (("promoter_only", prom), ("whole_window", band)):
        pred = fit_score(x, info, ~test, test)
        chrom_pred = np.zeros(len(y))
        for c in info["chrom"].unique():
            held = (info["chrom"] == c).to_numpy()
            chrom_pred[held] = fit_score(x, info, ~held, held)
        (a, b), (c, d) = scores(y[test], pred), scores(y, chrom_pred)
        scores_by_row[key] = {"test_spearman": a, "test_r2": b, "loco_spearman": c, "loco_r2": d}
    scores_by_row["noise_ceiling"] = {
        "test_spearman": float(spearmanr(y[test], nf[test])[0]), "test_r2": float(pearsonr(y[test], nf[test])[0] ** 2),
        "loco_spearman": float(spearmanr(y, nf)[0]), "loco_r2": float(pearsonr(y, nf)[0] ** 2)}
    import scipy
    import sklearn

    return {
        "benchmark": "promoter_ridge",
        "machine": {**machine(), "torch_threads": torch.get_num_threads(), "numpy": np.__version__,
                    "scipy": scipy.__version__, "sklearn": sklearn.__version__,
                    "load_average_1min": round(os.getloadavg()[0], 2)},
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "data": source, "dataset_name": name, "seed": seed, "hit_frac": frac,
        "n_genes": int(len(y)), "n_test_genes": int(test.sum()),
        "target": "mean log1p expression per gene (observed); noise ceiling: the same from the noise-free matrix",
        "scores": scores_by_row,
        "definitions": {
            "promoter_only": "RidgeCV on log1p motif hit counts within +-2 kb of the TSS",
            "whole_window": f"RidgeCV on log1p motif hit counts per distance band {list(BANDS)} bp (|x|)",
            "noise_ceiling": "observed vs noise-free gene means: Spearman and squared Pearson (R2 column)",
            "test": "fit on train+val chromosomes, score on the test chromosomes",
            "loco": "leave-one-chromosome-out over all genes",
        },
        "truth_noise_ceiling": {k: v for k, v in truth_ceiling.items() if k != "definition"},
        "truth_summary": {k: summary[k] for k in ("cross_gene_variance", "mean_distal_share") if k in summary},
        "wall_s": {"simulate": round(t_sim, 1), "total": round(time.perf_counter() - t0, 1)},
    }


def render(r: dict) -> str:
    """The Markdown report of one run."""
    m, sc = r["machine"], r["scores"]
    lines = [
        "# Does the simulated benchmark need distal sequence? Promoter-only vs whole-window ridge",
        "",
        f"Data: {r['data']} ({r['dataset_name']}), seed {r['seed']}; {r['n_genes']} genes, {r['n_test_genes']} on "
        f"test chromosomes; target: {r['target']}. Motif hits: log-odds >= {r['hit_frac']} x max, either strand.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads; python {m['python']}, "
        f"numpy {m['numpy']}, scikit-learn {m['sklearn']}, torch {m['torch']}; {r['date']}; 1-min load average "
        f"{m['load_average_1min']}; {r['wall_s']['total']} s in all ({r['wall_s']['simulate']} s simulating).",
        "",
        "| features | test Spearman | test R² | LOCO Spearman | LOCO R² |",
        "|---|---|---|---|---|",
    ]
    for key, label in ROWS:
        v = sc[key]
        lines.append(f"| {label} | {v['test_spearman']:.3f} | {v['test_r2']:.3f} | {v['loco_spearman']:.3f} | "
                     f"{v['loco_r2']:.3f} |")
    nc = r["truth_noise_ceiling"]
    lines += ["", "Noise-ceiling row: the observed gene means against the noise-free ones (R² column: squared "
                  "Pearson). The test split holds few genes, so its numbers are noisy; LOCO uses every gene.",
              "", f"Data set noise ceiling (truth/noise_ceiling.json): across genes, mean over individuals "
                  f"{nc['across_genes_mean_over_individuals']:.3f}; across individuals, median per gene "
                  f"{nc['across_individuals_median_per_gene']:.3f}.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, help="dataset.yaml of a simulated data set (default: simulate demo)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frac", type=float, default=0.7, help="hit threshold as a share of the max log-odds")
    ap.add_argument("--out", type=Path, default=OUT, help="folder for promoter_ridge.json and promoter_ridge.md")
    args = ap.parse_args()
    torch.set_num_threads(2)
    result = run(args.data, args.seed, args.frac)
    atomic_write_text(args.out / "promoter_ridge.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(args.out / "promoter_ridge.md", render(result))
    print(f"{result['n_genes']} genes, {result['n_test_genes']} on test chromosomes; target: mean log1p expression")
    print(f"{'features':28s} {'test rho':>9s} {'test R2':>8s} {'LOCO rho':>9s} {'LOCO R2':>8s}")
    for key, label in ROWS:
        v = result["scores"][key]
        print(f"{label:28s} {v['test_spearman']:9.3f} {v['test_r2']:8.3f} {v['loco_spearman']:9.3f} "
              f"{v['loco_r2']:8.3f}")
    print(f"wrote {args.out / 'promoter_ridge.json'} and promoter_ridge.md")


if __name__ == "__main__":
    main()
