"""eQTL supervision: per-variant effect targets for the training genes, and the per-gene elastic net that makes them.

Training on gene means teaches a model which genes are expressed, not how much one allele moves one gene; the
cross-individual benchmark asks the second. With ``eqtl_weight > 0`` (:class:`gta.train.config.TrainConfig`) a run
first fits, for every training gene, the eQTL baseline's elastic net (:class:`ElasticNetEQTL`, PrediXcan-style) on
the training individuals' ALT dosages of the biallelic VCF records in the gene's window against their expression
(the manifest's transform): a variant's coefficient per ALT allele, doubled (one window is one haplotype; an
individual's value is about the mean of two) and divided by the training genes' target sd, is the change of one
window's prediction it asks for. Every variant with a non-zero coefficient is kept, and as many zero-coefficient
ones (at least 2, drawn with a fixed seed) as examples of "no effect". Their ALT windows are encoded
(:func:`gta.features.alleles.encode_alleles`) and kept as the bins they change. Training then adds, for
``eqtl_variants`` of each batch gene's variants (half with a non-zero target), ``eqtl_weight`` x the squared error of
the predicted ALT - REF against the target, over the targets' mean square (:mod:`gta.train.module`).
Lab, sequence-only model, 3 seeds: variant-effect Pearson 0.58 vs 0.46, across genes unchanged, across individuals
+0.03 (docs/learning.md, entry 55). In the package's GTA at bench with 2 variants a step and early stopping it did
not carry (entry 57); with 4 variants, 12 epochs and ``patience: 0`` (entry 59, 3 seeds) variant-effect Pearson
rose from 0.455 to 0.532 (+0.07 to +0.08 per seed), across individuals +0.01 to +0.035 (additive reconstruction),
across genes level in two seeds and -0.043 in one, at ~2.5x the training time; hence off by default.

Held-out individuals never enter: their genotypes and expression stay for the test. Skipped records (multi-allelic,
symbolic or non-ACGTN alleles, an allele that changes no stored feature) are counted in ``VariantTargets.skipped``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.linear_model import ElasticNetCV
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gta.atomic import atomic_write_bytes
from gta.errors import GtaInputError
from gta.hashing import sha256_json

EQTL_TARGETS = "eqtl_targets.npz"  # in the run folder: the targets, reused by --resume
TARGET_SEED = 7  # of the elastic nets' folds and the zero-effect draws
MAX_NONZERO = 32  # variants with a non-zero coefficient kept per gene (largest first)
ACGTN = frozenset("ACGTN")


class ElasticNetEQTL:
    """PrediXcan-style elastic net for one gene: dosages [individuals, variants] (0/1/2) -> expression.

    Constant variant columns are dropped; with no informative variant (or constant expression) the model
    predicts the training mean. ``n_nonzero_`` counts the variants kept; :meth:`coefficients` gives every column's
    effect per ALT allele in expression units.
    """

    def __init__(self, l1_ratio: float = 0.5, n_folds: int = 5, n_alphas: int = 30, seed: int = 0) -> None:
        self.l1_ratio, self.n_folds, self.n_alphas, self.seed = l1_ratio, n_folds, n_alphas, seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> ElasticNetEQTL:
        X, y = np.asarray(X, float), np.asarray(y, float)
        if X.ndim != 2 or len(X) != len(y):
            raise GtaInputError(f"dosages must be [individuals, variants] matching y; got {X.shape}, {y.shape}")
        self.n_columns_ = X.shape[1]
        self.keep_ = np.flatnonzero(X.std(axis=0) > 0) if X.shape[1] else np.zeros(0, int)
        self.mean_ = float(y.mean())
        self.model_ = None
        self.n_nonzero_ = 0
        folds = min(self.n_folds, len(y))
        if len(self.keep_) and np.ptp(y) > 0 and folds >= 2:
            cv = KFold(folds, shuffle=True, random_state=self.seed)
            enet = ElasticNetCV(l1_ratio=self.l1_ratio, alphas=self.n_alphas, cv=cv, random_state=self.seed,
                                max_iter=5000)
            self.model_ = make_pipeline(StandardScaler(), enet).fit(X[:, self.keep_], y)
            self.n_nonzero_ = int(np.count_nonzero(enet.coef_))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, float)
        if self.model_ is None:
            return np.full(len(X), self.mean_)
        return self.model_.predict(X[:, self.keep_])

    def coefficients(self) -> np.ndarray:
        """Per input column, the change of the prediction per ALT allele (0 for dropped columns or no model)."""
        coef = np.zeros(self.n_columns_)
        if self.model_ is not None:
            scaler, enet = self.model_[0], self.model_[-1]
            coef[self.keep_] = enet.coef_ / scaler.scale_
        return coef


def window_dosages(reader, gene, geometry):
    """The VCF records in a gene's input window and their ALT dosages, float [samples, records] (0/1/2)."""
    window = geometry.window(gene.tss, gene.strand)
    calls = reader.region(gene.chrom, window.start, window.end)
    return calls, (calls.gt > 0).sum(axis=2).T.astype(float)


