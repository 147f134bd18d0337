"""Does the LLM help? GTA against its LLM and prompt ablations at `bench` scale, with several model seeds.

    python benchmarks/bench_llm_verdict.py --work W [--seeds 0 1 2] [--threads 2] [--out benchmarks/results]

W is a `benchmarks/bench_acceptance.py` folder (its `data/` and `features.zarr`). For each model seed, `gta
benchmark` trains GTA, GTA no prompt, GTA no LLM, GTA random LLM and GTA no alignment (a linear map instead of the
text prototypes) with the benchmark's defaults (only the training seed changes) on the same held-out chromosomes;
seed 0 reuses the acceptance run's `benchmark/` when it holds them and was trained at today's defaults. Each seed's
comparison is the paired bootstrap of the Spearman difference on the same test genes
(`gta.evaluate.metrics.paired_spearman_difference`). Writes `llm_verdict.json` and `llm_verdict.md`: every seed's
score, mean and range, and per question how many seeds say better / worse / no difference. Each seed's benchmark
resumes model by model, so an interrupted run continues.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from gta.atomic import atomic_write_text
from gta.evaluate.metrics import paired_call, tally_calls
from gta.evaluate.results import run_slug
from gta.provenance import machine_line, source_commit

OUT = Path(__file__).resolve().parent / "results"
MODELS = ["GTA", "GTA no prompt", "GTA no LLM", "GTA random LLM", "GTA no alignment"]
QUESTIONS = (("GTA", "GTA random LLM", "a pretrained LLM vs a random one of the same architecture"),
             ("GTA", "GTA no LLM", "the frozen LLM vs a small transformer trained from scratch"),
             ("GTA", "GTA no prompt", "with the annotation prompt vs without"),
             ("GTA no prompt", "GTA no LLM", "without the prompt: the frozen LLM vs the small transformer"),
             ("GTA", "GTA no alignment", "prototype alignment vs a linear projection"))


def _has(bench: Path) -> bool:
    res = bench / "results.json"
    return res.exists() and set(MODELS) <= {m["name"] for m in json.loads(res.read_text())["models"]}


TRAINING = ("lr", "batch_size", "weight_decay", "max_epochs", "patience", "lr_schedule", "warmup_frac",
            "mirror_augment", "ema_epochs", "gradient_clip", "model")


def _current(bench: Path) -> bool:
    """Whether the GTA run in ``bench`` was trained with today's training defaults (a run from before a change of
    the defaults is not mixed into a verdict about the current model)."""
    from gta.train.config import TrainConfig

    stored = yaml.safe_load((bench / "runs" / "GTA" / "config.yaml").read_text())
    now = TrainConfig().to_dict()
    return all(stored.get(k) == now[k] for k in TRAINING)


def run_seed(work: Path, seed: int, threads: int, runs: str = "verdict") -> Path:
    """The benchmark folder holding MODELS trained with ``seed`` (run here unless it exists); seed 0 reuses the
    acceptance run's when that was trained with the current defaults."""
    if seed == 0 and _has(work / "benchmark") and _current(work / "benchmark"):
        return work / "benchmark"
    bench = work / runs / f"seed{seed}"
    if not _has(bench):
        bench.mkdir(parents=True, exist_ok=True)
        cfg = bench / "benchmark.yaml"
        settings = {"gta": {"seed": seed}, "models": MODELS, "interpret": {"n_genes": 0, "variant_genes": 0}}
        cfg.write_text(yaml.safe_dump(settings))
        cmd = [sys.executable, "-m", "gta", "benchmark", "-d", str(work / "data" / "dataset.yaml"), "-f",
               str(work / "features.zarr"), "-o", str(bench), "--config", str(cfg), "--threads", str(threads),
               "--quiet"]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return bench


def seed_row(bench: Path, n_boot: int) -> dict:
    """One seed: each model's cross-gene Spearman and interval, and the paired difference of each question."""
    from bench_acceptance import paired_differences  # beside this script

    res = json.loads((bench / "results.json").read_text())
    scores = {m["name"]: {"spearman": m["metrics"]["cross_gene"]["spearman"],
                          "ci": m["metrics"]["cross_gene"]["spearman_ci"]}
              for m in res["models"] if m["name"] in MODELS and m["status"] == "ok"}
    pairs = paired_differences(bench, res, n_boot, pairs=tuple((a, b) for a, b, _ in QUESTIONS))
    trained = {}
    for m in MODELS:  # the code that trained each model (runs from before the commit was recorded: unknown)
        cfg = bench / "runs" / run_slug(m) / "config.yaml"
        resolved = (yaml.safe_load(cfg.read_text()) or {}).get("resolved", {}) if cfg.exists() else {}
        trained[m] = resolved.get("versions", {}).get("commit", "not recorded")
    return {"bench": str(bench), "scores": scores, "pairs": pairs, "noise_ceiling": res["noise_ceiling"],
            "trained_at": trained}


