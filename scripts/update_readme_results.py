"""Write README.md's results block from the committed bench acceptance run (never typed by hand).

    python scripts/update_readme_results.py [--results benchmarks/results/bench/results.json]

Replaces the text between ``<!-- BEGIN generated: results -->`` and ``<!-- END generated: results -->`` with the
cross-gene table (Spearman with its bootstrap interval, and as a fraction of the noise ceiling) and the verdict on
the LLM read from the same numbers (a difference counts only when its paired interval excludes 0), and the verdict
over model seeds from ``benchmarks/results/llm_verdict.json`` when ``benchmarks/bench_llm_verdict.py`` has run.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from gta.atomic import atomic_write_text
from gta.evaluate.metrics import paired_call, tally_calls

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BEGIN, END = "<!-- BEGIN generated: results", "<!-- END generated: results -->"
VERDICT = ROOT / "benchmarks" / "results" / "llm_verdict.json"
CROSS_INDIVIDUAL = ROOT / "benchmarks" / "results" / "bench" / "cross_individual.json"
# scripts/compare_runs.py's records by model seed: today's defaults against the previous ones, and the alignments
SINCE = ROOT / "benchmarks" / "results" / "cosine_schedule_seeds.json"
ALIGNMENT = ROOT / "benchmarks" / "results" / "alignment_seeds.json"
CURVE = ROOT / "benchmarks" / "results" / "learning_curve.json"
CURVE_MODELS = ("GTA", "GTA no LLM", "Ridge (distance bands)")
LLM_QUESTIONS = (("GTA", "GTA random LLM", "a pretrained LLM vs a random one of the same architecture"),
                 ("GTA", "GTA no LLM", "the frozen LLM vs a small transformer trained from scratch"),
                 ("GTA", "GTA no prompt", "with the annotation prompt vs without"),
                 ("GTA", "GTA no alignment", "prototype alignment vs a linear projection"))


def _cross(res: dict) -> dict[str, dict]:
    return {m["name"]: m["metrics"]["cross_gene"] for m in res["models"]
            if m["status"] == "ok" and (m.get("metrics", {}).get("cross_gene") or {}).get("spearman") is not None}


def verdict(a: str, b: str, cross: dict[str, dict], paired: dict[tuple[str, str], dict]) -> str:
    """From the paired bootstrap of the difference when the run has it, else from the two intervals."""
    d = paired.get((a, b))
    if d is not None:
        lo, hi = d["ci"]
        where = f"difference {d['difference']:+.3f}, paired 95% CI [{lo:+.3f}, {hi:+.3f}]"
        return f"{paired_call(d['ci'])} ({where})"
    (lo_a, hi_a), (lo_b, hi_b) = cross[a]["spearman_ci"], cross[b]["spearman_ci"]
    if lo_a > hi_b:
        return "better (intervals apart)"
    if lo_b > hi_a:
        return "worse (intervals apart)"
    return "no difference (intervals overlap)"


def _code(text: str) -> str:
    """Markdown code for a command, unless it quotes code itself (nested backticks do not render)."""
    return text if "`" in text else f"`{text}`"


def block(res: dict, source: str) -> str:
    ceiling = res["noise_ceiling"].get("cross_gene_spearman")
    cross = _cross(res)
    meta = res.get("acceptance_run", {})
    lines = [f"{BEGIN} by scripts/update_readme_results.py from {source} (commit {meta.get('commit', '?')}, "
             f"{meta.get('date', res.get('created', '?'))}) -->", "",
             f"{_code(meta.get('command', 'gta benchmark'))}: {res['dataset']['n_genes']} genes, cross-gene Spearman "
             f"on the {next(iter(cross.values()))['n_genes']} genes of the held-out chromosomes, 95% bootstrap "
             f"interval; noise ceiling {ceiling:.3f}. One model seed.", "",
             "| model | Spearman [95% CI] | of the ceiling |", "|---|---|---|"]
    for name, m in sorted(cross.items(), key=lambda kv: -kv[1]["spearman"]):
        lo, hi = m["spearman_ci"]
        frac = f"{m['spearman'] / ceiling:.0%}" if ceiling else ""
        lines.append(f"| {name} | {m['spearman']:.3f} [{lo:.2f}, {hi:.2f}] | {frac} |")
    paired = {(d["a"], d["b"]): d for d in meta.get("paired_differences", [])}
    lines += ["", "Does the LLM help? GTA against each ablation on the same test genes:", ""]
    for a, b, question in LLM_QUESTIONS:
        if a in cross and b in cross:
            lines.append(f"- {question}: {cross[a]['spearman']:.3f} vs {cross[b]['spearman']:.3f}, "
                         f"{verdict(a, b, cross, paired)}.")
    gta = cross.get("GTA", {}).get("spearman")
    lines += ["", *seed_lines(VERDICT, gta), "", *individual_lines(CROSS_INDIVIDUAL, gta),
              *since_lines(SINCE, meta.get("date")),
              *([] if _verdict_asks(VERDICT, "GTA no alignment") else alignment_lines(ALIGNMENT)),
              *curve_lines(CURVE, gta, res["dataset"]["n_genes"]), END]
    return "\n".join(lines)


STALE = ("**Not the table's model**: its seed-0 GTA scores {other:.3f} where the table's scores {gta:.3f}, so it was "
         "trained at other code or defaults and is to be re-run.")


def _stale(other: float | None, gta: float | None) -> list[str]:
    """A warning when a summary's seed-0 GTA is not the GTA of the acceptance table (older defaults or code)."""
    if other is None or gta is None or abs(other - gta) < 5e-4:
        return []
    return [STALE.format(other=other, gta=gta)]


