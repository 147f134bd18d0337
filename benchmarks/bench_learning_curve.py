"""Learning curve: cross-gene Spearman on the held-out chromosomes against the number of simulated genes.

For each size, one simulated data set (``gta simulate --preset PRESET --seed SIM_SEED`` with ``n_genes`` overridden)
is encoded with the motif encoder, then ``gta benchmark`` trains GTA and GTA no LLM with several model seeds, and
the other models once, all on the same held-out chromosomes. GTA is trained with ``gta benchmark``'s defaults (the
acceptance run's and the demo's model); interpretation is off.

    python benchmarks/bench_learning_curve.py [--sizes 250 1000 2500] [--seeds 0 1 2] [--work DIR] [--tag TAG]
        [--reuse W]

``--reuse W``: W is a ``benchmarks/bench_acceptance.py`` folder whose data set is one of the sizes (checked against
the simulator's recorded configuration); that size's point is read from its runs: the acceptance benchmark for the
first seed, ``benchmarks/bench_llm_verdict.py``'s ``W/verdict/seedS`` for the others (run it first), so the 2,500-gene
point costs no training of its own.

Writes ``benchmarks/results/learning_curve{_TAG}.{json,md,png}``: per size and model, every seed's score, their mean
and spread (min-max), the bootstrap interval of seed 0, the noise ceiling, with the commit and the date. Each
(size, seed) benchmark resumes from its folder under ``--work``, so an interrupted curve continues.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import yaml

from gta.atomic import atomic_write_bytes, atomic_write_text
from gta.provenance import machine, source_commit

OUT = Path(__file__).resolve().parent / "results"
SEEDED = ["GTA", "GTA no LLM"]  # trained with every seed
ONCE = ["GTA random LLM", "GTA no prompt", "Ridge (promoter bins)", "Ridge (all bins)", "Ridge (distance bands)",
        "Annotation only"]


def reused_size(work: Path | None, preset: str, sizes: list[int], sim_seed: int) -> int | None:
    """The size whose data set is the acceptance folder ``work``'s (None without one); an error if it is none."""
    from gta.sim.config import make_config, written_by

    if work is None:
        return None
    for n in sizes:
        if written_by(make_config(preset, sim_seed, {"n_genes": n}), work / "data"):
            return n
    raise SystemExit(f"--reuse {work}: its data set is not --preset {preset} --sim-seed {sim_seed} at any of the "
                     f"sizes {sizes} (see {work / 'data' / 'truth' / 'config.yaml'})")


def data_set(work: Path, preset: str, n_genes: int, sim_seed: int) -> tuple[Path, Path]:
    from gta.features.extract import extract
    from gta.sim import simulate

    folder = work / f"{preset}-{n_genes}-sim{sim_seed}"
    manifest = folder / "data" / "dataset.yaml"
    if not manifest.exists():
        overrides = folder / "overrides.yaml"
        folder.mkdir(parents=True, exist_ok=True)
        overrides.write_text(yaml.safe_dump({"n_genes": n_genes}))
        manifest = simulate(preset, sim_seed, folder / "data", config=overrides, progress=False)
    store = folder / "features.zarr"
    extract(manifest, encoder="motif", out=store, progress=False)
    return manifest, store


def benchmark_config(seed: int, models: list[str]) -> dict:
    """``gta benchmark``'s defaults with this seed, interpretation off."""
    return {"gta": {"seed": seed}, "models": models, "interpret": {"n_genes": 0, "variant_genes": 0}}


def run_benchmark(manifest: Path, store: Path, out: Path, raw: dict) -> dict:
    from gta.evaluate.benchmark import BenchmarkConfig, benchmark

    if not (out / "results.json").exists() or not _has(out, raw["models"]):
        benchmark(manifest, store, out, config=BenchmarkConfig(**raw), progress=False)
    return json.loads((out / "results.json").read_text())


def reused_run(work: Path, seed: int, first: int, models: list[str]) -> dict:
    """The acceptance (first seed) or verdict benchmark of ``work`` for this seed; it must hold ``models``."""
    bench = work / "benchmark" if seed == first else work / "verdict" / f"seed{seed}"
    if not (bench / "results.json").exists() or not _has(bench, models):
        raise SystemExit(f"--reuse {work}: {bench} does not hold {models}; run benchmarks/bench_acceptance.py and "
                         f"benchmarks/bench_llm_verdict.py --work {work} --seeds {seed} first")
    return json.loads((bench / "results.json").read_text())


def _has(out: Path, models: list[str]) -> bool:
    res = json.loads((out / "results.json").read_text())
    return set(models) <= {m["name"] for m in res.get("models", []) if m.get("status") == "ok"}


