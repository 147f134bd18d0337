"""Write the measured tables of docs/demo.md from a saved `make demo` run (never typed by hand).

    python scripts/update_demo_doc.py [--run runs/demo] [--seeds benchmarks/results/learning_curve_demo.json]

Replaces the text between ``<!-- BEGIN generated: ... -->`` and ``<!-- END generated -->`` in docs/demo.md with the
run's ``benchmark/results.md`` (the benchmark's own table), the commit and date of the run, and, when the
learning-curve record of the demo preset is given, the seed-to-seed spread of GTA and GTA no LLM.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from gta.atomic import atomic_write_text
from gta.provenance import source_commit

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "demo.md"
BEGIN, END = "<!-- BEGIN generated", "<!-- END generated -->"


def section(run: Path, seeds: Path | None) -> str:
    res = json.loads((run / "benchmark" / "results.json").read_text())
    table = (run / "benchmark" / "results.md").read_text().strip().splitlines()
    table = [line for line in table if not line.startswith("# ")]  # the page title stays docs/demo.md's
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime((run / "benchmark" / "results.json").stat().st_mtime))
    lines = [f"{BEGIN} by scripts/update_demo_doc.py from {run}/benchmark/results.json "
             f"(run finished {stamp}; gta {res.get('gta_version', '?')}; doc written at commit {source_commit()}) -->",
             "", *table, ""]
    if seeds is not None and seeds.exists():
        rec = json.loads(seeds.read_text())
        lines += [f"Seed-to-seed spread (model seeds {rec['seeds']}, same data and splits; "
                  f"`benchmarks/bench_learning_curve.py`, commit {rec['commit']}, {rec['date']}):", "",
                  "| model | seeds | mean | min | max |", "|---|---|---|---|---|"]
        for point in rec["points"]:
            for name, m in point["models"].items():
                if len(m["seeds"]) > 1:
                    vals = ", ".join(f"{v:.3f}" for v in m["seeds"])
                    lines.append(f"| {name} ({point['n_genes']} genes) | {vals} | {m['mean']:.3f} | {m['min']:.3f} "
                                 f"| {m['max']:.3f} |")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "demo")
    ap.add_argument("--seeds", type=Path, default=ROOT / "benchmarks" / "results" / "learning_curve_demo.json")
    args = ap.parse_args()
    text = DOC.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{DOC}: no '{BEGIN} ... {END}' block to replace")
    atomic_write_text(DOC, pattern.sub(lambda _: section(args.run, args.seeds), text))
    print(f"wrote the generated block of {DOC}")


if __name__ == "__main__":
    main()
