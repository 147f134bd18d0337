"""gta.interpret.variants: effects equal a direct ALT-window recompute on both strands, one row per ALT, skipped
(not zero) outside every window, REF mismatches reported (strict: an error), metrics vs truth, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ddp_script import make_toy, toy_config
from fixtures import GCCount, default_sequences, make_dataset, write_vcf
from gta.errors import GtaInputError
from gta.features.alleles import tss_distance
from gta.geometry import Geometry
from gta.interpret.evaluate import variant_effect_metrics
from gta.interpret.variants import OUTSIDE, REF_MISMATCH, VariantScorer, skipped_path_for
from gta.io.dataset import open_dataset
from gta.io.genome import reverse_complement

GEOM = Geometry(input_len=1024, bin_size=32, output_bins=16)
CONTIGS = {"chr1": 6000, "chr2": 5000, "chr3": 4000, "chr4": 3000}


W = np.linspace(-1.0, 1.0, GEOM.output_bins * 2).reshape(GEOM.output_bins, 2)


class ToyModel:
    """predict(features, gene) = sum(W * features) + 1; records the batch sizes it was called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, feats: np.ndarray, gene) -> np.ndarray:
        self.calls.append((gene.gene_id, len(feats)))
        return (feats * W).sum(axis=(1, 2)) + 1.0


def _snv(seq: str, pos: int, pick: int = 0) -> tuple[int, str, str]:
    ref = seq[pos - 1]
    return pos, ref, [b for b in "ACGT" if b != ref][pick]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sv")
    manifest = make_dataset(folder, gene_format="tsv", geometry=GEOM.to_dict(), with_expression=False)
    chr1, chr2 = default_sequences()["chr1"], default_sequences()["chr2"]
    p2000, r2000, _ = _snv(chr1, 2000)
    wrong = [b for b in "ACGT" if b != chr1[2399]][0]
    records = [  # output spans (genome, 0-based): ALPHA [-256, 256), BETA [1744, 2256), GAMMA [2744, 3256)
        ("chr1", *_snv(chr1, 101)),  # ALPHA (+, TSS 0)
        ("chr1", *_snv(chr1, 1000)),  # between windows: outside every window
        ("chr1", *_snv(chr1, 1900)),  # BETA (-, TSS 1999), downstream
        ("chr1", p2000, r2000, ",".join(b for b in "ACGT" if b != r2000)),  # multi-allelic at BETA's TSS
        ("chr1", *_snv(chr1, 2150)),  # BETA, upstream
        ("chr1", 2400, wrong, "A" if wrong != "A" else "C"),  # REF does not match the genome
        ("chr1", *_snv(chr1, 2501)),  # in both BETA's and GAMMA's input windows, outside both output spans
        ("chr1", 2900, chr1[2899:2902], chr1[2899]),  # 2-bp deletion, GAMMA (+, TSS 3000)
        ("chr2", *_snv(chr2, 300)),  # EPSILON (+, TSS 200)
    ]
    vcf = write_vcf(folder / "scored.vcf.gz", CONTIGS, ["S1"], [(*r, ["0|1"]) for r in records])
    return open_dataset(manifest), vcf, folder


def _score(data, tmp_path, **kw):
    dataset, vcf, _ = data
    model = ToyModel()
    scorer = VariantScorer(dataset, GCCount(GEOM), model, dtype=None, batch_size=4)
    reference = scorer._reference
    scorer.encoded_refs = []

    def counting(gene):
        scorer.encoded_refs.append(gene.gene_id)
        return reference(gene)

    scorer._reference = counting
    summary = scorer.score_vcf(vcf, tmp_path / "effects.tsv", progress=False, **kw)
    effects = pd.read_csv(tmp_path / "effects.tsv", sep="\t")
    skipped = pd.read_csv(skipped_path_for(tmp_path / "effects.tsv"), sep="\t")
    return summary, effects, skipped, model, scorer


def _direct_effect(dataset, gene_q: str, pos: int, alt: str) -> float:
    """ALT window built by hand (no gta.io.haplotypes) and fully re-encoded."""
    gene = dataset.gene(gene_q)
    window = dataset.genome.gene_window(gene, GEOM)
    i = GEOM.genome_to_index(pos - 1, gene.tss, gene.strand)
    base = alt if gene.strand == "+" else reverse_complement(alt)
    alt_window = window[:i] + base + window[i + 1 :]
    enc, model = GCCount(GEOM), ToyModel()
    return float(model(enc.encode([alt_window]), gene)[0] - model(enc.encode([window]), gene)[0])


