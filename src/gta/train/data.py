"""Training data: targets, splits, feature reads, per-gene items, batches and the DataModule.

Targets (expression as the manifest transforms it):
* **gene level**: the mean over individuals of a gene's expression (NaN = not measured, ignored); standardised with
  the mean and sd of the *training genes'* values (``target_mean``, ``target_std``), inverted at prediction.
* **individual level** (store with haplotypes): each individual's value, standardised with the same two numbers.
  Only training individuals (``dataset.individual_splits()[0]``) are used in training and validation.

An item is one gene: its reference window and/or the distinct ``hap_key`` windows of the individuals drawn for it
(each distinct haplotype is read and encoded once; individuals point at rows). A batch concatenates items.
The sampler draws genes in a seeded order per epoch and hands each of W devices a contiguous share of every global
batch, so W devices x ``batch_size / W`` see exactly the genes one device sees with ``batch_size``.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from gta.errors import GtaInputError
from gta.io.alleles import REF_KEY
from gta.train.config import TrainConfig

log = logging.getLogger(__name__)
# about how many windows a batch of genes may hold where individuals come along (validation, prediction): a gene
# brings its reference and two windows per individual, 801 for 400 people, and 32 such genes ran out of 24 GiB
BATCH_ROWS = 1024


def genes_per_batch(batch_size: int, n_individuals: int) -> int:
    """Genes per batch: ``batch_size``, cut so that a batch holds about ``BATCH_ROWS`` windows."""
    return max(1, min(int(batch_size), BATCH_ROWS // (1 + 2 * n_individuals)))


@dataclass
class RunData:
    """Targets and splits of one run (row ``i`` of every array is ``gene_ids[i]``)."""

    gene_ids: list[str]
    split: list[str]  # train / val / test per gene
    y_gene: np.ndarray  # [G] gene-level target (raw units)
    samples: list[str] = field(default_factory=list)  # individuals with expression and haplotypes
    sample_split: list[str] = field(default_factory=list)  # train / test per sample
    y_ind: np.ndarray | None = None  # [G, S] individual targets (raw units, NaN = missing)
    target_mean: float = 0.0
    target_std: float = 1.0
    centred_var: float = 1.0  # pooled within-gene variance of standardised individual targets (train)
    prompts: dict[str, str] | None = None
    eqtl: Any = None  # gta.train.eqtl.VariantTargets of the training genes (eqtl_weight > 0)
    skipped: dict[str, int] = field(default_factory=dict)

    def genes_in(self, split: str) -> list[int]:
        return [i for i, s in enumerate(self.split) if s == split]

    def samples_in(self, split: str) -> list[int]:
        return [i for i, s in enumerate(self.sample_split) if s == split]

    @property
    def has_individuals(self) -> bool:
        return self.y_ind is not None and len(self.samples) > 0

    def standardise(self, y: np.ndarray | float) -> np.ndarray | float:
        return (y - self.target_mean) / self.target_std

    def summary(self) -> dict[str, Any]:
        genes = {s: len(self.genes_in(s)) for s in ("train", "val", "test")}
        samples = {s: len(self.samples_in(s)) for s in ("train", "test")}
        out = {"genes": genes, "individuals": samples, "target_mean": self.target_mean,
               "target_std": self.target_std, "centred_var": self.centred_var, "skipped": dict(self.skipped)}
        if self.eqtl is not None:
            out["eqtl_targets"] = self.eqtl.summary()
        return out


def build_run_data(dataset, store, cfg: TrainConfig, need_individuals: bool | None = None) -> RunData:
    """Match the store's genes with the data set's expression and splits; fit the target statistics."""
    if dataset.expression is None:
        raise GtaInputError("the manifest names no expression file, so there is nothing to train on",
                            path=dataset.manifest.path, hint="add 'expression: FILE' to the manifest")
    if need_individuals is None:  # individuals are read whenever the store has them (for evaluation at least)
        need_individuals = cfg.task != "cross-gene" or bool(getattr(store, "samples", None))
    skipped: dict[str, int] = {}
    done = store.ref_done_mask() if hasattr(store, "ref_done_mask") else np.ones(len(store.gene_ids), bool)
    in_store = [g for g, ok in zip(store.gene_ids, done, strict=True) if ok]
    if len(in_store) < len(store.gene_ids):
        skipped["store genes without reference features yet"] = len(store.gene_ids) - len(in_store)
    by_id = {g.gene_id: g for g in dataset.genes}
    genes = [by_id[g] for g in in_store if g in by_id]
    if len(genes) < len(in_store):
        skipped["store genes not in the gene table"] = len(in_store) - len(genes)
    expr = dataset.expression.for_genes(genes)
    if len(expr) < len(genes):
        skipped["genes without expression"] = len(genes) - len(expr)
    splits = dataset.gene_splits
    gene_ids = [g for g in expr.index if g in splits]
    expr = expr.loc[gene_ids]
    if not gene_ids:
        raise GtaInputError("no gene of the feature store has expression values", path=dataset.manifest.expression,
                            hint="the store and the manifest must describe the same genes (same gene ids)")
    values = expr.to_numpy(dtype=np.float64)
    with np.errstate(all="ignore"):
        y_gene = np.nanmean(values, axis=1)
    keep = np.isfinite(y_gene)
    if not keep.all():
        skipped["genes with no finite expression value"] = int((~keep).sum())
    gene_ids = [g for g, k in zip(gene_ids, keep, strict=True) if k]
    values, y_gene = values[keep], y_gene[keep]
    split = [splits[g] for g in gene_ids]
    train = np.array([s == "train" for s in split])
    if train.sum() < 2:
        raise GtaInputError(f"only {int(train.sum())} training gene(s) have features and expression",
                            path=dataset.manifest.path, hint="check the splits and that the store covers the genes")
    mean = float(y_gene[train].mean())
    std = float(y_gene[train].std())
    if not std > 1e-8:
        log.warning("training genes' mean expression is constant (expression_transform standardize?): "
                    "the cross-gene target carries no signal")
        std = 1.0
    data = RunData(gene_ids=gene_ids, split=split, y_gene=y_gene, target_mean=mean, target_std=std, skipped=skipped)
    if need_individuals:
        _add_individuals(data, dataset, store, expr.columns, values)
    return data


def _add_individuals(data: RunData, dataset, store, columns, values: np.ndarray) -> None:
    store_samples = set(getattr(store, "samples", None) or [])
    if not store_samples:
        raise GtaInputError("the feature store holds no personal haplotypes, so cross-individual training is "
                            "impossible", hint="extract them with: gta extract ... --samples all")
    train, test = dataset.individual_splits()
    which = {s: "train" for s in train} | {s: "test" for s in test}
    cols = [str(c) for c in columns]
    samples = [s for s in cols if s in store_samples and s in which]
    if len(samples) < len(cols):
        data.skipped["expression samples without haplotypes in the store"] = len(cols) - len(samples)
    if not samples:
        raise GtaInputError("no individual has both expression and haplotypes in the feature store",
                            hint="the store's sample names must match the expression columns")
    index = [cols.index(s) for s in samples]
    data.samples = samples
    data.sample_split = [which[s] for s in samples]
    data.y_ind = values[:, index]
    if not data.samples_in("train"):  # held-out individuals only (evaluation): no within-gene variance to fit
        return
    z = data.standardise(data.y_ind[np.ix_(data.genes_in("train"), data.samples_in("train"))])
    with np.errstate(all="ignore"):
        centred = z - np.nanmean(z, axis=1, keepdims=True)
        var = float(np.nanmean(centred**2))
    data.centred_var = var if np.isfinite(var) and var > 1e-8 else 1.0


class FeatureSource:
    """Reads [bins, d] float32 windows from a FeatureStore, kept in an LRU memory cache up to a byte budget."""

    def __init__(self, store, cache_mb: int = 1024) -> None:
        self.store = store
        self.budget = int(cache_mb) << 20
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._haps: dict[str, dict[str, tuple[str, str]]] = {}

    def get(self, gene_id: str, key: str = REF_KEY) -> np.ndarray:
        return self.get_many(gene_id, [key])[0]

    def get_many(self, gene_id: str, keys: list[str]) -> np.ndarray:
        """float32 [len(keys), bins, d] of one gene; what the cache lacks is read in one batch."""
        missing = [k for k in dict.fromkeys(keys) if (gene_id, k) not in self._cache]
        if missing:
            if hasattr(self.store, "read_haps"):
                got = self.store.read_haps(gene_id, missing)
            else:
                got = [self.store.read_ref(gene_id) if k == REF_KEY else self.store.read_hap(gene_id, k)
                       for k in missing]
            for k, arr in zip(missing, got, strict=True):
                self._put((gene_id, k), np.ascontiguousarray(arr, dtype=np.float32))
            if missing == keys and isinstance(got, np.ndarray):  # nothing was cached: no second copy
                return got
        out = []
        for k in keys:
            arr = self._cache.get((gene_id, k))
            if arr is None:  # larger than the whole budget, or evicted by this very batch
                arr = np.ascontiguousarray(self.store.read_hap(gene_id, k), dtype=np.float32)
            else:
                self._cache.move_to_end((gene_id, k))
            out.append(arr)
        return np.stack(out) if out else np.zeros((0, 0, 0), dtype=np.float32)

    def _put(self, item: tuple[str, str], arr: np.ndarray) -> None:
        if arr.nbytes > self.budget:
            return
        self._cache[item] = arr
        self._bytes += arr.nbytes
        while self._bytes > self.budget:
            _, old = self._cache.popitem(last=False)
            self._bytes -= old.nbytes

    def haps(self, gene_id: str) -> dict[str, tuple[str, str]]:
        """sample -> (hap_key 1, hap_key 2) for a gene (cached)."""
        if gene_id not in self._haps:
            table = dict(self.store.sample_haps(gene_id))
            ready = set(self.store.hap_keys(gene_id)) if hasattr(self.store, "hap_keys") else None
            self._haps[gene_id] = {s: k for s, k in table.items()
                                   if ready is None or (k[0] in ready and k[1] in ready)}
        return self._haps[gene_id]

    def __getstate__(self) -> dict:  # worker processes start with an empty cache
        state = dict(self.__dict__)
        state["_cache"], state["_bytes"] = OrderedDict(), 0
        return state


def fit_feature_norm(source: FeatureSource, gene_ids: list[str], max_genes: int,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and sd over all bins of (a seeded subset of at most ``max_genes``) training genes."""
    rng = np.random.default_rng(seed)
    chosen = list(gene_ids)
    if max_genes and len(chosen) > max_genes:
        chosen = [chosen[i] for i in sorted(rng.choice(len(chosen), max_genes, replace=False))]
    total = sq = None
    n = 0
    for g in chosen:
        x = source.get(g).astype(np.float64)
        total = x.sum(0) if total is None else total + x.sum(0)
        sq = (x**2).sum(0) if sq is None else sq + (x**2).sum(0)
        n += x.shape[0]
    mean = total / n
    std = np.sqrt(np.maximum(sq / n - mean**2, 0.0))
    return mean.astype(np.float32), std.astype(np.float32)


