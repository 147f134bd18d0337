"""The Enformer readout baseline: a CAGE track summed at the TSS, from an Enformer store or from weights."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ddp_script import make_toy
from gta.evaluate.baselines import EnformerReadout
from gta.evaluate.benchmark import BenchmarkConfig, benchmark
from gta.features.store import FeatureStore
from gta.io.dataset import open_dataset


def test_readout_sums_the_tss_bins_and_calibrates_linearly():
    rng = np.random.default_rng(0)
    X = rng.gamma(2.0, size=(40, 9, 3)).astype(np.float32)
    y = 2.0 * np.log1p(X[:, 3:6, 1].sum(1)) + 1.0
    model = EnformerReadout(track=1, tss_bin=4).fit(X, y)
    assert model.log
    np.testing.assert_allclose(model.predict(X), y, rtol=1e-5)
    X[0, 4, 1] = -1.0  # a track with negative values is not a count: summed as is
    model = EnformerReadout(track=1, tss_bin=4).fit(X, X[:, 3:6, 1].sum(1))
    assert not model.log
    np.testing.assert_allclose(model.predict(X), X[:, 3:6, 1].sum(1), rtol=1e-4, atol=1e-5)


def _results(out) -> dict:
    return {m["name"]: m for m in json.loads((out / "results.json").read_text())["models"]}


def test_benchmark_reads_the_cage_column_of_an_enformer_store(tmp_path):
    names = ["emb0", "emb1", "human_track5110", "emb3"]
    manifest, store_path = make_toy(tmp_path / "d", store_attrs={"encoder": "enformer",
                                                                  "encoder_config": {"cage_track": 5110}},
                                    feature_names=names)
    out = tmp_path / "bench"
    benchmark(manifest, store_path, out, BenchmarkConfig(models=["Enformer readout"], n_boot=20), progress=False)
    m = _results(out)["Enformer readout"]
    assert m["status"] == "ok", m
    df = pd.read_parquet(out / "predictions" / m["predictions"])
    genes = df[df["sample"] == ""].set_index("gene_id")
    store, dataset = FeatureStore.open(store_path), open_dataset(manifest)
    ids = [g.gene_id for g in dataset.genes]
    X = np.stack([store.read_ref(g) for g in ids])
    train = [i for i, g in enumerate(ids) if genes.loc[g, "split"] in ("train", "val")]
    want = EnformerReadout(2, store.geometry.tss_bin).fit(X[train], genes.loc[ids, "y_true"].to_numpy()[train])
    np.testing.assert_allclose(genes.loc[ids, "y_pred"], want.predict(X), rtol=1e-5, atol=1e-6)
    assert (df["sample"] != "").sum() > 0  # personal windows from the store: cross-individual rows too


def test_benchmark_runs_pretrained_weights_on_the_reference_windows(tmp_path):
    torch = pytest.importorskip("torch")
    from enformer_pytorch import Enformer

    from gta.encoders import get_encoder, save_enformer

    geometry = {"input_len": 4096, "bin_size": 128, "output_bins": 32}
    manifest, store_path = make_toy(tmp_path / "d", geometry=geometry, haplotypes=False)
    torch.manual_seed(0)
    model = Enformer.from_hparams(dim=48, depth=1, heads=2, dim_divisible_by=8, target_length=32,
                                  output_heads={"human": 5}).eval()
    weights = save_enformer(model, tmp_path / "enformer")
    out = tmp_path / "bench"
    cfg = BenchmarkConfig(models=["Enformer readout"], n_boot=20, enformer_weights=str(weights), enformer_track=3)
    benchmark(manifest, store_path, out, cfg, progress=False)
    m = _results(out)["Enformer readout"]
    assert m["status"] == "ok", m
    df = pd.read_parquet(out / "predictions" / m["predictions"]).set_index("gene_id")
    dataset = open_dataset(manifest)
    enc = get_encoder("enformer", geometry=dataset.manifest.geometry, weights=weights, cage_track=3,
                      embeddings=False)  # the same (default) precision as the benchmark
    direct = [enc.encode([dataset.genome.gene_window(g, dataset.manifest.geometry)])[0, 15:18, 0].sum()
              for g in dataset.genes]
    got = df.loc[[g.gene_id for g in dataset.genes], "y_pred"]
    assert abs(stats.spearmanr(got, direct)[0]) > 0.99


def test_without_enformer_the_readout_is_reported_as_not_run(tmp_path):
    manifest, store_path = make_toy(tmp_path / "d", haplotypes=False)
    out = tmp_path / "bench"
    benchmark(manifest, store_path, out, BenchmarkConfig(models=["Enformer readout"], n_boot=20), progress=False)
    m = _results(out)["Enformer readout"]
    assert m["status"] == "not run" and "--cage-track" in m["reason"]
