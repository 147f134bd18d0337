"""The LightningModule: training/validation steps and the optimiser, nothing else.

Model outputs are in standardised target units. Individual predictions combine the two haplotypes in raw
(log-scale) units, ``log((exp(h1) + exp(h2)) / 2)`` (``hap_combine: logmeanexp``) or their mean, then return to
standardised units. Losses (see :class:`gta.train.config.TrainConfig`): reference rows, MSE against the gene mean;
individual rows, MSE of the per-gene means plus ``centred_weight`` x MSE of per-gene centred values / ``centred_var``;
eQTL variant rows (:mod:`gta.train.eqtl`), ``eqtl_weight`` x MSE of predicted ALT - REF against the targets /
``eqtl_var``.

Validation gathers every rank's predictions (``all_gather_object``), drops the sampler's padding duplicates and
logs ``val_spearman_gene`` (reference prediction vs gene mean across validation genes), ``val_spearman_ind``
(median over validation genes of the Spearman across training individuals) and the monitored ``val_spearman``
(gene for cross-gene, ind for cross-individual, their mean for both).
"""

from __future__ import annotations

import contextlib
import math
import time

import lightning as L
import numpy as np
import torch
from torch import Tensor

from gta.model.gta import PatchStandardiser
from gta.stats import combine_haplotypes, spearman
from gta.train.config import TrainConfig

MIN_INDIVIDUALS = 5
DUMMY_PROMPT = "(no gene in this batch)"


def _scatter_mean(values: Tensor, index: Tensor, n: int) -> tuple[Tensor, Tensor]:
    counts = torch.zeros(n, dtype=values.dtype, device=values.device).index_add_(0, index, torch.ones_like(values))
    sums = torch.zeros(n, dtype=values.dtype, device=values.device).index_add_(0, index, values)
    return sums / counts.clamp(min=1), counts


def _n_variants(batch: dict) -> int:
    """eQTL variant rows in a batch (none in validation, prediction, or a run without eQTL supervision)."""
    rows = batch.get("var_row")
    return 0 if rows is None else int(rows.numel())


