"""Report figures (matplotlib, Agg). Numbers drawn on a figure come from ``results.json``; points come from
the saved predictions. Each function returns a Figure; ``to_data_uri`` embeds one in HTML."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from gta.atomic import atomic_write_bytes  # noqa: E402
from gta.evaluate.results import NEAR_CONSTANT, ModelResult, Results  # noqa: E402

KIND_PALETTES = {
    "gta": ["#c0392b", "#922b21", "#e74c3c"],
    "ablation": ["#e67e22", "#b9770e", "#f5b041", "#a04000"],
    "baseline": ["#2c6fbb", "#27ae60", "#8e44ad", "#16a085", "#34495e", "#5dade2", "#7d3c98", "#1e8449"],
}
SEEN, UNSEEN, CEILING = "#7f8c8d", "#16a085", "#8e44ad"

plt.rcParams.update({
    "font.size": 9, "axes.spines.top": False, "axes.spines.right": False, "axes.titlesize": 10,
    "axes.titleweight": "bold", "figure.dpi": 110, "savefig.bbox": "tight",
})


def colours(results: Results) -> dict[str, str]:
    """A stable colour per model: warm for gta and its ablations, cool for baselines, in results order."""
    used: dict[str, int] = {}
    out = {}
    for m in results.models:
        pal = KIND_PALETTES.get(m.kind, KIND_PALETTES["baseline"])
        i = used.get(m.kind, 0)
        used[m.kind] = i + 1
        out[m.name] = pal[i % len(pal)]
    return out


def to_data_uri(fig: Figure, also_to: Path | None = None) -> str:
    """The figure as a PNG data URI (closed afterwards); ``also_to``: write the same PNG there, atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    if also_to is not None:
        atomic_write_bytes(also_to, buf.getvalue())
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _ok(results: Results, need: str | None = None) -> list[ModelResult]:
    out = [m for m in results.models if m.status == "ok"]
    if need == "cross_gene":
        out = [m for m in out if (m.metrics.get("cross_gene") or {}).get("spearman") is not None]
    return out


def _grid(n: int, ncols: int = 4, size: float = 2.7) -> tuple[Figure, np.ndarray]:
    ncols = max(1, min(ncols, n))
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def _empty(text: str) -> Figure:
    fig, ax = plt.subplots(figsize=(6, 1))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", color="#777")
    return fig


UNITS = {"none": "expression", "log1p": "log1p expression", "standardize": "expression, z-score per gene",
         "log1p+standardize": "log1p expression, z-score per gene"}


def expression_units(results: Results) -> str:
    """What the values of ``y_true`` / ``y_pred`` are, from the data set's expression transform."""
    t = results.dataset.expression_transform
    return UNITS.get(t, f"expression ({t})") if t else "expression, units of the expression table"


def scatter_axis_labels(results: Results) -> tuple[str, str]:
    """(x, y) labels of the predicted-vs-observed panels."""
    units = expression_units(results)
    return f"observed mean {units}", f"predicted mean {units}"


def scatter_grid(results: Results, predictions: dict[str, pd.DataFrame]) -> Figure:
    """Predicted vs observed mean expression of test genes, one panel per model."""
    models = [m for m in _ok(results, "cross_gene") if m.name in predictions]
    if not models:
        return _empty("no model with cross-gene predictions")
    fig, axes = _grid(len(models), size=3.0)
    col = colours(results)
    xlabel, ylabel = scatter_axis_labels(results)
    for ax, m in zip(axes, models, strict=False):
        df = predictions[m.name]
        g = df[(df["sample"] == "") & (df["split"] == "test")]
        ax.scatter(g["y_true"], g["y_pred"], s=8, alpha=0.6, color=col[m.name], edgecolors="none")
        lo = float(np.nanmin([g["y_true"].min(), g["y_pred"].min()]))
        hi = float(np.nanmax([g["y_true"].max(), g["y_pred"].max()]))
        ax.plot([lo, hi], [lo, hi], color="#bbb", lw=0.8, ls="--")
        cg = m.metrics["cross_gene"]
        ratio = (m.metrics.get("spread") or {}).get("sd_ratio")
        flat = ratio is not None and ratio < NEAR_CONSTANT
        ax.set_title(m.name + (" (near-constant)" if flat else ""), fontsize=9, color="#a04a2c" if flat else "black")
        text = f"ρ = {cg['spearman']:.3f}\nn = {cg['n_genes']}" + ("" if ratio is None else f"\nsd ratio {ratio:.2g}")
        ax.text(0.04, 0.94, text, transform=ax.transAxes, va="top",
                fontsize=8, bbox=dict(boxstyle="round,pad=0.25", fc="white", ec="#ddd"))
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
    fig.tight_layout()
    return fig


