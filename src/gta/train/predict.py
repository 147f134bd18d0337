"""Prediction with a trained run: reference genomes (one row per gene) and personal genomes (one row per
individual, the two haplotypes combined as in training).

``predict(run, manifest, features, out)`` reloads the run's ``config.yaml`` and ``model.safetensors``, loads the
same frozen LLM (its sha256 must equal the one the run recorded) and writes a table with the columns
``gene_id, sample, haplotype, split, y_true, y_pred`` (+ ``sample_split`` for individual rows): gene rows have
``sample == "" == haplotype``; individual rows ``haplotype == "both"``. ``y_true`` is NaN where the data set has
no expression. Values are in the manifest's expression units (the run's target standardisation inverted).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from gta.atomic import atomic_path
from gta.devices import choose_device, resolve_device
from gta.errors import GtaInputError
from gta.stats import combine_haplotypes, per_gene_spearman, spearman
from gta.train.checkpoint import MODEL_FILE, load_trainable
from gta.train.config import TrainConfig, load_config
from gta.train.data import FeatureSource, GeneItems, RunData, collate, genes_per_batch
from gta.train.prompts import PROMPTS_FILE, read_prompts_file, run_prompts

log = logging.getLogger(__name__)
COLUMNS = ["gene_id", "sample", "haplotype", "split", "y_true", "y_pred", "sample_split"]
STORE_CHECKED = ("encoder", "encoder_config", "weights_hash", "geometry", "dtype")


FORWARD_ROWS = 256  # windows per forward pass (a batch of genes holds about gta.train.data.BATCH_ROWS)


def forward_rows(model, features: torch.Tensor, prompts: list[str] | None, device) -> torch.Tensor:
    """Model output [N] (float32, CPU) for N rows, ``FORWARD_ROWS`` at a time (in eval mode rows are
    independent, so the result does not depend on the cut)."""
    out = []
    for lo in range(0, len(features), FORWARD_ROWS):
        part = None if prompts is None else prompts[lo:lo + FORWARD_ROWS]
        out.append(model(features[lo:lo + FORWARD_ROWS].to(device), part)[:, 0].float().cpu())
    return torch.cat(out) if out else torch.zeros(0)


def predict_frame(model, data: RunData, source: FeatureSource, genes: list[int], individuals: list[int] | None,
                  hap_combine: str = "logmeanexp", batch_size: int = 8, progress: bool = False) -> pd.DataFrame:
    """Prediction table for ``genes`` (indices into ``data``); individual rows for ``individuals`` (sample indices)
    when given. Runs under ``torch.inference_mode`` on the model's device; memory is bounded whatever the number
    of individuals (:func:`genes_per_batch`, :func:`forward_rows`)."""
    items = GeneItems(data, source, genes, ref=True, individuals=individuals, need_targets=False)
    batches = DataLoader(items, batch_size=genes_per_batch(batch_size, len(individuals or [])), collate_fn=collate)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    gene_rows: list[tuple] = []
    ind_rows: list[tuple] = []
    try:
        with torch.inference_mode():
            for batch in tqdm(batches, desc="predict", unit="batch", disable=not progress):
                prompts = batch["prompts"] if model.cfg.use_prompt else None
                h = forward_rows(model, batch["features"], prompts, device)
                raw = h * data.target_std + data.target_mean
                for b, g in enumerate(batch["genes"].tolist()):
                    gene_rows.append((data.gene_ids[g], "", "", data.split[g], float(data.y_gene[g]),
                                      float(raw[batch["ref_row"][b]]), ""))
                if batch["ind_r1"].numel():
                    ind = combine_haplotypes(raw[batch["ind_r1"]], raw[batch["ind_r2"]], hap_combine)
                    for b, s, p in zip(batch["ind_gene"].tolist(), batch["ind_sample"].tolist(), ind.tolist(),
                                       strict=True):
                        g = int(batch["genes"][b])
                        y = float(data.y_ind[g, s]) if data.y_ind is not None else float("nan")
                        ind_rows.append((data.gene_ids[g], data.samples[s], "both", data.split[g], y, float(p),
                                         data.sample_split[s]))
    finally:
        model.train(was_training)
    return pd.DataFrame(gene_rows + ind_rows, columns=COLUMNS)


def _write_table(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        elif path.suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_csv(tmp, sep="\t", index=False)


def scores(df: pd.DataFrame) -> dict[str, Any]:
    """Gene-level Spearman per split; with individual rows, the median per-gene Spearman per (gene split,
    individual split)."""
    out: dict[str, Any] = {}
    genes = df[df["sample"] == ""]
    for split, g in genes.groupby("split"):
        ok = g["y_true"].notna()
        rho = spearman(g.loc[ok, "y_pred"], g.loc[ok, "y_true"]) if ok.sum() >= 3 else float("nan")
        out[f"{split}_spearman"] = None if not np.isfinite(rho) else rho
    ind = df[(df["sample"] != "") & df["y_true"].notna()]
    if len(ind):
        table: dict[str, dict[str, Any]] = {}
        for (split, sample_split), part in ind.groupby(["split", "sample_split"]):
            rhos = per_gene_spearman(part)
            table.setdefault(split, {})[f"{sample_split}_individuals"] = (
                float(rhos["rho"].median()) if len(rhos) else None)
        out["individual_spearman_median"] = table
    return out


def write_split_predictions(model, data: RunData, source: FeatureSource, cfg: TrainConfig, folder: Path,
                            progress: bool = True, write: bool = True) -> tuple[dict[str, Path], dict[str, Any]]:
    """``folder/{split}.parquet`` for every split, with individual rows per ``cfg.predict_individuals`` (default:
    the held-out individuals whose haplotypes are in the store); returns the paths and :func:`scores` of all rows.
    ``write=False`` predicts without writing (the other ranks of a sharded LLM, which must run the same passes)."""
    individuals = None
    if data.has_individuals and cfg.predict_individuals != "none":
        individuals = data.samples_in("test") if cfg.predict_individuals == "test" else list(range(len(data.samples)))
    paths, frames = {}, []
    for split in ("train", "val", "test"):
        genes = data.genes_in(split)
        if not genes:
            continue
        df = predict_frame(model, data, source, genes, individuals, cfg.hap_combine, cfg.batch_size, progress)
        paths[split] = folder / f"{split}.parquet"
        if write:
            _write_table(df, paths[split])
        frames.append(df)
    return paths, scores(pd.concat(frames, ignore_index=True)) if frames else {}


# ---- reloading a run -----------------------------------------------------------------------------------------------
def read_run(run: str | Path) -> tuple[TrainConfig, dict[str, Any]]:
    """(TrainConfig, resolved section) of a run folder."""
    run = Path(run)
    path = run / "config.yaml"
    if not path.exists():
        raise GtaInputError("not a run folder (no config.yaml)", path=run, hint="pass --run runs/NAME of gta train")
    return load_config(path), (yaml.safe_load(path.read_text()) or {}).get("resolved", {})


def load_run_model(run: str | Path, d_feat: int | None = None, n_bins: int | None = None, llm=None,
                   llm_dtype: torch.dtype = torch.float32, mirror_average: bool | None = None):
    """(model with the run's best weights, TrainConfig, resolved, model metadata). Loads the run's LLM (in
    ``llm_dtype``) and refuses one whose sha256 differs from the recorded one. ``mirror_average``: False predicts
    each window once, in half the time (None: the run's ``model.mirror_average``; True is refused for a run never
    trained on mirrored windows, by TrainConfig.validate's rule)."""
    from gta.llm_loader import llm_identity, load_llm
    from gta.model.gta import build_model

    run = Path(run)
    cfg, resolved = read_run(run)
    if mirror_average is not None:
        cfg.model = dataclasses.replace(cfg.model, mirror_average=mirror_average)
        cfg.validate(run / "config.yaml")
    if llm is None:
        layers = 1 if cfg.model.backbone == "none" else cfg.model.llm_layers
        llm = load_llm(cfg.model.llm, num_layers=layers, dtype=llm_dtype)
    want = (resolved.get("llm") or {}).get("sha256")
    got = llm_identity(llm)["sha256"]
    if want and got != want:
        raise GtaInputError(f"the LLM {cfg.model.llm!r} (sha256 {got[:12]}) is not the one the run was trained "
                            f"with (sha256 {want[:12]})", path=run / "config.yaml",
                            hint="use the same LLM file as in training")
    attrs = (resolved.get("store") or {}).get("attrs", {})
    for name, given in (("n_features", d_feat), ("n_bins", n_bins)):
        if given is not None and name in attrs and int(attrs[name]) != int(given):
            raise GtaInputError(f"the features have {name}={given} but the run was trained with {attrs[name]}",
                                path=run / "config.yaml", hint="extract features with the run's encoder settings")
    d_feat = int(attrs["n_features"]) if d_feat is None else d_feat
    n_bins = int(attrs["n_bins"]) if n_bins is None else n_bins
    model = build_model(cfg.model, d_feat, n_bins, llm=llm)
    meta = load_trainable(run / MODEL_FILE, model)
    return model, cfg, resolved, meta


def prediction_data(dataset, store, meta: dict[str, Any], with_individuals: bool) -> RunData:
    """RunData for prediction: every gene of the store that the data set knows (expression optional)."""
    by_id = {g.gene_id: g for g in dataset.genes}
    done = store.ref_done_mask() if hasattr(store, "ref_done_mask") else np.ones(len(store.gene_ids), bool)
    gene_ids = [g for g, ok in zip(store.gene_ids, done, strict=True) if ok and g in by_id]
    if not gene_ids:
        raise GtaInputError("no gene of the feature store is in the data set's gene table",
                            path=getattr(store, "path", None), hint="use the store extracted for this --data")
    splits = dataset.gene_splits
    expr = dataset.expression.for_genes([by_id[g] for g in gene_ids]) if dataset.expression is not None else None
    values = (expr.reindex(gene_ids).to_numpy(float) if expr is not None
              else np.full((len(gene_ids), 0), np.nan))
    with np.errstate(all="ignore"):
        y_gene = np.nanmean(values, axis=1) if values.shape[1] else np.full(len(gene_ids), np.nan)
    data = RunData(gene_ids=gene_ids, split=[splits.get(g, "test") for g in gene_ids], y_gene=y_gene,
                   target_mean=float(meta["target_mean"]), target_std=float(meta["target_std"]))
    if with_individuals:
        samples = list(getattr(store, "samples", None) or [])
        if not samples:
            raise GtaInputError("the feature store holds no personal haplotypes", path=getattr(store, "path", None),
                                hint="extract them with gta extract ... --samples all, or drop --samples")
        try:
            train, _ = dataset.individual_splits()
        except GtaInputError:
            train = []
        train_set = set(train)
        data.samples = samples
        data.sample_split = ["train" if s in train_set else "test" for s in samples]
        cols = [str(c) for c in expr.columns] if expr is not None else []
        data.y_ind = np.full((len(gene_ids), len(samples)), np.nan)
        for j, s in enumerate(samples):
            if s in cols:
                data.y_ind[:, j] = values[:, cols.index(s)]
    return data


def _gene_indices(dataset, store, data: RunData, genes: list[str] | None) -> list[int]:
    """Indices into ``data`` of the asked genes (ids or symbols; all when None), refusing one without features."""
    if genes is None:
        return list(range(len(data.gene_ids)))
    index = {g: i for i, g in enumerate(data.gene_ids)}
    rows = []
    for query in genes:
        gene = dataset.gene(query)
        if gene.gene_id not in index:
            raise GtaInputError(f"gene {gene.gene_id} ({gene.symbol}) has no features in the store",
                                path=getattr(store, "path", None), hint=f"run gta extract --genes {gene.gene_id} first")
        rows.append(index[gene.gene_id])
    return list(dict.fromkeys(rows))


def _sample_indices(store, data: RunData, samples: list[str]) -> list[int]:
    """Indices into ``data.samples`` of the asked individuals, refusing any the store lacks (before predicting)."""
    index = {s: i for i, s in enumerate(data.samples)}
    missing = [s for s in samples if s not in index]
    if missing:
        raise GtaInputError(f"sample {missing[0]!r} is not an individual of the feature store "
                            f"({len(missing)} of {len(samples)} asked for are not)", path=getattr(store, "path", None),
                            hint="extract its haplotypes first (gta extract -s ...), or use -s all")
    return list(dict.fromkeys(index[s] for s in samples))


def _run_prompts(run: Path, dataset, gene_ids: list[str], cfg: TrainConfig, progress: bool = True) -> dict[str, str]:
    saved = read_prompts_file(run / PROMPTS_FILE).get("prompts", {})
    if set(gene_ids) <= set(saved):
        return {g: saved[g] for g in gene_ids}
    if cfg.shuffle_prompts:
        log.warning("the run used shuffled prompts; genes it never saw get shuffled prompts among themselves")
    return run_prompts(dataset, gene_ids, folder=None, shuffle=cfg.shuffle_prompts, seed=cfg.seed,
                       progress=progress, template=cfg.prompt_template)


def launched_ranks() -> tuple[int, int]:
    """(rank, world size) of a ``torchrun`` launch ($RANK, $WORLD_SIZE); (0, 1) alone. Only torchrun counts
    ($TORCHELASTIC_RUN_ID): Lightning's DDP launcher leaves $WORLD_SIZE set in the process that trained, and a
    later prediction there is a single process."""
    env = os.environ
    if "TORCHELASTIC_RUN_ID" not in env:
        return 0, 1
    try:
        return int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1))
    except ValueError:
        raise GtaInputError("RANK and WORLD_SIZE must be integers",
                            hint="launch with torchrun, or unset them") from None


