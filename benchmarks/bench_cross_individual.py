"""Issue #13's cross-individual point: GTA trained with personal haplotypes, scored across held-out individuals on
unseen (test-chromosome) genes against the eQTL elastic net and the noise ceiling, beside the reference-trained GTA
of the acceptance run (the paper's setting).

    python benchmarks/bench_cross_individual.py --work W [--threads 2] [--max-individuals 4] [--max-epochs N]

W is bench_acceptance.py's work folder (W/data, W/benchmark with its GTA run and the elastic net's predictions).
Steps whose output exists in W are not redone:
1. ``gta extract --samples all`` -> W/personal.zarr (reference + every individual's haplotypes);
2. ``gta train`` -> W/hap: the acceptance run's GTA config with ``task: both`` (the gene-level loss plus the
   within-gene loss over individuals), ``max_individuals_per_gene`` individuals drawn per gene and step;
3. ``gta predict --genes <test genes> -S <test individuals>`` with both GTA runs;
4. per-gene Spearman across the held-out individuals (``gta.evaluate.metrics.cross_individual``) for both runs, the
   elastic net (its benchmark predictions, the same rows) and the noise-free truth (the ceiling).
Writes ``cross_individual.{json,md}`` into --out (default benchmarks/results/bench/).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from bench_acceptance import gta  # beside this script

from gta.provenance import machine_line, source_commit

ROOT = Path(__file__).resolve().parents[1]
MIN_SAMPLES = 5


def hap_config(work: Path, max_individuals: int, max_epochs: int | None = None) -> Path:
    """The acceptance run's GTA config, trained on haplotypes too (``task: both``), with at most ``max_epochs``."""
    cfg = yaml.safe_load((work / "benchmark" / "runs" / "GTA" / "config.yaml").read_text())
    cfg.pop("resolved", None)
    cfg.update(task="both", max_individuals_per_gene=max_individuals, predict_individuals="none")
    if max_epochs is not None:
        cfg["max_epochs"] = max_epochs
    path = work / "hap.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def held_out(work: Path) -> tuple[Path, Path]:
    """Files listing the test genes and the held-out individuals (for --genes @FILE and -S FILE)."""
    from gta.io.dataset import open_dataset

    dataset = open_dataset(work / "data" / "dataset.yaml")
    genes, samples = work / "test_genes.txt", work / "test_samples.txt"
    genes.write_text("\n".join(g for g, s in dataset.gene_splits.items() if s == "test") + "\n")
    samples.write_text("\n".join(dataset.individual_splits()[1]) + "\n")
    return genes, samples


def score(tables: dict[str, pd.DataFrame], signal: pd.DataFrame) -> dict[str, dict]:
    """Cross-individual summary per model on the rows every model predicts (test genes x held-out individuals),
    with the noise-free truth as one more 'model' (the ceiling)."""
    from gta.evaluate.metrics import cross_gene, cross_individual

    rows = None
    for df in tables.values():
        keys = set(zip(df.loc[df["sample"] != "", "gene_id"], df.loc[df["sample"] != "", "sample"], strict=True))
        rows = keys if rows is None else rows & keys
    out = {}
    ceiling = None
    for name, df in tables.items():
        ind = df[(df["sample"] != "") & (df["split"] == "test") & (df["sample_split"] == "test")]
        ind = ind[[k in rows for k in zip(ind["gene_id"], ind["sample"], strict=True)]]
        if ceiling is None:
            truth = ind.drop(columns="y_pred").merge(signal, on=["gene_id", "sample"]).rename(
                columns={"signal": "y_pred"})
            ceiling = cross_individual(truth, min_samples=MIN_SAMPLES)["unseen"]
        ci = cross_individual(ind, min_samples=MIN_SAMPLES)["unseen"]
        genes = df[(df["sample"] == "") & (df["split"] == "test")]
        cg = cross_gene(genes, n_boot=1000)["spearman"] if len(genes) else None
        out[name] = {"unseen": ci, "cross_gene_test": cg}
    out["noise ceiling"] = {"unseen": ceiling, "cross_gene_test": None}
    return out


def paired(a: dict, b: dict, n_boot: int = 1000, seed: int = 0) -> dict:
    """Median over genes of (rho_a - rho_b) with a bootstrap interval over genes, and the share of genes a wins."""
    common = sorted(set(a) & set(b))
    d = np.array([a[g] - b[g] for g in common])
    rng = np.random.default_rng(seed)
    boots = [np.median(d[rng.integers(0, len(d), len(d))]) for _ in range(n_boot)]
    return {"n_genes": len(common), "median_difference": float(np.median(d)),
            "ci": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))],
            "share_a_higher": float((d > 0).mean())}


