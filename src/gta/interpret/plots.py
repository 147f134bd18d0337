"""One figure per gene: importance along the genome, the TSS, the gene body and (simulated data) the true elements."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from gta.atomic import atomic_path
from gta.geometry import Geometry, Interval
from gta.interpret.tracks import bin_intervals
from gta.io.types import Gene

KIND_COLOURS = {"promoter": "#d62728", "enhancer": "#2ca02c", "repressor": "#9467bd", "ctcf": "#ff7f0e",
                "decoy": "#bbbbbb"}


def gene_body(gene: Gene) -> Interval | None:
    """Genome interval of the gene body when the gene table gives one (``Gene.end`` beyond the TSS)."""
    if gene.end is None:
        return None
    a, b = (gene.tss, gene.end) if gene.strand == "+" else (gene.end, gene.tss + 1)
    return Interval(a, b) if b - a > 1 else None


def plot_gene(path: str | Path, gene: Gene, geometry: Geometry, importances: Mapping[str, np.ndarray],
              elements: pd.DataFrame | None = None, title: str | None = None) -> Path:
    """PNG with one panel per method (importance vs genome position, kb) and a track of TSS, gene body and, when
    given, the gene's rows of truth/elements.tsv (filled: positive = enhancer/promoter with an effect)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    methods = list(importances)
    n_bins = len(next(iter(importances.values())))
    spans = bin_intervals(gene, geometry, n_bins)
    centre = spans.mean(axis=1) / 1e3
    width = geometry.bin_size / 1e3
    fig, axes = plt.subplots(len(methods) + 1, 1, figsize=(11, 1.6 * len(methods) + 1.6), sharex=True,
                             gridspec_kw={"height_ratios": [2] * len(methods) + [1]})
    axes = np.atleast_1d(axes)
    tss_kb = gene.tss / 1e3
    for ax, m in zip(axes[:-1], methods, strict=False):
        v = np.asarray(importances[m], dtype=np.float64)
        ax.bar(centre, v, width=width, color=np.where(v >= 0, "#1f77b4", "#d62728"), linewidth=0)
        ax.axvline(tss_kb, color="k", lw=0.8, ls="--")
        ax.axhline(0, color="#888888", lw=0.5)
        ax.set_ylabel(m, fontsize=9)
    track = axes[-1]
    track.axvline(tss_kb, color="k", lw=0.8, ls="--")
    body = gene_body(gene)
    if body is not None:
        track.plot([body.start / 1e3, body.end / 1e3], [0.8, 0.8], color="k", lw=4, solid_capstyle="butt")
    arrow = width * 8 * (1 if gene.strand == "+" else -1)
    track.annotate("", xy=(tss_kb + arrow, 0.8), xytext=(tss_kb, 0.8),
                   arrowprops={"arrowstyle": "->", "color": "k", "lw": 1.2})
    track.text(tss_kb, 1.0, f"TSS {gene.symbol} ({gene.strand})", ha="center", va="bottom", fontsize=8)
    if elements is not None and len(elements):
        for row in elements.itertuples(index=False):
            colour = KIND_COLOURS.get(str(row.kind), "#777777")
            positive = str(row.kind) in ("enhancer", "promoter") and float(row.effect) != 0
            track.axvspan(int(row.start) / 1e3, int(row.end) / 1e3, ymin=0.05, ymax=0.45, color=colour,
                          alpha=0.9 if positive else 0.35, lw=0)
        for kind, colour in KIND_COLOURS.items():
            if (elements["kind"] == kind).any():
                track.plot([], [], color=colour, lw=6, label=kind)
        track.legend(loc="upper right", fontsize=7, ncol=5, frameon=False)
    track.set_ylim(0, 1.4)
    track.set_yticks([])
    track.set_xlim(spans.min() / 1e3, spans.max() / 1e3)
    track.set_xlabel(f"{gene.chrom} position (kb)")
    axes[0].set_title(title or f"{gene.symbol} ({gene.gene_id}), {gene.chrom}:{gene.tss + 1} {gene.strand}",
                      fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
