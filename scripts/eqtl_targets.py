"""Lab (superseded by ``gta train``'s ``eqtl_weight``, :mod:`gta.train.eqtl`, which also fits on the manifest's
transform): per-variant effect targets for the training genes from per-gene elastic nets (the eQTL baseline's
``ElasticNetEQTL``) fitted on the training individuals' genotypes and observed expression, for
``scripts/lab_train.py --eqtl``. Only what a user has is read: the VCF, the expression table, the splits; the
simulator's truth file serves as the list of variants in each window (its effects are not read).

    python scripts/eqtl_targets.py --data W/data --features W/features.zarr --out eqtl_train.npz \
        [--cache alt_train.npz]

Target of a variant = 2 x its elastic-net coefficient per ALT allele / the gene-level standard deviation of the
training targets: the change of one window's (haplotype's) prediction in the lab's standardised units (a diploid
individual's log expression moves by about half a haplotype's). Writes row, bin, val (the variant's changed bins
and their ALT features, `scripts/variant_runs.py`'s encoding), target and gene_id.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from variant_runs import encode_alts, haplotype_alleles, log_expression  # beside this script


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="simulated data folder (dataset.yaml, truth/)")
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=None, help="ALT features of the training genes' variants")
    args = ap.parse_args()
    from gta.train.config import TrainConfig
    from gta.train.data import build_run_data
    from gta.train.eqtl import ElasticNetEQTL
    from gta.train.run import open_inputs

    t0 = time.time()
    dataset, store = open_inputs(args.data / "dataset.yaml", args.features)
    data = build_run_data(dataset, store, TrainConfig(), need_individuals=False)
    sd = 1.0 / float(data.standardise(np.array([1.0]))[0] - data.standardise(np.array([0.0]))[0])
    genes = [data.gene_ids[i] for i in data.genes_in("train")]
    samples = list(dataset.individual_splits()[0])
    alts = encode_alts(args.data, args.features, genes, args.cache)
    variants = pd.read_csv(args.data / "truth" / "variants.tsv", sep="\t", usecols=["variant_id", "gene_id"])
    variants = variants[variants.gene_id.isin(set(genes))].reset_index(drop=True)
    if not (variants.gene_id.to_numpy(str) == alts["gene_id"]).all():
        raise SystemExit(f"{args.cache}: not the ALT features of these genes' variants; delete it")
    alleles = haplotype_alleles(args.data / "variants.vcf.gz", set(variants.variant_id), samples)
    # natural log, not the manifest's transform (log1p for the simulator): the lab runs of learning.md 55 used this
    expr = log_expression(args.data / "expression.tsv", samples)
    target = np.zeros(len(variants), np.float32)
    for gid, group in variants.groupby("gene_id", sort=False):
        x = np.stack([alleles[v].sum(axis=1) for v in group.variant_id], axis=1)
        target[group.index] = 2 * ElasticNetEQTL(seed=0).fit(x, expr.loc[gid].to_numpy()).coefficients() / sd
    np.savez(args.out, row=alts["row"], bin=alts["bin"], val=alts["val"], target=target, gene_id=alts["gene_id"])
    print(f"{len(genes)} training genes, {len(samples)} individuals: {int((target != 0).sum())} of {len(target)} "
          f"variants with a non-zero effect; {time.time() - t0:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
