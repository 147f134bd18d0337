"""Write the measured tables of docs/demo.md from a saved `make demo` run (never typed by hand).

    python scripts/update_demo_doc.py [--run runs/demo] [--seeds benchmarks/results/learning_curve.json]

Replaces two blocks of docs/demo.md, each between ``<!-- BEGIN generated NAME ...-->`` and
``<!-- END generated NAME -->``: ``costs``, the wall time of each stage and the peak memory from the run's
``demo_timings.json`` (written by ``gta demo``) with each model's training time; ``results``, the run's
``benchmark/results.md`` (the benchmark's own table) with the commit and date of the run and, from the learning-curve
record, the seed-to-seed spread of GTA and GTA no LLM at the point whose data set is the demo's (same preset, size
and simulator seed; none is shown when the record has no such point).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import yaml

from gta.atomic import atomic_write_text
from gta.provenance import source_commit

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "demo.md"

def markers(name: str) -> tuple[str, str]:
    return f"<!-- BEGIN generated {name}", f"<!-- END generated {name} -->"


def costs(run: Path) -> str:
    """The stage table: wall seconds per stage, peak memory, and each model's own training/fitting time."""
    begin, end = markers("costs")
    path = run / "demo_timings.json"
    rec = json.loads(path.read_text())
    res = json.loads((run / "benchmark" / "results.json").read_text())
    models = ", ".join(f"{m['name']} {m['wall_time_s']:.0f} s" for m in res["models"] if m.get("wall_time_s"))
    where = rec.get("machine") or f"{rec['cpus']} CPUs"  # runs before the machine was recorded: the count
    lines = [f"{begin} by scripts/update_demo_doc.py from {path.name} (run started {rec['started']} at commit "
             f"{rec['commit']}, {where}) -->", "", "| stage | wall time |", "|---|---|"]
    lines += [f"| {stage} | {sec:.0f} s |" for stage, sec in rec["stages"].items()]
    lines += [f"| **total** | **{rec['total_s']:.0f} s ({rec['total_s'] / 60:.1f} min)**, peak memory "
              f"{rec['peak_rss_mb'] / 1024:.1f} GB |", "", f"Per model inside the benchmark stage: {models}.", "", end]
    return "\n".join(lines)


def spread_point(run: Path, seeds: Path | None) -> tuple[dict, dict] | None:
    """(the learning-curve record, its point) whose data set is the demo run's: same preset, simulator seed and size."""
    if seeds is None or not seeds.exists():
        return None
    sim = yaml.safe_load((run / "data" / "truth" / "config.yaml").read_text())
    rec = json.loads(seeds.read_text())
    if (rec["preset"], rec["sim_seed"]) != (sim["preset"], sim["seed"]):
        return None
    return next(((rec, p) for p in rec["points"] if p["n_genes"] == sim["n_genes"]), None)


def section(run: Path, seeds: Path | None) -> str:
    begin, end = markers("results")
    res = json.loads((run / "benchmark" / "results.json").read_text())
    table = (run / "benchmark" / "results.md").read_text().strip().splitlines()
    table = [line for line in table if not line.startswith("# ")]  # the page title stays docs/demo.md's
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime((run / "benchmark" / "results.json").stat().st_mtime))
    lines = [f"{begin} by scripts/update_demo_doc.py from {run.name}/benchmark/results.json "
             f"(run finished {stamp}; gta {res.get('gta_version', '?')}; doc written at commit {source_commit()}) -->",
             "", *table, ""]
    point = spread_point(run, seeds)
    if point is not None:
        rec, point = point
        lines += [f"Seed-to-seed spread at this data set (model seeds {rec['seeds']}, same data and splits; "
                  f"`benchmarks/bench_learning_curve.py`, commit {rec['commit']}, {rec['date']}):", "",
                  "| model | seeds | mean | min | max |", "|---|---|---|---|---|"]
        for name, m in point["models"].items():
            if len(m["seeds"]) > 1:
                vals = ", ".join(f"{v:.3f}" for v in m["seeds"])
                lines.append(f"| {name} | {vals} | {m['mean']:.3f} | {m['min']:.3f} | {m['max']:.3f} |")
        lines.append("")
    lines.append(end)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "demo")
    ap.add_argument("--seeds", type=Path, default=ROOT / "benchmarks" / "results" / "learning_curve.json")
    args = ap.parse_args()
    text = DOC.read_text()
    for name, block in (("costs", costs(args.run)), ("results", section(args.run, args.seeds))):
        begin, end = markers(name)
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
        if not pattern.search(text):
            raise SystemExit(f"{DOC}: no '{begin} ... {end}' block to replace")
        text = pattern.sub(lambda _, b=block: b, text)
    atomic_write_text(DOC, text)
    print(f"wrote the generated blocks of {DOC}")


if __name__ == "__main__":
    main()
