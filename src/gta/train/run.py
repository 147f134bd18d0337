"""``gta.train.train``: one training run into ``runs/NAME/`` (resumable), with Lightning doing the loop.

Run folder::

    config.yaml          TrainConfig + ``resolved``: data set fingerprint, store attrs + hash, LLM identity, seeds,
                         versions, speed levers, split sizes, target statistics
    prompts.json         every gene's prompt (computed once)
    model.safetensors    trainable parameters + feature normalisation of the best epoch (by val Spearman)
    state.safetensors    optimiser, loop counters, early stopping, RNG: saved at every epoch end (atomically) for
    state.json           ``--resume``
    metrics.csv          Lightning CSVLogger (TensorBoard events too when tensorboard is installed)
    predictions/{train,val,test}.parquet   gene_id, sample, haplotype, split, y_true, y_pred (+ sample_split)
    summary.json         val/test Spearman, wall time, peak RSS, throughput, epochs
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import yaml
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import Checkpoint, EarlyStopping

from gta import __version__
from gta.atomic import atomic_write_text
from gta.errors import GtaInputError
from gta.hashing import sha256_json
from gta.memory import peak_rss_mb
from gta.provenance import machine, source_commit
from gta.train.checkpoint import MODEL_FILE, STATE_JSON, SafetensorsCheckpointIO, save_trainable
from gta.train.config import TrainConfig, default_config, llm_dtype, load_config, resolve_precision, speed_levers
from gta.train.data import FeatureSource, GTADataModule, RunData, build_run_data, fit_feature_norm
from gta.train.ema import TrainableEMA
from gta.train.module import GTAModule
from gta.train.prompts import run_prompts

log = logging.getLogger(__name__)
# below this many training genes GTA may not beat a ridge (the learning curve's 250-gene point: 162 of them)
FEW_TRAINING_GENES = 400


class _NoAdvert(logging.Filter):
    """Drops Lightning's advert for its cloud logger, printed at every Trainer start (a demo trains a dozen)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in str(record.msg)


for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
    logging.getLogger(_name).addFilter(_NoAdvert())
STORE_IDENTITY = ("encoder", "encoder_config", "weights_hash", "dataset_hash", "geometry", "dtype", "n_bins",
                  "n_features", "gta_version")
# settings that may change between an interrupted run and its --resume (hardware and the epoch budget)
RESUMABLE_CHANGES = ("max_epochs", "devices", "num_nodes", "accelerator", "strategy", "num_workers", "log_every",
                     "feature_cache_mb")

_EXPECTED_WARNINGS = (  # Lightning notices that do not apply here
    ".*Experiment logs directory .* exists and is not empty.*",  # the run folder holds config/prompts; CSV appends
    ".*module\\(s\\) in eval mode at the start of training.*",  # the frozen LLM stays in eval mode on purpose
    ".*does not have many workers.*",  # features are read from memory; workers are a config option
    ".*isinstance\\(treespec, LeafSpec\\).*",  # lightning 2.6 vs torch 2.13 deprecation, nothing to act on
    # epoch means of the training loss parts are rank 0's own diagnostic (a part a rank never saw in an epoch would
    # hang a sync); the monitored validation metrics are gathered from every rank
    ".*It is recommended to use `self.log\\('train_loss_.*sync_dist=True.*",
)


@dataclass
class RunResult:
    """What :func:`train` returns (on rank 0; other ranks get ``summary = {}``)."""

    out: Path
    config: TrainConfig
    summary: dict[str, Any] = field(default_factory=dict)
    predictions: dict[str, Path] = field(default_factory=dict)
    model: Any = None


def open_inputs(manifest, features):
    """(Dataset, FeatureStore) from paths, or the objects themselves when already opened."""
    from gta.features.store import FeatureStore
    from gta.io.dataset import open_dataset

    dataset = open_dataset(manifest) if isinstance(manifest, str | Path) else manifest
    store = FeatureStore.open(features) if isinstance(features, str | Path) else features
    return dataset, store


