"""``gta demo``: the whole path on the embedded default, from simulated genomes to a report.

simulate (demo preset) -> validate -> extract (motif encoder: reference windows, held-out individuals' haplotypes)
-> benchmark (GTA, its ablations, baselines) -> report.html -> interpretation of a few held-out genes (figures,
tracks, AUPRC). ``quick``: the tiny preset, fewer models and epochs, for tests and a first look.
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


QUICK_MODELS = ["GTA", "GTA no LLM", "Ridge (promoter bins)", "Ridge (all bins)", "Ridge (distance bands)",
                "Annotation only", "eQTL elastic net", "Enformer readout"]


def demo_benchmark_config(quick: bool, seed: int = 0) -> dict[str, Any]:
    """Budgeted from measured costs on 2 CPU cores (see docs/demo.md). GTA runs with the package's defaults (the first
    2 of the LLM's 30 layers, patches of 32 bins, prototypes mixed from the 8,192 commonest tokens, 32 genes per
    step) except the epochs: 228 training genes make an epoch of 8 steps, so up to 30 epochs (patience 3) where the
    default is 10; training on reference windows (held-out individuals are predicted from their haplotypes)."""
    model = {"llm": "embedded", "llm_layers": 2, "patch_len": 32, "patch_stride": 32,
             "n_prototypes": 256, "prototype_vocab": 8192, "d_model": 64}
    gta = {"model": model, "task": "cross-gene", "max_epochs": 2 if quick else 30,
           "patience": 1 if quick else 3, "seed": seed, "lr": 1e-3}
    return {
        "gta": gta,
        **({"models": QUICK_MODELS} if quick else {}),
        "enformer_arch": {"crop_bp": 16384 if quick else 32768, "epochs": 1 if quick else 10,
                          "max_steps": 20 if quick else 160},  # ~1 min on 2 cores, as the cap it replaces
        "n_boot": 200 if quick else 1000,
        "seed": seed,
        "interpret": {"models": ["GTA", "GTA no LLM", "Ridge (all bins)"], "n_genes": 2 if quick else 10,
                      "variant_genes": 1 if quick else 8},
    }


def personal_genes(dataset, n_test: int = 25, n_train: int = 15, seed: int = 0) -> list[str]:
    """Genes whose held-out individuals' haplotypes the demo encodes: unseen (test-chromosome) genes and seen
    (training) genes for the cross-individual metrics. All genes would take ~10 minutes more on 2 cores."""
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
        from gta.provenance import source_commit

        self.path, self.t = path, time.perf_counter()
        self.record: dict[str, Any] = {**info, "commit": source_commit(dirty=True),
                                       "started": time.strftime("%Y-%m-%d %H:%M %Z"), "cpus": os.cpu_count(),
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
    from gta.sim import simulate

    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    preset = "tiny" if quick else "demo"
    manifest = out / "data" / "dataset.yaml"
    clock = StageClock(out / TIMINGS_FILE, preset=preset, seed=seed)
    console.rule(f"[bold]1/5 simulate[/bold] ({preset} preset, seed {seed})")
    if manifest.exists():
        console.print(f"reusing {manifest}")
    else:
        manifest = simulate(preset=preset, seed=seed, out=out / "data")
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
    console.rule("[bold]4/5 benchmark[/bold] (GTA, ablations, baselines)")
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
