"""Predicted variant effects of two groups of `gta train` runs (one run per model seed) against the simulator's
truth, on every truth variant in the windows of the test genes: many more than the benchmark's interpretation
sample (25 genes, ~66 causal variants), so a change of the model can be judged on variants with seeds.

    python scripts/variant_runs.py --data W/data --features W/features.zarr --genes W/test_genes.txt \
        --a W/prom_s0 W/prom_s1 W/prom_s2 --b W/mdef_s0 W/mdef_s1 W/mdef_s2 --names "promoter token" "default" \
        --out benchmarks/results/promoter_token_variants

The ALT features of every variant are encoded once (only the bins a variant changes, `encode_region`; ~1 minute
for 500 genes), kept in ``--cache`` when given (the file `scripts/lab_train.py --variants` reads); each run then
predicts REF and ALT windows of its genes as `gta score-variants` does (the run's own prompt and mirror average).
Per run: Pearson over all variants, over the causal ones, per element kind of the causal ones (promoter, enhancer,
CTCF, repressor) and sign agreement; per seed the paired difference A - B with a 95% interval from 500 bootstrap
resamples of genes.
Writes OUT.json and OUT.md with the commit and date.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from gta.atomic import atomic_write_text
from gta.provenance import source_commit

KINDS = {"P": "promoter", "E": "enhancer", "C": "CTCF", "R": "repressor"}


def encode_alts(data: Path, features: Path, genes: list[str], cache: Path | None) -> dict[str, np.ndarray]:
    """Changed bins of every truth variant of ``genes``: rows (variant index), bins, values; effects, kinds."""
    if cache is not None and cache.exists():
        return dict(np.load(cache))
    from gta.encoders.rebuild import rebuild_encoder
    from gta.features.alleles import allele_window
    from gta.train.run import open_inputs

    dataset, store = open_inputs(data / "dataset.yaml", features)
    encoder = rebuild_encoder(dict(store.attrs))
    geometry = dataset.manifest.geometry
    truth = pd.read_csv(Path(dataset.manifest.truth) / "variants.tsv", sep="\t")
    truth = truth[truth.gene_id.isin(set(genes))].reset_index(drop=True)
    kind = truth["what"].fillna("").str.extract(r"site of \S+:(\w)")[0].fillna("-")
    rows, bins, vals = [], [], []
    for gid, group in truth.groupby("gene_id", sort=False):
        gene = dataset.gene(gid)
        ref = np.asarray(store.read_ref(gid), np.float32)
        for r in group.itertuples():
            seq, spans = allele_window(dataset.genome, gene, geometry, r.chrom, int(r.pos) - 1, r.ref, r.alt,
                                       r.variant_id)
            alt = encoder.encode_region(seq, ref, spans).astype(store.dtype).astype(np.float32)
            for b in np.nonzero(~(alt == ref).all(axis=1))[0]:
                rows.append(r.Index)
                bins.append(b)
                vals.append(alt[b])
    out = {"row": np.asarray(rows, np.int64), "bin": np.asarray(bins, np.int64),
           "val": np.asarray(vals, np.float32).reshape(len(rows), -1), "effect": truth.effect.to_numpy(np.float32),
           "gene_id": truth.gene_id.to_numpy(str), "kind": kind.to_numpy(str)}
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **out)
    return out


def haplotype_alleles(vcf: Path, ids: set[str], samples: list[str]) -> dict[str, np.ndarray]:
    """variant id -> (individuals, 2) ALT count of each haplotype (0/1), for the variants in ``ids``."""
    from cyvcf2 import VCF

    return {v.ID: np.asarray(v.genotypes, np.float64)[:, :2] for v in VCF(str(vcf), samples=samples) if v.ID in ids}


def log_expression(path: Path, samples: list[str]) -> pd.DataFrame:
    """An expression table (``gta.io.expression.read_expression``: gene ids without version) as the natural log of
    ``samples``' values."""
    from gta.io.expression import read_expression

    return np.log(read_expression(path).values[samples].astype(float))


