"""Issue #13's acceptance run: `gta simulate --preset bench`, `gta extract` and `gta benchmark` with their
defaults, then results.json/results.md copied to benchmarks/results/bench/ with the commit, date and machine, and
acceptance.md: each criterion of the issue read from that results.json, met or not.

    python benchmarks/bench_acceptance.py --work /tmp/bench [--seed 0] [--out benchmarks/results/bench]

Steps whose output exists in --work are not redone (a killed run resumes where it stopped).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from gta.provenance import machine_line, source_commit

ROOT = Path(__file__).resolve().parents[1]


def gta(*args: str) -> None:
    """Run one gta command in a fresh process (as a user would), failing loudly."""
    cmd = [sys.executable, "-m", "gta", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def _model(res: dict, name: str) -> dict | None:
    return next((m for m in res["models"] if m["name"] == name and m["status"] == "ok"), None)


def _cross_gene(res: dict, name: str) -> float | None:
    m = _model(res, name)
    return None if m is None else m["metrics"]["cross_gene"]["spearman"]


def checks(res: dict) -> list[tuple[str, str, bool | None]]:
    """(criterion, measured, met) for each acceptance point that results.json can answer (None: not measured)."""
    ceiling = res["noise_ceiling"].get("cross_gene_spearman")
    gta_rho = _cross_gene(res, "GTA")
    ridges = {n: _cross_gene(res, n) for n in ("Ridge (promoter bins)", "Ridge (all bins)", "Ridge (distance bands)")}
    best_name, best = max(((n, v) for n, v in ridges.items() if v is not None), key=lambda t: t[1],
                          default=(None, None))
    rows: list[tuple[str, str, bool | None]] = []
    if gta_rho is not None and ceiling:
        rows.append(("GTA cross-gene rho >= 0.75 x noise ceiling", f"{gta_rho:.3f} vs {0.75 * ceiling:.3f}",
                     gta_rho >= 0.75 * ceiling))
    if gta_rho is not None and best is not None:
        rows.append((f"GTA >= best ridge + 0.05 ({best_name})", f"{gta_rho:.3f} vs {best + 0.05:.3f}",
                     gta_rho >= best + 0.05))
    no_prompt = _cross_gene(res, "GTA no prompt")
    if no_prompt is not None and ceiling:
        rows.append(("GTA no prompt >= 0.6 x noise ceiling", f"{no_prompt:.3f} vs {0.6 * ceiling:.3f}",
                     no_prompt >= 0.6 * ceiling))
    rows += _interpretation_checks(res.get("interpretation", {}).get("GTA"))
    return rows


def _interpretation_checks(interp: dict | None) -> list[tuple[str, str, bool | None]]:
    if not interp:
        return [("GTA importance and variant effects", "not measured", None)]
    rows: list[tuple[str, str, bool | None]] = []
    imp = interp.get("importance", {}).get("gradxinput", {})
    ref = interp.get("reference", {})
    rand, prior = ref.get("random", {}), ref.get("distance_prior", {})
    auprc, d = imp.get("auprc"), imp.get("distal_auprc")
    if auprc is not None and rand.get("auprc"):
        rows.append(("gradient x input AUPRC >= 5x random", f"{auprc:.3f} vs {5 * rand['auprc']:.3f}",
                     auprc >= 5 * rand["auprc"]))
    if auprc is not None and prior.get("auprc") is not None:
        rows.append(("gradient x input AUPRC above the distance-to-TSS prior", f"{auprc:.3f} vs {prior['auprc']:.3f}",
                     auprc > prior["auprc"]))
    if d is not None and rand.get("distal_auprc"):
        rows.append(("distal AUPRC >= 3x random", f"{d:.3f} vs {3 * rand['distal_auprc']:.3f}",
                     d >= 3 * rand["distal_auprc"]))
    var = interp.get("variant_effects", {}).get("overall", {})
    if var.get("pearson") is not None:
        rows.append(("variant effects Pearson >= 0.5 with the truth", f"{var['pearson']:.3f} (n={var['n']})",
                     var["pearson"] >= 0.5))
    if var.get("sign_agreement") is not None:
        rows.append(("sign right for >= 80% of causal variants",
                     f"{var['sign_agreement']:.0%} of {var['n_causal']}", var["sign_agreement"] >= 0.8))
    return rows


PAIRS = (("GTA", "GTA random LLM"), ("GTA", "GTA no LLM"), ("GTA", "GTA no prompt"), ("GTA", "GTA no alignment"),
         ("GTA", "Ridge (distance bands)"), ("GTA no prompt", "GTA no LLM"))


def _cross_gene_predictions(bench_dir: Path, res: dict, name: str):
    import pandas as pd

    from gta.evaluate.metrics import gene_rows

    m = _model(res, name)
    if m is None or not m.get("predictions"):
        return None
    return gene_rows(pd.read_parquet(bench_dir / "predictions" / m["predictions"]), split="test")


def paired_differences(bench_dir: Path, res: dict, n_boot: int = 1000, seed: int = 0,
                       pairs: tuple[tuple[str, str], ...] = PAIRS) -> list[dict]:
    """For each (A, B) of ``pairs`` with predictions: Spearman(A) - Spearman(B) on the test genes both predict, with
    a paired bootstrap interval over genes (``gta.evaluate.metrics.paired_spearman_difference``)."""
    from gta.evaluate.metrics import paired_spearman_difference

    out = []
    for a, b in pairs:
        pa, pb = _cross_gene_predictions(bench_dir, res, a), _cross_gene_predictions(bench_dir, res, b)
        if pa is None or pb is None:
            continue
        joined = pa.join(pb["y_pred"].rename("y_pred_b"), how="inner")
        d = paired_spearman_difference(joined["y_true"], joined["y_pred"], joined["y_pred_b"], n_boot, seed)
        out.append({"a": a, "b": b, **d})
    return out


def distal_dominated(bench_dir: Path, res: dict, data: Path, threshold: float = 0.5) -> dict | None:
    """GTA's cross-gene Spearman on the test genes whose truth ``distal_share`` >= ``threshold``, and the noise
    ceiling (the noise-free gene means scored the same way) on those genes."""
    import pandas as pd

    from gta.evaluate.benchmark import noise_free_signal
    from gta.io.dataset import open_dataset
    from gta.stats import spearman

    pred = _cross_gene_predictions(bench_dir, res, "GTA")
    truth = data / "truth" / "genes.tsv"
    if pred is None or not truth.exists():
        return None
    share = pd.read_csv(truth, sep="\t").set_index("gene_id")["distal_share"]
    signal = noise_free_signal(open_dataset(data / "dataset.yaml"))
    signal = signal[signal["sample"] == ""].set_index("gene_id")["signal"]
    genes = pred[pred.index.isin(share.index[share >= threshold])].join(signal, how="inner")
    return {"threshold": threshold, "n_genes": len(genes), "spearman": spearman(genes["y_pred"], genes["y_true"]),
            "ceiling": spearman(genes["signal"], genes["y_true"])}


def cross_individual_check(out: Path) -> tuple[str, str, bool | None]:
    """The cross-individual criterion from bench_cross_individual.py's cross_individual.json beside the results."""
    crit = "across individuals, unseen genes: haplotype-trained GTA median per-gene rho >= 0.5 x ceiling and >= eQTL EN"
    path = out / "cross_individual.json"
    if not path.exists():
        return crit, "not run (benchmarks/bench_cross_individual.py)", None
    xind = json.loads(path.read_text())
    models = xind["models"]
    hap, en = models["GTA (haplotypes)"]["unseen"]["median"], models["eQTL elastic net"]["unseen"]["median"]
    ceiling = models["noise ceiling"]["unseen"]["median"]
    measured = f"{hap:.3f} vs {0.5 * ceiling:.3f} and {en:.3f} (cross_individual.json, commit {xind['commit']})"
    return crit, measured, hap >= 0.5 * ceiling and hap >= en