def cross_gene_paired(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    """Spearman(a) - Spearman(b) across the test genes (gene rows), paired bootstrap over genes."""
    from gta.evaluate.metrics import gene_rows, paired_spearman_difference

    joined = gene_rows(a, split="test").join(gene_rows(b, split="test")["y_pred"].rename("y_pred_b"), how="inner")
    return paired_spearman_difference(joined["y_true"], joined["y_pred"], joined["y_pred_b"], 1000, 0)


def write(results: dict, out: Path, meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "cross_individual.json").write_text(json.dumps({**meta, "models": results}, indent=1) + "\n")
    ceiling = results["noise ceiling"]["unseen"]["median"]
    lines = [f"<!-- written by benchmarks/bench_cross_individual.py; commit {meta['commit']}, {meta['date']}, "
             f"{meta['machine']} -->\n", "# Across individuals on unseen genes (bench, seed 0)\n",
             f"Per-gene Spearman over the {meta['n_test_individuals']} held-out individuals, test-chromosome genes "
             f"whose observed and predicted values vary (at least {MIN_SAMPLES} individuals); median and quartiles "
             "over genes. The noise ceiling scores the simulator's noise-free expression on the same rows.\n",
             "| model | genes | median | q25 | q75 | share > 0 | cross-gene rho (test genes) |",
             "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        u = r["unseen"]
        cg = "" if r["cross_gene_test"] is None else f"{r['cross_gene_test']:.3f}"
        lines.append(f"| {name} | {u['n_genes']} | {u['median']:.3f} | {u['q25']:.3f} | {u['q75']:.3f} | "
                     f"{u['frac_positive']:.0%} | {cg} |")
    lines += ["", "Paired, per gene (the same genes; median of the per-gene differences, 1,000 bootstrap resamples "
              "of genes):", "", "| A | B | median rho A - B | 95% CI | share of genes A higher |",
              "|---|---|---|---|---|"]
    for p in meta["paired"]:
        lines.append(f"| {p['a']} | {p['b']} | {p['median_difference']:+.3f} | [{p['ci'][0]:+.3f}, "
                     f"{p['ci'][1]:+.3f}] | {p['share_a_higher']:.0%} |")
    cg = meta["cross_gene_paired"]
    lines += ["", f"Across genes, the same two GTA runs on the {cg['n_genes']} test genes: haplotypes - reference only "
              f"{cg['difference']:+.3f}, paired 95% CI [{cg['ci'][0]:+.3f}, {cg['ci'][1]:+.3f}]."]
    hap, en = results["GTA (haplotypes)"]["unseen"]["median"], results["eQTL elastic net"]["unseen"]["median"]
    lines += ["", "Acceptance (issue #13): the haplotype-trained GTA's median >= 0.5 x the ceiling "
              f"({hap:.3f} vs {0.5 * ceiling:.3f}: {'met' if hap >= 0.5 * ceiling else 'not met'}) and >= the "
              f"elastic net's ({hap:.3f} vs {en:.3f}: {'met' if hap >= en else 'not met'}).", "",
              f"Training: {meta['training']}", ""]
    (out / "cross_individual.md").write_text("\n".join(lines))
    print((out / "cross_individual.md").read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--max-individuals", type=int, default=4, help="individuals drawn per gene and step")
    ap.add_argument("--max-epochs", type=int, default=None, help="cap the haplotype run's epochs (default: the "
                    "acceptance run's)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench")
    args = ap.parse_args()
    w, threads = args.work, str(args.threads)
    data, store, hap = w / "data" / "dataset.yaml", w / "personal.zarr", w / "hap"
    if not (store / "zarr.json").exists():
        gta("extract", "-d", str(data), "-o", str(store), "--samples", "all", "--threads", threads)
    started = w / "cross_individual_started.json"
    if not started.exists():
        started.write_text(json.dumps({"commit": source_commit(dirty=True)}))
    if not (hap / "summary.json").exists():  # written when training ends (model.safetensors is saved every epoch)
        if (hap / "state.json").exists():  # an interrupted training: resume it with its own config
            gta("train", "-d", str(data), "-f", str(store), "-o", str(hap), "--resume", "--threads", threads)
        else:
            gta("train", "-d", str(data), "-f", str(store), "-o", str(hap), "-c",
                str(hap_config(w, args.max_individuals, args.max_epochs)), "--threads", threads)
    genes, samples = held_out(w)
    runs = {"GTA (haplotypes)": hap, "GTA (reference only)": w / "benchmark" / "runs" / "GTA"}
    tables = {}
    for name, run in runs.items():
        path = w / f"xind_{run.name}.parquet"
        if not path.exists():
            gta("predict", "-r", str(run), "-d", str(data), "-f", str(store), "--genes", f"@{genes}", "-S",
                str(samples), "-o", str(path), "--threads", threads, "-q")
        tables[name] = pd.read_parquet(path)
    tables["eQTL elastic net"] = pd.read_parquet(w / "benchmark" / "predictions" / "eQTL_elastic_net.parquet")
    from gta.evaluate.benchmark import noise_free_signal
    from gta.io.dataset import open_dataset

    results = score(tables, noise_free_signal(open_dataset(data)))
    per_gene = {n: r["unseen"]["per_gene"] for n, r in results.items()}
    pairs = [("GTA (haplotypes)", "eQTL elastic net"), ("GTA (haplotypes)", "GTA (reference only)"),
             ("GTA (reference only)", "eQTL elastic net")]
    hap_cfg = yaml.safe_load((hap / "config.yaml").read_text())
    trained = hap_cfg.get("resolved", {}).get("versions", {}).get("commit")  # (runs before session 8: not recorded)
    epochs = json.loads((hap / "summary.json").read_text()).get("epoch_times_s") or []  # kept across a resume
    meta = {"commit": trained or json.loads(started.read_text())["commit"], "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "machine": machine_line(),
            "n_test_individuals": len(samples.read_text().split()),
            "paired": [{"a": a, "b": b, **paired(per_gene[a], per_gene[b])} for a, b in pairs],
            "cross_gene_paired": cross_gene_paired(tables["GTA (haplotypes)"], tables["GTA (reference only)"]),
            "training": f"task {hap_cfg['task']}, {hap_cfg['max_individuals_per_gene']} individuals per gene and step, "
                        f"max_epochs {hap_cfg['max_epochs']}, seed {hap_cfg['seed']}, {len(epochs)} epochs of "
                        f"{np.mean(epochs) if epochs else float('nan'):.0f} s "
                        f"(run folder {hap.name}; the reference-only GTA is the acceptance run's)"}
    write(results, args.out, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
