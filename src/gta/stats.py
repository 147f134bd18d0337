"""Statistics shared by the simulator, training and evaluation (the common layer, so ``gta.train`` never imports from
``gta.evaluate``): correlations (scipy's ``spearmanr`` / ``pearsonr``, NaN where undefined) and the combination of
an individual's two haplotype values."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats


def _corr(fn, x: np.ndarray, y: np.ndarray) -> float:
    """scipy correlation, NaN when undefined (fewer than 2 points or a constant input)."""
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(fn(x, y)[0])


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    return _corr(stats.spearmanr, np.asarray(x, float), np.asarray(y, float))


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    return _corr(stats.pearsonr, np.asarray(x, float), np.asarray(y, float))


def per_gene_spearman(ind: pd.DataFrame, min_samples: int = 5) -> pd.DataFrame:
    """Per gene: Spearman across individuals of predicted vs observed.

    Genes with fewer than ``min_samples`` individuals or no variation in the observed values are left out.
    A gene whose *prediction* is constant across individuals gets rho = 0 (it carries no information about
    who expresses more) and is counted in ``constant_pred``.
    """
    rows = []
    for gene, g in ind.groupby("gene_id", sort=True):
        yt, yp = g["y_true"].to_numpy(float), g["y_pred"].to_numpy(float)
        if len(g) < min_samples or np.ptp(yt) == 0:
            continue
        const = bool(np.ptp(yp) == 0)
        rho = 0.0 if const else float(stats.spearmanr(yp, yt)[0])
        rows.append((gene, str(g["split"].iloc[0]), rho, const, len(g)))
    return pd.DataFrame(rows, columns=["gene_id", "split", "rho", "constant_pred", "n_samples"])


def combine_haplotypes(h1: Any, h2: Any, how: str = "logmeanexp") -> Any:
    """An individual's value from its two haplotype values (raw log-scale units): ``log((e^h1 + e^h2) / 2)``, or the
    plain mean with ``how="mean"``. Torch tensors stay tensors (and keep their dtype); numpy arrays and scalars go
    through ``np.logaddexp``."""
    if how == "mean":
        return (h1 + h2) / 2
    if hasattr(h1, "logaddexp"):  # a torch.Tensor
        return h1.logaddexp(h2) - math.log(2.0)
    return np.logaddexp(h1, h2) - np.log(2.0)
