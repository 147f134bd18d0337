"""Do the stored motif features carry the grammar beyond per-band hit counts? A diagnostic, not a model.

A ridge (train -> test genes, RidgeCV) on the "Ridge (distance bands)" features (log1p count of bins whose motif max
>= 0.7 x the motif's best, per motif and |distance| band) is compared with the same plus five per-band sums of an
enhancer activity read from the same features in the simulator's own form (docs/simulator.md): occupancy
sigma(max - 0.6 x best) per motif and bin, z = sum of the activators' weights over bins b-1..b+1 + the SPI1-IRF4
composite in one bin - BCL6, activity g(z; theta), one count per local maximum (+-2 bins), times the contact decay
(1 + |d| / 25 kb)^-1. theta is varied: the simulator's 2.2, and higher bars that ignore chance clusters of
background hits. The reader borrows the simulator's weights, so it is not a baseline; nor is it an upper bound (a
better reader could find more): it shows that there is more to read in these features than band counts.

    python scripts/feature_grammar_probe.py --work W [--out benchmarks/results]

W holds `data/` (a `gta simulate` folder) and `features.zarr` (its motif store).
Writes feature_grammar_probe.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.linear_model import RidgeCV
from sklearn.preprocessing import StandardScaler

from gta.atomic import atomic_write_text
from gta.provenance import source_commit

ROOT = Path(__file__).resolve().parents[1]
BANDS = ((0, 2e3), (2e3, 10e3), (10e3, 20e3), (20e3, 35e3), (35e3, 58e3))
ACTIVATORS = {"EBF1": 1.3, "PAX5": 1.1, "RELA": 1.0, "NFKB1": 1.0, "POU2F2": 1.0, "RUNX3": 0.9, "MEF2C": 0.9,
              "IRF8": 0.7}  # docs/simulator.md
COMPOSITE, REPRESSION, THRESHOLD, D0 = 2.6, 3.0, 2.2, 25e3


def window_max(v: np.ndarray, k: int) -> np.ndarray:
    """Max over bins b-k..b+k (axis 1)."""
    out = v.copy()
    for s in range(1, k + 1):
        out[:, s:] = np.maximum(out[:, s:], v[:, :-s])
        out[:, :-s] = np.maximum(out[:, :-s], v[:, s:])
    return out


def g(z: np.ndarray, theta: float) -> np.ndarray:
    s, s0 = 1 / (1 + np.exp(-(z - theta))), 1 / (1 + np.exp(theta))
    return np.clip((s - s0) / (1 - s0), 0, None)


def load(work: Path):
    from gta.features.store import FeatureStore
    from gta.io.dataset import open_dataset

    store = FeatureStore.open(work / "features.zarr")
    dataset = open_dataset(work / "data" / "dataset.yaml")
    genes = [g for g in store.gene_ids if g in dataset.gene_splits]
    X = store.read_refs(genes).astype(np.float32)  # genes x bins x features
    y = dataset.expression.for_genes([dataset.gene(g) for g in genes]).to_numpy(float).mean(axis=1)
    split = np.array([dataset.gene_splits[g] for g in genes])
    return X, y, split, list(store.feature_names)


def features(X: np.ndarray, names: list[str]) -> tuple[np.ndarray, dict[float, np.ndarray]]:
    motifs = [n.removesuffix(".max") for n in names if n.endswith(".max")]
    idx = {m: names.index(f"{m}.max") for m in motifs}
    best = {m: X[:, :, i].max() for m, i in idx.items()}
    n_bins = X.shape[1]
    d = (np.arange(n_bins) - n_bins // 2 + 0.5) * 128
    band = np.full(n_bins, -1)
    for i, (lo, hi) in enumerate(BANDS):
        band[(np.abs(d) >= lo) & (np.abs(d) < hi)] = i

    def per_band(v):
        return np.stack([v[:, band == i].sum(axis=1) for i in range(len(BANDS))], axis=1)

    counts = np.concatenate([np.log1p(per_band((X[:, :, idx[m]] >= 0.7 * best[m]).astype(np.float32)))
                             for m in motifs], axis=1)
    occ = {m: 1 / (1 + np.exp(-(X[:, :, idx[m]] - 0.6 * best[m]))) for m in motifs}
    z = sum(w * window_max(occ[m], 1) for m, w in ACTIVATORS.items())
    z = z + COMPOSITE * occ["SPI1"] * occ["IRF4"] - REPRESSION * window_max(occ["BCL6"], 1)
    contact = 1 / (1 + np.abs(d) / D0)
    activity = {}
    for theta in (THRESHOLD, 3.5, 4.5):
        a = g(z, theta)
        activity[theta] = per_band(a * (a >= window_max(a, 2)) * contact)
    return counts, activity


def ridge_rho(F: np.ndarray, y: np.ndarray, split: np.ndarray) -> tuple[float, float]:
    tr, te = split == "train", split == "test"
    scale = StandardScaler().fit(F[tr])
    model = RidgeCV(alphas=np.logspace(-2, 5, 30)).fit(scale.transform(F[tr]), y[tr])
    return float(spearmanr(model.predict(scale.transform(F[te])), y[te])[0]), float(model.alpha_)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    X, y, split, names = load(args.work)
    counts, activity = features(X, names)
    rows = [("distance-band hit counts (the Ridge (distance bands) features)", *ridge_rho(counts, y, split))]
    for theta, act in activity.items():
        rows.append((f"activity read in the simulator's form, theta {theta}, alone", *ridge_rho(act, y, split)))
        rows.append((f"band counts + that activity (theta {theta})",
                     *ridge_rho(np.concatenate([counts, act], axis=1), y, split)))
    rec = {"commit": source_commit(dirty=True), "date": time.strftime("%Y-%m-%d %H:%M %Z"), "work": str(args.work),
           "n_test_genes": int((split == "test").sum()),
           "rows": [{"features": f, "test_spearman": r, "alpha": a} for f, r, a in rows]}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "feature_grammar_probe.json", json.dumps(rec, indent=1) + "\n")
    md = [f"<!-- written by scripts/feature_grammar_probe.py; commit {rec['commit']}, {rec['date']} -->", "",
          "# Do the motif features carry the grammar beyond band counts? (diagnostic)", "",
          f"Ridge, train -> {rec['n_test_genes']} test genes, observed mean log1p expression; the activity reader "
          "borrows the simulator's own weights: not a baseline, and not an upper bound; it shows how much more "
          "than band counts these features hold.", "",
          "| features | test Spearman | ridge alpha |", "|---|---|---|"]
    md += [f"| {f} | {r:.3f} | {a:.3g} |" for f, r, a in rows]
    atomic_write_text(args.out / "feature_grammar_probe.md", "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