def seed_lines(path: Path, gta: float | None = None) -> list[str]:
    """The verdict over model seeds from ``benchmarks/bench_llm_verdict.py``'s JSON, when it has been run."""
    if not path.exists():
        return ["Single seed: the comparison over model seeds (`benchmarks/bench_llm_verdict.py`) is not yet run."]
    v = json.loads(path.read_text())
    trained = sorted({c for row in v["per_seed"].values() for c in row.get("trained_at", {}).values()})
    at = f"trained at {', '.join(trained)}" if trained else f"commit {v['commit']}"
    lines = [f"Over {len(v['seeds'])} model seeds (`{path.relative_to(ROOT)}`, {at}): mean "
             "Spearman [min, max] over seeds, and per seed the paired bootstrap call on the same test genes:", ""]
    for q in v["summary"]["questions"]:
        a, b = (v["summary"]["models"][n] for n in (q["a"], q["b"]))
        calls = tally_calls(q["calls"])
        lines.append(f"- {q['question']}: {a['mean']:.3f} [{a['min']:.3f}, {a['max']:.3f}] vs {b['mean']:.3f} "
                     f"[{b['min']:.3f}, {b['max']:.3f}], mean difference {q['mean_difference']:+.3f}; seeds: {calls}.")
    seed0 = v["per_seed"].get("0", {}).get("scores", {}).get("GTA", {}).get("spearman")
    return lines + ["", *_stale(seed0, gta),
                    "A seed in which a model never leaves a constant prediction (spread near 0 in results.md) "
                    "measures a failed training, not the worth of the prompt or the LLM (docs/learning.md, entries "
                    f"10-12); with {len(v['seeds'])} seeds, a call in one seed only is not a result."]


def _spans(record: dict) -> dict[str, tuple[float, float, float]]:
    """Each group of a compare_runs record: (mean, min, max) of its runs' Spearman."""
    return {name: (float(np.mean(v)), min(v), max(v))
            for name, v in ((n, [r["spearman"] for r in rows]) for n, rows in record["groups"].items())}


def since_lines(path: Path, table_date: str | None = None) -> list[str]:
    """The seed spread behind the one-seed table: GTA at today's defaults against the previous ones, per model seed,
    trained alone with `gta train` (``scripts/compare_runs.py``'s JSON; its first group is today's defaults). When
    that record is newer than the table, the table's models are the previous defaults' and the text says so."""
    if not path.exists():
        return []
    v = json.loads(path.read_text())
    (new, a), (old, _) = v["groups"].items()
    span = _spans(v)
    per = ", ".join(f"{p['difference']:+.3f} [{p['ci'][0]:+.3f}, {p['ci'][1]:+.3f}]" for p in v["paired_by_seed"])
    older = table_date is not None and v["date"] > table_date
    return [f"Seed spread: the table is one model seed. GTA at today's defaults (\"{new}\"), trained alone with "
            f"`gta train` on the same data over seeds {sorted(r['seed'] for r in a)} (`{path.relative_to(ROOT)}`, "
            f"{v['date']}): {span[new][0]:.3f} [{span[new][1]:.3f}, {span[new][2]:.3f}], against {span[old][0]:.3f} "
            f"[{span[old][1]:.3f}, {span[old][2]:.3f}] at the previous defaults (\"{old}\"); paired by seed {per}."
            + (f" **The table above ({table_date}) was trained at the previous defaults**; its re-run is pending."
               if older else ""), ""]


