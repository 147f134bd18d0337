"""gta.interpret importance: attention maps, gradient x input, occlusion, tracks on both strands, AUPRC, and the
`gta interpret` pipeline on a tiny trained run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyBigWig
import pytest
import torch
from sklearn.metrics import average_precision_score
from typer.testing import CliRunner

from ddp_script import make_toy, toy_config
from gta.geometry import Geometry
from gta.interpret.evaluate import element_labels, importance_metrics
from gta.interpret.importance import (
    attention_importance,
    attention_maps,
    grad_x_input,
    gradxinput_importance,
    occlusion_importance,
    rollout,
    windows_to_bins,
)
from gta.interpret.tracks import importance_track, write_bedgraph, write_bigwig
from gta.io.types import Gene
from gta.model.gta import GTAConfig, build_model

N_BINS, D_FEAT, PATCH = 32, 3, 4


def _model(llm, **kw):
    torch.manual_seed(0)
    cfg = GTAConfig(llm="tiny-random", llm_layers=2, patch_len=PATCH, patch_stride=PATCH, d_model=16, n_prototypes=32,
                    prototype_vocab=None, n_heads=4, head_hidden=16, dropout=0.0, **kw)
    return build_model(cfg, D_FEAT, N_BINS, llm=llm).eval()


@pytest.fixture(scope="module")
def model(tiny_llm):
    m = _model(tiny_llm)
    m.set_feature_norm(torch.tensor([0.5, -1.0, 2.0]), torch.tensor([2.0, 0.5, 1.0]))
    return m


PROMPTS = ["gene ALPHA: a kinase expressed in B cells", "gene BETA"]  # different lengths: left padding in play


def _x(seed: int = 0, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, N_BINS, D_FEAT, generator=torch.Generator().manual_seed(seed))


# ---- attention -----------------------------------------------------------------------------------------------------
def test_attention_maps_have_the_right_shapes_and_sum_to_one_per_query(model, tiny_llm):
    maps = attention_maps(model, _x(), PROMPTS)
    n_patch = model.n_tokens  # the patches and the promoter token
    assert n_patch == N_BINS // PATCH + 1
    assert len(maps["llm"]) == tiny_llm.n_layers
    longest = max(len(tiny_llm.tokenize(p)) for p in PROMPTS)
    for a in maps["llm"]:
        assert a.shape == (2, tiny_llm.config.num_attention_heads, n_patch, longest + n_patch)
        torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[:-1]))
        assert (a[:, :, :, longest:].triu(1) == 0).all()  # causal: no token attends to a later one
    assert maps["alignment"].shape == (2, 4, n_patch, 32)
    torch.testing.assert_close(maps["alignment"].sum(-1), torch.ones(2, 4, n_patch))
    torch.testing.assert_close(maps["pool"].sum(-1), torch.ones(2))
    # the capture left the model as it was: same prediction, SDPA attention back on
    torch.testing.assert_close(maps["prediction"], model(_x(), PROMPTS).detach())
    assert tiny_llm.hf.config._attn_implementation != "eager"


def test_attention_importance_is_a_share_of_the_readout(tiny_llm):
    model = _model(tiny_llm, promoter_bins=0)  # patches only: each bin is read by one token
    imp = attention_importance(model, _x(), PROMPTS)
    assert imp.shape == (2, N_BINS) and (imp >= 0).all()
    per_patch = imp[:, ::PATCH]  # patches do not overlap: each bin carries its patch's score
    assert np.allclose(imp, np.repeat(per_patch, PATCH, axis=1))
    assert (per_patch.sum(1) <= 1 + 1e-6).all() and (per_patch.sum(1) > 0).all()
    pool = attention_importance(model, _x(), PROMPTS, mode="pool")[:, ::PATCH]
    np.testing.assert_allclose(pool.sum(1), 1.0, rtol=1e-5)  # pooling weights alone: a distribution
    promoter = _model(tiny_llm)  # token 4 reads bins 12-20, the patches beside the TSS (tokens 3 and 5) too
    tokens = attention_maps(promoter, _x(), PROMPTS)["pool"].numpy()
    bins = attention_importance(promoter, _x(), PROMPTS, mode="pool")
    np.testing.assert_allclose(bins[:, 12], (tokens[:, 3] + tokens[:, 4]) / 2, rtol=1e-5)  # mean of its tokens
    np.testing.assert_allclose(bins[:, 8], tokens[:, 2], rtol=1e-5)


def test_attention_importance_is_the_same_without_the_prefix_cache(tiny_llm):
    cached, uncached = _model(tiny_llm), _model(tiny_llm, prefix_cache=False)
    uncached.load_state_dict(cached.state_dict())
    a = attention_importance(cached, _x(1), PROMPTS)
    b = attention_importance(uncached, _x(1), PROMPTS)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_rollout_by_hand():
    pool = torch.tensor([[0.25, 0.75]])
    a1 = torch.tensor([[[1.0, 0.0], [0.4, 0.6]]])
    a2 = torch.tensor([[[1.0, 0.0], [0.2, 0.3]]])  # rows need not sum to 1: the rest went to the prompt
    half = lambda a: 0.5 * a + 0.5 * torch.eye(2)  # noqa: E731
    expected = pool @ (half(a2) @ half(a1))[0]
    torch.testing.assert_close(rollout([a1, a2], pool), expected)
    torch.testing.assert_close(rollout([a1, a2], pool, "last"), pool @ a2[0])
    torch.testing.assert_close(rollout([a1, a2], pool, "pool"), pool)


def test_windows_to_bins_averages_overlapping_windows():
    out = windows_to_bins(np.array([[1.0, 3.0]]), [(0, 3), (2, 4)], 5)
    np.testing.assert_allclose(out, [[1.0, 1.0, 2.0, 3.0, 0.0]])


# ---- gradient x input ----------------------------------------------------------------------------------------------
def test_grad_x_input_sums_to_the_change_from_the_baseline_for_a_linear_model():
    w = torch.randn(N_BINS, D_FEAT, generator=torch.Generator().manual_seed(3))

    def f(x):
        return (x * w).sum(dim=(1, 2)) + 0.7

    x = _x(2)
    gxi = grad_x_input(f, x)
    torch.testing.assert_close(gxi.sum(dim=(1, 2)), f(x) - f(torch.zeros_like(x)))
    base = torch.full_like(x, 0.3)
    torch.testing.assert_close(grad_x_input(f, x, base).sum(dim=(1, 2)), f(x) - f(base))


def test_gradxinput_is_zero_at_the_training_mean_and_matches_autograd(model):
    x = _x(4)
    x[:, :5] = model.feat_mean  # bins at the training mean: normalised input 0
    imp = gradxinput_importance(model, x, PROMPTS)
    assert imp.shape == (2, N_BINS)
    assert (imp[:, :5] == 0).all() and np.abs(imp[:, 5:]).sum() > 0
    z = ((x - model.feat_mean) / model.feat_std).requires_grad_(True)
    y = model(z * model.feat_std + model.feat_mean, PROMPTS)[:, 0]
    (g,) = torch.autograd.grad(y.sum(), z)
    np.testing.assert_allclose(imp, (g * z).sum(-1).detach().numpy(), rtol=1e-4, atol=1e-7)


# ---- occlusion -----------------------------------------------------------------------------------------------------
def test_occluding_bins_the_model_cannot_see_changes_nothing(tiny_llm):
    # one Linear per patch offset: a bin can be cut off exactly (in the window as given: the mirror would see it)
    m = _model(tiny_llm, stem_channels=0, mirror_average=False, promoter_bins=0)
    with torch.no_grad():
        m.embed.proj.weight[:, :D_FEAT] = 0  # patch layout is (bin, feature): the first bin of every patch is unseen
    imp = occlusion_importance(m, _x(5), PROMPTS, window=1)
    assert imp.shape == (2, N_BINS)
    assert (imp[:, ::PATCH] == 0).all()
    assert (np.abs(imp[:, 1::PATCH]) > 0).any()


def test_patch_occlusion_is_the_drop_when_the_patch_is_set_to_the_training_mean(model):
    x = _x(6, batch=1)
    imp = occlusion_importance(model, x, PROMPTS[:1])
    with torch.no_grad():
        occluded = x.clone()
        occluded[0, 8:12] = model.feat_mean
        drop = model(x, PROMPTS[:1])[0, 0] - model(occluded, PROMPTS[:1])[0, 0]
    np.testing.assert_allclose(imp[0, 8:12], float(drop), rtol=1e-4, atol=1e-7)


# ---- tracks ----------------------------------------------------------------------------------------------------------
GEOM = Geometry(input_len=1024, bin_size=32, output_bins=16)


def test_bedgraph_coordinates_on_both_strands(tmp_path):
    values = np.arange(16, dtype=float)
    plus = importance_track(values, Gene("G1", "ONE", "chr1", 5000, "+"), GEOM)
    minus = importance_track(values, Gene("G2", "TWO", "chr1", 5000, "-"), GEOM)
    # + : window [4488, 5512), bin 0 = window index 8*32 = 256 -> genome 4744
    assert plus[0] == ("chr1", 4744, 4776, 0.0) and plus[-1] == ("chr1", 5224, 5256, 15.0)
    # - : window [4489, 5513) read backwards, index i = genome 5512 - i; bin 0 = indices 256..287 -> [5225, 5257)
    assert minus[-1] == ("chr1", 5225, 5257, 0.0) and minus[0] == ("chr1", 4745, 4777, 15.0)
    for rows in (plus, minus):
        starts = [r[1] for r in rows]
        assert starts == sorted(starts) and all(a[2] <= b[1] for a, b in zip(rows, rows[1:], strict=False))
    # the TSS base lies in the TSS bin on both strands
    for g, rows in ((5000, plus), (5000, minus)):
        (hit,) = [r for r in rows if r[1] <= g < r[2]]
        assert hit[3] == GEOM.tss_bin
    path = write_bedgraph(tmp_path / "m.bedGraph", minus, name="TWO attention")
    lines = path.read_text().splitlines()
    assert lines[0].startswith("track type=bedGraph") and lines[1] == "chr1\t4745\t4777\t15"
    bw = write_bigwig(tmp_path / "m.bw", minus, {"chr1": 8000, "chr2": 100})
    with pyBigWig.open(str(bw)) as f:
        assert f.chroms() == {"chr1": 8000, "chr2": 100}
        assert f.intervals("chr1")[0] == (4745, 4777, 15.0) and f.intervals("chr1")[-1] == (5225, 5257, 0.0)


def test_tracks_are_clipped_at_the_chromosome_ends():
    rows = importance_track(np.ones(16), Gene("G", "G", "chr1", 100, "+"), GEOM, chrom_length=300)
    assert rows[0][1] == 0 and rows[-1][2] == 300
    assert all(0 <= a < b <= 300 for _, a, b, _ in rows)


# ---- AUPRC -----------------------------------------------------------------------------------------------------------
def _elements() -> pd.DataFrame:
    rows = [  # gene, kind, bin range, distance, effect
        ("A", "promoter", 7, 9, -100, 1.2), ("A", "enhancer", 1, 3, -30_000, 0.4), ("A", "enhancer", 12, 13, 9_000, 0),
        ("A", "decoy", 14, 16, 20_000, 0.0), ("B", "enhancer", 3, 5, 25_000, -0.3), ("B", "repressor", 10, 12, 800, -1),
    ]
    return pd.DataFrame(rows, columns=["gene_id", "kind", "bin_start", "bin_end", "distance", "effect"])


def test_auprc_on_a_planted_toy_equals_sklearn():
    rng = np.random.default_rng(0)
    imps = {g: {"m": rng.normal(size=16)} for g in "AB"}
    res = importance_metrics(imps, _elements(), GEOM)["methods"]["m"]
    pos_a, dist_a = element_labels(_elements()[_elements().gene_id == "A"], 16)
    assert pos_a.nonzero()[0].tolist() == [1, 2, 7, 8] and dist_a.nonzero()[0].tolist() == [1, 2]
    labels = {g: element_labels(_elements()[_elements().gene_id == g], 16) for g in "AB"}
    norm = {g: np.abs(imps[g]["m"]) / np.abs(imps[g]["m"]).max() for g in "AB"}
    pooled = average_precision_score(np.concatenate([labels[g][0] for g in "AB"]), np.concatenate(list(norm.values())))
    assert res["auprc"] == pytest.approx(pooled)
    each = [average_precision_score(labels[g][0], norm[g]) for g in "AB"]
    assert res["auprc_gene_mean"] == pytest.approx(np.mean(each))
    keep = {g: labels[g][1] | ~labels[g][0] for g in "AB"}  # distal: the proximal positives are left out
    distal = average_precision_score(np.concatenate([labels[g][1][keep[g]] for g in "AB"]),
                                     np.concatenate([norm[g][keep[g]] for g in "AB"]))
    assert res["distal_auprc"] == pytest.approx(distal)
    assert res["n_positive_bins"] == 6 and res["distal_n_positive_bins"] == 4


def test_a_perfect_map_scores_one_and_the_references_are_reported():
    imps = {g: {"perfect": element_labels(_elements()[_elements().gene_id == g], 16)[0] * 1.0} for g in "AB"}
    out = importance_metrics(imps, _elements(), GEOM)
    assert out["methods"]["perfect"]["auprc"] == 1.0 and out["methods"]["perfect"]["distal_auprc"] == 1.0
    assert out["reference"]["random"]["auprc"] == pytest.approx(6 / 32)
    assert set(out["reference"]["distance_prior"]) >= {"auprc", "distal_auprc"}


# ---- the pipeline on a tiny trained run ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """The training toy (signal in bins 12-20) trained one epoch, with a planted truth/elements.tsv."""
    import yaml

    from gta.train import train

    folder = tmp_path_factory.mktemp("toy")
    manifest, store = make_toy(folder / "data", n_samples=4, haplotypes=False)
    truth = folder / "data" / "truth"
    truth.mkdir()
    genes = pd.read_csv(folder / "data" / "genes.tsv", sep="\t")
    pd.DataFrame([{"gene_id": g, "element_id": f"{g}:E1", "kind": "enhancer", "chrom": c, "start": 0, "end": 1,
                   "bin_start": 12, "bin_end": 20, "distance": -256, "effect": 1.0}
                  for g, c in zip(genes.gene_id, genes.chrom, strict=True)]).to_csv(truth / "elements.tsv", sep="\t",
                                                                                     index=False)
    entries = yaml.safe_load(manifest.read_text())
    entries["truth"] = "truth"
    manifest.write_text(yaml.safe_dump(entries))
    run = folder / "run"
    train(manifest, store, run, toy_config(max_epochs=1), progress=False)
    return manifest, store, run


def test_interpret_command_writes_plots_tracks_top_sections_and_metrics(toy_run, tmp_path, capsys):
    import gta.cli.interpret_commands  # noqa: F401 - registers the commands
    from gta.cli.app import app

    manifest, store, run = toy_run
    out = tmp_path / "interp"
    res = CliRunner().invoke(app, ["interpret", "--run", str(run), "--data", str(manifest), "--features", str(store),
                                   "--genes", "TOYG0000,TOY1", "--evaluate", "--top-k", "3", "--out", str(out),
                                   "--quiet"])
    assert res.exit_code == 0, res.output
    assert "gradxinput" in res.output and "AUPRC" in res.output
    for g in ("TOYG0000", "TOYG0001"):
        assert (out / "plots" / f"{g}.png").stat().st_size > 1000
        for m in ("attention", "gradxinput", "occlusion"):
            assert (out / "tracks" / f"{g}.{m}.bedGraph").exists() and (out / "tracks" / f"{g}.{m}.bw").exists()
    top = pd.read_csv(out / "top_sections.tsv", sep="\t")
    assert len(top) == 2 * 3 * 3 and set(top["rank"]) == {1, 2, 3}
    assert {"distance_to_tss", "true_elements", "chrom", "start", "end"} <= set(top.columns)
    metrics = json.loads((out / "interpret_metrics.json").read_text())
    assert set(metrics["methods"]) == {"attention", "gradxinput", "occlusion"}
    assert metrics["reference"]["random"]["auprc"] == pytest.approx(8 / 32)
    with np.load(out / "importance.npz") as z:
        assert z["gene_ids"].tolist() == ["TOYG0000", "TOYG0001"] and z["occlusion"].shape == (2, 32)
    # the same --out again: refused (exit 2, the results kept) unless --overwrite
    again = ["interpret", "--run", str(run), "--data", str(manifest), "--features", str(store), "--genes", "TOYG0000",
             "--method", "gradxinput", "--no-plots", "--out", str(out), "--quiet"]
    before = (out / "importance.npz").read_bytes()
    from gta.cli import main

    with pytest.raises(SystemExit) as e:
        main(again)
    assert e.value.code == 2 and (out / "importance.npz").read_bytes() == before
    assert "not empty" in capsys.readouterr().err
    assert CliRunner().invoke(app, [*again, "--overwrite"]).exit_code == 0
    with np.load(out / "importance.npz") as z:
        assert z["gene_ids"].tolist() == ["TOYG0000"]
    # --no-mirror-average explains each window as given: the maps of the default average differ from it
    once = tmp_path / "once"
    res = CliRunner().invoke(app, ["interpret", "--run", str(run), "--data", str(manifest), "--features", str(store),
                                   "--genes", "TOYG0000,TOY1", "--method", "gradxinput", "--no-plots", "--out",
                                   str(once), "--quiet", "--no-mirror-average"])
    assert res.exit_code == 0, res.output
    with np.load(out / "importance.npz") as z, np.load(once / "importance.npz") as z1:
        assert z1["gradxinput"].shape == (2, 32) and z["gradxinput"].shape == (1, 32)
        assert np.abs(z1["gradxinput"][:1] - z["gradxinput"]).max() > 1e-9


def test_evaluate_importance_for_the_benchmark(toy_run):
    from gta.interpret import evaluate_importance

    manifest, store, run = toy_run
    m = evaluate_importance(run, manifest, store, n_genes=3, methods="gradxinput")
    assert m["n_genes"] == 3 and 0 <= m["methods"]["gradxinput"]["auprc"] <= 1
    assert len(m["genes"]) == 3


def test_interpret_refuses_unknown_methods_and_evaluate_without_truth(toy_run, tmp_path):
    from gta.errors import GtaInputError
    from gta.interpret import interpret

    manifest, store, run = toy_run
    with pytest.raises(GtaInputError, match="unknown importance method"):
        interpret(run, manifest, store, genes="TOY0", method="saliency", out=None)
    import yaml

    entries = yaml.safe_load(manifest.read_text())
    del entries["truth"]
    for key in ("genome", "genes", "expression"):
        entries[key] = str(manifest.parent / entries[key])
    plain = tmp_path / "dataset.yaml"
    plain.write_text(yaml.safe_dump(entries))
    with pytest.raises(GtaInputError, match="truth"):
        interpret(run, plain, store, genes="TOY0", method="attention", evaluate=True, out=None, progress=False)