def test_effects_equal_a_direct_recompute_on_both_strands(data, tmp_path):
    summary, effects, _, _, _ = _score(data, tmp_path)
    assert list(effects.columns) == ["variant", "gene_id", "symbol", "distance_to_tss", "ref_pred", "alt_pred",
                                     "effect", "id"]
    chr1 = default_sequences()["chr1"]
    for pos, gene, distance in ((101, "ALPHA", 100), (1900, "BETA", 100), (2150, "BETA", -150)):
        _, ref, alt = _snv(chr1, pos)
        row = effects[effects.variant == f"chr1:{pos}:{ref}:{alt}"].iloc[0]
        assert row.symbol == gene and row.distance_to_tss == distance
        assert row.effect == pytest.approx(_direct_effect(data[0], gene, pos, alt), abs=1e-5)
        assert row.effect == pytest.approx(row.alt_pred - row.ref_pred, abs=1e-4)  # columns rounded to 8 digits
        assert row.effect != 0
    invisible = effects[effects.variant.str.startswith("chr1:2501:")]  # in the input window, outside the output
    assert len(invisible) == 2 and (invisible.effect == 0).all()  # span of a local encoder: exactly 0


def test_outside_every_window_is_skipped_not_scored_as_zero(data, tmp_path):
    summary, effects, skipped, _, _ = _score(data, tmp_path)
    _, ref, alt = _snv(default_sequences()["chr1"], 1000)
    label = f"chr1:1000:{ref}:{alt}"
    assert label not in set(effects.variant)
    assert skipped[skipped.variant == label].reason.tolist() == [OUTSIDE]
    assert summary.skipped[OUTSIDE] == 1
    assert "1 outside every gene window" in str(summary)


def test_multiallelic_records_give_one_row_per_alt_and_shared_windows_one_row_per_gene(data, tmp_path):
    _, effects, _, _, _ = _score(data, tmp_path)
    multi = effects[effects.variant.str.startswith("chr1:2000:")]
    assert len(multi) == 3 and multi.variant.nunique() == 3 and set(multi.symbol) == {"BETA"}
    assert (multi.distance_to_tss == 0).all() and multi.effect.nunique() == 3
    shared = effects[effects.variant.str.startswith("chr1:2501:")]
    assert sorted(shared.symbol) == ["BETA", "GAMMA"]
    deletion = effects[effects.variant.str.startswith("chr1:2900:")]
    assert deletion.symbol.tolist() == ["GAMMA"] and deletion.distance_to_tss.tolist() == [2899 - 3000]
    assert deletion.effect.iloc[0] != 0  # the deletion shifts the upstream bins


def test_reference_predicted_once_per_gene(data, tmp_path):
    summary, effects, _, model, scorer = _score(data, tmp_path)
    assert scorer.ref_calls == summary.genes == effects.gene_id.nunique() == 4
    assert sorted(scorer.encoded_refs) == sorted(effects.gene_id.unique())  # each gene's reference encoded once
    beta = [n for g, n in model.calls if g == dataset_gene_id(data, "BETA")]
    changed = int((effects[effects.symbol == "BETA"].effect != 0).sum())
    # the reference once, then the alleles that change a feature, in batches of at most 4 (the rest need no pass)
    assert beta[0] == 1 and sum(beta[1:]) == changed and max(beta[1:]) <= 4 and 0 < changed < 6
    assert effects.groupby("gene_id").ref_pred.nunique().eq(1).all()


def dataset_gene_id(data, q: str) -> str:
    return data[0].gene(q).gene_id


def test_ref_mismatch_is_reported_with_a_clear_message_and_strict_mode_errors(data, tmp_path):
    summary, effects, skipped, _, _ = _score(data, tmp_path)
    chr1 = default_sequences()["chr1"]
    row = skipped[skipped.reason == REF_MISMATCH].iloc[0]
    assert row.variant.startswith("chr1:2400:")
    assert f"the genome has {chr1[2399]}" in row.detail and "scored.vcf.gz" in row.detail
    assert not effects.variant.str.startswith("chr1:2400:").any()
    assert summary.skipped[REF_MISMATCH] == 1
    with pytest.raises(GtaInputError, match=r"scored\.vcf\.gz.*chr1:2400"):
        _score(data, tmp_path / "strict", strict=True)


def test_tss_distance_follows_transcription():
    from gta.io.types import Gene

    assert tss_distance(Gene("g", "g", "c", 100, "+"), 90) == -10
    assert tss_distance(Gene("g", "g", "c", 100, "-"), 90) == 10