class GTAModule(L.LightningModule):
    """Thin wrapper: ``model`` is a :class:`gta.model.gta.GTA`; statistics come from :class:`RunData`."""

    def __init__(self, model, cfg: TrainConfig, target_mean: float, target_std: float,
                 centred_var: float = 1.0, eqtl_var: float = 1.0) -> None:
        super().__init__()
        self.model, self.cfg = model, cfg
        self.target_mean, self.target_std, self.centred_var = float(target_mean), float(target_std), float(centred_var)
        self.eqtl_var = float(eqtl_var)
        self._val: list[dict[str, np.ndarray]] = []
        self.windows_seen = 0
        self.genes_seen = 0
        self.epoch_times: list[float] = []
        self._epoch_start = 0.0

    # ---- forward pieces --------------------------------------------------------------------------------------
    def encode(self, batch: dict) -> Tensor:
        """Model output per feature row, standardised units, float32: [N]."""
        prompts = batch["prompts"] if self.model.cfg.use_prompt else None
        lockstep = self._lockstep()
        # eQTL supervision always splits, as the lab did: reference rows keep their dropout, and the variants'
        # differences of two windows carry none (fixed by the config, so that ranks in lock step agree)
        split = self.training and (self.cfg.individual_pass == "split" or self.cfg.eqtl_weight > 0)
        if batch["features"].numel() == 0 and not (lockstep and split):
            return self._dummy_pass() if lockstep else torch.zeros(0, device=self.device)
        # haplotype rows and eQTL variant rows (their ALT windows and a copy of the reference) pass alike
        with_individuals = self.training and (batch["ind_r1"].numel() > 0 or _n_variants(batch) > 0)
        if split and (with_individuals or lockstep):
            # in lock step every rank runs both passes, whatever rows its own batch holds
            return self._split_pass(batch["features"], prompts, batch["ref_row"], lockstep)
        # Batches with individuals' rows pass without dropout: each window would carry its own dropout noise, which
        # the centred (within-gene) loss reads as differences between a gene's individuals, so the model learns to
        # shrink its outputs (lab, seed 0: across genes 0.626 -> 0.561, variant Pearson 0.577 -> 0.507, enhancer
        # slope 0.19 -> 0.06; docs/learning.md, entry 43). The reference rows of such a batch go without it too.
        with self._in_eval((torch.nn.Dropout,), with_individuals):
            return self.model(batch["features"], prompts)[:, 0].float()

    def _lockstep(self) -> bool:
        """True when every forward pass is a collective, so all ranks must run the same passes: a sharded LLM's
        layers, and the head's standardiser in training under DDP."""
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        return self.model.llm.sharded or (distributed and self.training)

    def _dummy_pass(self) -> Tensor:
        """A pass on one zero row whose output is cut away ([0]), for a rank with nothing of its own to run. The loss
        still reaches it, so backward runs through the layers too; the row does count in that step's standardiser
        statistics."""
        dummy = torch.zeros(1, self.model.n_bins, self.model.d_feat, device=self.device)
        return self.model(dummy, [DUMMY_PROMPT] if self.model.cfg.use_prompt else None)[:0, 0].float()

    def _split_pass(self, features: Tensor, prompts: list[str] | None, ref_row: Tensor,
                    lockstep: bool = False) -> Tensor:
        """Reference rows in training mode (dropout, batch statistics); every other row (haplotypes) in a second
        pass in eval mode (no dropout, running statistics), gradients kept; outputs back in row order. In lock step
        a pass with no rows runs a dummy row, so that every rank runs both passes."""
        is_ref = torch.zeros(len(features), dtype=torch.bool, device=features.device)
        is_ref[ref_row[ref_row >= 0].to(features.device)] = True
        order = torch.cat([is_ref.nonzero()[:, 0], (~is_ref).nonzero()[:, 0]])
        outs = []
        for mask, train in ((is_ref, True), (~is_ref, False)):
            if not bool(mask.any()) and not lockstep:
                continue
            rows = [p for p, m in zip(prompts, mask.tolist(), strict=True) if m] if prompts is not None else None
            with self._in_eval((torch.nn.Dropout, PatchStandardiser), not train):
                outs.append(self.model(features[mask], rows)[:, 0].float() if bool(mask.any()) else self._dummy_pass())
        return torch.cat(outs)[torch.argsort(order)]  # (never empty: encode returns before for a batch of no rows)

    @contextlib.contextmanager
    def _in_eval(self, kinds: tuple[type, ...], active: bool):
        """The model's modules of these kinds that are training switch to eval mode inside (``active``), and back."""
        mods = [m for m in self.model.modules() if isinstance(m, kinds) and m.training] if active else []
        for m in mods:
            m.eval()
        try:
            yield
        finally:
            for m in mods:
                m.train()

    def individual(self, h: Tensor, batch: dict) -> Tensor:
        """Individual predictions (standardised units) from the rows of their two haplotypes."""
        raw = h * self.target_std + self.target_mean
        ind = combine_haplotypes(raw[batch["ind_r1"]], raw[batch["ind_r2"]], self.cfg.hap_combine)
        return (ind - self.target_mean) / self.target_std

    def losses(self, batch: dict, h: Tensor) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        ref = batch["ref_row"] >= 0
        if bool(ref.any()):
            out["loss_ref"] = torch.nn.functional.mse_loss(h[batch["ref_row"][ref]], batch["y_gene"][ref])
        if batch["ind_r1"].numel():
            pred, y, g = self.individual(h, batch), batch["ind_y"], batch["ind_gene"]
            n = len(batch["genes"])
            pm, counts = _scatter_mean(pred, g, n)
            ym, _ = _scatter_mean(y, g, n)
            has = counts > 0
            out["loss_mean"] = torch.nn.functional.mse_loss(pm[has], ym[has])
            centred = (pred - pm[g]) - (y - ym[g])
            out["loss_centred"] = centred.pow(2).mean() / self.centred_var
        if _n_variants(batch):  # predicted ALT - REF of the drawn variants against their eQTL effects
            effect = h[batch["var_row"]] - h[batch["var_ref"]]
            out["loss_eqtl"] = (effect - batch["var_y"]).pow(2).mean() / self.eqtl_var
        total = sum(out.get(k, 0.0) for k in ("loss_ref", "loss_mean"))
        total = total + self.cfg.centred_weight * out.get("loss_centred", 0.0)
        total = total + self.cfg.eqtl_weight * out.get("loss_eqtl", 0.0)
        out["loss"] = total if isinstance(total, Tensor) else h.sum() * 0.0
        return out

    # ---- Lightning hooks -------------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        h = self.encode(batch)
        losses = self.losses(batch, h)
        n = len(batch["genes"])
        self.windows_seen += int(batch["features"].shape[0]) if batch["features"].numel() else 0
        self.genes_seen += n
        self.log("train_loss", losses["loss"], prog_bar=True, batch_size=n)
        for k in ("loss_ref", "loss_mean", "loss_centred", "loss_eqtl"):
            if k in losses:
                self.log(f"train_{k}", losses[k], batch_size=n, on_step=False, on_epoch=True)
        return losses["loss"]

    def on_train_epoch_start(self) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self) -> None:
        seconds = time.perf_counter() - self._epoch_start
        self.epoch_times.append(seconds)
        self.log("epoch_time_s", seconds, sync_dist=True)

    def on_validation_epoch_start(self) -> None:
        self._val = []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        h = self.encode(batch)
        losses = self.losses(batch, h)
        self.log("val_loss", losses["loss"], batch_size=len(batch["genes"]), sync_dist=True)
        rec = {"gene": batch["genes"].cpu().numpy(), "y_gene": batch["y_gene"].cpu().numpy(),
               "ref": np.where(batch["ref_row"].cpu().numpy() >= 0,
                               h[batch["ref_row"].clamp(min=0)].detach().float().cpu().numpy(), np.nan)}
        if batch["ind_r1"].numel():
            rec["ind_gene"] = batch["genes"][batch["ind_gene"]].cpu().numpy()
            rec["ind_sample"] = batch["ind_sample"].cpu().numpy()
            rec["ind_pred"] = self.individual(h, batch).detach().float().cpu().numpy()
            rec["ind_y"] = batch["ind_y"].cpu().numpy()
        self._val.append(rec)

    def on_validation_epoch_end(self) -> None:
        records = self._val
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, records)
            records = [r for part in gathered for r in part]
        metrics = validation_metrics(records, self.cfg.task)
        for k, v in metrics.items():
            self.log(k, v, prog_bar=k == "val_spearman", sync_dist=True)

    def configure_model(self) -> None:
        """Strategy ``fsdp``: shard the frozen LLM's decoder layers across the ranks (see ``FrozenLLM.shard_``)."""
        if self.cfg.strategy == "fsdp":
            self.model.shard_llm(self.trainer.strategy.root_device.type)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(optimiser_groups(self.model, self.cfg), lr=self.cfg.lr,
                                weight_decay=self.cfg.weight_decay)
        if not self.cfg.schedule_spans_run or self._trainer is None:
            return opt  # (a schedule needs the run's length: outside a Trainer the plain optimiser)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        factor = lr_factor(total, self.cfg.warmup_frac, self.cfg.lr_schedule)
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["rng"] = {"torch": torch.get_rng_state()}
        checkpoint["throughput"] = {"windows_seen": self.windows_seen, "genes_seen": self.genes_seen,
                                    "epoch_times": list(self.epoch_times)}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "rng" in checkpoint:
            torch.set_rng_state(checkpoint["rng"]["torch"].cpu())
        t = checkpoint.get("throughput", {})
        self.windows_seen = int(t.get("windows_seen", 0))
        self.genes_seen = int(t.get("genes_seen", 0))
        self.epoch_times = [float(x) for x in t.get("epoch_times", [])]


