"""gta.train: config round trip, learning on a toy signal, frozen LLM, run folder contract, prompts, predict."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from ddp_script import make_toy, toy_config
from fixtures import free_port
from gta.errors import GtaInputError
from gta.io.dataset import open_dataset
from gta.model.prompt import build_prompt
from gta.stats import combine_haplotypes
from gta.train import TrainConfig, default_config, gene_prompt, load_config, predict, train
from gta.train.config import llm_dtype, resolve_precision, speed_levers
from gta.train.data import FeatureSource, GTADataModule, build_run_data, fit_feature_norm
from gta.train.module import GTAModule, validation_metrics
from gta.train.prompts import gc_fraction

CONTRACT = ["gene_id", "sample", "haplotype", "split", "y_true", "y_pred"]


@pytest.fixture(scope="module")
def cli_run(toy, tmp_path_factory):
    """A cross-gene run through `gta train` (2 epochs)."""
    import gta.cli.model_commands  # noqa: F401 - registers the commands
    from gta.cli.app import app

    folder = tmp_path_factory.mktemp("run")
    cfg_path = folder / "cfg.yaml"
    toy_config(max_epochs=2).save(cfg_path)
    out = folder / "run"
    res = CliRunner().invoke(app, ["train", "--data", str(toy[0]), "--features", str(toy[1]), "--out", str(out),
                                   "--config", str(cfg_path), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "val Spearman" in res.output
    return out


# ---- config ---------------------------------------------------------------------------------------------------
def test_config_yaml_round_trip(tmp_path):
    cfg = toy_config(task="both", max_train_examples=10, precision="bf16-mixed")
    cfg.save(tmp_path / "c.yaml")
    back = load_config(tmp_path / "c.yaml")
    assert back == cfg
    assert back.model.llm == "tiny-random" and back.model.n_prototypes == 16


def test_config_refuses_unknown_and_bad_values(tmp_path):
    (tmp_path / "a.yaml").write_text("lr: 0.1\nbatchsize: 3\n")
    with pytest.raises(GtaInputError, match="batchsize"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("task: cross-tissue\n")
    with pytest.raises(GtaInputError, match="task"):
        load_config(tmp_path / "b.yaml")
    (tmp_path / "c.yaml").write_text("model: {n_layerz: 3}\n")
    with pytest.raises(GtaInputError, match="n_layerz"):
        load_config(tmp_path / "c.yaml")
    # a value of the wrong type names its key and what it must be, instead of failing deep in training
    for text, message in (("lr: abc\n", "lr must be a number, got 'abc'"),
                          ("max_epochs: 1.5\n", "max_epochs must be a whole number, got 1.5"),
                          ("shuffle_prompts: 1\n", "shuffle_prompts must be true or false"),
                          ("task: 3\n", "task must be text"),
                          ("model: {use_prompt: 'no'}\n", "model.use_prompt must be true or false"),
                          ("model: {d_model: 64.5}\n", "model.d_model must be a whole number")):
        (tmp_path / "d.yaml").write_text(text)
        with pytest.raises(GtaInputError, match=message.replace(".", r"\.")) as err:
            load_config(tmp_path / "d.yaml")
        assert str(tmp_path / "d.yaml") in str(err.value)
    (tmp_path / "e.yaml").write_text("lr: 1\ngradient_clip: null\nmodel: {dropout: 0}\n")  # int for float, None
    cfg = load_config(tmp_path / "e.yaml")
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.gradient_clip is None and cfg.model.dropout == 0.0


def test_precision_auto_is_bf16_on_a_gpu_with_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    gpu = default_config(accelerator="gpu", devices=2, strategy="fsdp")
    assert resolve_precision(gpu) == "bf16-mixed" and llm_dtype(gpu) == torch.bfloat16
    levers = " | ".join(speed_levers(gpu))
    assert "bf16-mixed precision (frozen LLM weights in bf16)" in levers and "sharded across 2 devices" in levers
    assert resolve_precision(default_config()) == "32"  # accelerator cpu: a present GPU is not used
    assert llm_dtype(default_config(precision="bf16-mixed")) == torch.float32  # CPU autocast, fp32 weights
    assert resolve_precision(default_config(accelerator="auto")) == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision(gpu) == "32"  # e.g. a V100: no bf16, and fp16 is not picked silently


def test_default_config_is_for_the_embedded_llm_and_names_its_levers():
    cfg = default_config()
    assert cfg.model.llm == "embedded" and cfg.accelerator == "cpu" and cfg.precision == "auto"
    assert resolve_precision(cfg) == "32" and llm_dtype(cfg) == torch.float32
    levers = " | ".join(speed_levers(cfg, 30))
    assert "first 2 layers of 30" in levers and "prefix KV cache" in levers and "early stopping" in levers
    assert "256 text prototypes" in levers


# ---- pieces ------------------------------------------------------------------------------------------------------
def test_combine_haplotypes_is_log_mean_exp():
    h1, h2 = torch.tensor([1.0, 2.0]), torch.tensor([1.0, 0.0])
    assert torch.allclose(combine_haplotypes(h1, h2), torch.log((h1.exp() + h2.exp()) / 2))
    assert torch.allclose(combine_haplotypes(h1, h1), h1)
    assert torch.allclose(combine_haplotypes(h1, h2, "mean"), (h1 + h2) / 2)


def test_validation_metrics_drop_padding_duplicates_and_handle_constant_predictions():
    rec = {"gene": np.array([0, 1, 2, 2]), "ref": np.array([0.1, 0.2, 0.3, 0.3]),
           "y_gene": np.array([1.0, 2.0, 3.0, 3.0])}
    m = validation_metrics([rec], "cross-gene")
    assert m["val_spearman"] == pytest.approx(1.0)
    const = {**rec, "ref": np.zeros(4)}
    assert validation_metrics([const], "cross-gene")["val_spearman"] == 0.0  # NaN would stop early


def test_feature_norm_uses_training_genes_only(toy):
    from gta.features.store import FeatureStore

    store = FeatureStore.open(toy[1])
    source = FeatureSource(store)
    mean, std = fit_feature_norm(source, store.gene_ids[:3], 100, 0)
    x = np.concatenate([store.read_ref(g) for g in store.gene_ids[:3]])
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, x.std(0), rtol=1e-4)


def _module(toy, tiny_llm, task="cross-gene", alignment="prototype", **kw):
    from gta.features.store import FeatureStore
    from gta.model.gta import build_model

    cfg = toy_config(task=task, **kw)
    cfg.model = dataclasses.replace(cfg.model, alignment=alignment)
    dataset, store = open_dataset(toy[0]), FeatureStore.open(toy[1])
    data = build_run_data(dataset, store, cfg)
    data.prompts = {g: f"<|start_prompt|>gene {g}<|end_prompt|>" for g in data.gene_ids}
    torch.manual_seed(0)
    model = build_model(cfg.model, store.n_features, store.n_bins, llm=tiny_llm)
    source = FeatureSource(store)
    model.set_feature_norm(*map(torch.from_numpy, fit_feature_norm(source, data.gene_ids, 100, 0)))
    return GTAModule(model, cfg, data.target_mean, data.target_std, data.centred_var), GTADataModule(data, source, cfg)


@pytest.mark.parametrize("task", ["cross-gene", "cross-individual"])
@pytest.mark.parametrize("alignment", ["prototype", "linear"])
def test_training_steps_lower_the_loss_and_only_trainable_parameters_move(toy, tiny_llm, task, alignment):
    module, dm = _module(toy, tiny_llm, task, lr=3e-3, alignment=alignment)
    batch = next(iter(dm.train_dataloader()))
    llm_before = {k: v.clone() for k, v in tiny_llm.hf.state_dict().items()}
    opt = module.configure_optimizers()
    llm_ids = {id(p) for p in tiny_llm.hf.parameters()}
    assert llm_ids and not llm_ids & {id(p) for g in opt.param_groups for p in g["params"]}
    module.train()
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = module.losses(batch, module.encode(batch))["loss"]
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[1] < losses[0]  # one step lowers the loss
    if alignment == "linear":  # the toy signal is learnable: the batch is fitted well within 15 steps
        assert losses[-1] < 0.6 * losses[0]
    for k, v in tiny_llm.hf.state_dict().items():
        assert torch.equal(v, llm_before[k]), k


def test_cross_individual_batches_use_training_individuals_and_encode_each_haplotype_once(toy, tiny_llm):
    module, dm = _module(toy, tiny_llm, "both", max_individuals_per_gene=4, max_val_individuals=3)
    data = dm.data
    item = dm.train_items[(0, 0)]
    assert len(item["ind_sample"]) == 4
    assert all(data.sample_split[s] == "train" for s in item["ind_sample"])
    rows = np.concatenate([item["ind_r1"], item["ind_r2"]])
    assert len(item["features"]) == len(set(rows.tolist()) | {0})  # distinct windows only (row 0 = reference)
    assert dm.train_items[(0, 1)]["ind_sample"].tolist() != item["ind_sample"].tolist() or len(data.samples) <= 4
    val = dm.val_items[0]
    assert set(val["ind_sample"].tolist()) <= set(data.samples_in("train"))
    assert len(val["ind_sample"]) == 3  # capped, and the same people every epoch (a fixed yardstick)
    assert dm.val_items[(0, 5)]["ind_sample"].tolist() == val["ind_sample"].tolist()
    assert dm.val_dataloader().batch_size == min(module.cfg.batch_size, max(1, 1024 // 7))


def test_individuals_pass_without_dropout_in_training(toy, tiny_llm):
    """Within-gene deviations must come from the haplotypes, not from each window's own dropout noise: a batch with
    individuals encodes the same way twice in training mode, a reference-only batch does not (dropout on)."""
    module, dm = _module(toy, tiny_llm, "both", max_individuals_per_gene=4)
    module.model.cfg.dropout = 0.5
    for m in module.model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.5
    module.train()
    batch = next(iter(dm.train_dataloader()))
    assert batch["ind_r1"].numel() > 0
    with torch.no_grad():
        assert torch.equal(module.encode(batch), module.encode(batch))
    assert all(m.training for m in module.model.modules() if isinstance(m, torch.nn.Dropout))  # restored
    ref_only, dm_ref = _module(toy, tiny_llm, "cross-gene")
    for m in ref_only.model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.5
    ref_only.train()
    plain = next(iter(dm_ref.train_dataloader()))
    with torch.no_grad():
        assert not torch.equal(ref_only.encode(plain), ref_only.encode(plain))


def test_split_pass_keeps_dropout_for_reference_rows_only(toy, tiny_llm):
    """individual_pass "split": reference rows train with dropout; haplotype rows pass without it and with the
    standardiser's running statistics, so each equals that row alone in eval mode (mirror average aside); the
    gradient of a haplotype row still reaches the prototype mapping and the head."""
    from gta.model.gta import PatchStandardiser

    module, dm = _module(toy, tiny_llm, "both", max_individuals_per_gene=4, individual_pass="split")
    for m in module.model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.5
        if isinstance(m, PatchStandardiser):
            m.momentum = 0.0  # (the reference pass would otherwise move the running statistics between calls)
    module.train()
    batch = next(iter(dm.train_dataloader()))
    ref = batch["ref_row"][batch["ref_row"] >= 0]
    hap = torch.ones(len(batch["features"]), dtype=torch.bool)
    hap[ref] = False
    assert hap.any() and len(ref) > 1
    with torch.no_grad():
        a, b = module.encode(batch), module.encode(batch)
    assert torch.equal(a[hap], b[hap]) and not torch.equal(a[ref], b[ref])
    switched = [m for m in module.model.modules() if isinstance(m, (torch.nn.Dropout, PatchStandardiser))]
    assert switched and all(m.training for m in switched)  # restored
    row = int(hap.nonzero()[0, 0])
    module.model.eval()
    mirror, module.model.cfg.mirror_average = module.model.cfg.mirror_average, False
    with torch.no_grad():
        alone = module.model(batch["features"][row:row + 1], [batch["prompts"][row]])[0, 0]
    module.model.cfg.mirror_average = mirror
    module.train()
    torch.testing.assert_close(a[row], alone.float(), rtol=1e-4, atol=1e-5)
    module.zero_grad()
    module.encode(batch)[row].backward()
    reached = {n for n, w in module.model.named_parameters() if w.grad is not None and w.grad.abs().sum() > 0}
    assert any("mapping" in n for n in reached) and any("head" in n for n in reached)


def test_split_pass_runs_both_passes_in_lock_step(toy, tiny_llm, monkeypatch):
    """Under DDP (or with a sharded LLM) every forward is a collective: a rank whose batch lacks reference rows, or
    individuals, must still run the reference pass and the haplotype pass, or the other ranks wait forever."""
    module, dm = _module(toy, tiny_llm, "both", max_individuals_per_gene=4, individual_pass="split")
    module.train()
    batch = next(iter(dm.train_dataloader()))
    calls = []
    module.model.register_forward_hook(lambda m, args, out: calls.append(len(args[0])))
    n_ref = int((batch["ref_row"] >= 0).sum())
    with torch.no_grad():
        module.encode(batch)
    assert calls == [n_ref, len(batch["features"]) - n_ref] and 0 < n_ref < len(batch["features"])
    no_ref = {**batch, "ref_row": torch.full_like(batch["ref_row"], -1)}  # every row goes to the haplotype pass
    calls.clear()
    with torch.no_grad():
        assert len(module.encode(no_ref)) == len(batch["features"]) and calls == [len(batch["features"])]
    monkeypatch.setattr(module, "_lockstep", lambda: True)
    calls.clear()
    out = module.encode(no_ref)
    assert calls == [1, len(batch["features"])] and len(out) == len(batch["features"])  # a dummy reference pass
    out.sum().backward()  # the dummy row's graph is part of the output's
    empty = {**batch, "features": batch["features"][:0], "ref_row": batch["ref_row"][:0], "prompts": None,
             "ind_r1": batch["ind_r1"][:0]}
    calls.clear()
    assert len(module.encode(empty)) == 0 and calls == [1, 1]
    calls.clear()
    module.encode(batch)
    assert calls == [n_ref, len(batch["features"]) - n_ref]  # with rows of both kinds, lock step adds no pass


def test_max_train_examples_caps_the_training_genes(toy, tiny_llm):
    _, dm = _module(toy, tiny_llm, max_train_examples=5)
    assert len(dm.train_items) == 5 and set(dm.train_genes) <= set(dm.data.genes_in("train"))
    assert sum(len(b["genes"]) for b in dm.train_dataloader()) == 5


# ---- a whole run ---------------------------------------------------------------------------------------------------
def test_run_folder_contract(cli_run, toy):
    files = {p.name for p in cli_run.iterdir()}
    assert {"config.yaml", "model.safetensors", "state.safetensors", "state.json", "metrics.csv", "prompts.json",
            "summary.json", "predictions"} <= files
    cfg = yaml.safe_load((cli_run / "config.yaml").read_text())
    resolved = cfg["resolved"]
    assert resolved["dataset"]["fingerprint"] == open_dataset(toy[0]).fingerprint()
    assert len(resolved["store"]["attrs_sha256"]) == 64 and resolved["store"]["attrs"]["encoder"] == "toy"
    assert resolved["llm"]["path"] == "tiny-random" and len(resolved["llm"]["sha256"]) == 64
    assert resolved["seeds"]["seed"] == 0 and resolved["versions"]["gta"] and resolved["versions"]["commit"]
    assert load_config(cli_run / "config.yaml").model.n_prototypes == 16  # the resolved section is ignored
    summary = json.loads((cli_run / "summary.json").read_text())
    for key in ("val_spearman", "test_spearman", "wall_time_s", "peak_rss_mb", "genes_per_s", "epoch_times_s"):
        assert key in summary
    assert summary["epochs"] == 2 and len(summary["epoch_times_s"]) == 2
    metrics = pd.read_csv(cli_run / "metrics.csv")
    assert {"train_loss", "val_spearman", "epoch"} <= set(metrics.columns)
    assert metrics["val_spearman"].notna().sum() == 2
    # the model file holds trainable weights only (no LLM tensor), megabytes at most
    from safetensors.torch import load_file

    weights = load_file(str(cli_run / "model.safetensors"))
    assert not any(k.startswith("llm.") or "layers." in k for k in weights)
    assert (cli_run / "model.safetensors").stat().st_size < 10e6


def test_predictions_parquet_contract(cli_run):
    frames = {s: pd.read_parquet(cli_run / "predictions" / f"{s}.parquet") for s in ("train", "val", "test")}
    for split, df in frames.items():
        assert list(df.columns[:6]) == CONTRACT
        assert (df["split"] == split).all()
        genes = df[df["sample"] == ""]  # cross-gene rows
        assert (genes["haplotype"] == "").all() and genes["gene_id"].is_unique
        assert np.isfinite(df["y_pred"]).all()
        people = df[df["sample"] != ""]  # a cross-gene run still predicts held-out individuals from their haplotypes
        assert len(people) and (people["haplotype"] == "both").all() and (people["sample_split"] == "test").all()
    assert [int((frames[s]["sample"] == "").sum()) for s in ("train", "val", "test")] == [32, 8, 8]


def test_llm_unchanged_by_training(cli_run):
    from gta.llm_loader import llm_identity, tiny_random_llm

    resolved = yaml.safe_load((cli_run / "config.yaml").read_text())["resolved"]
    assert llm_identity(tiny_random_llm(num_layers=2))["sha256"] == resolved["llm"]["sha256"]


def test_predict_matches_the_run_and_checks_the_llm(cli_run, toy, tmp_path):
    df = predict(cli_run, toy[0], toy[1], tmp_path / "p.tsv", progress=False)
    assert list(df.columns[:6]) == CONTRACT and len(df) == 48
    saved = pd.concat([pd.read_parquet(cli_run / "predictions" / f"{s}.parquet") for s in ("train", "val", "test")])
    saved = saved[saved["sample"] == ""]  # gene rows
    merged = df.merge(saved, on="gene_id", suffixes=("", "_run"))
    np.testing.assert_allclose(merged["y_pred"], merged["y_pred_run"], rtol=1e-5, atol=1e-5)
    written = pd.read_csv(tmp_path / "p.tsv", sep="\t", keep_default_na=False)
    assert list(written.columns[:6]) == CONTRACT
    # a run whose recorded LLM hash differs is refused
    other = tmp_path / "other"
    other.mkdir()
    for name in ("model.safetensors", "prompts.json"):
        (other / name).write_bytes((cli_run / name).read_bytes())
    cfg = yaml.safe_load((cli_run / "config.yaml").read_text())
    cfg["resolved"]["llm"]["sha256"] = "0" * 64
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(GtaInputError, match="not the one the run was trained"):
        predict(other, toy[0], toy[1], None, progress=False)

    # --no-mirror-average: each window once, as a run whose config says mirror_average: false predicts
    from gta.cli.app import app

    cfg = yaml.safe_load((cli_run / "config.yaml").read_text())
    assert cfg["model"]["mirror_average"] is True
    cfg["model"]["mirror_average"] = False
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    once = predict(cli_run, toy[0], toy[1], None, progress=False, mirror_average=False)
    np.testing.assert_allclose(once["y_pred"], predict(other, toy[0], toy[1], None, progress=False)["y_pred"])
    assert np.abs(once["y_pred"].to_numpy() - df["y_pred"].to_numpy()).max() > 1e-6
    result = CliRunner().invoke(app, ["predict", "-r", str(cli_run), "-d", str(toy[0]), "-f", str(toy[1]), "-o",
                                      str(tmp_path / "once.tsv"), "--no-mirror-average", "-q"])
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(pd.read_csv(tmp_path / "once.tsv", sep="\t")["y_pred"], once["y_pred"], rtol=1e-5)
    # never overwrite a user's file unasked: an existing --out is refused (exit 2, the file kept) unless --overwrite
    from gta.cli import main

    mine = tmp_path / "expression.tsv"
    mine.write_text("gene_id\tS1\nTOYG0000\t1.0\n")
    args = ["predict", "-r", str(cli_run), "-d", str(toy[0]), "-f", str(toy[1]), "-o", str(mine), "-q"]
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and mine.read_text() == "gene_id\tS1\nTOYG0000\t1.0\n"
    assert CliRunner().invoke(app, [*args, "--overwrite"]).exit_code == 0
    assert len(pd.read_csv(mine, sep="\t")) == len(df)


def test_a_damaged_prompts_file_is_one_line_naming_it(cli_run, toy, tmp_path):
    from gta.interpret.context import open_run

    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.yaml", "model.safetensors"):
        (run / name).write_bytes((cli_run / name).read_bytes())
    (run / "prompts.json").write_text('{"prompts": {"TOYG0000": ')  # cut short
    with pytest.raises(GtaInputError, match="damaged prompts file") as err:
        predict(run, toy[0], toy[1], None, progress=False)
    assert str(run / "prompts.json") in str(err.value)
    ctx = open_run(run, toy[0], toy[1])
    with pytest.raises(GtaInputError, match="damaged prompts file"):
        ctx.prompts(["TOYG0000"])
    (run / "prompts.json").write_text('["not", "a", "mapping"]')
    with pytest.raises(GtaInputError, match="a 'prompts' mapping"):
        predict(run, toy[0], toy[1], None, progress=False)
    (run / "prompts.json").unlink()  # as the hint says: the prompts are built again, with the run's template
    rebuilt = predict(run, toy[0], toy[1], None, progress=False)
    np.testing.assert_allclose(rebuilt["y_pred"], predict(cli_run, toy[0], toy[1], None, progress=False)["y_pred"],
                               rtol=1e-5, atol=1e-6)


def test_both_task_writes_individual_rows(toy, tmp_path, tiny_llm, caplog):
    caplog.set_level(logging.WARNING, logger="gta.train.run")
    res = train(toy[0], toy[1], tmp_path / "run", toy_config(task="both", max_epochs=1, predict_individuals="all"),
                llm=tiny_llm,
                progress=False)
    df = pd.read_parquet(res.predictions["test"])
    genes, ind = df[df["sample"] == ""], df[df["sample"] != ""]
    assert len(genes) == 8 and (genes["haplotype"] == "").all()
    assert (ind["haplotype"] == "both").all() and set(ind["sample_split"]) == {"train", "test"}
    assert len(ind) == 8 * 20 and ind["y_true"].notna().all()
    assert res.summary["individual_spearman_median"]["test"]["test_individuals"] is not None
    # a toy's handful of training genes is far below what GTA needs to beat a ridge: the user is told
    assert re.search(r"\d+ training genes: .*learning_curve.*gta benchmark", caplog.text)
    with pytest.raises(GtaInputError, match="already holds a run"):
        train(toy[0], toy[1], tmp_path / "run", toy_config(), llm=tiny_llm, progress=False)


def test_cross_individual_needs_haplotypes(tmp_path, tiny_llm):
    manifest, store = make_toy(tmp_path / "noh", haplotypes=False)
    with pytest.raises(GtaInputError, match="no personal haplotypes"):
        train(manifest, store, tmp_path / "run", toy_config(task="cross-individual"), llm=tiny_llm, progress=False)


def test_resume_without_state_is_refused(toy, tmp_path):
    with pytest.raises(GtaInputError, match="nothing to resume"):
        train(toy[0], toy[1], tmp_path / "run", resume=True, progress=False)


# ---- prompts -------------------------------------------------------------------------------------------------------
def test_gene_prompt_and_the_prompt_command(toy, cli_run):
    import gta.cli.model_commands  # noqa: F401
    from gta.cli.app import app

    dataset = open_dataset(toy[0])
    gene = dataset.genes[5]
    text = gene_prompt(dataset, gene.gene_id)
    gc = gc_fraction(dataset.genome.gene_window(gene, dataset.manifest.geometry))
    assert text == build_prompt(dataset.annotations.get(gene.gene_id) or {"gene_id": gene.gene_id, "symbol":
                                gene.symbol, "gene_type": gene.gene_type}, dataset.manifest.description, {"gc": gc})
    assert f"GC {100 * gc:.1f}%" in text and gene.symbol in text
    res = CliRunner().invoke(app, ["prompt", "--data", str(toy[0]), "--gene", gene.symbol])
    assert res.exit_code == 0 and res.output == text + "\n"
    saved = json.loads((cli_run / "prompts.json").read_text())["prompts"]
    assert saved[gene.gene_id] == text


def test_prompt_template_from_the_config_reaches_training_predict_and_the_prompt_command(toy, tmp_path):
    import gta.cli.model_commands  # noqa: F401
    from gta.cli.app import app

    template = "Cell type: LCL. {gene} {annotation} {stats} ({tokens})"
    cfg = toy_config(max_epochs=1, prompt_template=template)
    train(toy[0], toy[1], tmp_path / "run", cfg, progress=False)
    saved = json.loads((tmp_path / "run" / "prompts.json").read_text())
    dataset = open_dataset(toy[0])
    gene = dataset.genes[3]
    text = gene_prompt(dataset, gene.gene_id, template=template)
    assert saved["key"]["template"] == template and saved["prompts"][gene.gene_id] == text
    assert text.startswith("<|start_prompt|>Cell type: LCL.") and text != gene_prompt(dataset, gene.gene_id)
    assert load_config(tmp_path / "run" / "config.yaml").prompt_template == template
    res = CliRunner().invoke(app, ["prompt", "--data", str(toy[0]), "--gene", gene.gene_id,
                                   "--config", str(tmp_path / "run" / "config.yaml")])
    assert res.exit_code == 0 and res.output == text + "\n"
    saved_run = predict(tmp_path / "run", toy[0], toy[1], progress=False)
    (tmp_path / "run" / "prompts.json").unlink()  # predict rebuilds the prompts with the run's template
    rebuilt = predict(tmp_path / "run", toy[0], toy[1], progress=False)
    np.testing.assert_allclose(rebuilt["y_pred"], saved_run["y_pred"], rtol=1e-5, atol=1e-6)
    for bad in ("{gene} {expression}", "<|start_prompt|>{gene}"):
        with pytest.raises(GtaInputError, match="prompt_template"):
            TrainConfig.from_dict({"prompt_template": bad})


def test_predict_individuals_combines_each_persons_two_haplotypes(toy, cli_run, tmp_path):
    """`gta predict --individuals`: a row per (gene, individual of the store) whose value is the two haplotype
    predictions combined (log-mean-exp); a homozygous person gives that haplotype's prediction itself."""
    import gta.cli.model_commands  # noqa: F401
    from gta.cli.app import app
    from gta.features.store import FeatureStore

    out = tmp_path / "personal.tsv"
    res = CliRunner().invoke(app, ["predict", "--run", str(cli_run), "--data", str(toy[0]), "--features",
                                   str(toy[1]), "--out", str(out), "--individuals", "--quiet"])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out, sep="\t", dtype={"sample": str}, keep_default_na=False)
    store = FeatureStore.open(toy[1])
    people = df[df["sample"] != ""]
    assert len(people) == len(store.gene_ids) * len(store.samples)  # everyone, every gene
    genes = df[df["sample"] == ""].set_index("gene_id")["y_pred"]
    checked = 0
    for gene_id, rows in people.groupby("gene_id"):
        pairs, pred = store.sample_haps(gene_id), rows.set_index("sample")["y_pred"]
        hap = {"ref": genes[gene_id]} | {a: pred[s] for s, (a, b) in pairs.items() if a == b}
        for s, (a, b) in pairs.items():
            if a in hap and b in hap:
                assert pred[s] == pytest.approx(np.logaddexp(hap[a], hap[b]) - np.log(2), abs=1e-4)
                checked += 1
    assert checked > len(people) // 2


