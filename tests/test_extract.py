"""extract: equals direct encoding (sparse personal == full recompute), sharding, kill -9 + resume, refusal, CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fixtures import default_sequences, make_dataset, run_cli, write_manifest, write_vcf
from gta.encoders import BaseEncoder, MotifEncoder
from gta.encoders.motif import seq_to_index
from gta.errors import GtaInputError
from gta.features import FeatureStore, extract
from gta.geometry import Geometry
from gta.io.jaspar import load_motifs

GEOM = Geometry(input_len=2048, bin_size=128, output_bins=12)
SAMPLES = ["S1", "S2", "S3", "S4"]
TESTS = Path(__file__).parent


def build(folder: Path, seed: int = 0) -> Path:
    """The shared fixture data set (10 genes on 4 small chromosomes) plus a phased VCF with SNVs and indels."""
    manifest = make_dataset(folder, gene_format="tsv", seed=seed, geometry=GEOM.to_dict())
    chr1, chr2 = default_sequences(seed)["chr1"], default_sequences(seed)["chr2"]

    def snv(seq, pos):  # pos 1-based
        ref = seq[pos - 1]
        return pos, ref, "A" if ref != "A" else "G"

    recs = [
        ("chr1", *snv(chr1, 1500), ["0|1", "1|1", "0|0", "1|0"]),
        ("chr1", 1800, chr1[1799:1803], chr1[1799], ["0|0", "0|1", "0|0", "1|0"]),  # 3-bp deletion upstream
        ("chr1", 2600, chr1[2599], chr1[2599] + "GGTA", ["1|0", "0|0", "0|0", "0|1"]),  # 4-bp insertion
        ("chr1", *snv(chr1, 3050), ["1|1", "0|1", "0|0", "0|0"]),
        ("chr2", *snv(chr2, 700), ["0|1", "0|0", "1|0", "0|0"]),
    ]
    vcf = write_vcf(folder / "variants.vcf.gz", {"chr1": 6000, "chr2": 5000, "chr3": 4000, "chr4": 3000}, SAMPLES,
                    recs)
    import yaml

    entries = yaml.safe_load(manifest.read_text())
    entries["variants"] = vcf.name
    return write_manifest(folder, **entries)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def motif_encoder() -> MotifEncoder:
    return MotifEncoder(GEOM, motifs=load_motifs({"SPI1": "MA0080", "CTCF": "MA0139", "SP1": "MA0079"}))


class SlowGC(BaseEncoder):
    """A global test encoder: GC and A fraction per bin; sleeps per call so a run can be killed mid-way."""

    name = "slow-gc"
    feature_names = ["gc", "a"]  # type: ignore[assignment]

    def __init__(self, geometry: Geometry, delay: float = 0.0) -> None:
        super().__init__(geometry)
        self.delay, self.calls = delay, 0

    def encode(self, seqs):
        self.calls += len(seqs)
        time.sleep(self.delay)
        g = self.geometry
        idx = seq_to_index(seqs)[:, g.crop_bins * g.bin_size : (g.crop_bins + g.output_bins) * g.bin_size]
        idx = idx.reshape(len(seqs), g.output_bins, g.bin_size)
        return np.stack([((idx == 1) | (idx == 2)).mean(-1), (idx == 0).mean(-1)], axis=-1).astype(np.float32)


def run_child(manifest: str, out: str) -> None:
    """Entry point of the subprocess that the kill -9 test kills."""
    extract(manifest, encoder=SlowGC(GEOM, delay=0.25), out=out, individuals="all", batch_size=1, progress=False)


def all_items(store: FeatureStore) -> dict[tuple[str, str], np.ndarray]:
    out = {}
    for g in store.gene_ids:
        if store.has_ref(g):
            out[(g, "ref")] = store.read_ref(g)
        for k in {k for pair in store.sample_haps(g).values() for k in pair} - {"ref"}:
            if store.hap_done(g, k):
                out[(g, k)] = store.read_hap(g, k)
    return out


def assert_same_store(a: FeatureStore, b: FeatureStore) -> None:
    ia, ib = all_items(a), all_items(b)
    assert sorted(ia) == sorted(ib)
    for key in ia:
        np.testing.assert_array_equal(ia[key], ib[key], err_msg=str(key))
    for g in a.gene_ids:
        assert a.sample_haps(g) == b.sample_haps(g)


def test_extract_equals_direct_encoding(manifest, motif_encoder, tmp_path):
    from gta.io.dataset import open_dataset
    from gta.io.haplotypes import gene_haplotypes
    from gta.io.variants import VariantReader

    out = tmp_path / "f.zarr"
    summary = extract(manifest, encoder=motif_encoder, out=out, individuals="all", dtype="float32", progress=False)
    store = FeatureStore.open(out)
    assert store.attrs["encoder"] == "motif" and store.attrs["hap_storage"] == "sparse"
    assert store.feature_names == motif_encoder.feature_names
    ds = open_dataset(manifest)
    reader = VariantReader(ds.variants_path, ds.genome)
    n_haps, shifted = 0, False
    for gene in ds.genes:
        ref = motif_encoder.encode([ds.genome.gene_window(gene, GEOM)])[0]
        np.testing.assert_allclose(store.read_ref(gene.gene_id), ref, atol=1e-6)
        haps = gene_haplotypes(reader, gene, GEOM)
        assert store.sample_haps(gene.gene_id) == haps.sample_keys
        for key in {k for pair in haps.sample_keys.values() for k in pair} - {"ref"}:
            full = motif_encoder.encode([haps.sequence(key)])[0]  # full recompute of the personal window
            np.testing.assert_allclose(store.read_hap(gene.gene_id, key), full, atol=1e-5)
            shifted |= any(hi - lo > 100 for lo, hi in haps.changed_span(key))
            n_haps += 1
    assert n_haps == summary.unique_haplotypes >= 4 and shifted  # an indel's shifted side was covered
    assert summary.items_total == len(ds.genes) + n_haps == summary.computed
    assert summary.samples == 4 and summary.bins_stored < n_haps * GEOM.output_bins  # sparse
    again = extract(manifest, encoder=motif_encoder, out=out, individuals="all", dtype="float32", progress=False)
    assert again.computed == 0 and again.skipped["already in store"] == summary.items_total


def test_two_workers_equal_one(manifest, motif_encoder, tmp_path, monkeypatch):
    one = extract(manifest, encoder=motif_encoder, out=tmp_path / "one.zarr", individuals="S1,S2,S4", progress=False)
    a = extract(manifest, encoder=motif_encoder, out=tmp_path / "two.zarr", individuals="S1,S2,S4", worker=0,
                n_workers=2, progress=False)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun
    b = extract(manifest, encoder=motif_encoder, out=tmp_path / "two.zarr", individuals="S1,S2,S4", progress=False)
    assert (b.worker, b.n_workers) == (1, 2)
    assert a.computed > 0 and b.computed > 0 and a.computed + b.computed == one.computed
    assert_same_store(FeatureStore.open(tmp_path / "one.zarr"), FeatureStore.open(tmp_path / "two.zarr"))
    assert FeatureStore.open(tmp_path / "one.zarr").samples == ["S1", "S2", "S4"]


def test_kill_9_then_resume_equals_uninterrupted(manifest, tmp_path):
    out = tmp_path / "killed.zarr"
    code = f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_extract as t; t.run_child(*sys.argv[1:])"
    proc = subprocess.Popen([sys.executable, "-c", code, str(manifest), str(out)], stderr=subprocess.PIPE)
    done = 0
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (out / "zarr.json").exists():
            done = len(all_items(FeatureStore.open(out)))
            if done >= 4:
                break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else "child ended early"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    before = len(all_items(FeatureStore.open(out)))
    enc = SlowGC(GEOM)
    resumed = extract(manifest, encoder=enc, out=out, individuals="all", batch_size=1, progress=False)
    assert resumed.skipped["already in store"] == before >= 4
    assert enc.calls == resumed.computed == resumed.items_total - before  # nothing written was recomputed
    full = extract(manifest, encoder=SlowGC(GEOM), out=tmp_path / "clean.zarr", individuals="all", progress=False)
    assert full.items_total == resumed.items_total
    assert_same_store(FeatureStore.open(out), FeatureStore.open(tmp_path / "clean.zarr"))


def test_store_of_another_encoder_or_dataset_is_refused(manifest, motif_encoder, tmp_path):
    out = tmp_path / "f.zarr"
    extract(manifest, encoder=motif_encoder, out=out, genes=["BETA"], progress=False)
    with pytest.raises(GtaInputError, match="encoder: store has 'motif', this run has 'slow-gc'"):
        extract(manifest, encoder=SlowGC(GEOM), out=out, progress=False)
    other = build(tmp_path / "other", seed=1)
    with pytest.raises(GtaInputError, match="dataset_hash"):
        extract(other, encoder=motif_encoder, out=out, progress=False)
    with pytest.raises(GtaInputError, match="encoder_config.pvalue"):
        extract(manifest, encoder=MotifEncoder(GEOM, motifs=motif_encoder.motifs, pvalue=1e-3), out=out,
                progress=False)


def test_cli_extract(manifest, tmp_path):
    from typer.testing import CliRunner

    from gta.cli import app

    out = tmp_path / "cli.zarr"
    res = CliRunner().invoke(app, ["extract", "--data", str(manifest), "--out", str(out), "--genes", "BETA,GAMMA",
                                   "--individuals", "S2"])
    assert res.exit_code == 0, res.output
    store = FeatureStore.open(out)
    assert store.ref_done_mask().sum() == 2 and store.samples == ["S2"]
    assert store.attrs["encoder"] == "motif" and store.dtype == np.float16
    bad = subprocess.run([str(Path(sys.executable).parent / "gta"), "extract", "--data", str(manifest), "--out",
                          str(tmp_path / "x.zarr"), "--encoder", "borzoi"], capture_output=True, text=True)
    assert bad.returncode == 2 and "valid encoders" in bad.stderr and "motif" in bad.stderr


def test_cli_extract_gene_type_filter_counts_what_it_skips(manifest, tmp_path, capsys):
    """By default `gta extract` encodes protein-coding genes only (GAMMA is a lncRNA) and says how many it left
    out; --gene-type all keeps every gene; an explicit --genes list is encoded whatever its type."""
    out = tmp_path / "pc.zarr"
    rc, _, err = run_cli(["extract", "-d", manifest, "-o", out], capsys)
    assert rc == 0, err
    store = FeatureStore.open(out)
    done = dict(zip(store.gene_ids, store.ref_done_mask(), strict=True))
    assert not done["ENSG90000000003"] and sum(done.values()) == len(done) - 1
    assert "1 lncRNA genes (--gene-type)" in err
    rc, _, err = run_cli(["extract", "-d", manifest, "-o", out, "--gene-type", "all"], capsys)  # fills in GAMMA
    assert rc == 0, err
    assert FeatureStore.open(out).ref_done_mask().all()
    rc, _, err = run_cli(["extract", "-d", manifest, "-o", tmp_path / "g.zarr", "--genes", "GAMMA"], capsys)
    assert rc == 0, err
    rc, _, err = run_cli(["extract", "-d", manifest, "-o", tmp_path / "h.zarr", "--genes", "GAMMA", "--gene-type",
                        "protein_coding"], capsys)
    assert rc == 2 and err.count("\n") == 1 and "lncRNA" in err and not (tmp_path / "h.zarr").exists()


def test_cli_extract_genes_and_samples_from_files(manifest, tmp_path, capsys):
    """--genes @FILE and -S FILE (one name per line, # comments) select what -genes A,B and -s A,B would."""
    (tmp_path / "genes.txt").write_text("# my genes\nBETA\nEPSILON  # a comment\n\n")
    (tmp_path / "samples.txt").write_text("S2\n# S3\nS4\n")
    out = tmp_path / "f.zarr"
    rc, _, err = run_cli(["extract", "-d", manifest, "-o", out, "--genes", f"@{tmp_path / 'genes.txt'}", "-S",
                        tmp_path / "samples.txt"], capsys)
    assert rc == 0, err
    store = FeatureStore.open(out)
    done = [g for g, ok in zip(store.gene_ids, store.ref_done_mask(), strict=True) if ok]
    assert done == ["ENSG90000000002", "ENSG90000000005"] and store.samples == ["S2", "S4"]


@pytest.mark.parametrize("bad", [["--genes", "NOSUCHGENE"], ["-s", "S1,NOBODY"], ["--individuals", "NOBODY"],
                                 ["--genes", "@missing-genes.txt"], ["-S", "missing-samples.txt"],
                                 ["-s", "S1", "-S", "x.txt"]])
def test_failed_extract_leaves_no_store_behind(manifest, tmp_path, capsys, bad):
    """A bad gene or sample is one line and exit 2, and the store folder it would have created does not exist."""
    out = tmp_path / "f.zarr"
    rc, _, err = run_cli(["extract", "-d", manifest, "-o", out, *bad], capsys)
    assert rc == 2 and err.startswith("gta: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert not out.exists()


def test_failed_extract_keeps_a_store_that_existed(manifest, tmp_path, capsys):
    out = tmp_path / "f.zarr"
    assert run_cli(["extract", "-d", manifest, "-o", out, "--genes", "BETA"], capsys)[0] == 0
    rc, _, err = run_cli(["extract", "-d", manifest, "-o", out, "--genes", "NOSUCHGENE"], capsys)
    assert rc == 2 and FeatureStore.open(out).has_ref("ENSG90000000002")


def test_extract_out_naming_a_file_is_one_line(manifest, tmp_path, capsys):
    target = tmp_path / "features.txt"
    target.write_text("my notes\n")
    rc, _, err = run_cli(["extract", "-d", manifest, "-o", target], capsys)
    assert rc == 2 and err.count("\n") == 1 and "names a file" in err and "Traceback" not in err
    assert target.read_text() == "my notes\n"


# -- extract with the enformer encoder (a small random Enformer saved and loaded like a real weights folder) ------


@pytest.fixture(scope="module")
def enformer_folder(tmp_path_factory) -> Path:
    """A 1-layer, dim-48 random Enformer cropped to GEOM's output bins, written by save_enformer."""
    torch = pytest.importorskip("torch")
    from enformer_pytorch import Enformer

    from gta.encoders import save_enformer

    torch.manual_seed(0)
    model = Enformer.from_hparams(dim=48, depth=1, heads=2, dim_divisible_by=8, target_length=GEOM.output_bins,
                                  output_heads={"human": 4}).eval()
    return save_enformer(model, tmp_path_factory.mktemp("enformer"))


def test_extract_enformer_store_equals_direct_encoding(manifest, enformer_folder, tmp_path):
    import hashlib

    from gta.encoders import get_encoder
    from gta.io.dataset import open_dataset
    from gta.io.haplotypes import gene_haplotypes
    from gta.io.variants import VariantReader

    out = tmp_path / "enformer.zarr"
    opts = {"precision": "fp32", "device": "cpu", "batch_size": 3}
    summary = extract(manifest, encoder="enformer", weights=enformer_folder, out=out, individuals="all",
                      dtype="float32", encoder_options=opts, progress=False)
    enc = get_encoder("enformer", geometry=GEOM, weights=enformer_folder, **opts)
    store = FeatureStore.open(out)
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        h.update((enformer_folder / name).read_bytes())
    assert store.attrs["encoder"] == "enformer" and store.attrs["weights_hash"] == h.hexdigest()[:16]
    assert store.attrs["encoder_config"]["dim"] == 48 and store.attrs["encoder_config"]["precision"] == "fp32"
    assert store.attrs["hap_storage"] == "full"  # a global encoder: personal windows are stored whole
    assert store.feature_names == enc.feature_names and len(enc.feature_names) == 2 * 48
    ds = open_dataset(manifest)
    reader = VariantReader(ds.variants_path, ds.genome)
    n_haps = 0
    for gene in ds.genes:
        direct = enc.encode([ds.genome.gene_window(gene, GEOM)])[0]
        assert direct.shape == (GEOM.output_bins, 2 * 48) and np.abs(direct).max() > 0
        np.testing.assert_allclose(store.read_ref(gene.gene_id), direct, rtol=1e-5, atol=1e-5)
        haps = gene_haplotypes(reader, gene, GEOM)
        for key in {k for pair in haps.sample_keys.values() for k in pair} - {"ref"}:
            np.testing.assert_allclose(store.read_hap(gene.gene_id, key), enc.encode([haps.sequence(key)])[0],
                                       rtol=1e-5, atol=1e-5)
            n_haps += 1
    assert n_haps >= 4 and summary.computed == summary.items_total == len(ds.genes) + n_haps
    from safetensors.torch import load_file, save_file

    other = tmp_path / "other"  # the same architecture with other weights
    other.mkdir()
    (other / "config.json").write_text((enformer_folder / "config.json").read_text())
    state = {k: v + 0.01 for k, v in load_file(str(enformer_folder / "model.safetensors")).items()}
    save_file(state, str(other / "model.safetensors"))
    with pytest.raises(GtaInputError, match="weights_hash"):  # into the same store: refused
        extract(manifest, encoder="enformer", weights=other, out=out, dtype="float32", encoder_options=opts,
                progress=False)


def test_enformer_bf16_autocast_on_cpu_is_close_to_fp32(manifest, enformer_folder):
    from gta.encoders import get_encoder
    from gta.io.dataset import open_dataset

    ds = open_dataset(manifest)
    seqs = [ds.genome.gene_window(g, GEOM) for g in ds.genes[:4]]
    fp32 = get_encoder("enformer", geometry=GEOM, weights=enformer_folder, precision="fp32", device="cpu")
    bf16 = get_encoder("enformer", geometry=GEOM, weights=enformer_folder, precision="bf16", device="cpu")
    a, b = fp32.encode(seqs), bf16.encode(seqs)
    assert b.dtype == np.float32 and b.shape == a.shape and np.isfinite(b).all()
    assert not np.array_equal(a, b)  # autocast really ran in bf16
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99
    assert np.abs(a - b).max() < 0.1 * np.abs(a).max()


def test_manifest_variant_policy_filter_pass_reaches_extract(manifest, motif_encoder, tmp_path):
    """A record with FILTER != PASS leaves the stored features unchanged under variant_policy.filter_pass; without
    the policy the same record makes new haplotypes; a store built under one policy is refused under another."""
    import gzip

    import pysam
    import yaml

    folder = tmp_path / "filtered"
    build(folder)
    chr1 = default_sequences(0)["chr1"]
    ref = chr1[2199]
    text = gzip.decompress((folder / "variants.vcf.gz").read_bytes()).decode()
    lines = text.splitlines()
    lines.insert(1, '##FILTER=<ID=LowQual,Description="low quality">')
    extra = "\t".join(["chr1", "2200", ".", ref, "A" if ref != "A" else "G", ".", "LowQual", ".", "GT",
                       "1|1", "0|1", "1|0", "1|1"])
    pos = [i for i, ln in enumerate(lines) if ln.startswith("chr1\t2600\t")][0]  # keep the file sorted
    lines.insert(pos, extra)
    plain = folder / "variants.vcf"
    plain.write_text("\n".join(lines) + "\n")
    pysam.tabix_compress(str(plain), str(folder / "variants.vcf.gz"), force=True)
    pysam.tabix_index(str(folder / "variants.vcf.gz"), preset="vcf", force=True)
    plain.unlink()
    raw = yaml.safe_load((folder / "dataset.yaml").read_text())
    no_policy = write_manifest(folder, filename="all.yaml", **raw)
    with_pass = write_manifest(folder, filename="pass.yaml", **raw, variant_policy={"filter_pass": True})

    kw = {"encoder": motif_encoder, "individuals": "all", "dtype": "float32", "progress": False}
    clean = extract(manifest, out=tmp_path / "clean.zarr", **kw)
    passed = extract(with_pass, out=tmp_path / "pass.zarr", **kw)
    assert passed.unique_haplotypes == clean.unique_haplotypes
    assert_same_store(FeatureStore.open(tmp_path / "clean.zarr"), FeatureStore.open(tmp_path / "pass.zarr"))
    everything = extract(no_policy, out=tmp_path / "all.zarr", **kw)  # control: the record does change haplotypes
    a, b = FeatureStore.open(tmp_path / "clean.zarr"), FeatureStore.open(tmp_path / "all.zarr")
    assert everything.unique_haplotypes > clean.unique_haplotypes
    assert any(a.sample_haps(g) != b.sample_haps(g) for g in a.gene_ids)
    assert b.attrs["dataset_hash"] != FeatureStore.open(tmp_path / "pass.zarr").attrs["dataset_hash"]  # same files
    with pytest.raises(GtaInputError, match="dataset_hash"):
        extract(no_policy, out=tmp_path / "pass.zarr", **kw)


def _with_records(folder: Path, recs, policy: str | None = None) -> Path:
    manifest = make_dataset(folder, gene_format="tsv", geometry=GEOM.to_dict())
    write_vcf(folder / "v.vcf.gz", {"chr1": 6000, "chr2": 5000, "chr3": 4000, "chr4": 3000}, SAMPLES, recs)
    with open(manifest, "a") as fh:
        fh.write("variants: v.vcf.gz\n" + (f"variant_policy: {policy}\n" if policy else ""))
    return manifest


def test_summary_counts_what_the_variant_policy_dropped(tmp_path):
    """Symbolic ALTs and haploid calls are read (no crash), and the summary says what the policy dropped."""
    chr1 = default_sequences(0)["chr1"]
    snv = "A" if chr1[1499] != "A" else "G"
    recs = [("chr1", 1500, chr1[1499], snv, ["1", "0|1", "0", "1|1"]),
            ("chr1", 1600, chr1[1599], "<DEL>", ["0|1", "1", "0|0", "1|0"]),
            ("chr1", 1700, chr1[1699], "A" if chr1[1699] != "A" else "G", ["0/1", "1|0", "0|0", "0|1"])]
    summary = extract(_with_records(tmp_path / "d", recs), encoder=SlowGC(GEOM), out=tmp_path / "f.zarr",
                      individuals="all", progress=False)
    assert summary.skipped["variants: unsupported_allele"] == 4 and summary.skipped["variants: unphased"] == 1
    text = str(summary)
    assert "4 haplotype call(s) of a symbolic or breakend ALT" in text
    assert "1 unphased heterozygous genotype(s) read as the reference on both haplotypes (unphased=auto)" in text


def test_unphased_vcf_stops_extract_before_any_work(tmp_path):
    chr1 = default_sequences(0)["chr1"]
    recs = [("chr1", p, chr1[p - 1], "A" if chr1[p - 1] != "A" else "G", ["0/1", "1/0", "0/0", "1/1"])
            for p in (1500, 1600, 3050)]
    with pytest.raises(GtaInputError, match="unphased VCF: 2 of 4 samples"):
        extract(_with_records(tmp_path / "d", recs), encoder=SlowGC(GEOM), out=tmp_path / "f.zarr",
                individuals="all", progress=False)
    summary = extract(_with_records(tmp_path / "e", recs, "{unphased: as-phased}"), encoder=SlowGC(GEOM),
                      out=tmp_path / "g.zarr", individuals="all", progress=False)
    assert summary.skipped["variants: unphased_as_phased"] == 6  # 3 records x 2 heterozygous samples