def optimiser_groups(model, cfg: TrainConfig) -> list[dict]:
    """AdamW parameter groups: everything trainable at ``cfg.lr``; the scratch backbone of ``backbone="none"`` at
    ``cfg.lr * cfg.scratch_lr``. At the full rate its Adam steps outgrow the tokens it carries within tens of steps
    and the ablation does not train (docs/learning.md, entry 12)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    scratch = [p for n, p in named if n.startswith("scratch.")]
    groups = [{"params": [p for n, p in named if not n.startswith("scratch.")]}]
    if scratch:
        groups.append({"params": scratch, "lr": cfg.lr * cfg.scratch_lr})
    return groups


def lr_factor(total_steps: int, warmup_frac: float, schedule: str):
    """Step -> learning-rate multiplier: linear warm-up over ``warmup_frac`` of the steps, then constant or a cosine
    decay to 0 at ``total_steps`` (the run's max_epochs; early stopping may end it sooner)."""
    warm = int(warmup_frac * total_steps)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total_steps - warm))))
        return 1.0

    return factor


def validation_metrics(records: list[dict[str, np.ndarray]], task: str) -> dict[str, float]:
    """Spearman metrics from gathered validation records (duplicates from sampler padding removed)."""
    genes: dict[int, tuple[float, float]] = {}
    inds: dict[tuple[int, int], tuple[float, float]] = {}
    for r in records:
        for g, p, y in zip(r["gene"], r["ref"], r["y_gene"], strict=True):
            genes[int(g)] = (float(p), float(y))
        if "ind_gene" in r:
            for g, s, p, y in zip(r["ind_gene"], r["ind_sample"], r["ind_pred"], r["ind_y"], strict=True):
                inds[(int(g), int(s))] = (float(p), float(y))
    out: dict[str, float] = {}
    pairs = np.array([v for v in genes.values() if np.isfinite(v[0])]).reshape(-1, 2)
    rho = spearman(pairs[:, 0], pairs[:, 1]) if len(pairs) else float("nan")
    out["val_spearman_gene"] = 0.0 if not np.isfinite(rho) else rho
    if task != "cross-gene":
        by_gene: dict[int, list[tuple[float, float]]] = {}
        for (g, _), v in inds.items():
            by_gene.setdefault(g, []).append(v)
        rhos = []
        for v in by_gene.values():
            a = np.array(v)
            if len(a) < MIN_INDIVIDUALS or np.ptp(a[:, 1]) == 0:
                continue
            r = spearman(a[:, 0], a[:, 1])
            rhos.append(0.0 if not np.isfinite(r) else r)  # constant prediction: no information
        out["val_spearman_ind"] = float(np.median(rhos)) if rhos else 0.0
    if task == "cross-gene":
        out["val_spearman"] = out["val_spearman_gene"]
    elif task == "cross-individual":
        out["val_spearman"] = out["val_spearman_ind"]
    else:
        out["val_spearman"] = (out["val_spearman_gene"] + out["val_spearman_ind"]) / 2
    return out