def test_predict_samples_all_list_and_file(toy, cli_run, tmp_path):
    """`predict -s all` is what the old `--individuals` flag gave; `-s A,B` and `-S FILE` keep just those people
    (and every gene row); a sample the store lacks is one line and exit 2, and nothing is written."""
    import gta.cli.model_commands  # noqa: F401
    from gta.cli import main
    from gta.cli.app import app
    from gta.features.store import FeatureStore

    base = ["predict", "-r", str(cli_run), "-d", str(toy[0]), "-f", str(toy[1]), "-q"]
    every = tmp_path / "all.tsv"
    assert CliRunner().invoke(app, [*base, "-o", str(every), "-s", "all"]).exit_code == 0
    read = lambda p: pd.read_csv(p, sep="\t", dtype={"sample": str}, keep_default_na=False)  # noqa: E731
    full = read(every)
    two = FeatureStore.open(toy[1]).samples[:2]
    (tmp_path / "two.txt").write_text("\n".join(["# two people", *two]) + "\n")
    for extra in (["-s", ",".join(two)], ["-S", str(tmp_path / "two.txt")]):
        out = tmp_path / "some.tsv"
        res = CliRunner().invoke(app, [*base, "-o", str(out), *extra])
        assert res.exit_code == 0, res.output
        some = read(out)
        assert sorted(set(some["sample"]) - {""}) == sorted(two)
        want = full[(full["sample"] == "") | full["sample"].isin(two)].reset_index(drop=True)
        pd.testing.assert_frame_equal(some, want)
        out.unlink()
    with pytest.raises(SystemExit) as e:
        main([*base, "-o", str(tmp_path / "bad.tsv"), "-s", f"{two[0]},NOBODY"])
    assert e.value.code == 2 and not (tmp_path / "bad.tsv").exists()
    # --genes: just those genes' rows (ids or symbols), the same values
    genes = sorted(set(full["gene_id"]))[:2]
    out = tmp_path / "genes.tsv"
    assert CliRunner().invoke(app, [*base, "-o", str(out), "-s", two[0], "--genes", ",".join(genes)]).exit_code == 0
    some = read(out)
    want = full[full["gene_id"].isin(genes) & full["sample"].isin(["", two[0]])].reset_index(drop=True)
    pd.testing.assert_frame_equal(some, want)
    with pytest.raises(SystemExit) as e:
        main([*base, "-o", str(tmp_path / "bad.tsv"), "--genes", "NO_SUCH_GENE"])
    assert e.value.code == 2 and not (tmp_path / "bad.tsv").exists()