def write_outputs(bench_dir: Path, out: Path, meta: dict, data: Path | None = None) -> None:
    res = json.loads((bench_dir / "results.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    meta["paired_differences"] = paired_differences(bench_dir, res)
    if data is not None:
        meta["distal_dominated"] = distal_dominated(bench_dir, res, data)
    res["acceptance_run"] = meta
    (out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    head = (f"<!-- written by benchmarks/bench_acceptance.py from {meta['command']}; commit {meta['commit']}, "
            f"{meta['date']}, {meta['machine']} -->\n\n")
    shutil.copyfile(bench_dir / "results.md", out / "results.md")
    (out / "results.md").write_text(head + (out / "results.md").read_text())
    lines = [head, "# Issue #13 acceptance, read from results.json\n", "| criterion | measured | met |",
             "|---|---|---|"]
    rows = checks(res)
    dd = meta.get("distal_dominated")
    if dd:
        rows.insert(3, (f"distal-dominated test genes (distal_share >= {dd['threshold']}, n={dd['n_genes']}): GTA >= "
                        "0.6 x their ceiling", f"{dd['spearman']:.3f} vs {0.6 * dd['ceiling']:.3f}",
                        dd["spearman"] >= 0.6 * dd["ceiling"]))
    rows.append(cross_individual_check(out))
    for crit, measured, met in rows:
        lines.append(f"| {crit} | {measured} | {'n/a' if met is None else ('yes' if met else 'no')} |")
    lines += ["", "Paired differences (the same test genes, 1,000 bootstrap resamples of genes):", "",
              "| A | B | Spearman A - B | 95% CI |", "|---|---|---|---|"]
    for d in meta["paired_differences"]:
        lines.append(f"| {d['a']} | {d['b']} | {d['difference']:+.3f} | [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] |")
    resumed = meta.get("resumed") or []
    pause = (f"; interrupted and resumed at {', '.join(resumed)}, so this spans the pause and is not a cost"
             if resumed else "")
    lines.append(f"\nWall time of the benchmark: {meta['benchmark_wall_s'] / 60:.1f} min "
                 f"({meta['threads']} threads{pause}).\n")
    (out / "acceptance.md").write_text("\n".join(lines))
    print((out / "acceptance.md").read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="folder for the simulated data and the runs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", default="bench")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    data, feats, bench = args.work / "data", args.work / "features.zarr", args.work / "benchmark"
    if not (data / "dataset.yaml").exists():
        gta("simulate", "--preset", args.preset, "--seed", str(args.seed), "--out", str(data))
    if not (feats / "zarr.json").exists():
        gta("extract", "-d", str(data / "dataset.yaml"), "-o", str(feats), "--threads", str(args.threads))
    started = args.work / "acceptance_started.json"  # the code that ran, kept across a resume
    if not started.exists():
        started.write_text(json.dumps({"commit": source_commit(dirty=True), "t0": time.time()}))
    if not (bench / "report.html").exists():  # written last; results.json is rewritten after every model
        if (bench / "results.json").exists():  # an interrupted benchmark resumes: the wall time spans the pause
            record = json.loads(started.read_text())
            record.setdefault("resumed", []).append(time.time())
            started.write_text(json.dumps(record))
        gta("benchmark", "-d", str(data / "dataset.yaml"), "-f", str(feats), "-o", str(bench),
            "--threads", str(args.threads))
    start = json.loads(started.read_text())
    finished = (bench / "report.html").stat().st_mtime  # (a re-summary later must not count the time between)
    meta = {"command": f"gta benchmark (defaults) on `gta simulate --preset {args.preset} --seed {args.seed}`",
            "commit": start["commit"], "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "machine": machine_line(),
            "threads": args.threads, "benchmark_wall_s": round(finished - start["t0"], 1),
            "resumed": [time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t)) for t in start.get("resumed", [])]}
    write_outputs(bench, args.out, meta, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
