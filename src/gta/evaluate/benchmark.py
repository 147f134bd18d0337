"""``gta benchmark``: train and score GTA, its ablations and the baselines on identical splits and features.

Every model sees the same targets (``gta.train.data.build_run_data``: gene means and, with personal haplotypes,
individual values), the same gene splits (held-out chromosomes) and the same individual split. Each model's
prediction table is saved; ``results.json`` and the report are computed from those tables alone.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from rich.console import Console
from tqdm.auto import tqdm

from gta.atomic import atomic_path
from gta.errors import GtaInputError
from gta.evaluate import results as R
from gta.evaluate.metrics import noise_ceiling
from gta.memory import peak_rss_mb
from gta.stats import combine_haplotypes
from gta.yaml_input import read_yaml, refuse_unknown, typed_fields

if TYPE_CHECKING:
    from gta.train.data import RunData

log = logging.getLogger(__name__)
console = Console(stderr=True)

ABLATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "GTA": ("gta", {}),
    "GTA no prompt": ("ablation", {"use_prompt": False}),
    "GTA no alignment": ("ablation", {"alignment": "linear"}),
    "GTA no LLM": ("ablation", {"backbone": "none"}),
    "GTA random LLM": ("ablation", {"backbone": "random"}),
}
DESCRIPTIONS = {
    "GTA": "motif/Enformer features -> token alignment onto text prototypes -> frozen LLM after the gene prompt",
    "GTA no prompt": "GTA without the annotation prompt prefix",
    "GTA no alignment": "a plain linear projection into the LLM's embedding space instead of prototype attention",
    "GTA no LLM": "the aligned tokens go through a small transformer trained from scratch",
    "GTA random LLM": "a randomly initialised LLM of the same architecture, frozen",
    "Ridge (promoter bins)": "RidgeCV on the features of the central bins around the TSS",
    "Ridge (all bins)": "RidgeCV on the features pooled into distance bands over the whole window",
    "Ridge (distance bands)": "RidgeCV on log1p counts of strong motif sites (>= 0.7 x max log-odds) per |distance| "
                              "band (motif features only)",
    "Annotation only": "the prompt text embedded by all-MiniLM-L6-v2, then RidgeCV (no sequence)",
    "Enformer-arch (scratch)": "an Enformer-architecture model trained from scratch on one-hot sequence",
    "Enformer readout": "pretrained Enformer's GM12878 CAGE track at the TSS bins",
    "eQTL elastic net": "PrediXcan-style per-gene elastic net on window genotypes (cross-individual only)",
}
# 50 genes (variants of 25): at 10 and 8 the sign criterion rested on 18 causal variants and AUPRC on ~10 elements
# (docs/learning.md, entry 24); importance costs ~0.2 s a gene on 2 cores
INTERPRET_DEFAULTS: dict[str, Any] = {"models": ["GTA", "GTA no LLM", "Ridge (all bins)"], "n_genes": 50,
                                      "variant_genes": 25}
BASELINES = ("Ridge (promoter bins)", "Ridge (all bins)", "Ridge (distance bands)", "Annotation only",
             "Enformer-arch (scratch)", "eQTL elastic net", "Enformer readout")


@dataclass
class BenchmarkConfig:
    """Which models to run, and how. ``gta`` is a TrainConfig mapping shared by GTA and its ablations."""

    gta: dict[str, Any] = field(default_factory=dict)
    models: list[str] = field(default_factory=lambda: list(ABLATIONS) + list(BASELINES))
    # a step budget, not a wall-clock cap, so the score does not depend on the machine's load: 800 steps of 4
    # genes are 2 epochs of the bench preset's training genes, ~5 min on 2 cores at 32 kb
    enformer_arch: dict[str, Any] = field(default_factory=lambda: {"crop_bp": 32768, "epochs": 20,
                                                                    "max_steps": 800})
    enformer_weights: str | None = None  # a local pretrained Enformer folder for the readout baseline
    enformer_track: int | None = None  # its head track (default: GM12878 CAGE, 5110)
    n_boot: int = 1000
    seed: int = 0
    # on simulated data: interpret these runs (importance AUPRC for n_genes held-out genes; the predicted effects
    # of the variants in the windows of the first variant_genes of them); n_genes: 0 turns it off
    interpret: dict[str, Any] = field(default_factory=lambda: dict(INTERPRET_DEFAULTS))

    @classmethod
    def load(cls, path: str | Path | None) -> BenchmarkConfig:
        if path is None:
            return cls()
        raw = read_yaml(path, "benchmark config", hint="pass --config PATH to a YAML file") or {}
        if not isinstance(raw, dict):
            raise GtaInputError("a benchmark config is a YAML mapping", path)
        refuse_unknown(raw, cls.__dataclass_fields__, path=path)
        cfg = cls(**typed_fields(cls, raw, path))
        _check_model_names(cfg.models, "model(s)", path)
        cfg.check_sections(path)
        return cfg

    def check_sections(self, path: str | Path | None = None) -> None:
        """The nested settings, checked when the config is read rather than after an hour of training: ``gta`` as
        a training config, ``interpret``'s counts and models, ``enformer_arch`` against ``EnformerScratch``."""
        import inspect

        from gta.evaluate.seq_baseline import EnformerScratch
        from gta.train.config import TrainConfig

        try:
            TrainConfig.from_dict(copy.deepcopy(self.gta), path)
        except GtaInputError as e:
            raise GtaInputError(f"section gta: {e.message}", path, e.line, e.hint) from None
        refuse_unknown(self.interpret, INTERPRET_DEFAULTS, "interpret key(s)", path)
        typed_fields(_InterpretSettings, self.interpret, path, "interpret.")
        _check_model_names(self.interpret.get("models", []), "interpret model(s)", path)
        # what the benchmark sets itself (its seed, device and progress flag) is not a config key
        known = set(inspect.signature(EnformerScratch).parameters) - {"seed", "device", "progress"}
        refuse_unknown(self.enformer_arch, known, "enformer_arch key(s)", path)
        typed_fields(EnformerScratch.__init__, self.enformer_arch, path, "enformer_arch.")