class GeneItems(Dataset):
    """One item per gene: the windows to encode and who points at them.

    ``ref``: include the reference window. ``individuals``: sample indices to use (those with a finite target for
    the gene); ``max_individuals``: draw at most that many per gene and epoch (seeded by seed, epoch and gene);
    ``fixed_draw``: the same draw every epoch (validation). ``mirror``: the share of genes whose windows (reference
    and haplotypes together) are mirrored about the TSS, drawn per (seed, epoch, gene) so that any number of
    devices mirrors the same genes (augmentation; upstream and downstream swap, distances kept). ``variants``: gene
    id -> (non-zero, zero) eQTL targets (``VariantTargets.by_gene``); ``n_variants`` of a gene's are drawn per epoch
    (half non-zero) and come as rows after the others: the reference window once more (``var_base``, run without
    dropout like the haplotypes) and each variant's ALT window (``var_rows``, target ``var_y``).
    """

    def __init__(self, data: RunData, source: FeatureSource, genes: list[int], ref: bool = True,
                 individuals: list[int] | None = None, max_individuals: int | None = None, seed: int = 0,
                 need_targets: bool = True, fixed_draw: bool = False, mirror: float = 0.0,
                 variants: dict[str, tuple[list, list]] | None = None, n_variants: int = 0) -> None:
        self.data, self.source, self.genes = data, source, list(genes)
        self.variants, self.n_variants = variants or {}, n_variants
        self.ref, self.individuals = ref, individuals
        self.max_individuals, self.seed, self.fixed_draw = max_individuals, seed, fixed_draw
        self.mirror = mirror
        self.need_targets = need_targets
        self.prompts = data.prompts

    def __len__(self) -> int:
        return len(self.genes)

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        pos, epoch = item if isinstance(item, tuple) else (item, 0)
        g = self.genes[pos]
        gid = self.data.gene_ids[g]
        keys: list[str] = [REF_KEY] if self.ref else []
        ind_sample, ind_r1, ind_r2, ind_y = [], [], [], []
        if self.individuals is not None:
            haps = self.source.haps(gid)
            chosen = [s for s in self.individuals if self.data.samples[s] in haps
                      and (not self.need_targets or np.isfinite(self.data.y_ind[g, s]))]
            if self.max_individuals and len(chosen) > self.max_individuals:
                rng = np.random.default_rng([self.seed, 0 if self.fixed_draw else epoch, g])
                chosen = [chosen[i] for i in sorted(rng.choice(len(chosen), self.max_individuals, replace=False))]
            row = {k: i for i, k in enumerate(keys)}
            for s in chosen:
                k1, k2 = haps[self.data.samples[s]]
                for k in (k1, k2):
                    if k not in row:
                        row[k] = len(keys)
                        keys.append(k)
                ind_sample.append(s)
                ind_r1.append(row[k1])
                ind_r2.append(row[k2])
                ind_y.append(self.data.y_ind[g, s] if self.data.y_ind is not None else np.nan)
        feats = self.source.get_many(gid, keys) if keys else None
        var_base, var_rows, var_y = -1, np.zeros(0, np.int64), np.zeros(0, np.float32)
        if gid in self.variants and self.n_variants:
            drawn = self._draw_variants(gid, np.random.default_rng([self.seed, epoch, g, 2]))
            base = self.source.get(gid)
            alts = np.repeat(base[None], len(drawn), axis=0)
            for k, (bins, vals, _) in enumerate(drawn):
                alts[k, bins] = vals
            var_base = 0 if feats is None else len(feats)
            var_rows = np.arange(var_base + 1, var_base + 1 + len(drawn), dtype=np.int64)
            var_y = np.asarray([t for _, _, t in drawn], np.float32)
            feats = np.concatenate([x for x in (feats, base[None], alts) if x is not None])
        if feats is not None and self.mirror and np.random.default_rng([self.seed, epoch, g, 1]).random() < self.mirror:
            feats = np.ascontiguousarray(feats[:, ::-1])
        prompt = self.prompts[gid] if self.prompts is not None else None
        return {"gene": g, "features": feats, "prompt": prompt, "has_ref": self.ref,
                "y_gene": float(self.data.standardise(self.data.y_gene[g])),
                "ind_sample": np.asarray(ind_sample, dtype=np.int64), "ind_r1": np.asarray(ind_r1, dtype=np.int64),
                "ind_r2": np.asarray(ind_r2, dtype=np.int64),
                "ind_y": np.asarray(self.data.standardise(np.asarray(ind_y, dtype=np.float64)), dtype=np.float32),
                "var_base": var_base, "var_rows": var_rows, "var_y": var_y}

    def _draw_variants(self, gene_id: str, rng: np.random.Generator) -> list[tuple]:
        """``n_variants`` of the gene's eQTL variants (or all it has): half (rounded up) with a non-zero target, the
        other group making up for one that is short."""
        nonzero, zero = self.variants[gene_id]
        n_zero = min(self.n_variants - min(-(-self.n_variants // 2), len(nonzero)), len(zero))
        n_nonzero = min(self.n_variants - n_zero, len(nonzero))
        return ([nonzero[k] for k in rng.choice(len(nonzero), n_nonzero, replace=False)]
                + [zero[k] for k in rng.choice(len(zero), n_zero, replace=False)])


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate gene items: ``features`` [N, bins, d] with one ``prompts`` entry per row, ``ref_row`` [G]
    (-1 = none), individuals as (``ind_gene`` position in batch, ``ind_sample``, rows ``ind_r1``/``ind_r2``,
    ``ind_y``), eQTL variants as (``var_row`` ALT rows, ``var_ref`` their reference rows, ``var_y`` targets)."""
    feats, prompts, ref_row, ind = [], [], [], {"gene": [], "sample": [], "r1": [], "r2": [], "y": []}
    var: dict[str, list] = {"row": [], "ref": [], "y": []}
    offset = 0
    for b, it in enumerate(items):
        n = 0 if it["features"] is None else len(it["features"])
        if n:
            feats.append(torch.from_numpy(it["features"]))
            prompts.extend([it["prompt"]] * n)
        ref_row.append(offset if it["has_ref"] else -1)
        m = len(it["ind_sample"])
        ind["gene"].append(np.full(m, b, dtype=np.int64))
        ind["sample"].append(it["ind_sample"])
        ind["r1"].append(it["ind_r1"] + offset)
        ind["r2"].append(it["ind_r2"] + offset)
        ind["y"].append(it["ind_y"])
        rows = it.get("var_rows", np.zeros(0, np.int64))
        var["row"].append(rows + offset)
        var["ref"].append(np.full(len(rows), it.get("var_base", -1) + offset, dtype=np.int64))
        var["y"].append(it.get("var_y", np.zeros(0, np.float32)))
        offset += n
    out: dict[str, Any] = {
        "features": torch.cat(feats) if feats else torch.zeros(0),
        "prompts": prompts if prompts and prompts[0] is not None else None,
        "genes": torch.tensor([it["gene"] for it in items], dtype=torch.long),
        "ref_row": torch.tensor(ref_row, dtype=torch.long),
        "y_gene": torch.tensor([it["y_gene"] for it in items], dtype=torch.float32),
    }
    for k, v in ind.items():
        out["ind_" + k] = torch.from_numpy(np.concatenate(v)) if v else torch.zeros(0)
    for k, v in var.items():
        out["var_" + k] = torch.from_numpy(np.concatenate(v)) if v else torch.zeros(0, dtype=torch.long)
    return out


def _dist() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class GeneSampler(Sampler):
    """Yields ``(position, epoch)``: a seeded permutation per epoch (or the given order), cut into global batches
    of ``per_device * W``; this rank takes its contiguous share of each (the last batch padded to a multiple of W
    by repeating its first genes). Lightning calls ``set_epoch`` each epoch."""

    def __init__(self, n: int, per_device: int, shuffle: bool, seed: int) -> None:
        self.n, self.per_device, self.shuffle, self.seed = n, per_device, shuffle, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.n))
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def _mine(self) -> list[int]:
        rank, world = _dist()
        order, size = self._order(), self.per_device * world
        mine: list[int] = []
        for start in range(0, len(order), size):
            batch = order[start : start + size]
            if world > 1 and len(batch) % world:
                batch = batch + [batch[i % len(batch)] for i in range(world - len(batch) % world)]
            share = len(batch) // world
            mine.extend(batch[rank * share : (rank + 1) * share])
        return mine

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(i, self.epoch) for i in self._mine()])

    def __len__(self) -> int:
        return len(self._mine())


def per_device_batch(cfg: TrainConfig) -> int:
    return max(1, math.ceil(cfg.batch_size / cfg.world_size))


def loader(items: GeneItems, cfg: TrainConfig, shuffle: bool, per_device: int | None = None) -> DataLoader:
    per_device = per_device or per_device_batch(cfg)
    sampler = GeneSampler(len(items), per_device, shuffle, cfg.seed)
    return DataLoader(items, batch_size=per_device, sampler=sampler, collate_fn=collate,
                      num_workers=cfg.num_workers, persistent_workers=False)


class GTADataModule(L.LightningDataModule):
    """Train: training genes (ref and/or individuals drawn per epoch); val: validation genes, ref + at most
    ``max_val_individuals`` training individuals (the same ones every epoch). Test individuals never appear here."""

    def __init__(self, data: RunData, source: FeatureSource, cfg: TrainConfig) -> None:
        super().__init__()
        self.data, self.source, self.cfg = data, source, cfg
        ind = cfg.task != "cross-gene"
        train_genes = data.genes_in("train")
        if cfg.max_train_examples and len(train_genes) > cfg.max_train_examples:
            rng = np.random.default_rng(cfg.seed)
            train_genes = sorted(rng.choice(train_genes, cfg.max_train_examples, replace=False).tolist())
        self.train_genes = train_genes
        train_samples = data.samples_in("train") if ind else None
        variants = data.eqtl.by_gene() if data.eqtl is not None and cfg.eqtl_weight else None
        self.train_items = GeneItems(data, source, train_genes, ref=cfg.task != "cross-individual",
                                     individuals=train_samples, max_individuals=cfg.max_individuals_per_gene,
                                     seed=cfg.seed, mirror=cfg.mirror_augment,
                                     variants=variants, n_variants=cfg.eqtl_variants)
        if ind and not data.samples_in("train"):
            raise GtaInputError(f"task {cfg.task!r} trains on individuals, but the feature store holds no training "
                                "individual's haplotypes", hint="extract them with: gta extract ... --samples all")
        self.val_items = GeneItems(data, source, data.genes_in("val"), ref=True, individuals=train_samples,
                                   max_individuals=cfg.max_val_individuals, seed=cfg.seed, fixed_draw=True)

    def train_dataloader(self) -> DataLoader:
        return loader(self.train_items, self.cfg, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        # with individuals a gene brings up to 2 rows per individual: fewer genes per batch keep memory bounded
        n = len(self.val_items.individuals or [])
        if self.cfg.max_val_individuals:
            n = min(n, self.cfg.max_val_individuals)
        per_device = genes_per_batch(per_device_batch(self.cfg), n)
        return loader(self.val_items, self.cfg, shuffle=False, per_device=per_device)