def store_identity(store) -> dict[str, Any]:
    attrs = dict(getattr(store, "attrs", {}) or {})
    digest = sha256_json(attrs)
    return {"attrs": {k: attrs[k] for k in STORE_IDENTITY if k in attrs}, "attrs_sha256": digest,
            "path": str(getattr(store, "path", ""))}


def _check_schedule_length(cfg: TrainConfig, max_epochs: int, saved: Path) -> None:
    """A cosine decay or a warm-up is laid out over the run's ``max_epochs`` when it starts: resuming with another
    length would change the learning rate of the steps already taken, so only a constant rate can be extended."""
    if max_epochs != cfg.max_epochs and cfg.schedule_spans_run:
        raise GtaInputError(f"cannot change max_epochs from {cfg.max_epochs} to {max_epochs} when resuming: the run's "
                            f"learning-rate schedule ({cfg.lr_schedule}, warm-up {cfg.warmup_frac:g}) was laid out "
                            f"over {cfg.max_epochs} epochs", path=saved,
                            hint="resume with the run's max_epochs, or start a new run with more epochs")


def _resolve_config(out: Path, config, resume: bool, overrides: dict[str, Any]) -> TrainConfig:
    saved = out / "config.yaml"
    if isinstance(config, str | Path):
        config = load_config(config)
    if resume:
        if not saved.exists():
            raise GtaInputError("nothing to resume: the run folder has no config.yaml", path=out,
                                hint="start the run without --resume")
        cfg = load_config(saved)
        if config is not None:
            a = {k: v for k, v in config.to_dict().items() if k not in RESUMABLE_CHANGES}
            b = {k: v for k, v in cfg.to_dict().items() if k not in RESUMABLE_CHANGES}
            if a != b:
                diff = sorted(k for k in a if a[k] != b.get(k))
                raise GtaInputError(f"--config differs from the run's config.yaml in {diff}", path=saved,
                                    hint="resume without --config, or start a new run with another --out")
    else:
        if (out / STATE_JSON).exists() or (out / MODEL_FILE).exists():
            raise GtaInputError("the run folder already holds a run", path=out,
                                hint="pass --resume to continue it, or another --out for a new run")
        cfg = config if config is not None else default_config()
    changes = {k: v for k, v in overrides.items() if v is not None}
    if resume:
        fixed = sorted(k for k in changes if k not in RESUMABLE_CHANGES and changes[k] != getattr(cfg, k))
        if fixed:
            raise GtaInputError(f"cannot change {fixed} when resuming", path=saved,
                                hint="start a new run with another --out")
        _check_schedule_length(cfg, changes.get("max_epochs", cfg.max_epochs), saved)
    return dataclasses.replace(cfg, **changes) if changes else cfg


def _check_same_inputs(out: Path, resolved: dict[str, Any]) -> None:
    """--resume must see the data set, feature store and LLM the run started with."""
    saved = (yaml.safe_load((out / "config.yaml").read_text()) or {}).get("resolved", {})
    for what, path in (("data set", ("dataset", "fingerprint")), ("feature store", ("store", "attrs_sha256")),
                       ("LLM", ("llm", "sha256"))):
        old, new = saved.get(path[0], {}).get(path[1]), resolved[path[0]][path[1]]
        if old is not None and old != new:
            raise GtaInputError(f"the {what} differs from the one this run started with", path=out / "config.yaml",
                                hint="resume with the same --data, --features and LLM, or start a new run")


def _strategy(cfg: TrainConfig) -> str:
    """Lightning strategy name. ``fsdp`` runs as DDP for the trainable part (a few million weights, replicated) while
    :meth:`GTAModule.configure_model` shards the frozen LLM's decoder layers across the ranks (FSDP2): the LLM is
    what does not fit on one device, and its weights get no gradient to reduce."""
    return "ddp" if cfg.strategy == "fsdp" else cfg.strategy


def _deterministic(cfg: TrainConfig) -> bool | str:
    """Deterministic algorithms on CPU; on GPU only a warning where no deterministic kernel exists."""
    if not cfg.deterministic:
        return False
    return True if cfg.accelerator == "cpu" else "warn"


