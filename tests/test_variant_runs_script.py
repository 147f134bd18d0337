"""scripts/variant_runs.py's scoring: per-kind Pearson over causal variants and the gene-bootstrap paired
difference (the numbers of learning.md entry 42)."""
from __future__ import annotations

import numpy as np
import pytest

from fixtures import load_script


@pytest.fixture(scope="module")
def vr():
    return load_script("scripts/variant_runs.py")


def _alts(n_genes: int = 40, per_gene: int = 30, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = n_genes * per_gene
    effect = np.where(rng.random(n) < 0.2, rng.normal(size=n), 0.0).astype(np.float32)
    kind = np.where(effect != 0, rng.choice(list("PECR"), size=n), "-")
    return {"effect": effect, "kind": kind, "gene_id": np.repeat([f"G{i}" for i in range(n_genes)], per_gene)}


def test_scores_read_each_kind_of_causal_variant(vr):
    alts = _alts()
    truth = alts["effect"]
    promoter = alts["kind"] == "P"
    pred = np.where(promoter, truth, 0.0)  # only the promoter variants predicted, exactly
    s = vr.scores(pred, alts)
    assert s["promoter_pearson"] == pytest.approx(1.0)
    assert np.isnan(s["enhancer_pearson"])  # predictions all 0: no correlation to speak of
    assert 0 < s["pearson"] < 1 and s["sign"] == pytest.approx(promoter.sum() / (truth != 0).sum())


def test_paired_difference_has_a_gene_bootstrap_interval(vr):
    alts = _alts()
    rng = np.random.default_rng(1)
    truth = alts["effect"]
    everything = np.ones(len(truth), bool)
    good = truth + rng.normal(scale=0.3, size=len(truth))
    poor = truth + rng.normal(scale=1.5, size=len(truth))
    diff, lo, hi = vr.paired(good, poor, alts, everything, n_boot=200)
    assert diff > 0 and 0 < lo <= diff <= hi
    same, lo, hi = vr.paired(good, good, alts, everything, n_boot=50)
    assert same == 0 and lo == hi == 0