def predict_effects(run: Path, data: Path, features: Path, alts: dict[str, np.ndarray]) -> np.ndarray:
    """ALT - REF prediction of ``run`` for every variant (0 where a variant changes no feature)."""
    from gta.interpret.context import open_run

    ctx = open_run(run, data / "dataset.yaml", features)
    order = np.argsort(alts["row"], kind="stable")
    rows, bins, vals = alts["row"][order], alts["bin"][order], alts["val"][order]
    starts = np.searchsorted(rows, np.arange(len(alts["effect"]) + 1))
    pred = np.zeros(len(alts["effect"]), np.float32)
    for gid in np.unique(alts["gene_id"]):
        gene = ctx.dataset.gene(gid)
        ref = np.asarray(ctx.ref_features(gene), np.float32)
        prompt = ctx.prompts([gid])[gid] if ctx.model.cfg.use_prompt else None
        ref_pred = float(ctx.predict(ref[None], prompt)[0])
        changed = [i for i in np.nonzero(alts["gene_id"] == gid)[0] if starts[i + 1] > starts[i]]
        for s in range(0, len(changed), 32):
            chunk = changed[s : s + 32]
            x = np.repeat(ref[None], len(chunk), axis=0)
            for k, i in enumerate(chunk):
                x[k, bins[starts[i] : starts[i + 1]]] = vals[starts[i] : starts[i + 1]]
            pred[chunk] = ctx.predict(x, prompt) - ref_pred
    return pred


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1]) if len(a) > 2 and a.std() > 0 and b.std() > 0 else float("nan")


def _slope(pred: np.ndarray, truth: np.ndarray) -> float:
    """Least-squares slope of predicted on true effects: 1 = the right size, 0 = blind to the kind."""
    return float(np.polyfit(truth, pred, 1)[0]) if len(truth) > 2 and truth.std() > 0 else float("nan")


def scores(pred: np.ndarray, alts: dict[str, np.ndarray]) -> dict[str, float]:
    eff = alts["effect"]
    causal = np.abs(eff) > 1e-6
    out = {"pearson": _pearson(pred, eff), "causal_pearson": _pearson(pred[causal], eff[causal]),
           "sign": float((np.sign(pred[causal]) == np.sign(eff[causal])).mean())}
    for code, name in KINDS.items():
        m = causal & (alts["kind"] == code)
        out[f"{name}_pearson"] = _pearson(pred[m], eff[m])
        out[f"{name}_slope"] = _slope(pred[m], eff[m])
    return out


def paired(pa: np.ndarray, pb: np.ndarray, alts: dict[str, np.ndarray], mask: np.ndarray, n_boot: int = 500,
           seed: int = 0) -> tuple[float, float, float]:
    """Pearson(A) - Pearson(B) on ``mask`` with a 95% interval over bootstrap resamples of genes."""
    eff = alts["effect"]
    _, inverse = np.unique(alts["gene_id"], return_inverse=True)
    members = [np.nonzero(inverse == k)[0] for k in range(inverse.max() + 1)]
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_boot):
        i = np.concatenate([members[k] for k in rng.integers(0, len(members), len(members))])
        m = mask[i]
        diffs.append(_pearson(pa[i][m], eff[i][m]) - _pearson(pb[i][m], eff[i][m]))
    lo, hi = np.nanpercentile(diffs, [2.5, 97.5])
    return _pearson(pa[mask], eff[mask]) - _pearson(pb[mask], eff[mask]), float(lo), float(hi)