def _loggers(out: Path, resume: bool = False) -> list:
    from lightning.pytorch.loggers import CSVLogger

    loggers: list = [CSVLogger(save_dir=str(out), name="", version="")]
    if resume and rank_zero_only.rank == 0:
        _keep_csv_history(loggers[0], out)
    try:
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=str(out), name="tensorboard", version=""))
    except ImportError:
        pass
    return loggers


def _keep_csv_history(logger, out: Path) -> None:
    """On --resume, keep ``metrics.csv``'s rows of the steps the saved state holds (Lightning's CSV writer deletes the
    file when it starts) and drop those of an epoch cut short by a crash, which is trained again."""
    path = out / "metrics.csv"
    if not path.exists():
        return
    done = json.loads((out / STATE_JSON).read_text())["tree"]["global_step"]
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = [r for r in reader if r.get("step") not in (None, "") and int(float(r["step"])) < done]
        header = sorted(reader.fieldnames or [])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_EXPECTED_WARNINGS[0])
        writer = logger.experiment  # its start deletes the file
    buf = io.StringIO()
    table = csv.DictWriter(buf, fieldnames=header)
    table.writeheader()
    table.writerows(rows)
    atomic_write_text(path, buf.getvalue())
    writer.metrics_keys = header  # the writer appends under this header (and rewrites the file on new columns)


class RunCheckpoint(Checkpoint):
    """At every training epoch end (after validation): the best model to ``model.safetensors`` when the monitored
    metric improved, then the resumable state to ``state.safetensors`` + ``state.json``."""

    def __init__(self, out: Path, monitor: str, norm: tuple[torch.Tensor, torch.Tensor], meta: dict[str, Any],
                 ema: TrainableEMA | None = None) -> None:
        self.out, self.monitor, self.norm, self.meta, self.ema = out, monitor, norm, meta, ema
        self.best: float = float("-inf")
        self.best_epoch: int = -1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None and float(value) > self.best:
            self.best, self.best_epoch = float(value), int(trainer.current_epoch)
            if trainer.is_global_zero:
                meta = {**self.meta, "epoch": self.best_epoch, self.monitor: self.best}
                with self.ema.applied(pl_module) if self.ema else nullcontext():  # the weights validation judged
                    save_trainable(self.out / MODEL_FILE, pl_module.model, *self.norm, meta)
        trainer.save_checkpoint(self.out / STATE_JSON, weights_only=False)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = float(state_dict["best"])
        self.best_epoch = int(state_dict["best_epoch"])


@dataclass
class PreparedRun:
    """A run ready to fit: its folder and resolved config, the data, the model (feature normalisation set) and what
    ``config.yaml`` records under ``resolved``."""

    out: Path
    cfg: TrainConfig
    resume: bool
    progress: bool
    data: RunData
    source: FeatureSource
    model: Any  # gta.model.gta.GTA
    norm: tuple[torch.Tensor, torch.Tensor]  # feature mean, std (train-split statistics)
    identity: dict[str, Any]  # the LLM's provenance (gta.llm_loader.llm_identity)
    resolved: dict[str, Any]


@dataclass
class FitOutcome:
    """What fitting leaves for the finish: the Lightning objects, the best-epoch checkpoint and the fit's wall time."""

    module: GTAModule
    trainer: L.Trainer
    checkpoint: RunCheckpoint
    seconds: float


