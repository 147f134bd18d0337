"""Does the simulated benchmark need distal sequence? A promoter-only ridge vs. the same ridge on the whole window.

On a simulated data set (default: ``gta simulate --preset demo --seed 0`` into a temp folder), count JASPAR motif
hits (log-odds >= ``--frac`` x the motif's maximum, either strand; a plain torch conv1d scan, not gta.encoders)
in each gene's output span, then fit scikit-learn ``RidgeCV`` on

* promoter-only counts (+-2 kb of the TSS), and
* counts per distance band over the whole +-57 kb output span,

to predict the gene's mean log1p expression. Train on train+val chromosomes, score on the test chromosomes
(Spearman, R^2), and also leave-one-chromosome-out over all genes. The noise ceiling is the same score
reached by the noise-free expression (truth/expression_noise_free.tsv).

    python scripts/promoter_ridge_check.py [--data DIR/dataset.yaml] [--seed 0]
"""

from __future__ import annotations

import argparse
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

from gta.geometry import Geometry
from gta.io.genome import Genome, one_hot
from gta.io.jaspar import DEFAULT_MOTIFS, load_motifs
from gta.io.manifest import load_manifest
from gta.io.types import Gene

BANDS = (0, 2_000, 10_000, 20_000, 35_000, 57_344)


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, help="dataset.yaml of a simulated data set (default: simulate demo)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frac", type=float, default=0.7, help="hit threshold as a share of the max log-odds")
    args = ap.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            from gta.sim import simulate

            data = simulate("demo", args.seed, Path(tmp) / "demo", progress=False)
        prom, band, info = features(data, args.frac)
    y, nf = info["observed"].to_numpy(), info["noise_free"].to_numpy()
    test = (info["split"] == "test").to_numpy()
    rows = []
    for name, x in (("promoter-only (+-2 kb)", prom), ("whole window, per band", band)):
        pred = fit_score(x, info, ~test, test)
        chrom_pred = np.zeros(len(y))
        for c in info["chrom"].unique():
            held = (info["chrom"] == c).to_numpy()
            chrom_pred[held] = fit_score(x, info, ~held, held)
        rows.append((name, *scores(y[test], pred), *scores(y, chrom_pred)))
    ceil_test = (float(spearmanr(y[test], nf[test])[0]), float(pearsonr(y[test], nf[test])[0] ** 2))
    ceil_all = (float(spearmanr(y, nf)[0]), float(pearsonr(y, nf)[0] ** 2))
    rows.append(("noise ceiling (noise-free)", *ceil_test, *ceil_all))
    print(f"{len(y)} genes, {int(test.sum())} on test chromosomes; target: mean log1p expression per gene")
    print(f"{'features':28s} {'test rho':>9s} {'test R2':>8s} {'LOCO rho':>9s} {'LOCO R2':>8s}")
    for name, a, b, c, d in rows:
        print(f"{name:28s} {a:9.3f} {b:8.3f} {c:9.3f} {d:8.3f}")


if __name__ == "__main__":
    main()
