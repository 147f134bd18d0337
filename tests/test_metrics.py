"""Metrics against scipy, against hand-computed tiny cases, and the bootstrap's behaviour."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gta.errors import GtaInputError
from gta.evaluate import metrics as M


def gene_table(y_pred, y_true, split="test", genes=None) -> pd.DataFrame:
    n = len(y_pred)
    genes = genes or [f"g{i}" for i in range(n)]
    return pd.DataFrame({"gene_id": genes, "sample": "", "haplotype": "", "split": split,
                         "y_true": np.asarray(y_true, float), "y_pred": np.asarray(y_pred, float)})


def ind_table(gene, split, y_pred, y_true, sample_split=None) -> pd.DataFrame:
    n = len(y_pred)
    d = pd.DataFrame({"gene_id": gene, "sample": [f"s{i}" for i in range(n)], "haplotype": "both", "split": split,
                      "y_true": np.asarray(y_true, float), "y_pred": np.asarray(y_pred, float)})
    d["sample_split"] = sample_split if sample_split is not None else "test"
    return d


def test_correlations_equal_scipy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=50)
    y = x + rng.normal(size=50)
    y[:5] = y[5]  # ties
    assert M.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
    assert M.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
    assert np.isnan(M.spearman([1, 1, 1], [1, 2, 3]))


def test_cross_gene_hand_computed_and_test_split_only():
    # ranks differ by one swap: rho = 1 - 6*2/(4*15) = 0.8; Pearson of (1,2,3,4) vs (1,3,2,4) = 4/5 = 0.8
    df = pd.concat([gene_table([1, 2, 3, 4], [1, 3, 2, 4]),
                    gene_table([1, 2, 3], [3, 2, 1], split="train", genes=["t0", "t1", "t2"])])
    out = M.cross_gene(df, n_boot=200)
    assert out["n_genes"] == 4
    assert out["spearman"] == pytest.approx(0.8)
    assert out["pearson"] == pytest.approx(0.8)
    lo, hi = out["spearman_ci"]
    assert lo <= 0.8 <= hi


def test_cross_gene_without_gene_rows_gives_none():
    out = M.cross_gene(ind_table("a", "test", [1, 2, 3, 4, 5], [1, 2, 3, 4, 5]))
    assert out["n_genes"] == 0 and out["spearman"] is None


def test_bootstrap_matches_scipy_loop_contains_estimate_and_narrows():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    y = x + rng.normal(size=40)
    ci = M.bootstrap_ci(x, y, n_boot=300, seed=3)
    idx = np.random.default_rng(3).integers(0, 40, size=(300, 40))
    loop = [stats.spearmanr(x[i], y[i])[0] for i in idx]
    assert ci["spearman"] == pytest.approx(list(np.percentile(loop, [2.5, 97.5])), abs=1e-10)
    assert ci["spearman"][0] < M.spearman(x, y) < ci["spearman"][1]
    assert ci["pearson"][0] < M.pearson(x, y) < ci["pearson"][1]

    def width(n):
        xs = rng.normal(size=n)
        ys = xs + rng.normal(size=n)
        lo, hi = M.bootstrap_ci(xs, ys, n_boot=300)["spearman"]
        return hi - lo

    assert width(1000) < width(30) / 3


def test_cross_individual_hand_cases():
    up = [1, 2, 3, 4, 5, 6]
    df = pd.concat([
        ind_table("seen_good", "train", up, up),  # rho = 1
        ind_table("seen_const", "train", [2] * 6, up),  # constant prediction -> 0
        ind_table("unseen_bad", "test", up[::-1], up),  # rho = -1
        ind_table("unseen_ok", "test", [1, 3, 2, 4, 5, 6], up),  # one swap: 1 - 6*2/(6*35)
        ind_table("flat_truth", "test", up, [5] * 6),  # no variation: excluded
        ind_table("too_few", "test", up[:3], up[:3]),  # fewer than min_samples: excluded
        ind_table("val_gene", "val", up, up),  # neither seen nor unseen
    ])
    out = M.cross_individual(df, min_samples=5)
    seen, unseen = out["seen"], out["unseen"]
    assert seen["n_genes"] == 2 and seen["per_gene"] == {"seen_const": 0.0, "seen_good": 1.0}
    assert seen["median"] == pytest.approx(0.5) and seen["frac_positive"] == 0.5 and seen["n_constant_pred"] == 1
    r = 1 - 6 * 2 / (6 * 35)
    assert unseen["per_gene"]["unseen_ok"] == pytest.approx(r)
    assert unseen["median"] == pytest.approx((r - 1) / 2)
    assert unseen["frac_positive"] == 0.5 and unseen["n_genes"] == 2
    assert unseen["per_gene"]["unseen_bad"] == pytest.approx(stats.spearmanr(up[::-1], up)[0])


def test_cross_individual_uses_held_out_individuals_only():
    rng = np.random.default_rng(0)
    y = rng.normal(size=20)
    pred = np.r_[y[:10], -y[10:]]  # right on the training people, reversed on the held-out ones
    df = ind_table("g", "train", pred, y, sample_split=["train"] * 10 + ["test"] * 10)
    assert M.cross_individual(df)["seen"]["median"] == pytest.approx(-1.0)
    assert M.cross_individual(df, sample_split=None)["seen"]["median"] < 0.5


def test_by_distal_share_bands():
    rng = np.random.default_rng(2)
    n = 60
    yt = rng.normal(size=n)
    yp = yt + rng.normal(size=n)
    df = gene_table(yp, yt)
    share = pd.Series(np.r_[np.zeros(20), np.full(20, 0.5), np.ones(20)], index=df["gene_id"])
    share.iloc[0] = 0.2  # lower edge belongs to the band that starts there
    bands = M.by_distal_share(df, share)
    assert [b["n_genes"] for b in bands] == [19, 1, 20, 20]
    sel = share[(share >= 0.6)].index
    sub = df[df["gene_id"].isin(sel)]
    assert bands[3]["spearman"] == pytest.approx(stats.spearmanr(sub["y_pred"], sub["y_true"])[0])
    assert bands[1]["spearman"] is None  # one gene: undefined
    with pytest.raises(GtaInputError):
        M.by_distal_share(df, share, bins=(0, 0.5, 0.4))


def test_noise_ceiling_from_signal_table_and_folder(tmp_path):
    rng = np.random.default_rng(0)
    signal = rng.normal(size=30)
    obs = signal + rng.normal(scale=0.5, size=30)
    df = gene_table(rng.normal(size=30), obs)
    sig = pd.DataFrame({"gene_id": df["gene_id"], "sample": "", "signal": signal})
    out = M.noise_ceiling(df, sig)
    assert out["available"] and out["cross_gene_spearman"] == pytest.approx(stats.spearmanr(signal, obs)[0])
    sig.to_csv(tmp_path / "signal.tsv", sep="\t", index=False)
    assert M.noise_ceiling(df, tmp_path)["cross_gene_pearson"] == pytest.approx(stats.pearsonr(signal, obs)[0])
    (tmp_path / "noise_ceiling.json").write_text(json.dumps({"cross_gene_spearman": 0.9}))
    assert M.noise_ceiling(df, tmp_path)["cross_gene_spearman"] == 0.9
    assert M.noise_ceiling(df, None)["available"] is False


def test_bad_table_is_a_user_error():
    with pytest.raises(GtaInputError, match="y_pred"):
        M.cross_gene(pd.DataFrame({"gene_id": ["a"], "sample": [""], "haplotype": [""], "split": ["test"],
                                   "y_true": [1.0]}))
    df = gene_table([1, 2, 3], [1, 2, 3], split="holdout")
    with pytest.raises(GtaInputError, match="split"):
        M.cross_gene(df)


def test_paired_spearman_difference_equals_a_resampling_loop():
    """The vectorised paired bootstrap equals scoring both models on each resample of genes with scipy; a model
    compared with itself differs by exactly 0; a clearly better model's interval excludes 0."""
    from scipy.stats import spearmanr

    from gta.evaluate.metrics import paired_spearman_difference

    rng = np.random.default_rng(3)
    y = rng.normal(size=80)
    a = y + rng.normal(scale=0.5, size=80)
    b = y + rng.normal(scale=2.0, size=80)
    got = paired_spearman_difference(y, a, b, n_boot=200, seed=5)
    idx = np.random.default_rng(5).integers(0, 80, size=(200, 80))
    loop = [spearmanr(a[i], y[i])[0] - spearmanr(b[i], y[i])[0] for i in idx]
    np.testing.assert_allclose(got["ci"], np.percentile(loop, [2.5, 97.5]), rtol=1e-10)
    assert got["difference"] == pytest.approx(spearmanr(a, y)[0] - spearmanr(b, y)[0])
    assert got["ci"][0] > 0 and got["n_genes"] == 80
    same = paired_spearman_difference(y, a, a, n_boot=50)
    assert same["difference"] == 0 and same["ci"] == [0.0, 0.0]


def test_paired_call_needs_the_interval_to_exclude_zero_and_tally_counts_in_a_fixed_order():
    from gta.evaluate.metrics import paired_call, tally_calls

    assert paired_call([0.01, 0.09]) == "better"
    assert paired_call([-0.09, -0.01]) == "worse"
    assert paired_call([-0.01, 0.09]) == "no difference"
    assert paired_call([0.0, 0.09]) == "no difference"  # touching 0 is not excluding it
    assert tally_calls(["no difference", "better", "no difference"]) == "1 better, 2 no difference"
    assert tally_calls([]) == ""