def train(manifest, features, out: str | Path, config: TrainConfig | str | Path | None = None, *,
          resume: bool = False, task: str | None = None, devices: int | None = None, accelerator: str | None = None,
          strategy: str | None = None, precision: str | None = None, max_epochs: int | None = None,
          seed: int | None = None, llm=None, progress: bool = True) -> RunResult:
    """Train GTA on ``manifest`` (path or opened Dataset) with features ``features`` (path or FeatureStore) into the
    run folder ``out``. ``config``: a TrainConfig, a YAML path, or None for :func:`default_config`; keyword options
    override it. ``resume``: continue from the folder's ``state.*``. ``llm``: an already loaded FrozenLLM matching
    ``config.model.llm`` (tests pass a tiny one)."""
    t0 = time.perf_counter()
    overrides = {"task": task, "devices": devices, "accelerator": accelerator, "strategy": strategy,
                 "precision": None if precision is None else str(precision), "max_epochs": max_epochs, "seed": seed}
    run = prepare_run(manifest, features, Path(out), config, resume, overrides, llm, progress)
    fitted = fit_run(run)
    return finish_run(run, fitted, t0)


def prepare_run(manifest, features, out: Path, config: TrainConfig | str | Path | None, resume: bool,
                overrides: dict[str, Any], llm, progress: bool) -> PreparedRun:
    """Resolve the config, open the inputs, build the targets, prompts and model, and write ``config.yaml``."""
    from gta.llm_loader import llm_identity, load_llm
    from gta.model.gta import build_model

    cfg = _resolve_config(out, config, resume, overrides)
    is_zero = rank_zero_only.rank == 0
    if is_zero:
        out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    dataset, store = open_inputs(manifest, features)
    data = build_run_data(dataset, store, cfg)
    if not data.genes_in("val"):
        raise GtaInputError("no validation genes have features and expression; early stopping needs some",
                            path=dataset.manifest.path, hint="set splits.val_chroms (or val_genes) in the manifest")
    n_train = len(data.genes_in("train"))
    if is_zero and n_train < FEW_TRAINING_GENES:
        log.warning("%d training genes: on the simulated benchmark GTA was at best level with the Ridge (distance "
                    "bands) baseline at 162 training genes and above it from ~650 (benchmarks/results/"
                    "learning_curve.md); compare them on your data with `gta benchmark`", n_train)
    if cfg.eqtl_weight:
        from gta.train.eqtl import EQTL_TARGETS, fit_variant_targets

        data.eqtl = fit_variant_targets(dataset, store, data, cache=out / EQTL_TARGETS, progress=progress and is_zero,
                                        save=is_zero)
        log.info("eQTL targets: %s", data.eqtl.summary())
    if cfg.model.use_prompt:
        data.prompts = run_prompts(dataset, data.gene_ids, folder=out, shuffle=cfg.shuffle_prompts, seed=cfg.seed,
                                   progress=progress and is_zero, save=is_zero, template=cfg.prompt_template)

    if llm is None:
        layers = 1 if cfg.model.backbone == "none" else cfg.model.llm_layers
        llm = load_llm(cfg.model.llm, num_layers=layers, dtype=llm_dtype(cfg))
    identity = llm_identity(llm)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, store.n_features, store.n_bins, llm=llm)
    source = FeatureSource(store, cfg.feature_cache_mb)
    mean, std = fit_feature_norm(source, [data.gene_ids[i] for i in data.genes_in("train")], cfg.feature_norm_genes,
                                 cfg.seed)
    model.set_feature_norm(torch.from_numpy(mean), torch.from_numpy(std))
    if model.reads_prompt:
        fit_annotation_prior(model, data)

    resolved = _resolved(cfg, dataset, store, data, model, identity, llm.dtype)
    if resume:
        _check_same_inputs(out, resolved)
    if is_zero:
        atomic_write_text(out / "config.yaml", yaml.safe_dump({**cfg.to_dict(), "resolved": resolved},
                                                               sort_keys=False))
    return PreparedRun(out=out, cfg=cfg, resume=resume, progress=progress, data=data, source=source, model=model,
                       norm=(torch.from_numpy(mean), torch.from_numpy(std)), identity=identity, resolved=resolved)


