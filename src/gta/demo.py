"""``gta demo``: the whole path on the embedded default, from simulated genomes to a report.

simulate (bench preset, 1,000 genes) -> validate -> extract (motif encoder: reference windows, held-out
individuals' haplotypes) -> benchmark (GTA, its random-LLM ablation, baselines) -> report.html -> interpretation of a
few held-out genes (figures, tracks, AUPRC). ``quick``: the tiny preset and 2 epochs, for tests and a first look.
Every stage resumes: a second run reuses the data set, the feature store and finished models.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from gta.errors import GtaInputError

console = Console(stderr=True)


# GTA against its random-LLM twin (do the pretrained weights matter?) and the baselines; GTA no LLM and the Enformer
# architecture from scratch took 10.5 of a measured 17.7 minutes on 2 cores (docs/learning.md, entry 34): the bench
# runs answer them and the other ablations over 3 seeds (README, benchmarks/results/llm_verdict.md)
DEMO_MODELS = ["GTA", "GTA random LLM", "Ridge (promoter bins)", "Ridge (all bins)", "Ridge (distance bands)",
               "Annotation only", "eQTL elastic net", "Enformer readout"]
# the bench preset at 1,000 genes: a point of the learning curve (benchmarks/results/learning_curve.md), where GTA
# passes the distance-band ridge and whose seed-to-seed spread is measured; at the demo preset's 350 genes it does not
DEMO_DATA = ("bench", {"n_genes": 1000})
QUICK_DATA = ("tiny", {})


def demo_benchmark_config(quick: bool, seed: int = 0) -> dict[str, Any]:
    """Budgeted from measured costs on 2 CPU cores (see docs/demo.md). GTA and its ablation train with ``gta
    benchmark``'s defaults, as in the learning curve; ``quick``: 2 epochs. Interpretation covers 20 held-out genes
    and the variants of 8 of them (``quick``: 2 and 1)."""
    gta = {"seed": seed, **({"max_epochs": 2, "patience": 1} if quick else {})}
    return {
        "gta": gta,
        "models": DEMO_MODELS,
        "n_boot": 200 if quick else 1000,
        "seed": seed,
        "interpret": {"models": ["GTA", "GTA random LLM", "Ridge (all bins)"], "n_genes": 2 if quick else 20,
                      "variant_genes": 1 if quick else 8},
    }


def demo_data(out: Path, preset: str, overrides: dict, seed: int) -> Path:
    """The demo's data set (``preset`` with ``overrides``) in ``out``: simulated, or reused when a previous demo wrote
    the same one; a data set from another configuration (an older demo's) is an error rather than silently
    benchmarked."""
    from gta.sim import make_config, simulate
    from gta.sim.config import written_by

    cfg = make_config(preset, seed, overrides)
    manifest = out / "dataset.yaml"
    if manifest.exists():
        if not written_by(cfg, out):
            raise GtaInputError(f"holds a data set other than this demo's ({preset} preset, {cfg.n_genes} genes, "
                                f"seed {seed})", out / "truth" / "config.yaml",
                                hint="pass another --out, or remove that folder to simulate afresh")
        console.print(f"reusing {manifest}")
        return manifest
    return simulate(config=cfg, out=out)


def personal_genes(dataset, n_test: int = 25, n_train: int = 15, seed: int = 0) -> list[str]:
    """Genes whose held-out individuals' haplotypes the demo encodes: unseen (test-chromosome) genes and seen
    (training) genes for the cross-individual metrics; all 1,000 genes would mean 160,000 haplotype windows (80
    held-out individuals x 2) to encode and predict rather than 6,400."""
    rng = np.random.default_rng(seed)
    chosen = []
    for split, n in (("test", n_test), ("train", n_train)):
        ids = sorted(g for g, s in dataset.gene_splits.items() if s == split)
        chosen += [ids[i] for i in sorted(rng.choice(len(ids), min(n, len(ids)), replace=False))]
    return chosen


TIMINGS_FILE = "demo_timings.json"


class StageClock:
    """Wall time per stage and the process's peak memory, written to ``path`` after every stage (atomically), so
    docs/demo.md's cost table is generated from a run (scripts/update_demo_doc.py). A resumed stage counts what it
    took this time (reusing finished work is fast)."""

    def __init__(self, path: Path, **info: Any) -> None:
        from gta.provenance import machine_line, source_commit

        self.path, self.t = path, time.perf_counter()
        self.record: dict[str, Any] = {**info, "commit": source_commit(dirty=True),
                                       "started": time.strftime("%Y-%m-%d %H:%M %Z"), "cpus": os.cpu_count(),
                                       "machine": machine_line(),
                                       "stages": {}}

    def lap(self, stage: str) -> None:
        from gta.atomic import atomic_write_text
        from gta.memory import peak_rss_mb

        now = time.perf_counter()
        self.record["stages"][stage] = round(now - self.t, 1)
        self.t = now
        self.record["total_s"] = round(sum(self.record["stages"].values()), 1)
        self.record["peak_rss_mb"] = round(peak_rss_mb())
        atomic_write_text(self.path, json.dumps(self.record, indent=1) + "\n")


def demo(out: str | Path = "runs/demo", quick: bool = False, seed: int = 0) -> Path:
    """Run the demo into ``out`` and return the path of ``report.html``."""
    from gta.evaluate.benchmark import BenchmarkConfig, benchmark
    from gta.features.extract import extract
    from gta.interpret import interpret
    from gta.io.dataset import open_dataset
    from gta.io.validate import render_report, validate

    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    preset, overrides = QUICK_DATA if quick else DEMO_DATA
    clock = StageClock(out / TIMINGS_FILE, preset=preset, seed=seed, **overrides)
    console.rule(f"[bold]1/5 simulate[/bold] ({preset} preset{''.join(f', {k} {v}' for k, v in overrides.items())}, "
                 f"seed {seed})")
    manifest = demo_data(out / "data", preset, overrides, seed)
    clock.lap("simulate")
    console.rule("[bold]2/5 validate[/bold]")
    report = validate(manifest)
    console.print(render_report(report))
    if not report.ok:
        raise GtaInputError("the simulated data set did not validate", manifest)
    clock.lap("validate")
    console.rule("[bold]3/5 extract[/bold] (motif encoder: reference windows, then held-out individuals)")
    store = out / "features.zarr"
    extract(manifest, encoder="motif", out=store)
    dataset = open_dataset(manifest)
    test_individuals = list(dataset.individual_splits()[1])
    extract(dataset, encoder="motif", out=store, individuals=test_individuals,
            genes=None if quick else personal_genes(dataset, seed=seed))
    clock.lap("extract")
    console.rule("[bold]4/5 benchmark[/bold] (GTA, GTA random LLM, baselines)")
    cfg = BenchmarkConfig(**demo_benchmark_config(quick, seed))
    html = benchmark(manifest, store, out / "benchmark", config=cfg)
    clock.lap("benchmark")
    console.rule("[bold]5/5 interpret[/bold] (figures and genome-browser tracks of GTA's importance)")
    run = out / "benchmark" / "runs" / "GTA"
    if run.exists():  # AUPRC and variant effects are in the benchmark report; here the pictures of a few genes
        result = interpret(run, dataset, store, n_genes=2 if quick else 4, evaluate=True, out=out / "interpret",
                           progress=False)
        console.print(result.summary())
    clock.lap("interpret")
    console.print(f"demo finished in {time.perf_counter() - t0:.0f} s (stage times: {clock.path})")
    md = html.parent / "results.md"
    if md.exists():
        console.print(md.read_text())
    return html