def test_prediction_memory_is_bounded_and_the_cut_does_not_change_the_numbers(toy, cli_run, monkeypatch):
    """With personal genomes a batch of genes holds two windows per individual: prediction cuts the genes per
    batch and the rows per forward pass (400 individuals x 32 genes ran out of 24 GiB), with the same numbers."""
    import importlib

    import gta.train.data as D

    P = importlib.import_module("gta.train.predict")  # (gta.train.predict the attribute is the function)
    assert P.genes_per_batch(32, 0) == 32 and P.genes_per_batch(32, 400) == 1
    assert P.genes_per_batch(32, 80) * (1 + 2 * 80) <= D.BATCH_ROWS
    whole = predict(cli_run, toy[0], toy[1], individuals=True, progress=False)
    calls = []
    forward = P.forward_rows

    def spy(model, features, prompts, device):
        calls.append(len(features))
        return forward(model, features, prompts, device)

    monkeypatch.setattr(P, "FORWARD_ROWS", 1)  # every window alone
    monkeypatch.setattr(D, "BATCH_ROWS", 20)
    monkeypatch.setattr(P, "forward_rows", spy)
    cut = predict(cli_run, toy[0], toy[1], individuals=True, progress=False)
    assert len(calls) == len(set(whole["gene_id"]))  # 20 people: up to 41 windows a gene, over a budget of 20
    pd.testing.assert_frame_equal(cut, whole, atol=1e-5, rtol=1e-5)