def fit_annotation_prior(model, data: RunData) -> float:
    """Fit the model's prompt readout before training: a ridge regression (alpha by leave-one-out over a grid) from
    the train genes' standardised prompt summaries to their standardised gene-level targets, then frozen in the
    model (``GTA.set_prompt_readout``). The sequence part learns what the annotation does not explain. Returns the
    alpha chosen."""
    from sklearn.linear_model import RidgeCV

    train = data.genes_in("train")
    with torch.no_grad():  # computed once per prompt and kept by the LLM, as training will read them again
        summaries = model.prompt_summaries([data.prompts[data.gene_ids[i]] for i in train]).double().numpy()
    mean, std = summaries.mean(0), summaries.std(0)
    std = np.where(std > 1e-6, std, 1.0)  # the model's own floor (gta.model.gta._floored): it stores this std as is
    y = np.asarray(data.standardise(data.y_gene[train]), np.float64)
    ridge = RidgeCV(alphas=np.logspace(-1, 5, 25)).fit((summaries - mean) / std, y)
    coef, intercept = np.atleast_2d(ridge.coef_), np.atleast_1d(ridge.intercept_)
    model.set_prompt_readout(*(torch.from_numpy(a) for a in (mean, std, coef, intercept)))
    log.info("annotation prior: ridge alpha %.3g on %d train genes", ridge.alpha_, len(train))
    return float(ridge.alpha_)


def _resolved(cfg: TrainConfig, dataset, store, data: RunData, model, identity: dict[str, Any],
              llm_dtype_: torch.dtype) -> dict[str, Any]:
    """The ``resolved`` section of ``config.yaml``: what the run actually read and used, as plain types."""
    resolved = {
        "dataset": {"path": str(getattr(dataset.manifest, "path", "")), "fingerprint": dataset.fingerprint()},
        "store": store_identity(store),
        "llm": identity,
        "seeds": {"seed": cfg.seed, "python_hash_seed": os.environ.get("PYTHONHASHSEED")},
        "versions": {"gta": __version__, "commit": source_commit(dirty=True), "torch": torch.__version__,
                     "lightning": L.__version__},
        "speed_levers": speed_levers(cfg),
        "precision": resolve_precision(cfg),
        "llm_dtype": str(llm_dtype_).removeprefix("torch."),
        "data": data.summary(),
        "n_trainable": int(model.n_trainable()),
        "monitor": "val_spearman",
    }
    return json.loads(json.dumps(resolved, default=str))  # plain types only in config.yaml


def fit_run(run: PreparedRun) -> FitOutcome:
    """Lightning's loop over the prepared run: best model and resumable state saved at every epoch end."""
    cfg, out = run.cfg, run.out
    eqtl_var = run.data.eqtl.mean_square if run.data.eqtl is not None else 1.0
    module = GTAModule(run.model, cfg, run.data.target_mean, run.data.target_std, run.data.centred_var, eqtl_var)
    datamodule = GTADataModule(run.data, run.source, cfg)
    meta = {"target_mean": run.data.target_mean, "target_std": run.data.target_std, "task": cfg.task,
            "llm_sha256": run.identity["sha256"]}
    ema = TrainableEMA(cfg.ema_epochs) if cfg.ema_epochs else None
    checkpoint = RunCheckpoint(out, "val_spearman", run.norm, meta, ema)
    callbacks: list = [checkpoint] + ([ema] if ema else [])
    if cfg.patience > 0:
        callbacks.insert(0, EarlyStopping(monitor="val_spearman", mode="max", patience=cfg.patience,
                                          min_delta=cfg.min_delta, check_finite=False))
    trainer = L.Trainer(
        accelerator=cfg.accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes, strategy=_strategy(cfg),
        precision=resolve_precision(cfg), max_epochs=cfg.max_epochs, callbacks=callbacks,
        logger=_loggers(out, run.resume), enable_checkpointing=True, plugins=[SafetensorsCheckpointIO()],
        deterministic=_deterministic(cfg),
        gradient_clip_val=cfg.gradient_clip, log_every_n_steps=cfg.log_every, use_distributed_sampler=False,
        num_sanity_val_steps=0, enable_progress_bar=run.progress, enable_model_summary=False,
        default_root_dir=str(out),
    )
    fit_start = time.perf_counter()
    deterministic = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        with warnings.catch_warnings():
            for text in _EXPECTED_WARNINGS:
                warnings.filterwarnings("ignore", message=text)
            trainer.fit(module, datamodule=datamodule, ckpt_path=str(out / STATE_JSON) if run.resume else None)
    finally:  # Trainer(deterministic=...) switches a process-wide flag: give the caller's setting back
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
    return FitOutcome(module, trainer, checkpoint, time.perf_counter() - fit_start)


