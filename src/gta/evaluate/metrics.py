"""Metrics on prediction tables: cross-gene, cross-individual, by distal share, and the noise ceiling.

A prediction table has the columns ``gene_id, sample, haplotype, split, y_true, y_pred`` (optional
``sample_split``). Gene-level rows have ``sample == ""``; individual rows carry a sample id and
``haplotype == "both"``. ``split`` is the gene's split (train / val / test); ``sample_split`` the individual's.

Every function here is a pure function of the table, so ``results.json`` can be recomputed from saved predictions.
Correlations are scipy's (``spearmanr`` / ``pearsonr``); the bootstrap resamples genes with replacement.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from gta.errors import GtaInputError
from gta.stats import pearson, per_gene_spearman, spearman

REQUIRED_COLUMNS = ("gene_id", "sample", "haplotype", "split", "y_true", "y_pred")
DEFAULT_DISTAL_BINS = (0.0, 0.2, 0.4, 0.6, 1.0)


def check_table(df: pd.DataFrame, path: str | Path | None = None) -> pd.DataFrame:
    """Check the prediction-table contract; return the table with ``sample``/``haplotype`` as strings."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise GtaInputError(
            f"prediction table lacks columns {missing}; has {list(df.columns)}",
            path=path,
            hint="columns must be " + ", ".join(REQUIRED_COLUMNS),
        )
    bad = set(df["split"].astype(str).unique()) - {"train", "val", "test"}
    if bad:
        raise GtaInputError(f"unknown split values {sorted(bad)}", path=path, hint="use train, val or test")
    out = df.copy()
    for col in ("gene_id", "sample", "haplotype"):
        out[col] = out[col].fillna("").astype(str)
    out["split"] = out["split"].astype(str)
    return out


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(1) / den, np.nan)