def test_gene_prompt_counts_variants_in_the_window(tmp_path):
    from fixtures import make_dataset

    manifest = make_dataset(tmp_path / "d", with_vcf=True, geometry={"input_len": 2048, "bin_size": 64,
                                                                     "output_bins": 32})
    dataset = open_dataset(manifest)
    near = dataset.gene("BETA")  # TSS at 1999 on chr1: the variant at 1500 is inside its 2 kb window
    far = dataset.gene("IOTA")
    assert "variants 1" in gene_prompt(dataset, near)
    assert "variants 0" in gene_prompt(dataset, far)


def test_train_config_dataclass_is_exported():
    assert TrainConfig().task == "cross-gene"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_predict_device_cuda_without_cuda_is_one_line_exit_2(toy, cli_run, tmp_path):
    code = "import sys; from gta.cli import main; sys.argv = ['gta'] + sys.argv[1:]; main()"
    args = ["predict", "--run", cli_run, "--data", toy[0], "--features", toy[1], "--quiet", "--out", tmp_path / "p.tsv"]
    res = subprocess.run([sys.executable, "-c", code, *map(str, args), "--device", "cuda"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "no CUDA device" in res.stderr, res.stderr
    assert not (tmp_path / "p.tsv").exists()
    auto = predict(cli_run, toy[0], toy[1], progress=False, device="auto")  # auto: the CPU here
    assert auto["y_pred"].tolist() == predict(cli_run, toy[0], toy[1], progress=False)["y_pred"].tolist()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without distributed support")
def test_predict_under_torchrun_shards_the_llm_and_matches_one_process(toy, cli_run, tmp_path):
    """`torchrun --nproc-per-node 2 -m gta predict`: the two processes share one sharded LLM and rank 0 writes the
    table a single process writes."""
    import os

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("TORCHELASTIC_RUN_ID", None)
    out = tmp_path / "sharded.tsv"
    # -r, not --run: torchrun's own parser would take --run for an abbreviation of its --run-path
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port()),
           "-m", "gta", "predict", "-r", cli_run, "--data", toy[0], "--features", toy[1], "--out", out, "--quiet"]
    res = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("wrote ") == 1  # rank 0 only
    sharded = pd.read_csv(out, sep="\t", keep_default_na=False)
    single = predict(cli_run, toy[0], toy[1], progress=False)
    assert sharded["gene_id"].tolist() == single["gene_id"].tolist()
    np.testing.assert_allclose(sharded["y_pred"], single["y_pred"], rtol=1e-5, atol=1e-5)