def alignment_lines(path: Path) -> list[str]:
    """Prototype alignment against the linear map over model seeds (``scripts/compare_runs.py``'s JSON)."""
    if not path.exists():
        return []
    v = json.loads(path.read_text())
    (lin, a), (proto, _) = v["groups"].items()
    span = _spans(v)
    counted = tally_calls([paired_call(d["ci"]) for d in v["paired_by_seed"]])
    return [f"Alignment over seeds {sorted(r['seed'] for r in a)} (`{path.relative_to(ROOT)}`, {v['date']}): "
            f"{lin} {span[lin][0]:.3f} [{span[lin][1]:.3f}, {span[lin][2]:.3f}] against {proto} "
            f"{span[proto][0]:.3f} [{span[proto][1]:.3f}, {span[proto][2]:.3f}]; paired by seed: {counted}. One "
            "seed's gap in the table is not a verdict on the alignment (docs/learning.md, entry 26).", ""]


def _verdict_asks(path: Path, b: str) -> bool:
    """Whether the verdict over seeds compares GTA with ``b`` (then a separate record of that question is older)."""
    return path.exists() and any(q["b"] == b for q in json.loads(path.read_text())["summary"]["questions"])


def curve_lines(path: Path, gta: float | None = None, n_genes: int | None = None) -> list[str]:
    """GTA, GTA no LLM and the distance-band ridge against data size, from ``benchmarks/bench_learning_curve.py``;
    flagged when its point at the table's size (same data set) has another seed-0 GTA than the table's."""
    if not path.exists():
        return []
    v = json.loads(path.read_text())
    same = next((p for p in v["points"] if p["n_genes"] == n_genes and "GTA" in p["models"]), None)
    stale = _stale(same["models"]["GTA"]["seeds"][0], gta) if same and v.get("sim_seed") == 0 else []
    sizes = []
    for p in v["points"]:
        cells = []
        for name in CURVE_MODELS:
            m = p["models"].get(name)
            if m is not None:
                spread = f" [{m['min']:.3f}, {m['max']:.3f}]" if len(m["seeds"]) > 1 else ""
                cells.append(f"{name} {m['mean']:.3f}{spread}")
        test = p["genes_by_split"].get("test", "?")
        sizes.append(f"{p['n_genes']} genes ({test} test): {', '.join(cells)}; ceiling {p['noise_ceiling']:.3f}")
    png = path.with_suffix(".png").relative_to(ROOT)
    return [f"Learning curve (`{path.relative_to(ROOT)}`, commit {v['commit']}, {v['date']}; {v['gta_settings']}; "
            f"mean [min, max] over model seeds {v['seeds']}; plot `{png}`): " + "; ".join(sizes) + ".", *stale, ""]


def individual_lines(path: Path, gta: float | None = None) -> list[str]:
    """Across individuals on unseen genes, from ``benchmarks/bench_cross_individual.py``'s JSON when it has run."""
    if not path.exists():
        return []
    v = json.loads(path.read_text())
    med = {n: m["unseen"]["median"] for n, m in v["models"].items()}
    n = next(iter(v["models"].values()))["unseen"]["n_genes"]
    shown = ", ".join(f"{name} {rho:.3f}" for name, rho in med.items() if name != "noise ceiling")
    return [f"Across individuals (`{path.relative_to(ROOT)}`, commit {v['commit']}): per gene, Spearman over the "
            f"{v['n_test_individuals']} held-out individuals, median over the {n} unseen test genes: {shown}; "
            f"noise ceiling {med['noise ceiling']:.3f}. The elastic net is fitted per gene on the training "
            "individuals of that very gene; GTA never saw these genes.",
            *_stale(v["models"].get("GTA (reference only)", {}).get("cross_gene_test"), gta), ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "bench" / "results.json")
    args = ap.parse_args()
    args.results = args.results.resolve()
    res = json.loads(args.results.read_text())
    text = README.read_text()
    new = block(res, str(args.results.relative_to(ROOT) if args.results.is_relative_to(ROOT) else args.results))
    if BEGIN in text:
        head, rest = text.split(BEGIN, 1)
        text = head + new + rest.split(END, 1)[1]
    else:
        anchor = "## Your own data: the manifest"
        text = text.replace(anchor, "## How well it works (bench preset)\n\n" + new + "\n\n" + anchor, 1)
    atomic_write_text(README, text)
    print(new)


if __name__ == "__main__":
    main()