def _check_model_names(names: list[str], what: str, path: str | Path | None) -> None:
    bad = [m for m in names if m not in ABLATIONS and m not in BASELINES]
    if bad:
        raise GtaInputError(f"unknown {what} {bad}", path, hint=f"known: {list(ABLATIONS) + list(BASELINES)}")


@dataclass
class _InterpretSettings:
    """The types of the benchmark config's ``interpret`` section (its defaults: ``INTERPRET_DEFAULTS``)."""

    models: list[str]
    n_genes: int
    variant_genes: int


@dataclass(frozen=True)
class BenchContext:
    """What every model runner reads: the opened inputs, the shared targets and splits, and the run settings."""

    cfg: BenchmarkConfig
    dataset: Any  # gta.io.dataset.Dataset
    store: Any  # gta.features.store.FeatureStore
    data: RunData
    out: Path
    task: str  # GTA's training task (the benchmark's TrainConfig)
    progress: bool
    combine: str  # how two haplotype predictions make an individual's (TrainConfig.hap_combine)
    template: str | None  # the prompt template GTA reads (TrainConfig.prompt_template)
    ref_features: np.ndarray | None = None  # float32 [genes, bins, d] of the reference windows, for the ridges


@dataclass
class ModelRun:
    """One runner's output: the prediction table, notes for the report, and a fitted model to interpret later."""

    table: pd.DataFrame
    notes: list[str]
    fitted: Any = None