# ---- learning and reproducibility --------------------------------------------------------------------------------
def _held_out_rho(run_result) -> tuple[float, float]:
    """Spearman of the gene-level predictions over the validation + test genes, and their sd ratio."""
    from scipy.stats import spearmanr

    df = pd.concat([pd.read_parquet(run_result.predictions[s]) for s in ("val", "test")])
    df = df[df["sample"] == ""]
    return float(spearmanr(df["y_pred"], df["y_true"])[0]), float(df["y_pred"].std() / df["y_true"].std())


def test_gta_learns_a_planted_signal_on_held_out_genes(tmp_path, tiny_llm):
    """The toy's expression is a known function of the features (tests/ddp_script.py): trained on 128 genes, GTA
    ranks the 64 unseen validation and test genes. A constant predictor has no rank correlation, and a shuffled one
    (or a model that ignores the features) passes 0.5 on 64 genes with probability ~1e-5. The model of the previous
    release (one Linear per patch offset, no standardising head) scored -0.07 here, with predictions of sd 1% of the
    targets' (docs/learning.md)."""
    manifest, store = make_toy(tmp_path / "toy", n_samples=4, haplotypes=False, genes_scale=4)
    res = train(manifest, store, tmp_path / "run", toy_config(max_epochs=15), llm=tiny_llm, progress=False)
    rho, spread = _held_out_rho(res)
    assert rho > 0.5, f"held-out Spearman {rho:.3f}"
    assert spread > 0.2, f"predictions nearly constant: sd ratio {spread:.3f}"


