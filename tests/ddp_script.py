"""A tiny learnable data set for training tests, and the entry point of the two-process DDP test.

``make_toy(folder)`` writes a real data set (FASTA, gene TSV, expression TSV, manifest with a small geometry) and a
real ``FeatureStore`` whose features carry a known signal: per haplotype, f(x) = 5 + 3 * mean(x[12:20, 0]) +
0.8 * x[16, 2]; an individual's expression is log((e^f(h1) + e^f(h2)) / 2) + noise (so both the gene means and
the per-individual differences are learnable). Chromosomes chr1/chr2 are training genes, chr3 validation, chr4 test.

Run as a script (``python tests/ddp_script.py OUT [--devices 2]``) it trains on the toy set with Lightning DDP on
CPU (gloo) and leaves ``OUT/run/summary.json``; the ``__main__`` guard lets Lightning re-launch it per rank.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from fixtures import GeneSpec, random_sequence, write_expression_tsv, write_fasta, write_gene_tsv, write_manifest

GEOMETRY = {"input_len": 2048, "bin_size": 64, "output_bins": 32}
N_FEATURES = 4
CHROMS = {"chr1": 16, "chr2": 16, "chr3": 8, "chr4": 8}  # genes per chromosome


def hap_value(x: np.ndarray) -> float:
    return float(5.0 + 3.0 * x[12:20, 0].mean() + 0.8 * x[16, 2])


def make_toy(folder: str | Path, n_samples: int = 20, seed: int = 0, haplotypes: bool = True,
             geometry: dict | None = None, store_attrs: dict | None = None,
             feature_names: list[str] | None = None, genes_scale: int = 1) -> tuple[Path, Path]:
    """(manifest path, feature store path) of the toy data set in ``folder``. ``geometry`` must keep 32 output bins;
    ``store_attrs`` / ``feature_names`` override the store's metadata (e.g. to pose as another encoder's store);
    ``genes_scale`` multiplies the genes per chromosome (chromosomes grow to fit them)."""
    from gta.features.store import FeatureStore

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    seqs = {c: random_sequence(20_000 * genes_scale, seed + i) for i, c in enumerate(CHROMS)}
    genes = []
    for c, n in CHROMS.items():
        for j in range(n * genes_scale):
            k = len(genes)
            genes.append(GeneSpec(f"TOYG{k:04d}", f"TOY{k}", c, 1000 + 1100 * j, 1600 + 1100 * j, "+-"[k % 2]))
    samples = [f"S{i:02d}" for i in range(n_samples)]
    fasta = write_fasta(folder / "genome.fa", seqs)
    gene_file = write_gene_tsv(folder / "genes.tsv", genes)
    ids = [g.gene_id for g in genes]
    geometry = geometry or GEOMETRY
    bins = geometry["output_bins"]
    store_path = folder / "features.zarr"
    attrs = {"encoder": "toy", "encoder_config": {"seed": seed}, "weights_hash": "0", "dataset_hash": "toy",
             "geometry": geometry, **(store_attrs or {})}
    store = FeatureStore.create(store_path, attrs, gene_ids=ids, n_bins=bins, n_features=N_FEATURES, dtype="float32",
                                feature_names=feature_names)
    values = np.zeros((len(genes), n_samples))
    for i, gid in enumerate(ids):
        ref = rng.normal(size=(bins, N_FEATURES)).astype(np.float32)
        store.write_ref(gid, ref)
        a, b = ref.copy(), ref.copy()
        a[16, 2] += 1.5
        b[16, 2] -= 1.5
        b[14, 0] += 1.0
        haps = {"ref": ref, f"a{i:04d}": a, f"b{i:04d}": b}
        keys = list(haps)
        pairs = {s: (keys[rng.integers(3)], keys[rng.integers(3)]) for s in samples}
        if haplotypes:
            for k in keys[1:]:
                store.write_hap(gid, k, haps[k])
            store.set_sample_haps(gid, pairs)
        for j, s in enumerate(samples):
            h1, h2 = (hap_value(haps[k]) for k in pairs[s])
            values[i, j] = np.logaddexp(h1, h2) - np.log(2) + rng.normal(scale=0.05)
    expr = write_expression_tsv(folder / "expression.tsv", ids, samples, values)
    manifest = write_manifest(folder, genome=fasta, genes=gene_file, expression=expr, name="toy",
                              description="toy expression driven by feature 0 near the centre",
                              geometry=geometry, splits={"val_chroms": ["chr3"], "test_chroms": ["chr4"],
                                                         "test_individual_fraction": 0.3, "seed": 0})
    return manifest, store_path


def toy_config(**overrides):
    """A TrainConfig with a tiny-random LLM and a small model (fast on CPU)."""
    from gta.model.gta import GTAConfig
    from gta.train.config import TrainConfig

    model = GTAConfig(llm="tiny-random", llm_layers=2, patch_len=4, patch_stride=4, d_model=16, n_prototypes=16,
                      prototype_vocab=None, n_heads=2, head_hidden=16, dropout=0.0)
    base = {"model": model, "lr": 3e-3, "batch_size": 8, "max_epochs": 3, "patience": 0, "seed": 0,
            "log_every": 1, "max_individuals_per_gene": 6}
    base.update(overrides)
    return TrainConfig(**base)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--strategy", default="ddp")
    parser.add_argument("--task", default="cross-gene")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from gta.train import train

    manifest, store = make_toy(args.out / "data") if not (args.out / "data" / "features.zarr").exists() else (
        args.out / "data" / "dataset.yaml", args.out / "data" / "features.zarr")
    train(manifest, store, args.out / "run", toy_config(devices=args.devices, strategy=args.strategy,
                                                        task=args.task), progress=False)


if __name__ == "__main__":
    main()