def test_variant_effect_metrics_by_distance():
    pred = pd.DataFrame({"variant": ["chr1:10:A:G", "chr1:20:C:T", "chr1:30:G:A", "1:40:T:C", "chr1:50:A:C"],
                         "gene_id": ["G"] * 5, "distance_to_tss": [100, -1500, 5000, -30000, 40000],
                         "effect": [0.5, -0.2, 0.1, 0.0, 0.3]})
    truth = pd.DataFrame({"variant_id": list("abcdef"), "chrom": ["chr1"] * 6, "pos": [10, 20, 30, 40, 50, 60],
                          "ref": list("ACGTAA"), "alt": list("GTACCG"), "gene_id": ["G"] * 6,
                          "effect": [1.0, 0.4, 0.0, -0.5, 0.2, 0.3]})
    m = variant_effect_metrics(pred, truth)
    assert m["n_matched"] == 5 and m["n_truth"] == 6
    o = m["overall"]
    assert o["n_causal"] == 4
    assert o["sign_agreement"] == pytest.approx(2 / 4)  # 0.5 vs 1 and 0.3 vs 0.2 agree; -0.2 vs 0.4, 0 vs -0.5 not
    p, t = np.array([0.5, -0.2, 0.1, 0.0, 0.3]), np.array([1.0, 0.4, 0.0, -0.5, 0.2])
    assert o["pearson"] == pytest.approx(np.corrcoef(p, t)[0, 1])
    near = m["by_distance"]["<2kb"]
    assert near["n"] == 2 and near["sign_agreement"] == 0.5
    assert m["by_distance"]["2-20kb"]["n"] == 1 and m["by_distance"][">20kb"]["n"] == 2


# ---- through a trained run and the CLI -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gc_run(tmp_path_factory):
    """The training toy's data set, encoded with GCCount, and a run trained one epoch on it."""
    from gta.features import extract
    from gta.train import train

    folder = tmp_path_factory.mktemp("gcrun")
    manifest, _ = make_toy(folder / "data", n_samples=4, haplotypes=False)
    dataset = open_dataset(manifest)
    store = folder / "gc.zarr"
    extract(dataset, encoder=GCCount(dataset.manifest.geometry), out=store, individuals="none", progress=False)
    cfg = toy_config(max_epochs=1)
    train(manifest, store, folder / "run", cfg, progress=False)
    return manifest, store, folder / "run", dataset