def test_training_twice_gives_identical_numbers(toy, tmp_path, tiny_llm):
    """Same seed, data and thread count: the same metrics and predictions, to the bit."""
    runs = [train(toy[0], toy[1], tmp_path / f"run{i}", toy_config(max_epochs=2), llm=tiny_llm, progress=False)
            for i in range(2)]
    a, b = (json.loads((r.out / "summary.json").read_text()) for r in runs)
    for key in ("val_spearman", "test_spearman", "best_epoch"):
        assert a[key] == b[key], key
    for split in ("val", "test"):
        pa, pb = (pd.read_parquet(r.predictions[split]) for r in runs)
        np.testing.assert_array_equal(pa["y_pred"].to_numpy(), pb["y_pred"].to_numpy())


def test_lr_schedule_warms_up_then_decays():
    from gta.train.module import lr_factor

    f = lr_factor(100, 0.1, "cosine")
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)  # linear ramp over the first 10 steps
    assert f(10) == pytest.approx(1.0) and f(55) == pytest.approx(0.5) and f(100) == pytest.approx(0.0)
    assert all(f(i) >= f(i + 1) for i in range(10, 100))
    constant = lr_factor(100, 0.0, "constant")
    assert {constant(i) for i in range(100)} == {1.0}
    with pytest.raises(GtaInputError, match="warmup_frac"):
        TrainConfig(warmup_frac=1.0)