def predict(run: str | Path, manifest, features, out: str | Path | None = None, individuals: bool = False,
            batch_size: int | None = None, llm=None, progress: bool = True, device: str = "cpu",
            genes: list[str] | None = None, samples: list[str] | None = None,
            mirror_average: bool | None = None) -> pd.DataFrame:
    """Predict with the run ``run`` on ``manifest`` (path or Dataset) and ``features`` (path or FeatureStore);
    write the table to ``out`` (.tsv, .csv or .parquet) when given; return it. ``individuals``: also every
    individual of the store; ``samples``: only these individuals; ``genes`` (ids or symbols): only these genes
    (default: every gene of the store). ``mirror_average``: False predicts each window once, in half the time
    (None: the run's ``model.mirror_average``). On a GPU (``device`` cuda or auto) a run trained bf16-mixed is run the
    same way: frozen LLM weights in bf16, under bf16 autocast.

    Under ``torchrun`` with W > 1 processes the frozen LLM's decoder is sharded across them (as in training with
    ``strategy: fsdp``), for an LLM that fits no single device: every rank runs every batch (the layer passes are
    collectives), one GPU per rank ($LOCAL_RANK), and rank 0 writes the table."""
    rank, world = launched_ranks()
    device = resolve_device(device)
    if world == 1:
        return _predict(run, manifest, features, out, individuals, batch_size, llm, progress, device,
                        genes=genes, samples=samples, mirror_average=mirror_average)
    import torch.distributed as dist

    if device.startswith("cuda"):  # one GPU per rank: cuda:$LOCAL_RANK (cuda:0 where each sees just its own)
        device = choose_device("auto", True, os.environ, torch.cuda.device_count())
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    try:
        table = _predict(run, manifest, features, out if rank == 0 else None, individuals, batch_size, llm,
                         progress and rank == 0, device, shard=True, genes=genes, samples=samples,
                         mirror_average=mirror_average)
        dist.barrier()  # leave together: a rank exiting while its peer's gloo threads still talk aborts the peer
        return table
    finally:
        dist.destroy_process_group()


