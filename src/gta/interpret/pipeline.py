"""``interpret``: importance maps of a trained run for some genes, written as figures, tracks and a top-k table;
``evaluate_importance``: the same maps scored against the simulator's truth.

Output folder (``out``)::

    importance.npz                 gene_ids [G] and, per method, float64 [G, bins] (no pickle)
    top_sections.tsv               the top-k sections (model patches) per gene and method, distance to the TSS
    plots/GENE.png                 importance along the genome, TSS, gene body, true elements (simulated data)
    tracks/GENE.METHOD.bedGraph    genome coordinates (both strands), and the same as .bw (bigWig)
    interpret_metrics.json         with --evaluate: AUPRC per method (gta.interpret.evaluate)

Gradient x input and occlusion are in the data set's expression units (the run's target scale).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gta.atomic import atomic_path, atomic_write_text
from gta.errors import GtaInputError
from gta.interpret.context import RunContext, open_run, select_genes
from gta.interpret.evaluate import importance_metrics, read_truth_table
from gta.interpret.importance import ATTENTION_MODES, METHODS, importance, patch_windows
from gta.interpret.plots import plot_gene
from gta.interpret.tracks import importance_track, write_bedgraph, write_bigwig


@dataclass
class InterpretResult:
    """Per-gene importance (``importance[gene_id][method] -> [bins]``), the files written and the metrics."""

    out: Path | None
    genes: list[str]
    methods: list[str]
    importance: dict[str, dict[str, np.ndarray]]
    files: list[Path] = field(default_factory=list)
    metrics: dict[str, Any] | None = None
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"interpreted {len(self.genes)} gene(s) with {', '.join(self.methods)} in {self.seconds:.1f} s"]
        if self.out is not None:
            lines.append(f"wrote {len(self.files)} files under {self.out}")
        if self.metrics:
            for m, v in self.metrics["methods"].items():
                lines.append(f"  {m:<11} AUPRC {_fmt(v['auprc'])} (distal {_fmt(v['distal_auprc'])})")
            for m, v in self.metrics.get("reference", {}).items():
                lines.append(f"  {m:<11} AUPRC {_fmt(v['auprc'])} (distal {_fmt(v['distal_auprc'])}) [reference]")
        return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def parse_methods(method: str | Sequence[str]) -> list[str]:
    items = [method] if isinstance(method, str) else list(method)
    names = [m.strip() for item in items for m in item.split(",") if m.strip()]
    if "all" in names:
        return list(METHODS)
    bad = [m for m in names if m not in METHODS]
    if bad or not names:
        raise GtaInputError(f"unknown importance method {bad[0] if bad else ''!r}",
                            hint=f"choose from {', '.join(METHODS)} or all")
    return list(dict.fromkeys(names))


def compute_importance(ctx: RunContext, genes, methods: Sequence[str], attention_mode: str = "rollout",
                       batch_size: int = 16, progress: bool = True) -> dict[str, dict[str, np.ndarray]]:
    """``{gene_id: {method: [bins]}}`` for the given genes (their stored reference features)."""
    if attention_mode not in ATTENTION_MODES:
        raise GtaInputError(f"unknown attention mode {attention_mode!r}", hint=f"use {', '.join(ATTENTION_MODES)}")
    out: dict[str, dict[str, np.ndarray]] = {}
    for gene in tqdm(genes, desc="interpret", unit="gene", disable=not progress):
        feats = ctx.ref_features(gene)
        if feats is None:
            raise GtaInputError(f"gene {gene.gene_id} has no reference features", path=getattr(ctx.store, "path", None),
                                hint="pass the run's --features store (gta extract)")
        prompts = ctx.prompt_list([gene.gene_id])
        per: dict[str, np.ndarray] = {}
        for m in methods:
            v = importance(ctx.model, feats[None], prompts, m, attention_mode, batch_size=batch_size)[0]
            per[m] = v * ctx.target_std if m != "attention" else v
        out[gene.gene_id] = per
    return out


def top_sections(ctx: RunContext, genes, importances: dict[str, dict[str, np.ndarray]], top_k: int = 10,
                 elements: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ``top_k`` model patches per gene and method by |mean importance of their bins|."""
    geometry = ctx.geometry
    windows = patch_windows(ctx.model)
    by_gene = {g: df for g, df in elements.groupby("gene_id")} if elements is not None else {}
    rows = []
    for gene in genes:
        els = by_gene.get(gene.gene_id)
        for m, v in importances[gene.gene_id].items():
            scores = np.array([v[a:b].mean() for a, b in windows])
            order = np.argsort(-np.abs(scores), kind="stable")[:top_k]
            for rank, k in enumerate(order, start=1):
                a, b = windows[k]
                lo = geometry.bin_to_genome(a, gene.tss, gene.strand)
                hi = geometry.bin_to_genome(b - 1, gene.tss, gene.strand)
                centre = (geometry.bin_distance_to_tss(a) + geometry.bin_distance_to_tss(b - 1)) // 2
                row = {"gene_id": gene.gene_id, "symbol": gene.symbol, "method": m, "rank": rank,
                       "chrom": gene.chrom, "start": min(lo.start, hi.start), "end": max(lo.end, hi.end),
                       "bin_start": a, "bin_end": b, "distance_to_tss": int(centre), "score": float(scores[k])}
                if elements is not None:
                    hit = els[(els["bin_start"] < b) & (els["bin_end"] > a)] if els is not None else []
                    row["true_elements"] = ",".join(f"{r.element_id}:{r.kind}" for r in hit.itertuples()) if len(
                        hit) else ""
                rows.append(row)
    return pd.DataFrame(rows)


