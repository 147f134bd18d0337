"""eQTL supervision (gta.train.eqtl): targets from per-gene elastic nets on the training individuals, their ALT
windows, the batches that carry them and a run that trains on them.

The data set is the training toy's genome and genes with a VCF written here: per gene one causal SNV (A/T -> G/C, so
the G/C-count encoder sees it) whose ALT dosage moves the gene's expression by a known amount, and two neutral SNVs.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from ddp_script import make_toy, toy_config
from fixtures import GCCount, write_expression_tsv, write_manifest, write_vcf
from gta.errors import GtaInputError
from gta.io.dataset import open_dataset
from gta.train.config import TrainConfig, load_config
from gta.train.data import FeatureSource, GeneItems, build_run_data, collate
from gta.train.eqtl import EQTL_TARGETS, ElasticNetEQTL, fit_variant_targets

N_SAMPLES = 60


def _snv_near(seq: str, start: int, want_at: bool, taken: set[int]) -> int:
    """A 0-based position from ``start`` on whose base is A/T (``want_at``) and not yet used."""
    pos = start
    while (seq[pos] in "AT") != want_at or pos in taken:
        pos += 1
    taken.add(pos)
    return pos


def _gt(rng: np.random.Generator, af: float) -> tuple[list[str], np.ndarray]:
    haps = (rng.random((N_SAMPLES, 2)) < af).astype(int)
    return [f"{a}|{b}" for a, b in haps], haps.sum(1)


@pytest.fixture(scope="module")
def eqtl_data(tmp_path_factory):
    """(manifest, store, causal effects {gene: (variant id, beta)}): toy genes, a VCF, expression that follows it."""
    from gta.features import extract

    folder = tmp_path_factory.mktemp("eqtl")
    manifest, _ = make_toy(folder, n_samples=N_SAMPLES, haplotypes=False)
    dataset = open_dataset(manifest)
    rng = np.random.default_rng(5)
    samples = [f"S{i:02d}" for i in range(N_SAMPLES)]
    import pysam

    fasta = pysam.FastaFile(str(folder / "genome.fa"))
    seqs = {c: fasta.fetch(c).upper() for c in fasta.references}
    records, values, causal, taken = [], [], {}, set()
    for k, g in enumerate(dataset.genes):
        y = rng.normal(5.0, 1.0) + rng.normal(scale=0.05, size=N_SAMPLES)
        for j in range(3):  # the first is causal: an A/T -> G/C change the encoder sees
            pos = _snv_near(seqs[g.chrom], g.tss - 300 + 200 * j, j == 0, taken)
            ref = seqs[g.chrom][pos]
            alt = ("G" if ref == "A" else "C") if j == 0 else ("A" if ref in "CG" else "G")
            gts, dose = _gt(rng, 0.4)
            vid = f"v{k}_{j}"
            if j == 0:
                beta = (0.6 if k % 2 else -0.6)
                y = y + beta * dose
                causal[g.gene_id] = (vid, beta)
            records.append((g.chrom, pos + 1, ref, alt, gts, vid))
        values.append(y)
    g0 = dataset.genes[0]  # one multi-allelic record, counted and left out
    pos = _snv_near(seqs[g0.chrom], g0.tss + 500, True, taken)
    records.append((g0.chrom, pos + 1, seqs[g0.chrom][pos], "C,G", ["1|2"] * N_SAMPLES, "multi"))
    records.sort(key=lambda r: (r[0], r[1]))
    vcf = write_vcf(folder / "variants.vcf.gz", {c: len(s) for c, s in seqs.items()}, samples, records)
    expr = write_expression_tsv(folder / "expression.tsv", [g.gene_id for g in dataset.genes], samples,
                                np.array(values))
    manifest = write_manifest(folder, genome=folder / "genome.fa", genes=folder / "genes.tsv", expression=expr,
                              variants=vcf, geometry=dataset.manifest.geometry.to_dict(),
                              splits={"val_chroms": ["chr3"], "test_chroms": ["chr4"],
                                      "test_individual_fraction": 0.3, "seed": 0})
    store = folder / "gc.zarr"
    extract(open_dataset(manifest), encoder=GCCount(dataset.manifest.geometry), out=store, individuals="none",
            progress=False)
    return manifest, store, causal


def _targets(manifest, store, cache=None, drop_train_gene: bool = False):
    from gta.features.store import FeatureStore

    dataset, fs = open_dataset(manifest), FeatureStore.open(store)
    data = build_run_data(dataset, fs, TrainConfig(), need_individuals=False)
    if drop_train_gene:
        data.split[data.genes_in("train")[0]] = "val"
    return data, fit_variant_targets(dataset, fs, data, cache=cache, progress=False)


def test_elastic_net_coefficients_are_per_alt_allele_in_expression_units():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(300, 6)).astype(float)
    x[:, 4] = 1.0  # a constant column: dropped, coefficient 0
    y = 0.3 * x[:, 2] + rng.normal(0, 0.1, 300)
    coef = ElasticNetEQTL(seed=0).fit(x, y).coefficients()
    assert coef[2] == pytest.approx(0.3, abs=0.03) and coef[4] == 0
    assert np.abs(np.delete(coef, 2)).max() < 0.03
    assert not ElasticNetEQTL().fit(x, np.ones(300)).coefficients().any()  # constant expression: no fit, no effects


def test_targets_find_each_gene_s_causal_variant_with_its_sign_and_size(eqtl_data):
    manifest, store, causal = eqtl_data
    data, targets = _targets(manifest, store)
    by_gene = targets.by_gene()
    train = [data.gene_ids[i] for i in data.genes_in("train")]
    assert set(by_gene) <= set(train) and len(by_gene) >= 0.9 * len(train)
    hits = 0
    for gid, (nonzero, _) in by_gene.items():
        beta = causal[gid][1]
        if not nonzero:
            continue
        best = max(nonzero, key=lambda v: abs(v[2]))
        # 2 x beta per ALT allele, in the run's standardised units; the causal SNV changes one GC count by 1
        if np.sign(best[2]) == np.sign(beta) and abs(best[2] - 2 * beta / data.target_std) < 0.5 * abs(best[2]):
            hits += 1
            assert len(best[0]) == 1 and best[1][0, 0] != 0
    assert hits >= 0.9 * len(train)
    assert targets.skipped == {"multi-allelic records": 1}
    assert targets.mean_square > 0 and (targets.target == 0).any()  # zero-effect variants come along


def test_held_out_individuals_do_not_enter_the_targets(eqtl_data, tmp_path):
    manifest, store, _ = eqtl_data
    dataset = open_dataset(manifest)
    _, test_ids = dataset.individual_splits()
    expr = pd.read_csv(dataset.manifest.expression, sep="\t", index_col=0)
    expr[list(test_ids)] = np.random.default_rng(1).normal(50, 20, size=(len(expr), len(test_ids)))
    expr.to_csv(tmp_path / "expression.tsv", sep="\t")
    text = manifest.read_text().replace("expression: expression.tsv", f"expression: {tmp_path / 'expression.tsv'}")
    other = manifest.with_name("held_out_changed.yaml")
    other.write_text(text)
    # the unit (training genes' sd of gene means over all individuals, as the cross-gene target has it) moves; the
    # elastic nets' effects do not
    (d1, t1), (d2, t2) = _targets(other, store), _targets(manifest, store)
    assert d1.target_std != d2.target_std
    np.testing.assert_allclose(t1.target * d1.target_std, t2.target * d2.target_std, rtol=1e-5, atol=1e-7)


def test_targets_are_cached_by_their_inputs(eqtl_data, tmp_path):
    manifest, store, _ = eqtl_data
    cache = tmp_path / EQTL_TARGETS
    _, first = _targets(manifest, store, cache=cache)
    stamp = cache.stat().st_mtime_ns
    _, again = _targets(manifest, store, cache=cache)
    assert cache.stat().st_mtime_ns == stamp and np.array_equal(again.target, first.target)
    _, fewer = _targets(manifest, store, cache=cache, drop_train_gene=True)  # other genes: refitted and rewritten
    assert cache.stat().st_mtime_ns != stamp and fewer.identity != first.identity
    assert len(set(fewer.gene_id.tolist())) == len(set(first.gene_id.tolist())) - 1


def test_a_batch_carries_each_variant_as_its_alt_window_beside_a_reference_copy(eqtl_data):
    from gta.features.store import FeatureStore

    manifest, store, _ = eqtl_data
    data, targets = _targets(manifest, store)
    source = FeatureSource(FeatureStore.open(store))
    variants = targets.by_gene()
    genes = [i for i in data.genes_in("train") if data.gene_ids[i] in variants][:3]
    items = GeneItems(data, source, genes, variants=variants, n_variants=2)
    batch = collate([items[(p, 0)] for p in range(len(genes))])
    assert len(batch["var_row"]) == 2 * len(genes) and len(batch["features"]) == 4 * len(genes)
    for row, ref, y in zip(batch["var_row"].tolist(), batch["var_ref"].tolist(), batch["var_y"].tolist(),
                           strict=True):
        gene = data.gene_ids[genes[ref // 4]]
        assert torch.equal(batch["features"][ref], batch["features"][ref - 1])  # the reference, once more
        diff = (batch["features"][row] != batch["features"][ref]).any(-1).nonzero()[:, 0].tolist()
        match = [v for part in variants[gene] for v in part if v[2] == y and v[0].tolist() == diff]
        assert match, (gene, y, diff)
    for i, g in enumerate(genes):  # one of the two has an effect, unless the gene has too few of a kind
        nonzero, zero = variants[data.gene_ids[g]]
        drawn = batch["var_y"][batch["var_ref"] == 4 * i + 1]
        assert int((drawn != 0).sum()) == (1 if zero else 2) if nonzero else int((drawn != 0).sum()) == 0


def test_a_run_with_eqtl_supervision_trains_on_it(eqtl_data, tmp_path, tiny_llm):
    from gta.train import train

    manifest, store, _ = eqtl_data
    result = train(manifest, store, tmp_path / "run", toy_config(max_epochs=2, eqtl_weight=1.0), llm=tiny_llm,
                   progress=False)
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert metrics["train_loss_eqtl"].dropna().gt(0).all() and len(metrics["train_loss_eqtl"].dropna()) == 2
    assert (tmp_path / "run" / EQTL_TARGETS).exists()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["data"]["eqtl_targets"]["non_zero"] > 0 and np.isfinite(result.summary["test_spearman"])


def test_eqtl_supervision_needs_a_vcf_and_sane_settings(tmp_path, tiny_llm):
    from gta.train import train

    with pytest.raises(GtaInputError, match="eqtl_weight must be >= 0"):
        TrainConfig(eqtl_weight=-1.0)
    with pytest.raises(GtaInputError, match="eqtl_variants must be >= 1"):
        TrainConfig(eqtl_variants=0)
    (tmp_path / "bad.yaml").write_text("eqtl_weight: -2\n")
    with pytest.raises(GtaInputError, match=r"bad\.yaml: eqtl_weight must be >= 0"):  # a range error names the file
        load_config(tmp_path / "bad.yaml")
    manifest, store = make_toy(tmp_path / "toy", n_samples=6, haplotypes=False)
    with pytest.raises(GtaInputError, match="names no VCF") as err:
        train(manifest, store, tmp_path / "run", toy_config(eqtl_weight=1.0), llm=tiny_llm, progress=False)
    assert "dataset.yaml" in str(err.value)