def bootstrap_ci(
    x: np.ndarray, y: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, list[float]]:
    """Percentile bootstrap CIs of Spearman and Pearson, resampling (x, y) pairs (genes) with replacement.

    Vectorised: every resample's ranks are taken at once (``scipy.stats.rankdata`` along rows, ties averaged),
    which equals ``spearmanr`` on that resample.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or n_boot <= 0:
        return {"spearman": [float("nan")] * 2, "pearson": [float("nan")] * 2}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    bx, by = x[idx], y[idx]
    pr = _rowwise_pearson(bx, by)
    sr = _rowwise_pearson(stats.rankdata(bx, axis=1), stats.rankdata(by, axis=1))
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]

    def ci(v: np.ndarray) -> list[float]:
        v = v[np.isfinite(v)]
        return [float(t) for t in np.percentile(v, q)] if len(v) else [float("nan")] * 2

    return {"spearman": ci(sr), "pearson": ci(pr)}


def paired_spearman_difference(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """Spearman(a, y) - Spearman(b, y) for two models' predictions of the same genes, with a paired percentile
    bootstrap CI (each resample of genes scores both models), vectorised as in ``bootstrap_ci``: the test of a
    difference between two models, which non-overlapping separate intervals are not."""
    y, a, b = (np.asarray(v, float) for v in (y, a, b))
    point = spearman(a, y) - spearman(b, y) if len(y) >= 3 else float("nan")
    if len(y) < 3 or n_boot <= 0:
        return {"difference": point, "ci": [float("nan")] * 2, "n_genes": len(y), "n_boot": n_boot}
    idx = np.random.default_rng(seed).integers(0, len(y), size=(n_boot, len(y)))
    ry = stats.rankdata(y[idx], axis=1)
    d = (_rowwise_pearson(stats.rankdata(a[idx], axis=1), ry) - _rowwise_pearson(stats.rankdata(b[idx], axis=1), ry))
    d = d[np.isfinite(d)]
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    ci = [float(t) for t in np.percentile(d, q)] if len(d) else [float("nan")] * 2
    return {"difference": float(point), "ci": ci, "n_genes": len(y), "n_boot": n_boot}


CALLS = ("better", "worse", "no difference")


def paired_call(ci: list[float]) -> str:
    """The call of a paired difference A - B: "better" / "worse" when its CI excludes 0, else "no difference"."""
    lo, hi = ci
    return CALLS[0] if lo > 0 else CALLS[1] if hi < 0 else CALLS[2]


def tally_calls(calls: list[str]) -> str:
    """'2 better, 1 no difference': how many seeds (or runs) made each call, in the order of CALLS."""
    return ", ".join(f"{calls.count(c)} {c}" for c in CALLS if c in calls)


def gene_rows(df: pd.DataFrame, split: str | None = "test") -> pd.DataFrame:
    """Gene-level rows (``sample == ""``) of one split (all splits if None), one row per gene."""
    g = df[df["sample"] == ""]
    if split is not None:
        g = g[g["split"] == split]
    return g.groupby("gene_id", sort=True)[["y_true", "y_pred"]].mean()


def cross_gene(df: pd.DataFrame, n_boot: int = 1000, seed: int = 0, split: str = "test") -> dict[str, Any]:
    """Across genes of ``split``: Spearman and Pearson of predicted vs observed mean expression, with CIs.

    Uses the gene-level rows only; a model that emits none (a per-gene eQTL model) gets ``n_genes = 0`` and
    ``None`` values rather than a score derived from in-sample gene means.
    """
    df = check_table(df)
    g = gene_rows(df, split)
    out: dict[str, Any] = {"split": split, "n_genes": int(len(g)), "n_boot": int(n_boot), "seed": int(seed)}
    if len(g) < 3:
        out.update(spearman=None, pearson=None, spearman_ci=None, pearson_ci=None)
        return out
    x, y = g["y_pred"].to_numpy(float), g["y_true"].to_numpy(float)
    ci = bootstrap_ci(x, y, n_boot=n_boot, seed=seed)
    out.update(
        spearman=_none_if_nan(spearman(x, y)),
        pearson=_none_if_nan(pearson(x, y)),
        spearman_ci=[_none_if_nan(v) for v in ci["spearman"]],
        pearson_ci=[_none_if_nan(v) for v in ci["pearson"]],
    )
    return out


def _none_if_nan(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def individual_rows(df: pd.DataFrame, sample_split: str | None = "test") -> pd.DataFrame:
    """Individual rows (``sample != ""``), restricted to held-out individuals when ``sample_split`` is given."""
    ind = df[df["sample"] != ""]
    if sample_split is not None and "sample_split" in ind.columns:
        ind = ind[ind["sample_split"].astype(str) == sample_split]
    return ind


def summarize_rhos(rhos: pd.DataFrame) -> dict[str, Any]:
    """Median, quartiles, mean, share with rho > 0 and the per-gene values of a per-gene rho table."""
    v = rhos["rho"].to_numpy(float)
    if len(v) == 0:
        return {"n_genes": 0, "median": None, "q25": None, "q75": None, "mean": None, "frac_positive": None,
                "n_constant_pred": 0, "per_gene": {}}
    q25, med, q75 = np.percentile(v, [25, 50, 75])
    return {
        "n_genes": int(len(v)),
        "median": float(med),
        "q25": float(q25),
        "q75": float(q75),
        "mean": float(v.mean()),
        "frac_positive": float((v > 0).mean()),
        "n_constant_pred": int(rhos["constant_pred"].sum()),
        "per_gene": {str(k): float(r) for k, r in zip(rhos["gene_id"], v, strict=True)},
    }


GROUPS = {"seen": "train", "unseen": "test"}


def cross_individual(df: pd.DataFrame, min_samples: int = 5, sample_split: str | None = "test") -> dict[str, Any]:
    """Per-gene Spearman across held-out individuals, summarised for seen (train-split) and unseen (test) genes."""
    df = check_table(df)
    ind = individual_rows(df, sample_split)
    rhos = per_gene_spearman(ind, min_samples=min_samples)
    out: dict[str, Any] = {
        "min_samples": int(min_samples),
        "sample_split": sample_split,
        "n_samples": int(ind["sample"].nunique()),
    }
    for name, split in GROUPS.items():
        out[name] = summarize_rhos(rhos[rhos["split"] == split])
    return out


def by_distal_share(
    df: pd.DataFrame,
    distal_share: pd.Series,
    bins: Sequence[float] = DEFAULT_DISTAL_BINS,
    min_samples: int = 5,
    sample_split: str | None = "test",
) -> list[dict[str, Any]]:
    """Metrics per band of distal share (share of a gene's regulation from distal elements, a ``gene_id`` Series).

    Bands are ``[lo, hi)``, the last one closed. Per band: cross-gene Spearman/Pearson over test genes (no CI)
    and the median cross-individual Spearman of seen and unseen genes.
    """
    df = check_table(df)
    edges = np.asarray(bins, float)
    if len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise GtaInputError(f"distal-share bins must increase, got {list(bins)}")
    share = distal_share.astype(float)
    share.index = share.index.astype(str)
    g = gene_rows(df, "test")
    rhos = per_gene_spearman(individual_rows(df, sample_split), min_samples=min_samples)
    out = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        last = i == len(edges) - 2
        in_band = share[(share >= lo) & ((share <= hi) if last else (share < hi))].index
        gb = g[g.index.isin(in_band)]
        rb = rhos[rhos["gene_id"].isin(in_band)]
        seen, unseen = rb[rb["split"] == "train"]["rho"], rb[rb["split"] == "test"]["rho"]
        x, y = gb["y_pred"].to_numpy(float), gb["y_true"].to_numpy(float)
        out.append({
            "lo": float(lo),
            "hi": float(hi),
            "n_genes": int(len(gb)),
            "spearman": _none_if_nan(spearman(x, y)) if len(gb) >= 3 else None,
            "pearson": _none_if_nan(pearson(x, y)) if len(gb) >= 3 else None,
            "cross_individual_seen_median": float(seen.median()) if len(seen) else None,
            "cross_individual_unseen_median": float(unseen.median()) if len(unseen) else None,
            "n_genes_seen": int(len(seen)),
            "n_genes_unseen": int(len(unseen)),
        })
    return out


TRUTH_CEILING_FILE = "noise_ceiling.json"
TRUTH_SIGNAL_NAMES = ("signal.parquet", "signal.tsv", "expression_signal.parquet", "expression_signal.tsv")


def _read_signal(path: Path) -> pd.DataFrame:
    t = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, sep="\t", dtype={"sample": str})
    need = {"gene_id", "sample", "signal"}
    if not need <= set(t.columns):
        raise GtaInputError(f"truth signal table lacks columns {sorted(need - set(t.columns))}", path=path,
                            hint="expected gene_id, sample, signal (noise-free log expression)")
    return t


def noise_ceiling(
    observed: pd.DataFrame | None = None,
    truth: str | Path | pd.DataFrame | dict | None = None,
    min_samples: int = 5,
    sample_split: str | None = "test",
) -> dict[str, Any]:
    """How well a perfect model could score, given the measurement noise; from the simulator's truth if given.

    ``truth`` may be: a dict of ready numbers; a folder holding ``noise_ceiling.json`` (taken as is) or a table
    ``signal.parquet|tsv`` (``gene_id, sample, signal``: noise-free log expression, ``sample == ""`` for a
    gene's mean); or that table itself. With a table, the ceiling is the metric of the noise-free signal used as
    the prediction against the observed ``y_true`` of ``observed`` (a prediction table, any model's), on the same
    rows the models are scored on. Without truth: ``{"available": False}``.
    """
    if truth is None:
        return {"available": False, "source": None, "note": "no simulator truth: ceiling unknown for real data"}
    if isinstance(truth, dict):
        return {"available": True, "source": "given", **truth}
    if isinstance(truth, str | Path):
        p = Path(truth)
        if p.is_dir():
            if (p / TRUTH_CEILING_FILE).exists():
                return {"available": True, "source": str(p / TRUTH_CEILING_FILE),
                        **json.loads((p / TRUTH_CEILING_FILE).read_text())}
            hits = [p / n for n in TRUTH_SIGNAL_NAMES if (p / n).exists()]
            if not hits:
                return {"available": False, "source": str(p),
                        "note": f"truth folder has neither {TRUTH_CEILING_FILE} nor a signal table"}
            p = hits[0]
        signal, source = _read_signal(p), str(p)
    else:
        signal, source = truth, "table"
    if observed is None:
        raise ValueError("noise_ceiling from a signal table needs the observed prediction table")
    obs = check_table(observed)
    sig = signal.assign(sample=signal["sample"].fillna("").astype(str), gene_id=signal["gene_id"].astype(str))
    merged = obs.merge(sig[["gene_id", "sample", "signal"]], on=["gene_id", "sample"], how="inner")
    merged["y_pred"] = merged["signal"]
    cg = cross_gene(merged, n_boot=0)
    ci = cross_individual(merged, min_samples=min_samples, sample_split=sample_split)
    return {
        "available": True,
        "source": source,
        "cross_gene_spearman": cg["spearman"],
        "cross_gene_pearson": cg["pearson"],
        "cross_individual_seen_median": ci["seen"]["median"],
        "cross_individual_unseen_median": ci["unseen"]["median"],
    }