def cross_individual_hists(results: Results) -> Figure:
    """Per-gene Spearman across held-out individuals, seen and unseen genes overlaid, one panel per model."""
    models = [m for m in _ok(results) if any(
        (m.metrics.get("cross_individual") or {}).get(g, {}).get("n_genes") for g in ("seen", "unseen"))]
    if not models:
        return _empty("no model with cross-individual predictions")
    fig, axes = _grid(len(models))
    edges = np.linspace(-1, 1, 21)
    for ax, m in zip(axes, models, strict=False):
        ci = m.metrics["cross_individual"]
        for group, col in (("seen", SEEN), ("unseen", UNSEEN)):
            s = ci.get(group) or {}
            v = [x for x in (s.get("per_gene") or {}).values() if x is not None and np.isfinite(x)]
            if v and s.get("median") is not None:
                ax.hist(v, bins=edges, alpha=0.55, color=col, label=f"{group} (median {s['median']:.2f})")
                ax.axvline(s["median"], color=col, lw=1.4)
        ax.axvline(0, color="#333", lw=0.6, ls=":")
        ax.set_title(m.name, fontsize=9)
        ax.set_xlabel("per-gene Spearman (held-out people)", fontsize=8)
        ax.set_ylabel("genes", fontsize=8)
        ax.legend(fontsize=7, frameon=False, loc="upper left")
    fig.tight_layout()
    return fig


def distal_share_curves(results: Results) -> Figure:
    """Cross-gene Spearman and median cross-individual Spearman (unseen genes) per band of distal share."""
    models = [m for m in _ok(results) if m.metrics.get("by_distal_share")]
    if not models:
        return _empty("no distal-share information (needs simulator truth)")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.4))
    col = colours(results)
    for m in models:
        bands = m.metrics["by_distal_share"]
        x = [(b["lo"] + b["hi"]) / 2 for b in bands]
        y1 = [np.nan if b["spearman"] is None else b["spearman"] for b in bands]
        y2 = [np.nan if b["cross_individual_unseen_median"] is None else b["cross_individual_unseen_median"]
              for b in bands]
        style = dict(marker="o", ms=4, lw=2.2 if m.kind == "gta" else 1.3, label=m.name, color=col[m.name],
                     ls="-" if m.kind != "ablation" else "--")
        a1.plot(x, y1, **style)
        a2.plot(x, y2, **style)
    ref = max(models, key=lambda m: sum(b["n_genes"] for b in m.metrics["by_distal_share"]))
    labels = [f"{b['lo']:g}–{b['hi']:g}\nn={b['n_genes']}" for b in ref.metrics["by_distal_share"]]
    for ax, t in ((a1, "cross-gene Spearman (test genes)"), (a2, "cross-individual median ρ (unseen genes)")):
        ax.set_xticks([(b["lo"] + b["hi"]) / 2 for b in models[0].metrics["by_distal_share"]], labels)
        ax.set_xlabel("distal share of regulation (n = test genes per band)")
        ax.set_title(t)
        ax.axhline(0, color="#999", lw=0.6, ls=":")
    a2.legend(fontsize=7, frameon=False, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


def cross_gene_bars(results: Results) -> Figure:
    """Cross-gene Spearman with bootstrap 95% CI per model; the noise ceiling as a vertical line."""
    models = _ok(results, "cross_gene")
    if not models:
        return _empty("no model with cross-gene predictions")
    models = sorted(models, key=lambda m: m.metrics["cross_gene"]["spearman"])
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(models) + 1.1))
    y = np.arange(len(models))
    rho = np.array([m.metrics["cross_gene"]["spearman"] for m in models])
    ci = np.array([m.metrics["cross_gene"].get("spearman_ci") or [r, r] for m, r in zip(models, rho, strict=True)],
                  dtype=float)
    col = colours(results)
    ax.barh(y, rho, color=[col[m.name] for m in models], alpha=0.85, height=0.62)
    err = np.clip([rho - ci[:, 0], ci[:, 1] - rho], 0, None)  # a percentile CI may miss the estimate
    ax.errorbar(rho, y, xerr=err, fmt="none", ecolor="#222", capsize=3, lw=1)
    ax.set_yticks(y, [m.name for m in models])
    ceil = results.noise_ceiling.get("cross_gene_spearman") if results.noise_ceiling.get("available") else None
    if ceil is not None:
        ax.axvline(ceil, color=CEILING, ls="--", lw=1.5, label=f"noise ceiling {ceil:.3f}")
        ax.legend(frameon=False, fontsize=8, loc="lower right", bbox_to_anchor=(1.0, 1.0))
    ax.set_xlabel("Spearman ρ, predicted vs observed mean expression (test genes)")
    ax.set_xlim(min(0, float(np.nanmin(ci[:, 0])) - 0.05), 1)
    fig.tight_layout()
    return fig
