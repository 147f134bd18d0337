"""How well importance maps and variant effects recover the simulator's planted truth.

**Importance** (``truth/elements.tsv``): positives are the bins overlapping an ``enhancer`` or ``promoter`` element
with a non-zero effect (bin range ``[bin_start, bin_end)``, clipped to the output bins); every other bin is a
negative. Scores are ``|importance|`` (a repressing element matters as much as an activating one). Per method:

* ``auprc``: average precision (scikit-learn ``average_precision_score``) over the bins of all genes pooled, each
  gene's scores divided by its maximum so genes are comparable; ``auprc_gene_mean``: the mean of per-gene values
  over genes with at least one positive bin;
* ``distal_auprc`` / ``distal_auprc_gene_mean``: the same with only elements more than ``distal_bp`` from the TSS
  as positives; bins of the other positive elements are left out (neither positive nor negative).

Reference points in the same dict: ``random`` (the positive rate: what random scores get on average) and
``distance_prior`` (scores ``1 / (1 + |d| / 25 kb)`` from each bin's distance to the TSS).

**Variant effects** (``truth/variants.tsv``): predicted vs true effect per (variant, gene), overall and by
distance to the TSS; sign agreement among variants with a true effect.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import average_precision_score

from gta.errors import GtaInputError
from gta.geometry import Geometry

POSITIVE_KINDS = ("enhancer", "promoter")
DISTAL_BP = 20_000
DISTANCE_BINS = (2_000, 20_000)


def read_truth_table(truth: str | Path, name: str) -> pd.DataFrame:
    """``truth/NAME`` (or the file itself) as a DataFrame; a GtaInputError naming the path when missing."""
    path = Path(truth)
    if path.is_dir():
        path = path / name
    if not path.exists():
        raise GtaInputError(f"no simulator truth table {name}", path=path,
                            hint="--evaluate needs simulated data (gta simulate writes truth/)")
    return pd.read_csv(path, sep="\t", dtype={"gene_id": str, "chrom": str})


def element_labels(elements: pd.DataFrame, n_bins: int, distal_bp: int = DISTAL_BP) -> tuple[np.ndarray, np.ndarray]:
    """For one gene's rows of elements.tsv: (positive [n] bool, distal positive [n] bool)."""
    pos = np.zeros(n_bins, dtype=bool)
    distal = np.zeros(n_bins, dtype=bool)
    if len(elements):
        hit = elements["kind"].isin(POSITIVE_KINDS) & (elements["effect"].astype(float) != 0)
        for row in elements[hit].itertuples(index=False):
            a, b = max(int(row.bin_start), 0), min(int(row.bin_end), n_bins)
            if b > a:
                pos[a:b] = True
                if abs(float(row.distance)) > distal_bp:
                    distal[a:b] = True
    return pos, distal