def _elements(ctx: RunContext, required: bool) -> pd.DataFrame | None:
    truth = ctx.dataset.manifest.truth
    if truth is None or not (Path(truth) / "elements.tsv").exists():
        if required:
            raise GtaInputError("the data set has no simulator truth (truth/elements.tsv)",
                                path=ctx.dataset.manifest.path,
                                hint="--evaluate needs simulated data (gta simulate); drop --evaluate otherwise")
        return None
    return read_truth_table(truth, "elements.tsv")


def interpret(run: str | Path, data, features, genes: Sequence[str] | str | None = None, n_genes: int | None = None,
              method: str | Sequence[str] = "all", evaluate: bool = False, out: str | Path | None = "interpret",
              top_k: int = 10, attention_mode: str = "rollout", batch_size: int = 16, plots: bool = True,
              llm=None, device: str = "auto", progress: bool = True,
              mirror_average: bool | None = None) -> InterpretResult:
    """Per-bin importance of a run's predictions for ``genes`` (ids/symbols) or ``n_genes`` held-out-first genes
    (default 10); writes the outputs listed in the module docstring to ``out`` (None: nothing written).
    ``mirror_average``: False explains the prediction of each window as given (None: the run's setting)."""
    t0 = time.perf_counter()
    methods = parse_methods(method)
    ctx = open_run(run, data, features, llm=llm, device=device, mirror_average=mirror_average)
    chosen = select_genes(ctx.dataset, ctx.store, genes, n_genes)
    elements = _elements(ctx, required=evaluate)
    imps = compute_importance(ctx, chosen, methods, attention_mode, batch_size, progress)
    result = InterpretResult(Path(out) if out is not None else None, [g.gene_id for g in chosen], methods, imps)
    if evaluate:
        result.metrics = importance_metrics(imps, elements, ctx.geometry)
        result.metrics.update({"run": str(run), "attention_mode": attention_mode, "genes": result.genes})
    if out is not None:
        result.files = _write_outputs(ctx, chosen, imps, methods, Path(out), elements, top_k, plots, progress)
        if result.metrics is not None:
            path = Path(out) / "interpret_metrics.json"
            atomic_write_text(path, json.dumps(result.metrics, indent=1))
            result.files.append(path)
    result.seconds = time.perf_counter() - t0
    return result


def _write_outputs(ctx: RunContext, genes, imps, methods, out: Path, elements, top_k, plots, progress) -> list[Path]:
    files: list[Path] = []
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "importance.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, gene_ids=np.array([g.gene_id for g in genes]),
                 **{m: np.stack([imps[g.gene_id][m] for g in genes]) for m in methods})
    files.append(out / "importance.npz")
    table = top_sections(ctx, genes, imps, top_k, elements)
    with atomic_path(out / "top_sections.tsv") as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    files.append(out / "top_sections.tsv")
    sizes = dict(ctx.dataset.genome.lengths)
    by_gene = {g: df for g, df in elements.groupby("gene_id")} if elements is not None else {}
    for gene in tqdm(genes, desc="write tracks", unit="gene", disable=not progress):
        for m in methods:
            rows = importance_track(imps[gene.gene_id][m], gene, ctx.geometry, sizes.get(gene.chrom))
            stem = f"{gene.gene_id}.{m}"
            files.append(write_bedgraph(out / "tracks" / f"{stem}.bedGraph", rows, name=f"{gene.symbol} {m}",
                                        description=f"gta {m} importance, {gene.gene_id}"))
            files.append(write_bigwig(out / "tracks" / f"{stem}.bw", rows, sizes))
        if plots:
            files.append(plot_gene(out / "plots" / f"{gene.gene_id}.png", gene, ctx.geometry, imps[gene.gene_id],
                                   by_gene.get(gene.gene_id)))
    return files


def evaluate_importance(run: str | Path, data, features, truth: str | Path | None = None,
                        genes: Sequence[str] | str | None = None, n_genes: int | None = None,
                        methods: str | Sequence[str] = "all", attention_mode: str = "rollout", batch_size: int = 16,
                        llm=None, device: str = "auto", progress: bool = False,
                        mirror_average: bool | None = None) -> dict[str, Any]:
    """AUPRC of each importance method for the true elements' bins (see :mod:`gta.interpret.evaluate`), for a
    run + data set + store; ``truth`` defaults to the manifest's truth folder; all genes unless told otherwise."""
    ctx = open_run(run, data, features, llm=llm, device=device, mirror_average=mirror_average)
    elements = read_truth_table(truth, "elements.tsv") if truth is not None else _elements(ctx, required=True)
    if genes is None and n_genes is None:
        n_genes = len(ctx.dataset.genes)
    chosen = select_genes(ctx.dataset, ctx.store, genes, n_genes)
    imps = compute_importance(ctx, chosen, parse_methods(methods), attention_mode, batch_size, progress)
    metrics = importance_metrics(imps, elements, ctx.geometry)
    metrics.update({"run": str(run), "attention_mode": attention_mode, "genes": [g.gene_id for g in chosen]})
    return metrics