def test_a_run_config_written_before_the_stem_keeps_its_architecture(cli_run, tmp_path):
    """A run folder's config.yaml from before stem/standardiser existed loads as the model it trained; a config a
    user writes without those keys gets today's defaults."""
    raw = yaml.safe_load((cli_run / "config.yaml").read_text())
    for key in ("stem_channels", "head_standardise", "align_residual", "prompt_readout", "patch_pool",
                "mirror_average", "promoter_bins"):
        raw["model"].pop(key)
    for key in ("mirror_augment", "max_val_individuals", "ema_epochs"):
        raw.pop(key)
    old = tmp_path / "config.yaml"
    old.write_text(yaml.safe_dump(raw))
    cfg = load_config(old)
    assert (cfg.model.stem_channels, cfg.model.head_standardise, cfg.model.prompt_readout) == (0, False, False)
    assert (cfg.model.patch_pool, cfg.mirror_augment, cfg.max_val_individuals, cfg.ema_epochs) == ("sum", 0.0, None, 0)
    assert cfg.model.mirror_average is False  # its predictions stay those of the window as given
    assert cfg.model.promoter_bins == 0  # no promoter token: the saved weights fit the model built
    del raw["resolved"]
    user = tmp_path / "user.yaml"
    user.write_text(yaml.safe_dump(raw))
    assert (load_config(user).model.stem_channels, load_config(user).model.head_standardise) == (32, True)
    assert (load_config(user).model.patch_pool, load_config(user).mirror_augment) == ("gem", 0.5)
    assert load_config(user).model.promoter_bins == 4
    assert load_config(user).ema_epochs == TrainConfig().ema_epochs > 0
    assert load_config(cli_run / "config.yaml").model.stem_channels == 32  # today's runs say what they used