def summarise(rows: dict[int, dict]) -> dict:
    models = {n: [r["scores"][n]["spearman"] for r in rows.values()] for n in MODELS}
    questions = []
    for a, b, text in QUESTIONS:
        ds = [next(p for p in r["pairs"] if (p["a"], p["b"]) == (a, b)) for r in rows.values()]
        calls = [paired_call(d["ci"]) for d in ds]
        questions.append({"a": a, "b": b, "question": text, "differences": [d["difference"] for d in ds],
                          "mean_difference": float(np.mean([d["difference"] for d in ds])), "calls": calls})
    return {"models": {n: {"seeds": v, "mean": float(np.mean(v)), "min": float(np.min(v)), "max": float(np.max(v))}
                       for n, v in models.items()}, "questions": questions}


def _trained_at(out: dict) -> str:
    """'seed 0: abc123, seed 1: ...' from the runs' own records (each model's commit where they differ)."""
    parts = []
    for s, row in out["per_seed"].items():
        commits = sorted(set(row.get("trained_at", {}).values())) or ["not recorded"]
        parts.append(f"seed {s}: {', '.join(commits)}")
    return "; ".join(parts)


def markdown(out: dict) -> str:
    seeds = out["seeds"]
    head = [f"# Does the LLM help? ({len(seeds)} model seeds, `bench` preset)", "",
            f"Summarised at commit {out['commit']}, {out['date']}, {out['machine']}; trained at "
            f"{_trained_at(out)}; written by `benchmarks/bench_llm_verdict.py` "
            f"from the benchmark folders in `--work` ({out['work']}). `gta benchmark` defaults, only the training "
            f"seed changes; the same {out['n_test_genes']} test-chromosome genes; noise ceiling "
            f"{out['noise_ceiling']:.3f}.", "",
            "| model | " + " | ".join(f"seed {s}" for s in seeds) + " | mean [min, max] |",
            "|---|" + "---|" * (len(seeds) + 1)]
    for n, m in out["summary"]["models"].items():
        cells = " | ".join(f"{v:.3f}" for v in m["seeds"])
        head.append(f"| {n} | {cells} | {m['mean']:.3f} [{m['min']:.3f}, {m['max']:.3f}] |")
    head += ["", "Each question: A - B per seed (paired bootstrap over the test genes, 95% CI), and how many seeds "
             "call it better / worse / no difference (a call needs the paired CI to exclude 0).", "",
             "| question | A - B per seed | mean | calls |", "|---|---|---|---|"]
    for q in out["summary"]["questions"]:
        per = ", ".join(f"{d:+.3f}" for d in q["differences"])
        head.append(f"| {q['question']} ({q['a']} vs {q['b']}) | {per} | {q['mean_difference']:+.3f} | "
                    f"{tally_calls(q['calls'])} |")
    return "\n".join(head) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="a bench_acceptance.py folder (data/, features.zarr)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--runs", default="verdict", help="subfolder of --work for the seeds' benchmarks")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    commit, t0 = source_commit(dirty=True), time.time()
    rows = {s: seed_row(run_seed(args.work, s, args.threads, args.runs), args.n_boot) for s in args.seeds}
    first = rows[args.seeds[0]]
    out = {"commit": commit, "date": time.strftime("%Y-%m-%d %H:%M %Z"), "work": str(args.work),
           "machine": machine_line(args.threads),
           "seeds": args.seeds, "noise_ceiling": first["noise_ceiling"].get("cross_gene_spearman"),
           "n_test_genes": first["pairs"][0]["n_genes"], "wall_s": round(time.time() - t0, 1),
           "per_seed": {str(s): r for s, r in rows.items()}, "summary": summarise(rows)}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "llm_verdict.json", json.dumps(out, indent=1) + "\n")
    atomic_write_text(args.out / "llm_verdict.md", markdown(out))
    print(markdown(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
