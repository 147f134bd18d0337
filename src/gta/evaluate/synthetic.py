"""Synthetic prediction tables with a planted signal: for tests, the report screenshot and docs.

Nothing here is a result: it makes tables of the right shape whose metrics are known to be ordered
(a good model beats a weak one, a promoter-only model fades with distal share).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gta.evaluate.metrics import noise_ceiling
from gta.evaluate.results import (
    DatasetInfo,
    MetricSettings,
    Results,
    record_model,
    record_not_run,
    write_gene_info,
    write_results,
)


def synthetic_truth(n_genes: int = 120, n_samples: int = 40, seed: int = 0) -> dict:
    """Genes with splits and distal shares; noise-free signal and noisy observations, gene-level and per person."""
    rng = np.random.default_rng(seed)
    genes = [f"G{i:04d}" for i in range(n_genes)]
    split = rng.choice(["train", "val", "test"], size=n_genes, p=[0.6, 0.15, 0.25])
    samples = [f"S{j:03d}" for j in range(n_samples)]
    sample_split = np.where(np.arange(n_samples) < int(0.7 * n_samples), "train", "test")
    distal = rng.uniform(0, 1, n_genes)
    promoter, enhancer = rng.normal(0, 1, n_genes), rng.normal(0, 1, n_genes)
    mean_signal = (1 - distal) * promoter + distal * enhancer
    geno = rng.normal(0, 1, (n_genes, n_samples))  # per-person genetic effect
    ind_signal = mean_signal[:, None] + 0.5 * geno
    ind_obs = ind_signal + rng.normal(0, 0.3, ind_signal.shape)
    mean_obs = mean_signal + rng.normal(0, 0.3, n_genes)
    return dict(genes=genes, split=split, samples=samples, sample_split=sample_split, distal=distal,
                promoter=promoter, enhancer=enhancer, mean_signal=mean_signal, mean_obs=mean_obs, geno=geno,
                ind_signal=ind_signal, ind_obs=ind_obs, rng=rng)


def prediction_table(t: dict, gene_pred: np.ndarray | None, ind_pred: np.ndarray | None) -> pd.DataFrame:
    """Prediction table from gene-level predictions [genes] and individual predictions [genes, samples]."""
    parts = []
    if gene_pred is not None:
        parts.append(pd.DataFrame({"gene_id": t["genes"], "sample": "", "haplotype": "", "split": t["split"],
                                   "y_true": t["mean_obs"], "y_pred": gene_pred, "sample_split": ""}))
    if ind_pred is not None:
        G, S = ind_pred.shape
        parts.append(pd.DataFrame({
            "gene_id": np.repeat(t["genes"], S), "sample": np.tile(t["samples"], G), "haplotype": "both",
            "split": np.repeat(t["split"], S), "y_true": t["ind_obs"].ravel(), "y_pred": ind_pred.ravel(),
            "sample_split": np.tile(t["sample_split"], G)}))
    return pd.concat(parts, ignore_index=True)


def write_synthetic_benchmark(folder: str | Path, n_genes: int = 120, n_samples: int = 40, seed: int = 0,
                              n_boot: int = 200) -> tuple[Path, Path]:
    """Write ``folder/results.json`` and ``folder/predictions/`` for five synthetic models; return both paths."""
    folder = Path(folder)
    pred_dir = folder / "predictions"
    pred_dir.mkdir(parents=True, exist_ok=True)
    t = synthetic_truth(n_genes, n_samples, seed)
    rng, G, S = t["rng"], n_genes, n_samples
    write_gene_info(pred_dir, pd.Series(t["distal"], index=t["genes"]))
    res = Results(
        dataset=DatasetInfo(name="synthetic-demo", description="synthetic predictions with a planted signal",
                            n_genes=G, n_samples=S, simulated=True,
                            genes_by_split={k: int((t["split"] == k).sum()) for k in ("train", "val", "test")},
                            samples_by_split={k: int((t["sample_split"] == k).sum()) for k in ("train", "test")}),
        settings=MetricSettings(n_boot=n_boot, seed=seed),
    )

    def noisy(x: np.ndarray, sd: float) -> np.ndarray:
        return x + rng.normal(0, sd, x.shape)

    good_gene = noisy(t["mean_signal"], 0.5)
    good_ind = good_gene[:, None] + 0.5 * noisy(t["geno"], 0.8)
    prom_gene = noisy(t["promoter"] * (1 - t["distal"]), 0.4)
    prom_ind = prom_gene[:, None] + 0.5 * noisy(t["geno"] * (1 - t["distal"])[:, None], 0.8)
    tables = {
        "GTA": ("gta", prediction_table(t, good_gene, good_ind), "full model"),
        "GTA, shuffled prompt": ("ablation", prediction_table(t, noisy(good_gene, 0.4),
                                                               good_ind + rng.normal(0, 0.4, (G, 1))), "ablation"),
        "Ridge, central bins": ("baseline", prediction_table(t, prom_gene, prom_ind), "promoter only"),
        "Annotation only": ("baseline", prediction_table(t, noisy(0.3 * t["mean_signal"], 1.0),
                                                         np.repeat(noisy(0.3 * t["mean_signal"], 1.0)[:, None], S, 1)),
                            "MiniLM text embedding + ridge"),
        "ElasticNet eQTL": ("baseline", prediction_table(t, None, noisy(0.5 * t["geno"], 0.5)), "per-gene"),
    }
    for i, (name, (kind, df, desc)) in enumerate(tables.items()):
        record_model(res, pred_dir, name, df, kind=kind, description=desc, wall_time_s=12.5 * (i + 1),
                     peak_memory_mb=400.0 + 50 * i, notes=["synthetic"])
    record_not_run(res, "Enformer-arch", "synthetic example of a skipped model", kind="baseline")
    signal = prediction_table(t, t["mean_signal"], t["ind_signal"]).rename(columns={"y_pred": "signal"})
    res.noise_ceiling = noise_ceiling(tables["GTA"][1], signal[["gene_id", "sample", "signal"]])
    out = write_results(res, folder / "results.json")
    return out, pred_dir