def finish_run(run: PreparedRun, fitted: FitOutcome, t0: float) -> RunResult:
    """Predict every split with the best model and write ``summary.json`` (rank 0; every rank predicts when the LLM
    is sharded)."""
    trainer, model = fitted.trainer, run.model
    if trainer.interrupted:  # Ctrl-C: the last finished epoch is saved; --resume continues from it
        raise KeyboardInterrupt
    result = RunResult(out=run.out, config=run.cfg, model=model)
    sharded = model.llm.sharded  # every rank takes part in each forward pass: all predict, rank 0 writes
    if not (trainer.is_global_zero or sharded):
        return result

    from gta.train.checkpoint import load_trainable
    from gta.train.predict import write_split_predictions

    if sharded:
        trainer.strategy.barrier("best model written")
    load_trainable(run.out / MODEL_FILE, model)
    model.to(trainer.strategy.root_device)
    result.predictions, scores = write_split_predictions(model, run.data, run.source, run.cfg,
                                                         run.out / "predictions",
                                                         progress=run.progress and trainer.is_global_zero,
                                                         write=trainer.is_global_zero)
    if not trainer.is_global_zero:
        return result
    summary = _summary(run, fitted, scores, t0)
    atomic_write_text(run.out / "summary.json", json.dumps(summary, indent=1, default=float))
    result.summary = summary
    return result


def _summary(run: PreparedRun, fitted: FitOutcome, scores: dict[str, Any], t0: float) -> dict[str, Any]:
    """``summary.json``: the scores, the best epoch, times, throughput and memory of a finished run."""
    module, trainer, checkpoint, model, cfg = fitted.module, fitted.trainer, fitted.checkpoint, run.model, run.cfg
    epochs_run = len(module.epoch_times)
    summary = {
        **scores,
        "best_epoch": checkpoint.best_epoch,
        "best_val_spearman": checkpoint.best,
        "epochs": int(trainer.current_epoch),
        "stopped_early": bool(trainer.should_stop and trainer.current_epoch < cfg.max_epochs),
        "wall_time_s": time.perf_counter() - t0,
        "fit_time_s": fitted.seconds,
        "epoch_times_s": list(module.epoch_times),
        "mean_epoch_s": float(np.mean(module.epoch_times)) if module.epoch_times else None,
        "genes_per_s": module.genes_seen / max(sum(module.epoch_times), 1e-9) if epochs_run else None,
        "windows_per_s": module.windows_seen / max(sum(module.epoch_times), 1e-9) if epochs_run else None,
        "peak_rss_mb": peak_rss_mb(),
        "n_trainable": int(model.n_trainable()),
        "data": run.data.summary(),
        "task": cfg.task,
        "speed_levers": run.resolved["speed_levers"],
        "machine": machine(),  # one seed's numbers repeat bit for bit on one CPU model, not across them
    }
    if model.llm.sharded:
        local, full = model.llm.decoder_numel()
        summary["llm_sharding"] = {"ranks": trainer.world_size, "decoder_params_per_rank": local,
                                   "decoder_params": full}
    return summary


def summarise_run(result: RunResult) -> str:
    s = result.summary
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    return (f"run {result.out}: val Spearman {fmt(s.get('val_spearman'))}, test Spearman "
            f"{fmt(s.get('test_spearman'))}, best epoch {s.get('best_epoch')}, {s.get('epochs')} epochs, "
            f"{fmt(s.get('mean_epoch_s'))} s/epoch, peak RSS {s.get('peak_rss_mb', 0):.0f} MB")


__all__ = ["RunResult", "train", "RunData", "summarise_run"]
