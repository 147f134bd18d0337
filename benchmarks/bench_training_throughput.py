"""GTA training throughput, read from the summaries of finished training runs (no training of its own).

    python benchmarks/bench_training_throughput.py [--runs runs/demo/benchmark/runs] [--tag demo]

For every run folder under ``--runs`` (each with ``summary.json`` and ``config.yaml``, as ``gta train`` and
``gta benchmark`` leave them): training genes per second, seconds per epoch (the first epoch apart: it computes
each gene's prompt cache), epochs, trainable weights, LLM layers, patch size and prototypes. Writes
``benchmarks/results/training_throughput{_TAG}.{json,md}`` with the commit, the date and the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import yaml

from gta.atomic import atomic_write_text
from gta.provenance import machine, source_commit

OUT = Path(__file__).resolve().parent / "results"


def run_row(folder: Path) -> dict:
    s = json.loads((folder / "summary.json").read_text())
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    model, res = cfg["model"], cfg.get("resolved", {})
    epochs = [float(t) for t in s.get("epoch_times_s", [])]
    return {"run": folder.name, "genes_per_s": s.get("genes_per_s"), "first_epoch_s": epochs[0] if epochs else None,
            "later_epoch_s": float(np.median(epochs[1:])) if len(epochs) > 1 else None, "epochs": s.get("epochs"),
            "fit_time_s": s.get("fit_time_s"), "wall_time_s": s.get("wall_time_s"), "peak_rss_mb": s.get("peak_rss_mb"),
            "n_trainable": s.get("n_trainable"), "train_genes": res.get("data", {}).get("genes", {}).get("train"),
            "backbone": model.get("backbone"), "llm_layers": model.get("llm_layers"),
            "patch_len": model.get("patch_len"), "n_prototypes": model.get("n_prototypes"),
            "prototype_vocab": model.get("prototype_vocab"), "batch_size": cfg.get("batch_size"),
            "precision": res.get("precision")}


def render(r: dict) -> str:
    lines = [f"# GTA training throughput ({r['runs']})", "",
             f"Commit {r['commit']}, {r['date']}; {r['machine']['cores']} cores, 1-min load average "
             f"{r['machine']['load_average_1min']} when read; figures are those each run recorded while it trained "
             "(another job sharing the cores slows them). Written by `benchmarks/bench_training_throughput.py`.", "",
             "| run | train genes | genes/s | first epoch (s) | later epochs (s, median) | epochs | trainable | LLM "
             "layers | patch | prototypes (vocab) | peak RSS (MB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for x in r["rows"]:
        def f(v, fmt="{:.1f}"):
            return "—" if v is None else fmt.format(v)
        layers = "none (scratch)" if x["backbone"] == "none" else f"{x['llm_layers']} ({x['backbone']})"
        lines.append(f"| {x['run']} | {f(x['train_genes'], '{}')} | {f(x['genes_per_s'])} | {f(x['first_epoch_s'])} "
                     f"| {f(x['later_epoch_s'])} | {f(x['epochs'], '{}')} | {f(x['n_trainable'], '{:,}')} | {layers} "
                     f"| {x['patch_len']} | {x['n_prototypes']} ({x['prototype_vocab'] or 'all'}) "
                     f"| {f(x['peak_rss_mb'], '{:.0f}')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=Path, default=Path("runs/demo/benchmark/runs"))
    ap.add_argument("--tag", default="demo")
    args = ap.parse_args()
    folders = sorted(p for p in args.runs.iterdir() if (p / "summary.json").exists() and (p / "config.yaml").exists())
    if not folders:
        raise SystemExit(f"no finished training runs under {args.runs}")
    record = {"benchmark": "training_throughput", "commit": source_commit(), "date": time.strftime("%Y-%m-%d %H:%M"),
              "machine": {**machine(), "load_average_1min": round(os.getloadavg()[0], 2)},
              "runs": str(args.runs), "rows": [run_row(p) for p in folders]}
    stem = "training_throughput" + (f"_{args.tag}" if args.tag else "")
    atomic_write_text(OUT / f"{stem}.json", json.dumps(record, indent=2) + "\n")
    atomic_write_text(OUT / f"{stem}.md", render(record))
    print(render(record))


if __name__ == "__main__":
    main()
