"""`TrainConfig`: everything a training run needs besides its data, as a dataclass with a YAML round trip.

The model's own settings are a nested :class:`gta.model.gta.GTAConfig` under ``model:``. :func:`default_config`
is the configuration ``gta train`` uses without ``--config``: sized for the embedded SmolLM2 on a CPU, with the
speed levers pulled that :func:`speed_levers` lists (and ``config.yaml`` records).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from gta.atomic import atomic_write_text
from gta.errors import GtaInputError
from gta.model.gta import GTAConfig
from gta.model.prompt import check_template
from gta.yaml_input import read_yaml, refuse_unknown, typed_fields

TASKS = ("cross-gene", "cross-individual", "both")
STRATEGIES = ("auto", "ddp", "fsdp")
ACCELERATORS = ("cpu", "gpu", "auto")
PRECISIONS = ("auto", "32", "bf16-mixed", "16-mixed")
LR_SCHEDULES = ("constant", "cosine")
HAP_COMBINES = ("logmeanexp", "mean")


@dataclass
class TrainConfig:
    """A training run's settings (``model`` is the GTA architecture; the rest is optimisation and data use).

    Cross-individual loss (``task`` cross-individual or both): per gene in a batch, the predicted individual values
    (two haplotypes combined by ``hap_combine``) are split into their mean over the sampled individuals and the
    per-gene centred deviations; the loss is MSE(gene means) + ``centred_weight`` * MSE(centred values) / (pooled
    within-gene variance of the training targets). Without the centred term the gene mean dominates the loss and
    the small per-individual differences give almost no gradient.
    """

    model: GTAConfig = field(default_factory=GTAConfig)
    task: str = "cross-gene"
    lr: float = 1e-3
    weight_decay: float = 0.01
    # "cosine": decay to 0 over max_epochs after the warm-up; against a constant rate +0.031 cross-gene on bench over
    # 4 seeds (2 better, 2 no difference), variant effects +0.017 (mixed; docs/learning.md, entries 48-49). Its
    # length is fixed when a run starts: a resumed run cannot be given more epochs (gta.train.run), "constant" can
    lr_schedule: str = "cosine"
    warmup_frac: float = 0.05  # share of the run's optimiser steps over which the learning rate ramps up from 0
    # genes per optimiser step, summed over all devices; 32, not 8: the head's standardiser takes its statistics
    # from the batch, and at 8 the ablations collapsed to a constant in some seeds (docs/learning.md, entry 12)
    batch_size: int = 32
    scratch_lr: float = 0.1  # learning-rate factor of backbone="none"'s transformer (learning.md, entry 12)
    # 20, not 10: with the weight average (ema_epochs) validation still rises after epoch 10 (docs/learning.md, 29)
    max_epochs: int = 20
    patience: int = 3  # early stopping on validation Spearman: epochs without improvement (0 = off)
    min_delta: float = 0.0
    seed: int = 0
    max_train_examples: int | None = None  # cap on training genes (a fixed, seeded subset)
    max_individuals_per_gene: int | None = 16  # haplotype subsampling: individuals drawn per gene and step
    # validation genes are scored on at most this many training individuals, the same ones every epoch (all 320
    # of bench made validation 20x a training epoch and ran out of memory)
    max_val_individuals: int | None = 16
    centred_weight: float = 1.0
    # eQTL supervision (gta.train.eqtl): weight of the loss on the predicted ALT - REF of training genes' variants
    # against per-gene elastic-net effects fitted on the training individuals (0 = off; needs a VCF), and how many
    # of each batch gene's variants enter a step (half with a non-zero effect). Each costs one more window per gene.
    # Off by default. With 2 variants and early stopping no gain (learning.md 57); with 4, 12 epochs and patience 0,
    # variant-effect Pearson +0.07-0.08 in 3 of 3 seeds, across genes level in 2 and -0.04 in 1, ~2.5x the time (59)
    eqtl_weight: float = 0.0
    eqtl_variants: int = 2
    # augmentation: share of training genes whose windows are mirrored about the TSS each step (upstream and
    # downstream swap, distances kept); with GeM pooling +0.034-0.048 on bench in each of 3 seeds (learning.md, 20)
    mirror_augment: float = 0.5
    # evaluate and save an exponential moving average of the trainable weights over a horizon of this many epochs
    # (0 = off: the live weights; gta.train.ema). Validation no longer jumps from epoch to epoch, so early stopping
    # is not triggered by noise; with 20 epochs +0.019 on bench over 5 seeds (4 higher), importance higher in all 5
    # and variant effects in 4 (docs/learning.md, entry 29)
    ema_epochs: float = 2.0
    hap_combine: str = "logmeanexp"  # log((exp(h1) + exp(h2)) / 2), or the plain mean
    # how a training batch with individuals' rows runs: "shared", one pass without dropout for all rows; "split",
    # the reference rows with dropout and batch statistics, the haplotype rows in a second pass in eval mode
    # (the lab's design, docs/learning.md entries 43-44)
    individual_pass: str = "shared"
    feature_norm_genes: int = 2000  # training genes read to fit the per-feature mean/std
    shuffle_prompts: bool = False  # control: each gene gets another gene's annotation row
    # the prompt's text around the markers, with fields {task} {gene} {annotation} {stats} {tokens}; None = default
    prompt_template: str | None = None
    gradient_clip: float | None = 1.0
    num_workers: int = 0
    log_every: int = 10
    accelerator: str = "cpu"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "auto"  # bf16-mixed where the run uses a GPU that has bf16, else 32
    deterministic: bool = True
    feature_cache_mb: int = 1024  # features kept in memory between epochs
    predict_individuals: str = "test"  # individual rows in predictions/: held-out individuals, all, or none

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = gta_config_from_dict(self.model)
        self.precision = str(self.precision)
        self.validate()

    @property
    def schedule_spans_run(self) -> bool:
        """Whether the learning rate follows a schedule laid out over the run's ``max_epochs`` (a warm-up or a decay),
        rather than staying constant."""
        return self.lr_schedule != "constant" or bool(self.warmup_frac)

    def validate(self, path: str | Path | None = None) -> None:
        """Raise GtaInputError (naming ``path``) for values outside their allowed sets or ranges."""
        choices = {"predict_individuals": ("test", "all", "none"),
                   "task": TASKS, "strategy": STRATEGIES, "accelerator": ACCELERATORS, "precision": PRECISIONS,
                   "hap_combine": HAP_COMBINES, "lr_schedule": LR_SCHEDULES,
                   "individual_pass": ("shared", "split")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise GtaInputError(f"{name}={getattr(self, name)!r} is not allowed", path=path,
                                    hint="use one of " + ", ".join(allowed))
        for name in ("batch_size", "max_epochs", "devices", "num_nodes", "log_every"):
            if int(getattr(self, name)) < 1:
                raise GtaInputError(f"{name} must be >= 1, got {getattr(self, name)}", path=path)
        if self.lr <= 0 or self.scratch_lr <= 0:
            raise GtaInputError(f"lr and scratch_lr must be > 0, got {self.lr}, {self.scratch_lr}", path=path)
        if not 0 <= self.mirror_augment <= 1:
            raise GtaInputError(f"mirror_augment must be in [0, 1], got {self.mirror_augment}", path=path)
        if self.model.mirror_average and not self.mirror_augment:
            raise GtaInputError("model.mirror_average averages each prediction over the mirrored window, which a "
                                "run with mirror_augment 0 never sees in training", path=path,
                                hint="set mirror_augment above 0, or model.mirror_average: false")
        if not self.eqtl_weight >= 0:
            raise GtaInputError(f"eqtl_weight must be >= 0, got {self.eqtl_weight}", path=path,
                                hint="0 turns the eQTL supervision off")
        if int(self.eqtl_variants) < 1:
            raise GtaInputError(f"eqtl_variants must be >= 1, got {self.eqtl_variants}", path=path)
        if not self.ema_epochs >= 0:
            raise GtaInputError(f"ema_epochs must be >= 0, got {self.ema_epochs}", path=path,
                                hint="0 turns the average off; 2 averages over the last ~2 epochs")
        if not 0 <= self.warmup_frac < 1:
            raise GtaInputError(f"warmup_frac must be in [0, 1), got {self.warmup_frac}", path=path)
        if getattr(self.model, "n_targets", 1) != 1:
            raise GtaInputError(f"model.n_targets={self.model.n_targets}: training predicts one target (expression)",
                                path=path, hint="set model.n_targets: 1")
        if self.patience < 0 or self.num_workers < 0:
            raise GtaInputError("patience and num_workers must be >= 0", path=path)
        if self.prompt_template is not None:
            try:
                check_template(self.prompt_template)
            except ValueError as e:
                raise GtaInputError(f"prompt_template: {e}", path=path) from None

    @property
    def world_size(self) -> int:
        return int(self.devices) * int(self.num_nodes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], path: str | Path | None = None) -> TrainConfig:
        """Build from a plain mapping; unknown keys are refused with the list of known ones."""
        if not isinstance(raw, dict):
            raise GtaInputError("a training config is a YAML mapping", path=path)
        refuse_unknown(raw, {f.name for f in dataclasses.fields(cls)}, "training config key(s)", path)
        model = raw.get("model") or {}
        raw = typed_fields(cls, {k: v for k, v in raw.items() if k != "model"}, path)
        raw["model"] = gta_config_from_dict(model, path=path)
        try:
            return cls(**raw)
        except GtaInputError as e:  # the range checks of __post_init__, which does not know the file
            raise GtaInputError(e.message, path=path, line=e.line, hint=e.hint) from None
        except (TypeError, ValueError) as e:
            raise GtaInputError(f"bad training config: {e}", path=path) from None

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, self.to_yaml())


def gta_config_from_dict(raw: dict[str, Any], path: str | Path | None = None) -> GTAConfig:
    """`GTAConfig` from a mapping, refusing unknown keys (YAML turns tuples into lists; they are given back)."""
    if isinstance(raw, GTAConfig):
        return raw
    if not isinstance(raw, dict):
        raise GtaInputError("'model' must be a mapping of GTAConfig fields", path=path)
    fields = {f.name: f for f in dataclasses.fields(GTAConfig)}
    refuse_unknown(raw, fields, "model config key(s)", path)
    defaults = GTAConfig()
    values = {k: (tuple(v) if isinstance(v, list) and isinstance(getattr(defaults, k), tuple) else v)
              for k, v in typed_fields(GTAConfig, raw, path, "model.").items()}
    try:
        return dataclasses.replace(defaults, **values)
    except (TypeError, ValueError) as e:
        raise GtaInputError(f"bad model config: {e}", path=path) from None


def load_config(path: str | Path) -> TrainConfig:
    """Read a TrainConfig YAML (a run's ``config.yaml`` too: its ``resolved`` section is ignored)."""
    path = Path(path)
    raw = read_yaml(path, "training config", hint="pass --config PATH to a YAML file") or {}
    if isinstance(raw, dict):
        if "resolved" in raw and isinstance(raw.get("model"), dict):  # a run folder's config: written by a gta
            raw["model"] = {**RUN_CONFIG_BEFORE_KEYS, **raw["model"]}  # that may predate some model keys
            raw = {**RUN_CONFIG_BEFORE_TRAINING_KEYS, **raw}
        raw = {k: v for k, v in raw.items() if k != "resolved"}
    return TrainConfig.from_dict(raw, path=path)


# model keys added after runs were already being written, with the value that reproduces such a run's architecture
# (a run's config.yaml lists every key of its time, so a missing key means the run predates it)
RUN_CONFIG_BEFORE_KEYS = {"stem_channels": 0, "head_standardise": False, "align_residual": False,
                          "prompt_readout": False, "patch_pool": "sum", "mirror_average": False,
                          "promoter_bins": 0}
# the same for training keys (a resumed run goes on as it started)
RUN_CONFIG_BEFORE_TRAINING_KEYS = {"mirror_augment": 0.0, "max_val_individuals": None, "ema_epochs": 0.0}


def default_config(**overrides: Any) -> TrainConfig:
    """The default for ``gta train`` without ``--config``: embedded LLM, first 2 of its 30 layers (as good as 6
    in 2 seeds on bench at a quarter of the time; docs/learning.md, entry 9), patches of 32
    bins, 256 text prototypes mixed from the commonest 8,192 tokens (the whole 49,152-token vocabulary made a
    prototype map 6x larger and an epoch ~7x slower on 2 cores; issue #13), batches of 32 genes, up to 20 epochs
    with early stopping after 3 without improvement, judged on a moving average of the weights."""
    cfg = TrainConfig()  # the one set of defaults: TrainConfig's and GTAConfig's own
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


def speed_levers(cfg: TrainConfig, llm_total_layers: int | None = None) -> list[str]:
    """Plain-language list of the speed levers this configuration pulls (written into ``config.yaml``)."""
    m = cfg.model
    levers = []
    layers = getattr(m, "llm_layers", None)
    if layers and (llm_total_layers is None or layers < llm_total_layers):
        levers.append(f"LLM cut to its first {layers} layers" + (f" of {llm_total_layers}" if llm_total_layers else ""))
    if getattr(m, "prefix_cache", False):
        levers.append("prompt prefix KV cache (each gene's prompt runs once)")
    if getattr(m, "patch_len", 0) and getattr(m, "patch_stride", 0) >= getattr(m, "patch_len", 0):
        levers.append(f"non-overlapping patches of {m.patch_len} bins")
    if getattr(m, "alignment", "") == "prototype" and getattr(m, "n_prototypes", 0) < 1000:
        levers.append(f"{m.n_prototypes} text prototypes (Time-LLM uses 1000)")
    if getattr(m, "alignment", "") == "prototype" and getattr(m, "prototype_vocab", None):
        levers.append(f"prototypes mixed from the commonest {m.prototype_vocab} tokens, not the whole vocabulary")
    if getattr(m, "gradient_checkpointing", False):
        levers.append("gradient checkpointing (memory for compute)")
    if getattr(m, "backbone", "llm") != "llm":
        levers.append(f"backbone={m.backbone}")
    if cfg.patience:
        levers.append(f"early stopping (patience {cfg.patience})")
    if cfg.max_train_examples:
        levers.append(f"at most {cfg.max_train_examples} training genes")
    if cfg.task != "cross-gene" and cfg.max_individuals_per_gene:
        levers.append(f"{cfg.max_individuals_per_gene} individuals per gene and step; each distinct haplotype "
                      "encoded once per batch")
    if cfg.task != "cross-gene" and cfg.max_val_individuals:
        levers.append(f"validation on at most {cfg.max_val_individuals} training individuals per gene")
    precision = resolve_precision(cfg)
    if precision != "32":
        levers.append(f"{precision} precision" + (" (frozen LLM weights in bf16)" if llm_dtype(cfg) != torch.float32
                                                   else ""))
    if cfg.strategy == "fsdp" and cfg.world_size > 1:
        levers.append(f"frozen LLM decoder sharded across {cfg.world_size} devices (FSDP2)")
    return levers


def uses_gpu(cfg: TrainConfig) -> bool:
    """Whether Lightning will put this run on a GPU (accelerator gpu, or auto with CUDA present)."""
    return cfg.accelerator == "gpu" or (cfg.accelerator == "auto" and torch.cuda.is_available())


def resolve_precision(cfg: TrainConfig) -> str:
    """``precision: auto`` -> bf16-mixed on a GPU that supports bf16, else 32; other values as given."""
    if cfg.precision != "auto":
        return cfg.precision
    gpu = uses_gpu(cfg) and torch.cuda.is_available()
    return "bf16-mixed" if gpu and torch.cuda.is_bf16_supported() else "32"


def llm_dtype(cfg: TrainConfig) -> torch.dtype:
    """The frozen LLM's weight dtype: bf16 for bf16-mixed runs on a GPU (no gradient, so no fp32 master copy is
    needed; half the memory), float32 otherwise (CPU autocast still computes in bf16 where asked)."""
    return torch.bfloat16 if resolve_precision(cfg) == "bf16-mixed" and uses_gpu(cfg) else torch.float32