def run_effects(run: Path, args, alts: dict[str, np.ndarray]) -> np.ndarray:
    """A run's predicted effects, from ``args.effects`` when it holds them."""
    path = args.effects / f"eff_{run.name}.npy" if args.effects else None
    if path is not None and path.exists():
        return np.load(path)
    pred = predict_effects(run, args.data, args.features, alts)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, pred)
    return pred


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="folder with dataset.yaml (simulated: truth/)")
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--genes", type=Path, required=True, help="gene ids, whitespace-separated (the test genes)")
    ap.add_argument("--a", type=Path, nargs="+", required=True)
    ap.add_argument("--b", type=Path, nargs="+", required=True)
    ap.add_argument("--names", nargs=2, default=("A", "B"))
    ap.add_argument("--out", type=Path, required=True, help="OUT.json and OUT.md")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--effects", type=Path, default=None, help="folder of each run's predicted effects, "
                    "eff_<run folder name>.npy (read if there, else written; cross_individual_decomposition.py "
                    "--effects writes the same arrays)")
    args = ap.parse_args()
    if len(args.a) != len(args.b):
        ap.error("--a and --b pair runs by seed: give as many of each")
    t0 = time.time()
    alts = encode_alts(args.data, args.features, args.genes.read_text().split(), args.cache)
    causal = np.abs(alts["effect"]) > 1e-6
    preds = {str(r): run_effects(r, args, alts) for r in [*args.a, *args.b]}
    runs = {r: scores(p, alts) for r, p in preds.items()}
    pairs = []
    for ra, rb in zip(args.a, args.b, strict=True):
        row = {"a": str(ra), "b": str(rb)}
        for name, mask in (("all", np.ones_like(causal)), ("promoter", causal & (alts["kind"] == "P"))):
            diff = paired(preds[str(ra)], preds[str(rb)], alts, mask)
            row[name] = dict(zip(("difference", "lo", "hi"), diff, strict=True))
        pairs.append(row)
    result = {"names": list(args.names), "n_variants": int(len(causal)), "n_causal": int(causal.sum()),
              "n_genes": int(len(np.unique(alts["gene_id"]))), "runs": runs, "pairs": pairs,
              "commit": source_commit(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "seconds": round(time.time() - t0)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(result, indent=1))
    atomic_write_text(args.out.with_suffix(".md"), render(result, args))
    print(render(result, args))


def render(res: dict, args) -> str:
    cols = ["pearson", "causal_pearson", "sign"] + [f"{k}_pearson" for k in KINDS.values()]
    lines = [f"# Variant effects: {res['names'][0]} vs {res['names'][1]}", "",
             f"Written by `scripts/variant_runs.py` at commit {res['commit']}, {res['date']}: every truth variant in "
             f"the windows of {res['n_genes']} test genes ({res['n_variants']:,} variant-gene pairs, "
             f"{res['n_causal']:,} causal). Pearson of predicted (ALT - REF) and true effects; per element kind over "
             "the causal variants.", "",
             "| group | run | " + " | ".join(c.replace("_pearson", "").replace("_", " ") for c in cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for name, group in zip(res["names"], (args.a, args.b), strict=True):
        for r in group:
            s = res["runs"][str(r)]
            lines.append(f"| {name} | `{Path(r).name}` | " + " | ".join(f"{s[c]:.3f}" for c in cols) + " |")
        mean = {c: np.nanmean([res["runs"][str(r)][c] for r in group]) for c in cols}
        lines.append(f"| **{name}** | mean | " + " | ".join(f"**{mean[c]:.3f}**" for c in cols) + " |")
    lines += ["", f"Paired by seed ({res['names'][0]} - {res['names'][1]}; 95% interval over 500 bootstrap "
              "resamples of genes):", "", "| pair | all variants | causal promoter variants |", "|---|---|---|"]
    for p in res["pairs"]:
        cell = [f"{p[k]['difference']:+.3f} [{p[k]['lo']:+.3f}, {p[k]['hi']:+.3f}]" for k in ("all", "promoter")]
        lines.append(f"| `{Path(p['a']).name}` - `{Path(p['b']).name}` | {cell[0]} | {cell[1]} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