def test_score_variants_command_on_a_trained_run(gc_run, tmp_path):
    import gta.cli.interpret_commands  # noqa: F401 - registers the commands
    from gta.cli.app import app

    manifest, store, run, dataset = gc_run
    seq = dataset.genome.fetch("chr1", 0, 20_000)
    recs = [("chr1", *_snv(seq, 1900), ["0|1"]), ("chr1", *_snv(seq, 19_500), ["0|1"])]
    vcf = write_vcf(tmp_path / "v.vcf.gz", {"chr1": 20_000, "chr2": 20_000, "chr3": 20_000, "chr4": 20_000}, ["S"],
                    recs)
    out = tmp_path / "effects.tsv"
    res = CliRunner().invoke(app, ["score-variants", "--run", str(run), "--data", str(manifest), "--vcf", str(vcf),
                                   "--features", str(store), "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    effects = pd.read_csv(out, sep="\t")
    assert sorted(effects.symbol) == ["TOY0", "TOY1"] and effects.variant.str.startswith("chr1:1900:").all()
    assert "1 outside every gene window" in res.output
    # without the store: reference windows are encoded from the genome, same numbers
    res2 = CliRunner().invoke(app, ["score-variants", "--run", str(run), "--data", str(manifest), "--vcf", str(vcf),
                                    "--out", str(tmp_path / "e2.tsv"), "--quiet"])
    assert res2.exit_code == 0, res2.output
    again = pd.read_csv(tmp_path / "e2.tsv", sep="\t")
    np.testing.assert_allclose(again.effect, effects.effect, atol=1e-5)
    # an existing table (or its skipped/metrics companions) is not replaced unasked
    from gta.cli import main

    args = ["score-variants", "--run", str(run), "--data", str(manifest), "--vcf", str(vcf), "--features", str(store),
            "--out", str(out), "--quiet"]
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    (tmp_path / "new.skipped.tsv").write_text("mine\n")
    with pytest.raises(SystemExit) as e:
        main([*args[:-2], str(tmp_path / "new.tsv"), "--quiet"])
    assert e.value.code == 2 and (tmp_path / "new.skipped.tsv").read_text() == "mine\n"
    assert not (tmp_path / "new.tsv").exists()
    assert CliRunner().invoke(app, [*args, "--overwrite"]).exit_code == 0
    # --no-mirror-average: each window once, as a run whose config says mirror_average: false scores it
    res3 = CliRunner().invoke(app, ["score-variants", "--run", str(run), "--data", str(manifest), "--vcf", str(vcf),
                                    "--features", str(store), "--out", str(tmp_path / "e3.tsv"), "--quiet",
                                    "--no-mirror-average"])
    assert res3.exit_code == 0, res3.output
    once = pd.read_csv(tmp_path / "e3.tsv", sep="\t")
    assert np.abs(once.effect - effects.effect).max() > 1e-7  # the default averages the window and its mirror
    single = _run_copy(run, tmp_path / "single", mirror_average=False)
    res4 = CliRunner().invoke(app, ["score-variants", "--run", str(single), "--data", str(manifest), "--vcf", str(vcf),
                                    "--features", str(store), "--out", str(tmp_path / "e4.tsv"), "--quiet"])
    assert res4.exit_code == 0, res4.output
    np.testing.assert_allclose(pd.read_csv(tmp_path / "e4.tsv", sep="\t").effect, once.effect, atol=1e-6)


def _run_copy(run, folder, **model):
    """A copy of a run folder whose config.yaml's model section is changed by ``model``."""
    import yaml

    folder.mkdir()
    for name in ("model.safetensors", "prompts.json"):
        (folder / name).write_bytes((run / name).read_bytes())
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["model"].update(model)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    return folder


def test_the_mirror_average_is_refused_for_a_run_never_trained_on_mirrors(gc_run, tmp_path):
    from gta.interpret import score_variants

    manifest, store, run, dataset = gc_run
    seq = dataset.genome.fetch("chr1", 0, 5000)
    vcf = write_vcf(tmp_path / "v.vcf.gz", {"chr1": 20_000}, ["S"], [("chr1", *_snv(seq, 2100), ["0|1"])])
    plain = _run_copy(run, tmp_path / "plain", mirror_average=False)
    cfg = (plain / "config.yaml").read_text().replace("mirror_augment: 0.5", "mirror_augment: 0.0")
    assert "mirror_augment: 0.0" in cfg
    (plain / "config.yaml").write_text(cfg)
    score_variants(plain, manifest, vcf, tmp_path / "e.tsv", features=store, progress=False)  # as trained: fine
    with pytest.raises(GtaInputError, match="mirror_average") as err:
        score_variants(plain, manifest, vcf, tmp_path / "e.tsv", features=store, progress=False, mirror_average=True)
    assert "config.yaml" in str(err.value)


def test_score_variants_evaluates_against_truth(gc_run, tmp_path):
    from gta.interpret import score_variants

    manifest, store, run, dataset = gc_run
    seq = dataset.genome.fetch("chr1", 0, 5000)
    pos, ref, alt = _snv(seq, 2100)
    vcf = write_vcf(tmp_path / "v.vcf.gz", {"chr1": 20_000}, ["S"], [("chr1", pos, ref, alt, ["0|1"])])
    with pytest.raises(GtaInputError, match="truth"):
        score_variants(run, manifest, vcf, tmp_path / "e.tsv", features=store, evaluate=True, progress=False)
    summary = score_variants(run, manifest, vcf, tmp_path / "e.tsv", features=store, progress=False)
    assert summary.metrics is None and summary.rows >= 1
    effects = pd.read_csv(tmp_path / "e.tsv", sep="\t")
    # an independent truth, not the model's own signs: the direction the SNV moves the window's GC count, for the
    # first gene, and the opposite for the others (so a metric that ignores the truth or the gene cannot pass)
    gc_step = float((alt in "GC") - (ref in "GC")) or 1.0
    truth_effect = np.where(np.arange(len(effects)) == 0, gc_step, -gc_step) * 0.5
    truth = pd.DataFrame({"chrom": "chr1", "pos": pos, "ref": ref, "alt": alt, "gene_id": effects.gene_id,
                          "effect": truth_effect})
    truth.to_csv(tmp_path / "variants.tsv", sep="\t", index=False)
    m = variant_effect_metrics(tmp_path / "e.tsv", tmp_path)  # a truth folder holding variants.tsv
    assert m["n_matched"] == len(effects)
    expected = float(np.mean(np.sign(effects.effect.to_numpy()) == np.sign(truth_effect)))
    assert m["overall"]["sign_agreement"] == pytest.approx(expected)
    # a truth for another allele matches nothing
    other = [b for b in "ACGT" if b not in (ref, alt)][0]
    truth.assign(alt=other).to_csv(tmp_path / "variants.tsv", sep="\t", index=False)
    assert variant_effect_metrics(tmp_path / "e.tsv", tmp_path)["n_matched"] == 0
    assert json.loads(json.dumps(m)) == m  # JSON-safe