def auprc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Average precision of ``scores`` for boolean ``labels``; None without a positive (or a negative)."""
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        return None
    return float(average_precision_score(labels, np.asarray(scores, dtype=np.float64)))


def _normalised(scores: np.ndarray) -> np.ndarray:
    s = np.abs(np.nan_to_num(np.asarray(scores, dtype=np.float64)))
    top = s.max() if s.size else 0.0
    return s / top if top > 0 else s


def _method_metrics(per_gene: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """per_gene: (scores, positive, distal positive, distal evaluation mask)."""
    out: dict[str, Any] = {}
    for key, lab_i, mask_i in (("", 1, None), ("distal_", 2, 3)):
        pooled_s, pooled_y, each = [], [], []
        for item in per_gene:
            s, y = _normalised(item[0]), item[lab_i]
            if mask_i is not None:
                s, y = s[item[mask_i]], y[item[mask_i]]
            pooled_s.append(s)
            pooled_y.append(y)
            v = auprc(y, s)
            if v is not None:
                each.append(v)
        y_all = np.concatenate(pooled_y) if pooled_y else np.zeros(0, bool)
        out[f"{key}auprc"] = auprc(y_all, np.concatenate(pooled_s)) if pooled_s else None
        out[f"{key}auprc_gene_mean"] = float(np.mean(each)) if each else None
        out[f"{key}n_genes"] = len(each)
        out[f"{key}n_positive_bins"] = int(y_all.sum())
        out[f"{key}positive_rate"] = float(y_all.mean()) if y_all.size else None
    return out


def importance_metrics(importances: Mapping[str, Mapping[str, np.ndarray]], elements: pd.DataFrame,
                       geometry: Geometry | None = None, distal_bp: int = DISTAL_BP) -> dict[str, Any]:
    """AUPRC of every method for the true elements' bins (see the module docstring).

    ``importances[gene_id][method]`` is a per-bin array; ``elements`` is truth/elements.tsv. With ``geometry``, a
    ``distance_prior`` reference is added."""
    by_gene = {g: df for g, df in elements.groupby("gene_id")}
    methods = list(dict.fromkeys(m for per in importances.values() for m in per))
    labelled: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for gene_id, per in importances.items():
        n = len(next(iter(per.values())))
        pos, distal = element_labels(by_gene.get(gene_id, elements.iloc[:0]), n, distal_bp)
        labelled[gene_id] = (pos, distal, distal | ~pos)
    result: dict[str, Any] = {"distal_bp": distal_bp, "n_genes": len(importances), "methods": {}}
    for m in methods:
        items = [(per[m], *labelled[g]) for g, per in importances.items() if m in per]
        result["methods"][m] = _method_metrics(items)
    refs: dict[str, Any] = {}
    if labelled:
        rate = _method_metrics([(np.ones(len(v[0])), *v) for v in labelled.values()])
        refs["random"] = {"auprc": rate["positive_rate"], "distal_auprc": rate["distal_positive_rate"]}
    if geometry is not None and labelled:
        items = []
        for v in labelled.values():
            d = np.array([geometry.bin_distance_to_tss(b) for b in range(len(v[0]))], dtype=np.float64)
            items.append((1.0 / (1.0 + np.abs(d) / 25_000.0), *v))
        refs["distance_prior"] = _method_metrics(items)
    result["reference"] = refs
    return result


# ---- variant effects ---------------------------------------------------------------------------------------------
def _chrom_key(c: str) -> str:
    c = str(c)
    return c[3:] if c.lower().startswith("chr") else c


def _corr(a: np.ndarray, b: np.ndarray) -> tuple[float | None, float | None]:
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return None, None
    return float(stats.pearsonr(a, b)[0]), float(stats.spearmanr(a, b)[0])


def _effect_block(df: pd.DataFrame, min_true: float) -> dict[str, Any]:
    pred, true = df["effect_pred"].to_numpy(float), df["effect_true"].to_numpy(float)
    pearson, spearman = _corr(pred, true)
    causal = np.abs(true) > min_true
    cp, cs = _corr(pred[causal], true[causal])
    sign = float(np.mean(np.sign(pred[causal]) == np.sign(true[causal]))) if causal.any() else None
    out = {"n": int(len(df)), "n_causal": int(causal.sum()), "pearson": pearson, "spearman": spearman,
           "causal_pearson": cp, "causal_spearman": cs, "sign_agreement": sign}
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}


def variant_effect_metrics(effects_tsv: str | Path | pd.DataFrame, truth_variants_tsv: str | Path | pd.DataFrame,
                           distance_bins: Sequence[int] = DISTANCE_BINS, min_true_effect: float = 1e-6
                           ) -> dict[str, Any]:
    """Predicted (``gta score-variants`` table) vs true (truth/variants.tsv) effects, matched on chrom (``chr``
    prefix ignored), position, REF, ALT and gene: correlation overall and by |distance to TSS| (``<2 kb``,
    ``2-20 kb``, ``>20 kb`` by default), and the sign agreement of variants whose |true effect| exceeds
    ``min_true_effect``."""
    pred = effects_tsv if isinstance(effects_tsv, pd.DataFrame) else pd.read_csv(effects_tsv, sep="\t",
                                                                                 dtype={"gene_id": str})
    truth = (truth_variants_tsv if isinstance(truth_variants_tsv, pd.DataFrame)
             else read_truth_table(truth_variants_tsv, "variants.tsv"))
    parts = pred["variant"].astype(str).str.rsplit(":", n=3, expand=True)
    pred = pred.assign(_c=parts[0].map(_chrom_key), _p=parts[1].astype(int), _r=parts[2], _a=parts[3])
    truth = truth.assign(_c=truth["chrom"].map(_chrom_key), _p=truth["pos"].astype(int), _r=truth["ref"],
                         _a=truth["alt"])
    keys = ["_c", "_p", "_r", "_a", "gene_id"]
    merged = pred[[*keys, "effect", "distance_to_tss"]].merge(
        truth[[*keys, "effect"]].rename(columns={"effect": "effect_true"}), on=keys, how="inner")
    merged = merged.rename(columns={"effect": "effect_pred"})
    result: dict[str, Any] = {"n_predicted": int(len(pred)), "n_truth": int(len(truth)), "n_matched": int(len(merged)),
                              "min_true_effect": min_true_effect, "overall": _effect_block(merged, min_true_effect),
                              "by_distance": {}}
    edges = [0, *distance_bins, math.inf]
    dist = merged["distance_to_tss"].abs()
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        label = f"<{hi // 1000:g}kb" if lo == 0 else (f">{lo // 1000:g}kb" if hi == math.inf
                                                        else f"{lo // 1000:g}-{hi // 1000:g}kb")
        result["by_distance"][label] = _effect_block(merged[(dist >= lo) & (dist < hi)], min_true_effect)
    return result
