"""What interpretation and variant scoring share: a trained run with its data set, store, prompts and encoder."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gta.errors import GtaInputError
from gta.geometry import Geometry
from gta.io.types import Gene

log = logging.getLogger(__name__)
STORE_CHECKED = ("encoder", "encoder_config", "weights_hash", "geometry", "dtype")


@dataclass
class RunContext:
    """A trained model (eval mode) and everything needed to feed it: data set, optional feature store, prompts."""

    run: Path
    model: Any
    cfg: Any
    resolved: dict[str, Any]
    target_mean: float
    target_std: float
    dataset: Any
    store: Any = None
    _prompts: dict[str, str] = field(default_factory=dict)

    @property
    def store_attrs(self) -> dict[str, Any]:
        """The attributes of the feature store the run was trained on (encoder, its config, geometry, dtype)."""
        return dict((self.resolved.get("store") or {}).get("attrs", {}))

    @property
    def geometry(self) -> Geometry:
        return self.dataset.manifest.geometry

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def prompts(self, gene_ids: list[str]) -> dict[str, str]:
        """Each gene's prompt: the run's saved prompts.json, else built from the data set as training does."""
        from gta.train.prompts import PROMPTS_FILE, gene_prompt, read_prompts_file

        missing = [g for g in gene_ids if g not in self._prompts]
        if missing:
            saved = read_prompts_file(self.run / PROMPTS_FILE).get("prompts", {})
            if getattr(self.cfg, "shuffle_prompts", False) and any(g not in saved for g in missing):
                log.warning("the run used shuffled prompts; genes it never saw get their own (unshuffled) prompt")
            for g in missing:
                self._prompts[g] = saved[g] if g in saved else gene_prompt(
                    self.dataset, g, template=getattr(self.cfg, "prompt_template", None))
        return {g: self._prompts[g] for g in gene_ids}

    def prompt_list(self, gene_ids: list[str]) -> list[str] | None:
        if not self.model.cfg.use_prompt:
            return None
        p = self.prompts(gene_ids)
        return [p[g] for g in gene_ids]

    def predict(self, features: np.ndarray, prompt: str | None, target: int = 0) -> np.ndarray:
        """Predictions [B] in the data set's expression units for features [B, bins, d] of one gene."""
        x = torch.as_tensor(np.asarray(features, dtype=np.float32), device=self.device)
        prompts = [prompt] * len(x) if self.model.cfg.use_prompt else None
        with torch.no_grad():
            h = self.model(x, prompts)[:, target].double().cpu().numpy()
        return h * self.target_std + self.target_mean

    def ref_features(self, gene: Gene) -> np.ndarray | None:
        """The stored reference features [bins, d] of a gene, or None when the store lacks them."""
        if self.store is None:
            return None
        try:
            return self.store.read_ref(gene.gene_id) if self.store.has_ref(gene.gene_id) else None
        except GtaInputError:  # not in the store
            return None


def open_run(run: str | Path, data, features=None, llm=None, device: str = "auto",
             mirror_average: bool | None = None) -> RunContext:
    """Load a run folder's model (and its LLM), the data set (path or Dataset) and, when given, the feature store
    (path or FeatureStore; refused when its encoder, config, weights, geometry or dtype differ from the run's).
    ``mirror_average``: as :func:`gta.train.predict.load_run_model` (None: the run's own setting)."""
    from gta.devices import resolve_device
    from gta.features.store import FeatureStore
    from gta.io.dataset import open_dataset
    from gta.train.predict import load_run_model, read_run

    run = Path(run)
    _, resolved = read_run(run)
    attrs = (resolved.get("store") or {}).get("attrs", {})
    store = features
    if isinstance(features, str | Path):
        store = FeatureStore.open(features, expect={k: attrs[k] for k in STORE_CHECKED if k in attrs})
    dataset = open_dataset(data) if isinstance(data, str | Path) else data
    d_feat = store.n_features if store is not None else None
    n_bins = store.n_bins if store is not None else None
    model, cfg, resolved, meta = load_run_model(run, d_feat, n_bins, llm=llm, mirror_average=mirror_average)
    model.to(resolve_device(device)).eval()
    return RunContext(run, model, cfg, resolved, float(meta.get("target_mean", 0.0)),
                      float(meta.get("target_std", 1.0)), dataset, store)


def select_genes(dataset, store=None, genes: list[str] | str | None = None, n_genes: int | None = None,
                 default_n: int = 10) -> list[Gene]:
    """Genes by id/symbol (``genes``), else ``n_genes`` (default ``default_n``) genes with stored features, held-out
    genes first (test, then validation, then training split), in gene-table order within a split."""
    if isinstance(genes, str):
        genes = [g for g in genes.split(",") if g.strip()]
    if genes:
        chosen = [dataset.gene(q.strip()) for q in genes]
        if store is not None:
            for g in chosen:
                if g.gene_id not in store.gene_ids or not store.has_ref(g.gene_id):
                    raise GtaInputError(f"gene {g.gene_id} ({g.symbol}) has no features in the store",
                                        path=getattr(store, "path", None),
                                        hint=f"run gta extract --genes {g.gene_id} first")
        return chosen
    candidates = list(dataset.genes)
    if store is not None:
        done = dict(zip(store.gene_ids, store.ref_done_mask(), strict=True))
        candidates = [g for g in candidates if done.get(g.gene_id, False)]
    if not candidates:
        raise GtaInputError("no gene of the data set has features in the store", path=getattr(store, "path", None),
                            hint="run gta extract --data D --out STORE first")
    splits = dataset.gene_splits
    rank = {"test": 0, "val": 1, "train": 2}
    candidates.sort(key=lambda g: rank.get(splits.get(g.gene_id, "test"), 3))
    return candidates[: (default_n if n_genes is None else max(int(n_genes), 0))]