def cross_gene(res: dict) -> dict[str, dict]:
    rows = {}
    for m in res.get("models", []):
        cg = (m.get("metrics") or {}).get("cross_gene") or {}
        if cg.get("spearman") is not None:
            rows[m["name"]] = {"spearman": cg["spearman"], "ci": cg.get("spearman_ci")}
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[250, 1000, 2500])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--preset", default="bench")
    ap.add_argument("--sim-seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("runs/learning_curve"))
    ap.add_argument("--tag", default="")
    ap.add_argument("--reuse", type=Path, help="a bench_acceptance.py folder whose data set is one of the sizes")
    args = ap.parse_args()
    t0 = time.perf_counter()
    reuse = reused_size(args.reuse, args.preset, args.sizes, args.sim_seed)
    points = []
    for n in args.sizes:
        if n == reuse:
            manifest, store = args.reuse / "data" / "dataset.yaml", args.reuse / "features.zarr"
        else:
            manifest, store = data_set(args.work, args.preset, n, args.sim_seed)
        ceiling = None
        per_model: dict[str, list[float]] = {}
        ci0: dict[str, list[float] | None] = {}
        for seed in args.seeds:
            models = SEEDED + (ONCE if seed == args.seeds[0] else [])
            if n == reuse:
                res = reused_run(args.reuse, seed, args.seeds[0], models)
            else:
                res = run_benchmark(manifest, store, args.work / f"{args.preset}-{n}-sim{args.sim_seed}"
                                    / f"seed{seed}", benchmark_config(seed, models))
            for name, row in cross_gene(res).items():
                if name not in models:  # a reused benchmark holds more models than this curve draws
                    continue
                per_model.setdefault(name, []).append(row["spearman"])
                ci0.setdefault(name, row["ci"])
            genes = res.get("dataset", {}).get("genes_by_split", {})
            ceiling = (res.get("noise_ceiling") or {}).get("cross_gene_spearman")  # test split, the models' rows
        points.append({
            "n_genes": n, "genes_by_split": genes,
            "noise_ceiling": ceiling,
            "models": {k: {"seeds": v, "mean": float(np.mean(v)), "min": float(np.min(v)), "max": float(np.max(v)),
                           "ci_seed0": ci0.get(k)} for k, v in per_model.items()},
        })
    record = {"benchmark": "learning_curve", "commit": source_commit(), "date": time.strftime("%Y-%m-%d %H:%M"),
              "machine": machine(),
              "preset": args.preset, "sim_seed": args.sim_seed, "seeds": args.seeds,
              "gta_settings": "gta benchmark defaults (the acceptance run's and the demo's GTA)",
              "reused": {"size": reuse, "work": str(args.reuse)} if reuse else None, "points": points,
              "wall_s": round(time.perf_counter() - t0, 1)}
    stem = "learning_curve" + (f"_{args.tag}" if args.tag else "")
    atomic_write_text(OUT / f"{stem}.json", json.dumps(record, indent=2) + "\n")
    atomic_write_text(OUT / f"{stem}.md", render(record))
    plot(record, OUT / f"{stem}.png")
    print(render(record))


def render(r: dict) -> str:
    names = sorted({k for p in r["points"] for k in p["models"]}, key=lambda k: (k not in SEEDED, k))
    lines = [f"# Learning curve: cross-gene Spearman on held-out chromosomes ({r['preset']} preset)", "",
             f"Commit {r['commit']}, {r['date']}, {r['machine']['cores']} cores; simulator seed {r['sim_seed']}; "
             f"model seeds {r['seeds']} for {', '.join(SEEDED)}, seed {r['seeds'][0]} for the rest. "
             f"Cell: mean over seeds [min, max] (one seed: the score and its 95% bootstrap interval). "
             f"{r['wall_s']} s for this invocation (benchmarks finished earlier are reused). Written by "
             "`benchmarks/bench_learning_curve.py`.", "",
             "| model | " + " | ".join(f"{p['n_genes']} genes ({p['genes_by_split'].get('test', '?')} test)"
                                        for p in r["points"]) + " |",
             "|---|" + "---|" * len(r["points"])]
    lines.append("| *noise ceiling* | " + " | ".join(f"{p['noise_ceiling']:.3f}" for p in r["points"]) + " |")
    for name in names:
        cells = []
        for p in r["points"]:
            m = p["models"].get(name)
            if m is None:
                cells.append("—")
            elif len(m["seeds"]) > 1:
                cells.append(f"{m['mean']:.3f} [{m['min']:.3f}, {m['max']:.3f}]")
            else:
                ci = m["ci_seed0"]
                cells.append(f"{m['mean']:.3f}" + (f" ({ci[0]:.2f}, {ci[1]:.2f})" if ci else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(r: dict, path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    sizes = [p["n_genes"] for p in r["points"]]
    ax.plot(sizes, [p["noise_ceiling"] for p in r["points"]], "k--", marker="_", markersize=18, label="noise ceiling")
    names = sorted({k for p in r["points"] for k in p["models"]})
    for name in names:
        pts = [(p["n_genes"], p["models"][name]) for p in r["points"] if name in p["models"]]
        x = [a for a, _ in pts]
        y = [m["mean"] for _, m in pts]
        err = [[m["mean"] - m["min"] for _, m in pts], [m["max"] - m["mean"] for _, m in pts]]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=name)
    ax.set_xscale("log")
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes], minor=False)
    ax.set_xticks([], minor=True)  # the log axis's own minor labels (3 x 10^2 ...) say nothing here
    ax.set_xlabel("simulated genes (all splits; GTA, GTA no LLM: mean and range over model seeds)")
    ax.set_ylabel("cross-gene Spearman, held-out chromosomes")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes, off the curves
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


if __name__ == "__main__":
    main()