def _predict(run, manifest, features, out, individuals: bool, batch_size: int | None, llm, progress: bool,
             device: str, shard: bool = False, genes: list[str] | None = None,
             samples: list[str] | None = None, mirror_average: bool | None = None) -> pd.DataFrame:
    from gta.features.store import FeatureStore
    from gta.io.dataset import open_dataset

    run = Path(run)
    cfg, resolved = read_run(run)
    bf16 = device.startswith("cuda") and resolved.get("precision") == "bf16-mixed"
    attrs = (resolved.get("store") or {}).get("attrs", {})
    if isinstance(features, str | Path):
        store = FeatureStore.open(features, expect={k: attrs[k] for k in STORE_CHECKED if k in attrs})
    else:
        store = features
    dataset = open_dataset(manifest) if isinstance(manifest, str | Path) else manifest
    dtype = torch.bfloat16 if bf16 and resolved.get("llm_dtype") == "bfloat16" else torch.float32
    model, cfg, resolved, meta = load_run_model(run, store.n_features, store.n_bins, llm=llm, llm_dtype=dtype,
                                                mirror_average=mirror_average)
    if shard:
        model.shard_llm(device.split(":")[0])
    model.to(device)
    data = prediction_data(dataset, store, meta, individuals or samples is not None)
    rows = _gene_indices(dataset, store, data, genes)
    people = _sample_indices(store, data, samples) if samples is not None else (
        list(range(len(data.samples))) if individuals else None)
    if cfg.model.use_prompt:
        data.prompts = _run_prompts(run, dataset, [data.gene_ids[i] for i in rows], cfg, progress)
    source = FeatureSource(store, cfg.feature_cache_mb)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
        df = predict_frame(model, data, source, rows, people, cfg.hap_combine, batch_size or cfg.batch_size,
                           progress)
    if out is not None:
        _write_table(df, Path(out))
    return df