def _gene_rows(data, idx: list[int], pred: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({
        "gene_id": [data.gene_ids[i] for i in idx], "sample": "", "haplotype": "",
        "split": [data.split[i] for i in idx], "y_true": data.y_gene[idx].astype(float),
        "y_pred": np.asarray(pred, float), "sample_split": "",
    })


def _individual_rows(data, store, predict_windows: Callable[[np.ndarray], np.ndarray], combine: str) -> pd.DataFrame:
    """Per-haplotype predictions of a feature model, combined per individual like GTA's."""
    from gta.train.data import FeatureSource

    if not data.has_individuals:
        return pd.DataFrame()
    source = FeatureSource(store, 256)
    rows = []
    for g, gene_id in enumerate(data.gene_ids):
        haps = source.haps(gene_id)
        keys = sorted({k for pair in haps.values() for k in pair})
        if not keys:
            continue
        h = dict(zip(keys, predict_windows(source.get_many(gene_id, keys)), strict=True))
        for s, sample in enumerate(data.samples):
            if sample not in haps or not np.isfinite(data.y_ind[g, s]):
                continue
            h1, h2 = h[haps[sample][0]], h[haps[sample][1]]
            y = combine_haplotypes(h1, h2, combine)
            y = y if combine == "mean" else float(y)
            rows.append((gene_id, sample, "both", data.split[g], float(data.y_ind[g, s]), y, data.sample_split[s]))
    return pd.DataFrame(rows, columns=["gene_id", "sample", "haplotype", "split", "y_true", "y_pred", "sample_split"])


def _run_gta(name: str, ctx: BenchContext) -> ModelRun:
    from gta.train import train
    from gta.train.config import TrainConfig

    raw = copy.deepcopy(ctx.cfg.gta)
    raw.setdefault("model", {}).update(ABLATIONS[name][1])
    raw.setdefault("task", ctx.task)
    cfg = TrainConfig.from_dict(raw)
    run_dir = ctx.out / "runs" / R.run_slug(name)
    notes = []
    if (run_dir / "summary.json").exists():  # finished earlier: reuse (the benchmark resumes model by model)
        s = json.loads((run_dir / "summary.json").read_text())
        notes.append("reused a finished run (wall time is this benchmark's, not the training's)")
    else:
        resume = (run_dir / "state.json").exists()
        result = train(ctx.dataset, ctx.store, run_dir, config=None if resume else cfg, resume=resume,
                       progress=ctx.progress)
        s = result.summary or {}
    tables = [pd.read_parquet(p) for p in sorted((run_dir / "predictions").glob("*.parquet"))]
    df = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    notes += [f"run folder: runs/{run_dir.name}", f"best epoch {s.get('best_epoch')} of {s.get('epochs')}",
             f"{s.get('n_trainable', 0):,} trainable parameters"]
    if s.get("speed_levers"):
        notes.append("speed levers: " + "; ".join(map(str, s["speed_levers"])))
    return ModelRun(df, notes)


def _run_ridge(name: str, ctx: BenchContext) -> ModelRun:
    from gta.evaluate.baselines import RidgeOnBins, RidgeOnMotifHits

    data, store = ctx.data, ctx.store
    X = ctx.ref_features
    train = data.genes_in("train") + data.genes_in("val")
    if name == "Ridge (distance bands)":
        try:
            model = RidgeOnMotifHits.for_store(store)
        except GtaInputError as e:
            raise _NotRun(str(e)) from None
    else:
        model = RidgeOnBins(bins="central" if "promoter" in name else "all", tss_bin=store.geometry.tss_bin)
    model.fit(X[train], data.y_gene[train])
    all_idx = list(range(len(data.gene_ids)))
    df = _gene_rows(data, all_idx, model.predict(X))
    ind = _individual_rows(data, store, model.predict, ctx.combine)
    return ModelRun(pd.concat([df, ind], ignore_index=True), [f"ridge alpha {getattr(model, 'alpha_', 'n/a')}"],
                    fitted=model)  # interpreted later, like the GTA runs


def _run_annotation(name: str, ctx: BenchContext) -> ModelRun:
    from gta.evaluate.baselines import AnnotationOnly
    from gta.train.prompts import run_prompts

    data = ctx.data
    prompts = run_prompts(ctx.dataset, data.gene_ids, progress=False, template=ctx.template)
    texts = [prompts[g] for g in data.gene_ids]
    train = data.genes_in("train") + data.genes_in("val")
    model = AnnotationOnly().fit([texts[i] for i in train], data.y_gene[train])
    return ModelRun(_gene_rows(data, list(range(len(texts))), model.predict(texts)), ["texts: the GTA prompts"])


def _readout_track(store) -> int | None:
    """Column of the head track in an Enformer store built with ``--cage-track`` (None when there is none)."""
    track = (store.attrs.get("encoder_config") or {}).get("cage_track")
    if store.attrs.get("encoder") != "enformer" or track is None:
        return None
    names = store.feature_names
    return next((i for i, n in enumerate(names) if n.endswith(f"_track{track}")), None)


def _run_enformer_readout(name: str, ctx: BenchContext) -> ModelRun:
    """From the store's own CAGE column when it has one (reference and personal windows); else, with
    ``enformer_weights``, by running the pretrained model's head on the reference windows (cross-gene only)."""
    from gta.evaluate.baselines import EnformerReadout

    data, store, cfg = ctx.data, ctx.store, ctx.cfg
    tss_bin = store.geometry.tss_bin
    train = data.genes_in("train") + data.genes_in("val")
    col = _readout_track(store)
    if col is not None:
        X = np.stack([store.read_ref(g) for g in data.gene_ids]).astype(np.float32)
        model = EnformerReadout(col, tss_bin).fit(X[train], data.y_gene[train])
        df = _gene_rows(data, list(range(len(data.gene_ids))), model.predict(X))
        ind = _individual_rows(data, store, model.predict, ctx.combine)
        track = store.attrs["encoder_config"]["cage_track"]
        return ModelRun(pd.concat([df, ind], ignore_index=True),
                        [f"track {track} of the feature store, bins {tss_bin}+/-1"])
    if not cfg.enformer_weights:
        raise _NotRun("needs pretrained Enformer: an Enformer feature store built with --cage-track "
                      "(gta extract --encoder enformer --weights DIR --cage-track 5110), or enformer_weights: DIR "
                      "in the benchmark config")
    from gta.encoders import get_encoder
    from gta.encoders.enformer import GM12878_CAGE_TRACK

    track = int(cfg.enformer_track if cfg.enformer_track is not None else GM12878_CAGE_TRACK)
    encoder = get_encoder("enformer", geometry=store.geometry, weights=cfg.enformer_weights, cage_track=track,
                          embeddings=False)
    genome, geometry = ctx.dataset.genome, store.geometry
    tracks, step = [], 16  # windows per call; the encoder batches them on its device
    for i in tqdm(range(0, len(data.gene_ids), step), desc="Enformer readout", unit="batch",
                  disable=not ctx.progress):
        genes = [ctx.dataset.gene(g) for g in data.gene_ids[i : i + step]]
        tracks.append(encoder.encode([genome.gene_window(g, geometry) for g in genes]))
    X = np.concatenate(tracks).astype(np.float32)
    model = EnformerReadout(0, tss_bin).fit(X[train], data.y_gene[train])
    df = _gene_rows(data, list(range(len(data.gene_ids))), model.predict(X))
    return ModelRun(df, [f"track {track} of {cfg.enformer_weights}, reference windows only (no cross-individual "
                         "rows: build an Enformer store with --cage-track --samples all for those)"])


def _run_enformer_arch(name: str, ctx: BenchContext) -> ModelRun:
    from gta.evaluate.seq_baseline import EnformerScratch
    from gta.io.genome import one_hot

    data, dataset = ctx.data, ctx.dataset
    geometry = dataset.manifest.geometry
    genes = {g.gene_id: g for g in dataset.genes}
    crop = ctx.cfg.enformer_arch.get("crop_bp") or geometry.input_len
    lo = (geometry.input_len - crop) // 2  # crop here too, so memory holds only what the model reads
    X = np.stack([one_hot(dataset.genome.gene_window(genes[g], geometry)[lo:lo + crop]) for g in data.gene_ids])
    tr, va = data.genes_in("train"), data.genes_in("val")
    y = (data.y_gene - data.target_mean) / data.target_std
    kw = {**ctx.cfg.enformer_arch, "seed": ctx.cfg.seed, "progress": ctx.progress}
    model = EnformerScratch(**kw).fit(X[tr], y[tr], X[va], y[va])
    pred = model.predict(X) * data.target_std + data.target_mean
    report = model.fit_report_.to_dict() if hasattr(model, "fit_report_") else {}
    return ModelRun(_gene_rows(data, list(range(len(X))), pred), [model.label, json.dumps(report, default=str)])


def _run_eqtl(name: str, ctx: BenchContext) -> ModelRun:
    from gta.evaluate.baselines import fit_predict_eqtl
    from gta.io.variants import VariantReader
    from gta.train.eqtl import window_dosages

    data, dataset = ctx.data, ctx.dataset
    if dataset.variants_path is None:
        raise _NotRun("needs a VCF in the manifest")
    genes = {g.gene_id: g for g in dataset.genes}
    reader = VariantReader(dataset.variants_path, dataset.genome)
    dosages: dict[str, pd.DataFrame] = {}
    for gene_id in data.gene_ids:
        calls, d = window_dosages(reader, genes[gene_id], dataset.manifest.geometry)
        if not len(calls):
            continue
        keep = d.std(axis=0) > 0
        if keep.any():
            dosages[gene_id] = pd.DataFrame(d[:, keep], index=calls.samples)
    # all individuals' expression and genotypes (the store may hold haplotypes of held-out individuals only)
    expr = dataset.expression.for_genes([genes[g] for g in data.gene_ids])
    expr.columns = [str(c) for c in expr.columns]
    train_ids, test_ids = (set(map(str, part)) for part in dataset.individual_splits())
    train = [s for s in expr.columns if s in train_ids]
    test = [s for s in expr.columns if s in test_ids]
    split = dict(zip(data.gene_ids, data.split, strict=True))
    df = fit_predict_eqtl(dosages, expr, train, test, split, seed=ctx.cfg.seed, progress=ctx.progress)
    return ModelRun(df, [f"{len(dosages)} genes with variable genotypes in the window"])


class _NotRun(Exception):
    pass


Runner = Callable[[str, BenchContext], ModelRun]
# model name -> the function that trains/fits it and predicts every row (beside ABLATIONS and BASELINES)
RUNNERS: dict[str, Runner] = {
    **dict.fromkeys(ABLATIONS, _run_gta),
    "Ridge (promoter bins)": _run_ridge,
    "Ridge (all bins)": _run_ridge,
    "Ridge (distance bands)": _run_ridge,
    "Annotation only": _run_annotation,
    "Enformer-arch (scratch)": _run_enformer_arch,
    "eQTL elastic net": _run_eqtl,
    "Enformer readout": _run_enformer_readout,
}
FEATURE_RIDGES = ("Ridge (promoter bins)", "Ridge (all bins)", "Ridge (distance bands)")


def benchmark(manifest, features, out: str | Path, config: BenchmarkConfig | str | Path | None = None,
              progress: bool = True) -> Path:
    """Train and evaluate every configured model; write ``results.json``, ``results.md``, plots and ``report.html``.

    Returns the path of ``report.html``.
    """
    from gta.evaluate.report import render_report

    cfg = config if isinstance(config, BenchmarkConfig) else BenchmarkConfig.load(config)
    ctx = _prepare(manifest, features, Path(out), cfg, progress)
    res = _new_results(ctx)
    signal = noise_free_signal(ctx.dataset)
    fitted = _run_models(ctx, res, signal)
    results_json, pred_dir = ctx.out / "results.json", ctx.out / "predictions"
    if ctx.dataset.manifest.truth is not None:
        res.interpretation = _interpretation(ctx, res, fitted)
    _write(res, results_json, pred_dir, signal)
    report = render_report(results_json, pred_dir, ctx.out / "report.html")
    return Path(report) if report else ctx.out / "report.html"


def _prepare(manifest, features, out: Path, cfg: BenchmarkConfig, progress: bool) -> BenchContext:
    """Open the inputs and build the targets every model shares (the reference features too when a ridge needs
    them)."""
    from gta.features.store import FeatureStore
    from gta.io.dataset import open_dataset
    from gta.train.config import TrainConfig
    from gta.train.data import build_run_data

    (out / "predictions").mkdir(parents=True, exist_ok=True)
    dataset = manifest if hasattr(manifest, "genes") else open_dataset(manifest)
    store = features if hasattr(features, "read_ref") else FeatureStore.open(features)
    # GTA trains on reference windows by default (the paper's setting); held-out individuals are predicted from
    # their haplotypes whatever the task, so every model is scored across individuals on the same rows.
    tcfg = TrainConfig.from_dict({**copy.deepcopy(cfg.gta), "task": cfg.gta.get("task", "cross-gene")})
    data = build_run_data(dataset, store, tcfg)
    return BenchContext(cfg=cfg, dataset=dataset, store=store, data=data, out=out, task=tcfg.task,
                        progress=progress, combine=tcfg.hap_combine, template=tcfg.prompt_template)


def _new_results(ctx: BenchContext) -> R.Results:
    """An empty Results with the data set described; on simulated data the genes' distal share is written beside
    the predictions (the report breaks metrics down by it)."""
    from gta import __version__

    dataset, data = ctx.dataset, ctx.data
    res = R.Results(settings=R.MetricSettings(n_boot=ctx.cfg.n_boot, seed=ctx.cfg.seed))
    res.gta_version = __version__
    summary = data.summary()
    res.dataset = R.DatasetInfo(
        name=dataset.manifest.name, hash=dataset.fingerprint(), description=dataset.manifest.description,
        n_genes=len(data.gene_ids), n_samples=len(data.samples), genes_by_split=summary["genes"],
        samples_by_split=summary["individuals"], simulated=dataset.manifest.truth is not None,
        expression_transform=dataset.manifest.expression_transform)
    truth = dataset.manifest.truth
    if truth is not None and (Path(truth) / "genes.tsv").exists():
        t = pd.read_csv(Path(truth) / "genes.tsv", sep="\t", dtype={"gene_id": str})
        if "distal_share" in t:
            R.write_gene_info(ctx.out / "predictions", t.set_index("gene_id")["distal_share"].astype(float))
    return res


def _run_models(ctx: BenchContext, res: R.Results, signal: pd.DataFrame | None) -> dict[str, Any]:
    """Run every configured model in turn (RUNNERS), recording each in ``res`` and writing ``results.json`` after
    each one so the results so far survive an interruption. Returns the fitted baselines to interpret."""
    if set(FEATURE_RIDGES) & set(ctx.cfg.models):
        ref = np.stack([ctx.store.read_ref(g) for g in ctx.data.gene_ids]).astype(np.float32)
        ctx = dataclasses.replace(ctx, ref_features=ref)
    names = [n for n in dict.fromkeys(ctx.cfg.models) if n in RUNNERS]
    pred_dir, results_json = ctx.out / "predictions", ctx.out / "results.json"
    fitted: dict[str, Any] = {}
    for i, name in enumerate(names, 1):
        kind = ABLATIONS[name][0] if name in ABLATIONS else "baseline"
        console.print(f"[bold]benchmark[/bold] [{i}/{len(names)}] {name}")
        t0 = time.perf_counter()
        try:
            run = RUNNERS[name](name, ctx)
        except _NotRun as e:
            R.record_not_run(res, name, str(e), kind=kind, description=DESCRIPTIONS.get(name, ""))
            console.print(f"  not run: {e}")
            continue
        wall = time.perf_counter() - t0
        if run.fitted is not None:
            fitted[name] = run.fitted
        R.record_model(res, pred_dir, name, run.table, kind=kind, description=DESCRIPTIONS.get(name, ""),
                       wall_time_s=wall, peak_memory_mb=peak_rss_mb(), notes=run.notes)
        cg = res.model(name).metrics.get("cross_gene") or {}
        rho = cg.get("spearman")
        console.print(f"  done in {wall:.0f} s; test cross-gene Spearman "
                      + ("n/a" if rho is None else f"{rho:.3f}"))
        _write(res, results_json, pred_dir, signal)  # results so far survive an interruption
    return fitted


def _interpretation(ctx: BenchContext, res: R.Results, fitted: dict[str, Any]) -> dict[str, Any]:
    """Importance AUPRC (true elements, overall and distal) and variant-effect agreement of the GTA-family runs
    named in ``cfg.interpret``, on the simulator's truth. ``out/interpret/MODEL/`` keeps what they are computed
    from: ``importance.npz``, tracks, ``top_sections.tsv``, ``interpret_metrics.json`` and ``effects.tsv``."""
    icfg = {**INTERPRET_DEFAULTS, **ctx.cfg.interpret}
    dataset, store, out = ctx.dataset, ctx.store, ctx.out
    done = {m.name for m in res.models if m.status == "ok"}
    found: dict[str, Any] = {}
    for name in icfg["models"]:
        run_dir = out / "runs" / R.run_slug(name)
        if icfg["n_genes"] and name in fitted:
            found[name] = _interpret_ridge(ctx, name, fitted[name], icfg, out / "interpret" / R.run_slug(name))
            continue
        if not icfg["n_genes"] or name not in ABLATIONS or name not in done or not (run_dir / "summary.json").exists():
            continue
        console.print(f"[bold]interpret[/bold] {name}: importance of {icfg['n_genes']} held-out genes"
                      + (f", effects of the variants near {icfg['variant_genes']} of them" if icfg["variant_genes"]
                         and dataset.variants_path else ""))
        folder = out / "interpret" / R.run_slug(name)
        imp, effects = interpret_run(run_dir, dataset, store, folder, int(icfg["n_genes"]),
                                     int(icfg["variant_genes"]), ctx.progress)
        entry = _entry(imp, imp["genes"], folder, out)
        if effects is not None:
            entry["variant_effects"] = effects
            entry["variant_effects_table"] = str((folder / "effects.tsv").relative_to(out))
        found[name] = entry
    return found


def interpret_run(run_dir: Path, dataset, store, folder: Path, n_genes: int, variant_genes: int,
                  progress: bool = False) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """What the benchmark reads from a trained run against the simulator's truth: importance metrics on
    ``n_genes`` held-out genes (``gta.interpret.interpret``) and variant-effect metrics near the first
    ``variant_genes`` of them (``score_variants``; None without a VCF). Arrays and tables go to ``folder``."""
    from gta.interpret import interpret, score_variants

    imp = interpret(run_dir, dataset, store, n_genes=n_genes, evaluate=True, out=folder, plots=False,
                    progress=progress).metrics
    if not variant_genes or dataset.variants_path is None:
        return imp, None
    effects = score_variants(run_dir, dataset, dataset.variants_path, out=folder / "effects.tsv", features=store,
                             genes=imp["genes"][:variant_genes], evaluate=True, progress=progress)
    return imp, effects.metrics


_KEEP = ("auprc", "distal_auprc", "auprc_gene_mean", "distal_auprc_gene_mean")


def _entry(metrics: dict[str, Any], genes: list[str], folder: Path, out: Path) -> dict[str, Any]:
    """One model's interpretation record: the AUPRCs worth reporting and where their arrays are kept."""
    return {
        "genes": list(genes), "distal_bp": metrics["distal_bp"],
        "importance_arrays": str((folder / "importance.npz").relative_to(out)),
        "importance": {m: {k: v.get(k) for k in _KEEP} for m, v in metrics["methods"].items()},
        "reference": {r: {k: v.get(k) for k in _KEEP if k in v} for r, v in metrics["reference"].items()},
    }


def _interpret_ridge(ctx: BenchContext, name: str, model: Any, icfg: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A fitted ridge baseline, interpreted like the GTA runs: gradient x input per bin (exact for a linear model)
    on the same held-out genes, and the effects of the same variants through the same encoder."""
    from gta.encoders.rebuild import rebuild_encoder
    from gta.interpret.context import select_genes
    from gta.interpret.evaluate import importance_metrics, read_truth_table, variant_effect_metrics
    from gta.interpret.variants import VariantScorer

    dataset, store = ctx.dataset, ctx.store
    console.print(f"[bold]interpret[/bold] {name}: gradient x input of {icfg['n_genes']} held-out genes")
    genes = select_genes(dataset, store, n_genes=int(icfg["n_genes"]))
    X = np.stack([store.read_ref(g.gene_id) for g in genes]).astype(np.float32)
    contrib = model.bin_contributions(X)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "importance.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, gene_ids=np.array([g.gene_id for g in genes]), gradxinput=contrib)
    imps = {g.gene_id: {"gradxinput": contrib[i]} for i, g in enumerate(genes)}
    metrics = importance_metrics(imps, read_truth_table(dataset.manifest.truth, "elements.tsv"), store.geometry)
    entry = _entry(metrics, [g.gene_id for g in genes], folder, ctx.out)
    if icfg["variant_genes"] and dataset.variants_path is not None:
        scorer = VariantScorer(dataset, rebuild_encoder(store.attrs), lambda feats, gene: model.predict(feats),
                               lambda gene: store.read_ref(gene.gene_id), store.attrs.get("dtype", "float16"), 16,
                               genes[: int(icfg["variant_genes"])])
        effects = folder / "effects.tsv"
        scorer.score_vcf(dataset.variants_path, effects, progress=ctx.progress)
        entry["variant_effects"] = variant_effect_metrics(effects, Path(dataset.manifest.truth) / "variants.tsv")
        entry["variant_effects_table"] = str(effects.relative_to(ctx.out))
    return entry


def noise_free_signal(dataset) -> pd.DataFrame | None:
    """The simulator's noise-free expression as a signal table (``gene_id, sample, signal``; gene rows have
    ``sample == ""`` and the mean over individuals), in the units the manifest gives the observed values."""
    from gta.io.expression import read_expression

    truth = dataset.manifest.truth
    path = Path(truth) / "expression_noise_free.tsv" if truth else None
    if path is None or not path.exists():
        return None
    values = read_expression(path, transform=dataset.manifest.expression_transform).values
    values.columns = [str(c) for c in values.columns]
    people = values.stack().rename("signal").reset_index()
    people.columns = ["gene_id", "sample", "signal"]
    genes = values.mean(axis=1).rename("signal").reset_index().assign(sample="")
    genes.columns = ["gene_id", "signal", "sample"]
    return pd.concat([genes[["gene_id", "sample", "signal"]], people], ignore_index=True)


def _write(res: R.Results, path: Path, pred_dir: Path, signal: pd.DataFrame | None) -> None:
    """Write results.json; the noise ceiling is the noise-free truth scored like a model on the rows of the first
    model that has both gene and individual rows."""
    observed = None
    for m in res.models:
        if m.status == "ok" and m.predictions:
            df = R.load_predictions(pred_dir / m.predictions)
            if observed is None or ((df["sample"] == "").any() and (df["sample"] != "").any()):
                observed = df
                if (df["sample"] == "").any() and (df["sample"] != "").any():
                    break
    if signal is not None and observed is not None:
        res.noise_ceiling = noise_ceiling(observed, signal, min_samples=res.settings.min_samples)
        res.noise_ceiling["source"] = "simulator truth: expression_noise_free.tsv, scored on the models' rows"
    else:
        res.noise_ceiling = {"available": False, "note": "no noise-free truth (real data)"}
    R.write_results(res, path)