def test_mirror_augmentation_turns_whole_genes_about_the_tss(toy, tiny_llm):
    """mirror_augment: a chosen gene's windows (reference and haplotypes together) are reversed bin by bin, so a
    bin at distance d from the TSS moves to -d; the choice is drawn per (seed, epoch, gene), so one device and N
    devices mirror the same genes; 0 and 1 are never / always; validation is never mirrored."""
    from gta.train.data import GeneItems

    _, dm = _module(toy, tiny_llm, "both", max_individuals_per_gene=3, mirror_augment=0.5)
    items = dm.train_items
    plain = GeneItems(items.data, items.source, items.genes, individuals=items.individuals, max_individuals=3)
    always = GeneItems(items.data, items.source, items.genes, individuals=items.individuals, max_individuals=3,
                       mirror=1.0)
    turned = []
    for pos in range(len(items.genes)):
        base = plain[(pos, 2)]["features"]
        assert len(base) > 1  # reference + haplotypes
        np.testing.assert_array_equal(always[(pos, 2)]["features"], base[:, ::-1])
        got = items[(pos, 2)]["features"]
        turned.append(bool(np.array_equal(got, base[:, ::-1])))
        assert turned[-1] or np.array_equal(got, base)
        want = np.random.default_rng([items.seed, 2, items.genes[pos], 1]).random() < 0.5
        assert turned[-1] == want
    assert any(turned) and not all(turned)
    assert dm.val_items.mirror == 0.0
    with pytest.raises(GtaInputError, match="mirror_augment"):
        toy_config(mirror_augment=1.5)
    with pytest.raises(GtaInputError, match="mirror_average"):  # averaging over windows it never trained on
        toy_config(mirror_augment=0.0)
    plain = dataclasses.replace(toy_config().model, mirror_average=False)
    assert toy_config(mirror_augment=0.0, model=plain).mirror_augment == 0.0
