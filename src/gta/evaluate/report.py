"""The benchmark report: a self-contained ``report.html`` (figures embedded as base64 PNG) and ``results.md``.

Every number shown is read from ``results.json``; none is typed. Each rendered number carries a
``data-key="MODEL|dotted.path"`` attribute (``noise_ceiling|...``, ``dataset|...`` for the others), so a test can
check the page against metrics recomputed from the saved predictions.
"""

from __future__ import annotations

import ast
import html
import itertools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gta.atomic import atomic_write_text
from gta.evaluate import plots
from gta.evaluate.results import (
    NEAR_CONSTANT,
    ModelResult,
    Results,
    load_predictions,
    model_tables,
    read_results,
)

DASH = "—"


def lookup(obj: Any, path: str) -> Any:
    """Value at a dotted path (``cross_gene.spearman_ci.0``) in nested dicts/lists; None when absent."""
    for part in path.split("."):
        if obj is None:
            return None
        if isinstance(obj, list):
            obj = obj[int(part)] if part.isdigit() and int(part) < len(obj) else None
        elif isinstance(obj, dict):
            obj = obj.get(part)
        else:
            obj = getattr(obj, part, None)
    return obj


def fmt(v: Any, kind: str = "r") -> str:
    """Text of a number: ``r`` correlation (3 dp), ``ratio`` (2 dp, 2 significant digits below 0.1), ``pct`` share
    as percent, ``int``, ``s`` seconds, ``mb``."""
    if v is None:
        return DASH
    if kind == "r":
        return f"{v:.3f}"
    if kind == "ratio":
        return f"{v:.2f}" if abs(v) >= 0.1 else f"{v:.2g}"
    if kind == "pct":
        return f"{100 * v:.0f}%"
    if kind == "int":
        return f"{int(v):,}"
    if kind == "s":
        return f"{v:.0f} s" if v >= 10 else f"{v:.1f} s"
    if kind == "mb":
        return f"{v:,.0f} MB"
    return str(v)


# (key path inside a model's metrics, format) of every model-level number shown
MODEL_FIELDS = {
    "cg_rho": ("cross_gene.spearman", "r"),
    "cg_lo": ("cross_gene.spearman_ci.0", "r"),
    "cg_hi": ("cross_gene.spearman_ci.1", "r"),
    "cg_r": ("cross_gene.pearson", "r"),
    "cg_n": ("cross_gene.n_genes", "int"),
    "spread": ("spread.sd_ratio", "ratio"),
    "seen_med": ("cross_individual.seen.median", "r"),
    "seen_q25": ("cross_individual.seen.q25", "r"),
    "seen_q75": ("cross_individual.seen.q75", "r"),
    "seen_pos": ("cross_individual.seen.frac_positive", "pct"),
    "seen_n": ("cross_individual.seen.n_genes", "int"),
    "unseen_med": ("cross_individual.unseen.median", "r"),
    "unseen_q25": ("cross_individual.unseen.q25", "r"),
    "unseen_q75": ("cross_individual.unseen.q75", "r"),
    "unseen_pos": ("cross_individual.unseen.frac_positive", "pct"),
    "unseen_n": ("cross_individual.unseen.n_genes", "int"),
}


class _Numbers:
    """Renders numbers from results.json with their data-key; remembers what it rendered."""

    def __init__(self, res: Results) -> None:
        self.res = res
        self.shown: dict[str, str] = {}

    def model(self, m: ModelResult, field: str, markup: bool = True) -> str:
        path, kind = MODEL_FIELDS[field]
        return self._emit(f"{m.name}|{path}", lookup(m.metrics, path), kind, markup)

    def attr(self, m: ModelResult, name: str, kind: str, markup: bool = True) -> str:
        return self._emit(f"{m.name}|@{name}", getattr(m, name), kind, markup)

    def top(self, section: str, path: str, kind: str, markup: bool = True) -> str:
        return self._emit(f"{section}|{path}", lookup(getattr(self.res, section), path), kind, markup)

    def _emit(self, key: str, value: Any, kind: str, markup: bool) -> str:
        text = fmt(value, kind)
        self.shown[key] = text
        if not markup:
            return text
        return f'<span class="num" data-key="{html.escape(key)}">{html.escape(text)}</span>'


CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1d2733;
 background:#f4f6f8;margin:0;line-height:1.45}
main{max-width:1240px;margin:0 auto;padding:28px 36px 60px;background:#fff;box-shadow:0 0 18px rgba(0,0,0,.06)}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:34px 0 8px;border-bottom:2px solid #e7ebef;padding-bottom:4px}
.sub{color:#5d6b79;margin:0 0 18px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:14px 0}
.card{flex:1;min-width:150px;background:#f7f9fb;border:1px solid #e3e8ee;border-radius:8px;padding:10px 14px}
.card .v{font-size:22px;font-weight:600}.card .l{font-size:12px;color:#5d6b79}
table{border-collapse:collapse;width:100%;font-size:13px;margin:8px 0}
th{background:#273444;color:#fff;font-weight:600;padding:7px 8px;text-align:left;vertical-align:bottom}
th.grp{text-align:center;background:#3b4d61}
td{padding:6px 8px;border-bottom:1px solid #e7ebef;vertical-align:top}
tr:nth-child(even) td{background:#fafbfc}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.ci{color:#6b7886;font-size:11px}
tr.ceiling td{background:#f4eefa;font-style:italic}
tr.notrun td{color:#8a96a3}
.kind{font-size:11px;border-radius:9px;padding:1px 7px;color:#fff;white-space:nowrap}
.kind.gta{background:#c0392b}.kind.ablation{background:#e67e22}.kind.baseline{background:#2c6fbb}
.kind.other{background:#777}
.explain{background:#f7f9fb;border-left:4px solid #9fb3c8;padding:8px 12px;color:#34495e;font-size:13.5px;margin:8px 0}
img{max-width:100%;display:block;margin:8px auto}
.reason{font-size:12px;color:#a04a2c}
.flag{font-size:11px;color:#a04a2c;white-space:nowrap}
.foot{font-size:12.5px;color:#5d4037;margin:4px 0 8px}
footer{color:#7b8794;font-size:12px;margin-top:30px}
"""


def _kind_badge(kind: str) -> str:
    cls = kind if kind in ("gta", "ablation", "baseline") else "other"
    return f'<span class="kind {cls}">{html.escape(kind)}</span>'


@dataclass(frozen=True)
class Column:
    """One column of the main table, for both the HTML page and ``results.md``: its headings, how a model's
    numbers fill it (``get(field)`` renders a MODEL_FIELDS key or an ``@attribute``; ``flag`` marks a
    near-constant model), and the noise ceiling's number in it. ``md=None``: the column is on the page only."""

    group: str  # HTML group heading over several columns ("" for a column of its own)
    html: str
    md: str | None
    html_cell: Callable[[Callable[[str], str], str], str]
    md_cell: Callable[[Callable[[str], str], str], str] | None = None
    ceiling: str | None = None  # key in results.json's noise_ceiling


_CG, _SEEN, _UNSEEN = "Cross-gene (test genes)", "Cross-individual, seen genes", "Cross-individual, unseen genes"
MAIN_COLUMNS: tuple[Column, ...] = (
    Column(_CG, "Spearman ρ [95% CI]", "Cross-gene ρ [95% CI]",
           lambda g, f: f'{g("cg_rho")}<br><span class="ci">[{g("cg_lo")}, {g("cg_hi")}]</span>',
           lambda g, f: f'{g("cg_rho")} [{g("cg_lo")}, {g("cg_hi")}]', "cross_gene_spearman"),
    Column(_CG, "Pearson r", "Pearson r", lambda g, f: g("cg_r"), lambda g, f: g("cg_r"), "cross_gene_pearson"),
    Column(_CG, "spread: sd pred / sd obs", "Spread: sd pred / sd obs",
           lambda g, f: g("spread") + (f' <span class="flag">{FLAG}</span>' if f else ""),
           lambda g, f: g("spread") + (f" {FLAG}" if f else "")),
    Column(_CG, "genes", None, lambda g, f: g("cg_n")),
    Column(_SEEN, "median ρ (IQR)", "Seen genes: median ρ (ρ>0)",
           lambda g, f: f'{g("seen_med")}<br><span class="ci">({g("seen_q25")}, {g("seen_q75")})</span>',
           lambda g, f: f'{g("seen_med")} ({g("seen_pos")})', "cross_individual_seen_median"),
    Column(_SEEN, "ρ &gt; 0", None, lambda g, f: g("seen_pos")),
    Column(_SEEN, "genes", None, lambda g, f: g("seen_n")),
    Column(_UNSEEN, "median ρ (IQR)", "Unseen genes: median ρ (ρ>0)",
           lambda g, f: f'{g("unseen_med")}<br><span class="ci">({g("unseen_q25")}, {g("unseen_q75")})</span>',
           lambda g, f: f'{g("unseen_med")} ({g("unseen_pos")})', "cross_individual_unseen_median"),
    Column(_UNSEEN, "ρ &gt; 0", None, lambda g, f: g("unseen_pos")),
    Column(_UNSEEN, "genes", None, lambda g, f: g("unseen_n")),
    Column("", "Wall time", "Wall time", lambda g, f: g("@wall_time_s"), lambda g, f: g("@wall_time_s")),
    Column("", "Peak memory", None, lambda g, f: g("@peak_memory_mb")),
)
ATTR_KINDS = {"wall_time_s": "s", "peak_memory_mb": "mb"}  # ModelResult attributes shown, and their format


def _getter(N: _Numbers, m: ModelResult, markup: bool) -> Callable[[str], str]:
    def get(field: str) -> str:
        if field.startswith("@"):
            return N.attr(m, field[1:], ATTR_KINDS[field[1:]], markup)
        return N.model(m, field, markup)

    return get


def _html_head() -> str:
    top, sub = ['<th rowspan="2">Model</th><th rowspan="2">Kind</th>'], []
    for group, cols in itertools.groupby(MAIN_COLUMNS, key=lambda c: c.group):
        cols = list(cols)
        if group:
            top.append(f'<th class="grp" colspan="{len(cols)}">{group}</th>')
            sub += [f"<th>{c.html}</th>" for c in cols]
        else:
            top += [f'<th rowspan="2">{c.html}</th>' for c in cols]
    return f"<tr>{''.join(top)}</tr><tr>{''.join(sub)}</tr>"


def _main_table(res: Results, N: _Numbers) -> str:
    rows = []
    if res.noise_ceiling.get("available"):
        rows.append('<tr class="ceiling"><td>Noise ceiling</td><td>truth</td>'
                    + "".join(f'<td class="n">{N.top("noise_ceiling", c.ceiling, "r")}</td>' if c.ceiling
                              else "<td></td>" for c in MAIN_COLUMNS) + "</tr>")
    for m in res.models:
        name = f"<b>{html.escape(m.name)}</b>"
        if near_constant(m):
            name += f' <span class="flag">{FLAG} near-constant</span>'
        if m.description:
            name += f'<br><span class="ci">{html.escape(m.description)}</span>'
        if m.status != "ok":
            rows.append(
                f'<tr class="notrun"><td>{name}</td><td>{_kind_badge(m.kind)}</td>'
                f'<td colspan="{len(MAIN_COLUMNS)}"><b>{html.escape(m.status)}</b>: '
                f'<span class="reason">{html.escape(m.reason or "no reason given")}</span></td></tr>'
            )
            continue
        get, flag = _getter(N, m, True), near_constant(m)
        rows.append(f"<tr><td>{name}</td><td>{_kind_badge(m.kind)}</td>"
                    + "".join(f'<td class="n">{c.html_cell(get, flag)}</td>' for c in MAIN_COLUMNS) + "</tr>")
    foot = f'<p class="foot">{FLAG} {NEAR_CONSTANT_NOTE}</p>' if any(map(near_constant, res.models)) else ""
    return f"<table>{_html_head()}{''.join(rows)}</table>{foot}"


def _md_row(cells: list[str | None]) -> str:
    """A Markdown table row; a None cell is left empty."""
    return "|" + "".join(" |" if c is None else f" {c} |" for c in cells)


def _md_main_table(res: Results, N: _Numbers) -> list[str]:
    """The main table's Markdown lines: the same columns as the page's, less those it shows only there, plus a
    status column."""
    cols = [c for c in MAIN_COLUMNS if c.md is not None]
    lines = [_md_row(["Model", "Kind", *(c.md for c in cols), "Status"]), "|" + "---|" * (len(cols) + 3)]
    if res.noise_ceiling.get("available"):
        lines.append(_md_row(["*noise ceiling*", "truth", *(N.top("noise_ceiling", c.ceiling, "r", False)
                                                              if c.ceiling else None for c in cols), None]))
    for m in res.models:
        if m.status != "ok":
            lines.append(_md_row([m.name, m.kind, *([None] * len(cols)), f"{m.status}: {m.reason or ''}"]))
            continue
        get, flag = _getter(N, m, False), near_constant(m)
        lines.append(_md_row([m.name + (f" {FLAG}" if flag else ""), m.kind,
                              *(c.md_cell(get, flag) for c in cols), "ok"]))  # type: ignore[misc]
    return lines


FLAG = "†"
NEAR_CONSTANT_NOTE = (
    f"Near-constant predictions: on the test split, the predictions of a model marked {FLAG} spread less than "
    f"{100 * NEAR_CONSTANT:.0f}% as much as the observed values (sd of predictions / sd of observations below "
    f"{NEAR_CONSTANT:g}). Such a model predicts almost the same value for everything, so its correlations rest on "
    "tiny differences and its scatter is a flat band: read its scores with care.")


def near_constant(m: ModelResult) -> bool:
    """The model ran and its test predictions spread less than ``NEAR_CONSTANT`` times the targets'."""
    ratio = lookup(m.metrics, "spread.sd_ratio")
    return m.status == "ok" and ratio is not None and ratio < NEAR_CONSTANT


def _cards(res: Results, N: _Numbers) -> str:
    ok = [m for m in res.models if m.status == "ok" and lookup(m.metrics, "cross_gene.spearman") is not None]
    cards = [(N.top("dataset", "n_genes", "int"), "genes"), (N.top("dataset", "n_samples", "int"), "individuals")]
    if ok:
        best = max(ok, key=lambda m: m.metrics["cross_gene"]["spearman"])
        cards.append((N.model(best, "cg_rho"), f"best cross-gene ρ ({html.escape(best.name)})"))
    if res.noise_ceiling.get("available"):
        cards.append((N.top("noise_ceiling", "cross_gene_spearman", "r"), "noise ceiling, cross-gene ρ"))
    n_not = sum(m.status != "ok" for m in res.models)
    cards.append((f"{len(res.models) - n_not} / {len(res.models)}", "models run"))
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="v">{v}</div><div class="l">{lab}</div></div>' for v, lab in cards) + "</div>"


def _splits(res: Results, N: _Numbers, markup: bool = True) -> str:
    """Genes and individuals by split, with a sentence saying what the individual counts mean for training."""
    def count(k: str) -> str:
        return N.top("dataset", f"samples_by_split.{k}", "int", markup)

    esc = html.escape if markup else str
    parts = [f"{esc(k)} {N.top('dataset', f'genes_by_split.{k}', 'int', markup)}" for k in res.dataset.genes_by_split]
    out = "Genes by split: " + (", ".join(parts) or DASH)
    by = res.dataset.samples_by_split
    if not by:
        return out
    out += ("; individuals with personal haplotypes in the feature store, by split: "
            + ", ".join(f"{esc(k)} {count(k)}" for k in by))
    held_out = f"{count('test')} held-out individuals are predicted from their own haplotypes" if "test" in by else ""
    if not by.get("train"):
        out += (". Training used reference windows only: 0 training individuals have personal haplotypes in the "
                "store" + (f"; {held_out}" if held_out else ""))
    else:
        out += (f". {count('train')} training individuals' haplotypes are in the store, for models trained across "
                "individuals" + (f"; {held_out}" if held_out else ""))
    return out


EXPLAIN = {
    "table": (
        "<b>Cross-gene</b>: across held-out genes (on chromosomes never seen in training), does the model rank "
        "genes by their average expression correctly? ρ = 1 is a perfect ranking, 0 is chance; the interval is a "
        "95% bootstrap over genes. <b>Cross-individual</b>: for each gene, across held-out people, does the model "
        "rank who expresses it more? This comes only from the person's own DNA variants, and is much harder. "
        "<b>Seen</b> genes were used in training (with other people), <b>unseen</b> genes were not. "
        "“ρ &gt; 0” is the share of genes where the model at least gets the direction right; IQR is the "
        "middle half of genes. A model that predicts the same value for every person counts as ρ = 0. "
        "<b>Spread</b> is the standard deviation of the predictions over that of the observed values on the test "
        "split: near 1 the predictions vary as much as the data, near 0 they are almost a constant (marked "
        f"{FLAG} below {NEAR_CONSTANT:g})."
    ),
    "bars": "Bars are the cross-gene Spearman ρ of each model with its 95% bootstrap interval; the dashed line is "
            "the noise ceiling: how well the noise-free truth itself would score against the noisy measurements, "
            "so no model can be expected to pass it. Overlapping intervals mean the difference may be chance.",
    "scatter": "Each dot is a held-out gene: its observed expression averaged over individuals (x) against the "
               "model's prediction (y), both in the units of the expression table after the data set's transform. "
               "Points on the dashed diagonal are perfect; a cloud with a clear upward trend is a useful model; a "
               "horizontal band is a model that predicts nearly one value for every gene.",
    "hist": "For each gene, the Spearman correlation between predicted and observed expression across held-out "
            "people. Grey: genes seen in training; green: unseen genes. A pile to the right of the dotted zero "
            "line means the model captures how genetic variants change expression; vertical lines are medians.",
    "distal": "Genes grouped by how much of their (simulated) regulation comes from distal enhancers rather than "
              "the promoter. A model that reads long-range sequence should hold up as the distal share grows; "
              "a promoter-only model should fall off.",
    "interpret": "Does the model look where the regulation is? For held-out genes, each method ranks the window's "
                 "128-bp bins by importance; AUPRC measures how well that ranking finds the bins of the simulator's "
                 "true elements (promoter, enhancers, CTCF sites), overall and for distal (&gt;20 kb) elements "
                 "alone. <i>Random</i> is the share of true bins (what a random ranking scores); the <i>distance "
                 "prior</i> ranks bins by closeness to the TSS and knows nothing about sequence. <b>Variant "
                 "effects</b>: every variant in those genes' windows is scored (ALT minus REF prediction) and "
                 "compared with its true effect; sign agreement counts the variants that truly change expression.",
}
IMPORTANCE_METHODS = (("attention", "attention rollout"), ("gradxinput", "gradient × input"),
                      ("occlusion", "occlusion"))


def _interpretation(res: Results, N: _Numbers) -> str:
    """The interpretation section (simulated data only): AUPRC per model and method, then variant effects."""
    if not res.interpretation:
        return ""
    rows = []
    first = next(iter(res.interpretation))  # every model is scored on the same genes: one set of references
    refs = res.interpretation[first].get("reference") or {}
    for name, entry in res.interpretation.items():
        for key, label in IMPORTANCE_METHODS:
            if key in (entry.get("importance") or {}):
                rows.append(f"<tr><td>{html.escape(name)}</td><td>{label}</td>"
                            f"<td class='n'>{N.top('interpretation', f'{name}.importance.{key}.auprc', 'r')}</td>"
                            f"<td class='n'>{N.top('interpretation', f'{name}.importance.{key}.distal_auprc', 'r')}"
                            "</td></tr>")
    for ref, label in (("random", "random ranking"), ("distance_prior", "distance-to-TSS prior")):
        if ref in refs:
            rows.append(f"<tr class='ceiling'><td colspan=2>{label}</td>"
                        f"<td class='n'>{N.top('interpretation', f'{first}.reference.{ref}.auprc', 'r')}</td>"
                        f"<td class='n'>{N.top('interpretation', f'{first}.reference.{ref}.distal_auprc', 'r')}"
                        "</td></tr>")
    effects = []
    for name, entry in res.interpretation.items():
        ve = entry.get("variant_effects")
        if not ve:
            continue
        cells = "".join(
            f"<td class='n'>{N.top('interpretation', f'{name}.variant_effects.{p}.pearson', 'r')}</td>"
            f"<td class='n'>{N.top('interpretation', f'{name}.variant_effects.{p}.sign_agreement', 'pct')} "
            f"<span class='ci'>of {N.top('interpretation', f'{name}.variant_effects.{p}.n_causal', 'int')}</span></td>"
            for p in ("overall", *(f"by_distance.{b}" for b in ve.get("by_distance", {}))))
        effects.append(f"<tr><td>{html.escape(name)}</td><td class='n'>"
                       f"{N.top('interpretation', f'{name}.variant_effects.n_matched', 'int')}</td>{cells}</tr>")
    n_genes = len(next(iter(res.interpretation.values())).get("genes", []))
    out = (f"<h2>Interpretation: where the model looks ({n_genes} held-out genes)</h2><table><tr><th>Model</th>"
           "<th>Method</th><th>AUPRC, all elements</th><th>AUPRC, distal elements</th></tr>" + "".join(rows)
           + "</table>")
    if effects:
        bands = list(next(e["variant_effects"] for e in res.interpretation.values()
                          if e.get("variant_effects"))["by_distance"])
        head = "".join(f"<th>{html.escape(b)}: r</th><th>{html.escape(b)}: sign</th>" for b in bands)
        out += ("<table><tr><th>Model</th><th>variant-gene pairs</th><th>all: Pearson r</th><th>all: sign "
                f"agreement</th>{head}</tr>" + "".join(effects) + "</table>")
    return out + f"<div class='explain'>{EXPLAIN['interpret']}</div>"


_FIT_REPORT = re.compile(r'^"?FitReport\((.*)\)"?$', re.S)
_STOPPED_BY = {"epochs": "the epoch budget", "steps": "the step budget", "time": "the time cap"}


def _fit_report_fields(note: str) -> dict[str, Any] | None:
    """The fields of a training report note: ``FitReport(k=v, ...)`` (a dataclass repr, possibly JSON-quoted) or a
    JSON object with ``epochs_done``; None for any other note."""
    m = _FIT_REPORT.match(note.strip())
    if m:
        out: dict[str, Any] = {}
        for k, v in re.findall(r"(\w+)=('[^']*'|[^,]+)", m.group(1)):
            try:
                out[k] = ast.literal_eval(v.strip())
            except (ValueError, SyntaxError):
                out[k] = float(v) if v.strip() in ("nan", "inf", "-inf") else v.strip()
        return out
    try:
        d = json.loads(note)
    except ValueError:
        return None
    return d if isinstance(d, dict) and "epochs_done" in d else None


def note_text(note: str) -> str:
    """A note as a sentence: a training report (``FitReport(...)``) is spelled out, other notes are kept."""
    f = _fit_report_fields(note)
    if f is None:
        return note

    def num(k: str) -> float | None:
        v = f.get(k)
        return float(v) if isinstance(v, int | float) and math.isfinite(v) else None

    epochs, steps, secs = num("epochs_done"), num("steps"), num("seconds")
    parts = [f"trained {0 if epochs is None else int(epochs)} full epoch{'' if epochs == 1 else 's'}"]
    detail = [f"{int(steps):,} steps" if steps is not None else "",
              fmt(secs, "s") if secs is not None else ""]
    if any(detail):
        parts[0] += " (" + ", ".join(d for d in detail if d) + ")"
    stop = f.get("stopped_by")
    if stop:
        parts.append(f"stopped by {_STOPPED_BY.get(str(stop), str(stop))}")
    sps, length = num("seconds_per_sequence"), num("train_len_bp")
    if sps is not None:
        parts.append(f"{sps:.2g} s per sequence forward + backward"
                     + (f" at {int(length):,} bp" if length else ""))
    elif length:
        parts.append(f"sequences of {int(length):,} bp")
    best = num("best_val_loss")
    parts.append(f"best validation loss {best:.3g}" if best is not None else "no validation loss recorded")
    return "Training: " + "; ".join(parts) + "."


def spread_note(m: ModelResult) -> str | None:
    """The notes' line on a near-constant model (None for others)."""
    if not near_constant(m):
        return None
    sp = m.metrics["spread"]
    split = sp.get("split", "test")
    rows = f"{split} genes" if sp.get("rows") == "gene" else f"individual rows of {split} genes"
    return (f"near-constant predictions: on the {sp.get('n', 0):,} {rows} the predictions spread only "
            f"{100 * sp['sd_ratio']:.2g}% as much as the observed values (sd {sp['sd_pred']:.3g} against "
            f"{sp['sd_true']:.3g}, ratio {fmt(sp['sd_ratio'], 'ratio')}; flagged below {NEAR_CONSTANT:g})")


def _model_notes(res: Results) -> str:
    items = []
    for m in res.models:
        notes = [note_text(n) for n in m.notes]
        flag = spread_note(m)
        if flag:
            notes.insert(0, f"{FLAG} {flag}")
        if m.status != "ok":
            notes.insert(0, f"{m.status}: {m.reason or 'no reason given'}")
        if notes:
            items.append(f"<li><b>{html.escape(m.name)}</b>: " + "; ".join(html.escape(n) for n in notes) + "</li>")
    return f"<ul>{''.join(items)}</ul>" if items else "<p>No notes.</p>"


PLOT_FILES = {"bars": "cross_gene_bars.png", "scatter": "scatter_predicted_vs_observed.png",
              "hist": "cross_individual_hist.png", "distal": "by_distal_share.png"}


def render_html(res: Results, predictions: dict, plots_dir: Path | None = None) -> tuple[str, dict[str, str]]:
    """The page and the numbers it shows (key -> text); ``plots_dir``: also write each figure there as PNG."""
    N = _Numbers(res)
    d, s = res.dataset, res.settings
    figures = {"bars": plots.cross_gene_bars(res), "scatter": plots.scatter_grid(res, predictions),
               "hist": plots.cross_individual_hists(res), "distal": plots.distal_share_curves(res)}
    fig = {k: plots.to_data_uri(f, None if plots_dir is None else plots_dir / PLOT_FILES[k])
           for k, f in figures.items()}
    nc = res.noise_ceiling
    src = nc.get("source")
    src = f" ({html.escape(str(src))})" if src not in (None, "table", "given") else ""
    ceiling_note = f"The noise ceiling comes from the simulator's noise-free expression{src}." if nc.get(
        "available") else (
        "No noise ceiling: this data set has no simulator truth, so how much of the variation is measurement "
        "noise is unknown.")
    body = f"""
<h1>gta benchmark: {html.escape(d.name)}</h1>
<p class="sub">{html.escape(d.description)}{' (simulated data)' if d.simulated else ''} · created
 {html.escape(res.created)} · gta {html.escape(res.gta_version)}</p>
{_cards(res, N)}
<p>{_splits(res, N)}.</p>
<h2>All models</h2>
{_main_table(res, N)}
<div class="explain">{EXPLAIN['table']} {ceiling_note}</div>
<h2>Cross-gene accuracy</h2>
<img alt="cross-gene Spearman per model" src="{fig['bars']}">
<div class="explain">{EXPLAIN['bars']}</div>
<h2>Predicted vs observed (test genes)</h2>
<img alt="scatter per model" src="{fig['scatter']}">
<div class="explain">{EXPLAIN['scatter']}</div>
<h2>Cross-individual: per-gene correlations</h2>
<img alt="per-gene cross-individual correlations" src="{fig['hist']}">
<div class="explain">{EXPLAIN['hist']}</div>
<h2>By distal share of regulation</h2>
<img alt="metrics by distal share" src="{fig['distal']}">
<div class="explain">{EXPLAIN['distal']}</div>
{_interpretation(res, N)}
<h2>Notes</h2>
{_model_notes(res)}
<footer>Bootstrap: {N.top('settings', 'n_boot', 'int')} resamples of genes (seed {html.escape(str(s.seed))});
 cross-individual metrics use genes with at least {N.top('settings', 'min_samples', 'int')} held-out individuals
 and some variation. Every number on this page is read from results.json, which can be recomputed from the saved
 prediction tables (<code>gta.evaluate.results.verify_results</code>).</footer>
"""
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>gta benchmark: '
            f"{html.escape(d.name)}</title><style>{CSS}</style></head><body><main>{body}</main></body></html>")
    return page, N.shown


def render_markdown(res: Results) -> str:
    """``results.md``: the main table in Markdown."""
    N = _Numbers(res)
    lines = [f"# gta benchmark: {res.dataset.name}", "", *_md_main_table(res, N)]
    flagged = [m for m in res.models if near_constant(m)]
    if flagged:
        lines += ["", f"{FLAG} {NEAR_CONSTANT_NOTE} Flagged: " + ", ".join(m.name for m in flagged) + "."]
    lines += ["", _splits(res, N, markup=False) + "."]
    if res.interpretation:
        lines += ["", "## Interpretation (simulated truth)", "", "| Model | Method | AUPRC all elements | AUPRC distal "
                  "| Variant effects: Pearson r | sign agreement |",
                  "|---|---|---|---|---|---|"]
        for name, entry in res.interpretation.items():
            for key, label in IMPORTANCE_METHODS:
                if key not in (entry.get("importance") or {}):
                    continue
                t = f"{name}.importance.{key}"
                ve = f"{name}.variant_effects.overall"
                lines.append(f"| {name} | {label} | {N.top('interpretation', t + '.auprc', 'r', False)} | "
                             f"{N.top('interpretation', t + '.distal_auprc', 'r', False)} | "
                             f"{N.top('interpretation', ve + '.pearson', 'r', False)} | "
                             f"{N.top('interpretation', ve + '.sign_agreement', 'pct', False)} |")
        first = next(iter(res.interpretation))
        for ref in ("random", "distance_prior"):
            t = f"{first}.reference.{ref}"
            if lookup(res.interpretation, t) is not None:
                lines.append(f"| *{ref.replace('_', ' ')}* | | {N.top('interpretation', t + '.auprc', 'r', False)} | "
                             f"{N.top('interpretation', t + '.distal_auprc', 'r', False)} | | |")
    return "\n".join(lines) + "\n"


def render_report(results_json: str | Path, predictions_dir: str | Path, out_html: str | Path,
                  markdown: bool = True) -> Path:
    """Write ``out_html`` (self-contained) and, beside it, ``results.md`` and ``plots/*.png``; return the HTML path."""
    res = read_results(results_json)
    tables = model_tables(predictions_dir)
    preds = {}
    for m in res.models:
        if m.status == "ok" and m.table_key in tables:
            preds[m.name] = load_predictions(tables[m.table_key])
    out_html = Path(out_html)
    page, _ = render_html(res, preds, plots_dir=out_html.parent / "plots")
    atomic_write_text(out_html, page)
    if markdown:
        atomic_write_text(out_html.with_name("results.md"), render_markdown(res))
    return out_html