@dataclass
class VariantTargets:
    """Per kept variant (flat arrays, row ``i`` = variant ``i``): its gene, target (standardised units, one window)
    and the bins its ALT changes with their ALT features (``row``/``bin``/``val``, one entry per changed bin)."""

    gene_id: np.ndarray  # str [V]
    target: np.ndarray  # float32 [V]
    row: np.ndarray  # int64 [E]: variant index of each changed bin
    bin: np.ndarray  # int64 [E]
    val: np.ndarray  # float32 [E, d]
    identity: str = ""
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def mean_square(self) -> float:
        """Mean square of the non-zero targets: the loss's unit (1.0 when there are none)."""
        nz = self.target[self.target != 0]
        return float(np.mean(nz.astype(np.float64) ** 2)) if len(nz) else 1.0

    def by_gene(self) -> dict[str, tuple[list, list]]:
        """gene id -> (non-zero-target variants, zero-target ones), each a list of (bins, ALT values, target)."""
        order = np.argsort(self.row, kind="stable")
        starts = np.searchsorted(self.row[order], np.arange(len(self.target) + 1))
        out: dict[str, tuple[list, list]] = {}
        for i, (g, t) in enumerate(zip(self.gene_id.tolist(), self.target.tolist(), strict=True)):
            take = order[starts[i] : starts[i + 1]]
            out.setdefault(g, ([], []))[0 if t != 0 else 1].append((self.bin[take], self.val[take], float(t)))
        return out

    def summary(self) -> dict[str, int]:
        return {"genes": len(set(self.gene_id.tolist())), "variants": len(self.target),
                "non_zero": int((self.target != 0).sum()), **{f"skipped: {k}": v for k, v in self.skipped.items()}}

    def save(self, path: Path) -> None:
        buf = io.BytesIO()
        np.savez(buf, gene_id=self.gene_id, target=self.target, row=self.row, bin=self.bin, val=self.val,
                 identity=np.array(self.identity), skipped_keys=np.array(list(self.skipped), dtype=str),
                 skipped_values=np.array(list(self.skipped.values()), dtype=np.int64))
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> VariantTargets:
        with np.load(path) as z:
            skipped = dict(zip(z["skipped_keys"].tolist(), z["skipped_values"].tolist(), strict=True))
            return cls(z["gene_id"], z["target"], z["row"], z["bin"], z["val"], str(z["identity"]), skipped)


def fit_variant_targets(dataset, store, data, cache: Path | None = None, progress: bool = True,
                        save: bool = True) -> VariantTargets:
    """The eQTL targets of ``data``'s training genes (see the module docstring); read from ``cache`` when it holds
    those of the same data set, store and genes, and otherwise written there (``save``: one rank of many writes).
    They are a property of the data, not of a run: the elastic nets' folds and the zero-effect draws have their own
    fixed seed, so runs that differ only in their seed share the targets (and may share the file)."""
    from collections import Counter

    from tqdm.auto import tqdm

    from gta.encoders.rebuild import rebuild_encoder
    from gta.io.variants import VariantReader

    if dataset.variants_path is None:
        raise GtaInputError("eqtl_weight > 0 fits per-variant targets from genotypes, but the manifest names no VCF",
                            path=dataset.manifest.path, hint="add 'variants: FILE.vcf.gz', or set eqtl_weight: 0")
    genes = [data.gene_ids[i] for i in data.genes_in("train")]
    identity = sha256_json({"dataset": dataset.fingerprint(include_expression=True), "genes": genes,
                            "store": {k: str(v) for k, v in dict(store.attrs).items()}, "version": 1})
    if cache is not None and cache.exists():
        saved = VariantTargets.load(cache)
        if saved.identity == identity:
            return saved
    by_id = {g.gene_id: g for g in dataset.genes}
    expr = dataset.expression.for_genes([by_id[g] for g in genes])
    expr.columns = [str(c) for c in expr.columns]
    train_ids = {str(s) for s in dataset.individual_splits()[0]}
    samples = [s for s in expr.columns if s in train_ids]
    if len(samples) < 5:
        raise GtaInputError(f"eqtl_weight > 0 needs training individuals with expression; found {len(samples)}",
                            path=dataset.manifest.expression, hint="set eqtl_weight: 0")
    ctx = _GeneFit(rebuild_encoder(dict(store.attrs)), VariantReader(dataset.variants_path, dataset.genome), store,
                   dataset, samples, data.target_std, Counter())
    parts = []
    for i, gid in enumerate(tqdm(genes, desc="eQTL targets", unit="gene", disable=not progress, leave=False)):
        if gid in expr.index:
            parts.append(ctx.gene(by_id[gid], expr.loc[gid], np.random.default_rng([TARGET_SEED, i])))
    targets = _assemble([p for p in parts if p is not None], identity, dict(ctx.skipped))
    if cache is not None and save:
        targets.save(cache)
    return targets


@dataclass
class _GeneFit:
    """What fitting one gene's targets reads: the store's encoder, the VCF, the store, the individuals."""

    encoder: object
    reader: object
    store: object
    dataset: object
    samples: list[str]
    target_std: float
    skipped: dict[str, int]

    def gene(self, gene, y_row, rng: np.random.Generator) -> tuple | None:
        """(gene id, targets [v], changed-bin rows, bins, values) of one gene, or None without usable variants."""
        from gta.features.alleles import encode_alleles, round_to

        calls, dose = window_dosages(self.reader, gene, self.dataset.manifest.geometry)
        usable = [r for r in range(len(calls.ids)) if self._usable(calls, r)]
        pos = {str(s): k for k, s in enumerate(calls.samples)}
        who = [s for s in self.samples if s in pos and np.isfinite(y_row[s])]
        if not usable or len(who) < 5:
            return None
        x = dose[np.ix_([pos[s] for s in who], usable)]
        target = 2 * ElasticNetEQTL(seed=int(rng.integers(2**31))).fit(x, y_row[who].to_numpy(float)).coefficients()
        target /= self.target_std
        nonzero = np.flatnonzero(target)
        nonzero = nonzero[np.argsort(-np.abs(target[nonzero]), kind="stable")][:MAX_NONZERO]
        zero = np.flatnonzero(target == 0)
        pick = np.sort(np.concatenate([nonzero, rng.choice(zero, min(len(zero), max(len(nonzero), 2)), replace=False)]))
        ref = round_to(self.store.read_ref(gene.gene_id), self.store.dtype)
        alleles = [(gene.chrom, int(calls.starts[usable[k]]), calls.refs[usable[k]], calls.alts[usable[k]][0],
                    calls.ids[usable[k]]) for k in pick]
        alt = encode_alleles(self.encoder, self.dataset.genome, gene, self.dataset.manifest.geometry, ref, alleles,
                             self.store.dtype)
        changed = ~(alt == ref[None]).all(axis=2)  # [v, bins]
        moves = changed.any(axis=1)
        if not moves.all():
            self.skipped["alleles that change no stored feature"] += int((~moves).sum())
        v, b = np.nonzero(changed[moves])
        return gene.gene_id, target[pick][moves].astype(np.float32), v, b, alt[moves][v, b]

    def _usable(self, calls, r: int) -> bool:
        if calls.status[r] != "ok":
            self.skipped[f"records {calls.status[r]}"] += 1
            return False
        if len(calls.alts[r]) != 1:
            self.skipped["multi-allelic records"] += 1
            return False
        if not (set(calls.refs[r]) <= ACGTN and set(calls.alts[r][0]) <= ACGTN):
            self.skipped["symbolic or non-ACGTN alleles"] += 1
            return False
        return True


def _assemble(parts: list[tuple], identity: str, skipped: dict[str, int]) -> VariantTargets:
    gene_ids, targets, rows, bins, vals = [], [], [], [], []
    offset = 0
    for gid, target, v, b, val in parts:
        gene_ids += [gid] * len(target)
        targets.append(target)
        rows.append(v + offset)
        bins.append(b)
        vals.append(val)
        offset += len(target)
    if not parts:
        return VariantTargets(np.array([], str), np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64),
                              np.zeros((0, 0), np.float32), identity, skipped)
    return VariantTargets(np.array(gene_ids, str), np.concatenate(targets), np.concatenate(rows).astype(np.int64),
                          np.concatenate(bins).astype(np.int64), np.concatenate(vals).astype(np.float32), identity,
                          skipped)
