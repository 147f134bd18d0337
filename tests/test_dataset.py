from collections import Counter

import pytest

from fixtures import CHROM_LENGTHS, GeneSpec, default_genes, default_sequences, make_dataset, write_vcf
from gta.errors import GtaInputError
from gta.geometry import Geometry
from gta.io.dataset import SKIP_TSS_PAST_END, open_dataset, vcf_header
from gta.io.genome import reverse_complement
from gta.io.manifest import SplitConfig
from gta.io.splits import assign_gene_splits, default_split_chroms, split_individuals
from gta.io.types import Gene


@pytest.fixture
def ds(tmp_path):
    d = open_dataset(make_dataset(tmp_path / "d", with_vcf=True))
    yield d
    d.close()


def test_open_dataset_reads_everything(ds):
    assert len(ds.genes) == 10
    assert ds.genome.contigs == list(CHROM_LENGTHS)
    assert ds.expression is not None and ds.expression.values.shape == (10, 6)
    assert ds.variants_path is not None and ds.variants_path.name == "variants.vcf.gz"
    assert ds.skipped == {}


def test_gene_windows_from_the_dataset_match_the_sequence(ds):
    seqs = default_sequences()
    geom = Geometry(input_len=512, bin_size=16, output_bins=16)
    for gene in ds.genes:
        win = ds.genome.gene_window(gene, geom)
        start, end = geom.window(gene.tss, gene.strand)
        s = seqs[gene.chrom]
        ref = "".join(s[i].upper() if 0 <= i < len(s) else "N" for i in range(start, end))
        ref = "".join("N" if c not in "ACGT" else c for c in ref)
        assert win == (ref if gene.strand == "+" else reverse_complement(ref)), gene.symbol


def test_gene_lookup(ds):
    assert ds.gene("ENSG90000000002").symbol == "BETA"
    assert ds.gene("ENSG90000000002.9").symbol == "BETA"
    assert ds.gene("beta").gene_id == "ENSG90000000002"
    with pytest.raises(GtaInputError, match="did you mean.*BETA"):
        ds.gene("BETTA")
    with pytest.raises(GtaInputError, match="not in the gene table"):
        ds.gene("XYZZY123")


def test_annotations_from_the_manifest_file(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "ann.tsv").write_text("gene_id\tdescription\nENSG90000000002.1\tBETA is a test gene.\n")
    ds = open_dataset(make_dataset(folder, annotations="ann.tsv"))
    assert ds.annotations["ENSG90000000002"]["description"] == "BETA is a test gene."
    assert set(ds.annotations) == {"ENSG90000000002"}


def test_gene_splits_by_manifest_chromosomes(tmp_path):
    ds = open_dataset(make_dataset(tmp_path / "d", splits={"val_chroms": ["2"], "test_chroms": ["chr3"]}))
    by_chrom = {(g.chrom, ds.gene_splits[g.gene_id]) for g in ds.genes}
    assert by_chrom == {("chr1", "train"), ("chr4", "train"), ("chr2", "val"), ("chr3", "test")}


def test_gene_splits_by_gene_lists(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "val.txt").write_text("# validation genes\nbeta\nENSG90000000005.1\nNOT_A_GENE\n")
    (folder / "test.txt").write_text("ENSG90000000009\n")
    ds = open_dataset(make_dataset(folder, splits={"val_genes": "val.txt", "test_genes": "test.txt"}))
    s = ds.gene_splits
    assert s["ENSG90000000002"] == s["ENSG90000000005"] == "val" and s["ENSG90000000009"] == "test"
    assert Counter(s.values()) == {"train": 7, "val": 2, "test": 1}


def _genes_on(counts: dict[str, int]) -> list[Gene]:
    return [Gene(f"{c}_{i}", f"S{c}{i}", c, i * 10, "+") for c, n in counts.items() for i in range(n)]


def test_default_chromosome_split_is_deterministic_and_near_target():
    counts = {f"chr{i}": 2000 - 70 * i for i in range(1, 23)} | {"chrX": 800, "chrY": 60}
    genes = _genes_on(counts)
    splits = assign_gene_splits(genes, SplitConfig())
    assert splits == assign_gene_splits(list(reversed(genes)), SplitConfig())
    share = Counter(splits.values())
    assert abs(share["test"] / len(genes) - 0.2) < 0.03 and abs(share["val"] / len(genes) - 0.1) < 0.03
    per_chrom = {}
    for g in genes:  # whole chromosomes
        per_chrom.setdefault(g.chrom, set()).add(splits[g.gene_id])
    assert all(len(v) == 1 for v in per_chrom.values())


def test_default_split_with_few_chromosomes_uses_position_blocks():
    genes = _genes_on({"chr1": 60, "chr2": 40})
    assert default_split_chroms(genes) is None
    splits = assign_gene_splits(genes, SplitConfig())
    assert Counter(splits.values()) == {"train": 70, "val": 10, "test": 20}
    assert all(splits[g.gene_id] == "train" for g in genes if g.chrom == "chr1")


def test_default_split_never_empties_train():
    genes = _genes_on({"chrA": 100, "chrB": 1, "chrC": 1})
    val_test = default_split_chroms(genes)
    assert val_test is None or "chrA" not in val_test[0] | val_test[1]


@pytest.mark.parametrize(("cfg", "needle"), [
    (SplitConfig(val_chroms=("chr9",)), "no gene lies on chromosome 'chr9'"),
    (SplitConfig(val_chroms=("chr1",), test_chroms=("1",)), "both val_chroms and test_chroms"),
    (SplitConfig(val_chroms=("chr1",), test_chroms=("chr2",)), "no chromosome for training"),
])
def test_bad_chromosome_splits(cfg, needle):
    with pytest.raises(GtaInputError, match=needle):
        assign_gene_splits(_genes_on({"chr1": 3, "chr2": 3}), cfg)


def test_individual_split_is_seeded_and_order_free():
    samples = [f"NA{i}" for i in range(50)]
    cfg = SplitConfig(test_individual_fraction=0.2, seed=1)
    train, test = split_individuals(samples, cfg)
    assert len(test) == 10 and not set(train) & set(test) and len(train) + len(test) == 50
    assert split_individuals(list(reversed(samples)), cfg) == (train, test)
    assert split_individuals(samples, SplitConfig(seed=2))[1] != test
    assert split_individuals(["a", "b"], SplitConfig(test_individual_fraction=0.01))[1] != []
    assert split_individuals(samples, SplitConfig(test_individual_fraction=0.0))[1] == []


def test_individual_splits_use_samples_with_genotypes(tmp_path):
    vs = [f"NA{18500 + i}" for i in range(6)] + ["EXTRA1"]
    ds = open_dataset(make_dataset(tmp_path / "d", with_vcf=True, vcf_samples=vs))
    train, test = ds.individual_splits()
    assert sorted(train + test) == sorted(vs[:6]) and len(test) == 1


def test_fingerprint_changes_with_content_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("GTA_CACHE_DIR", str(tmp_path / "cache"))
    p = make_dataset(tmp_path / "d", with_vcf=True)
    fp = open_dataset(p).fingerprint()
    assert len(fp) == 16 and fp == open_dataset(p).fingerprint()
    assert (tmp_path / "cache" / "file_hashes.json").exists()
    with_expr = open_dataset(p).fingerprint(include_expression=True)
    assert with_expr != fp
    (tmp_path / "d" / "expression.txt").write_text((tmp_path / "d" / "expression.txt").read_text() + "\n")
    assert open_dataset(p).fingerprint() == fp  # expression is not part of the feature identity
    gtf = tmp_path / "d" / "genes.gtf"
    gtf.write_text(gtf.read_text() + "# changed\n")
    assert open_dataset(p).fingerprint() != fp


def test_tss_past_chromosome_end_is_skipped(tmp_path):
    genes = default_genes() + [GeneSpec("ENSG90000000011.1", "FAR", "chr4", 2990, 9000, "-")]
    ds = open_dataset(make_dataset(tmp_path / "d", genes=genes))
    assert len(ds.genes) == 10
    assert ds.skipped == {f"genes: {SKIP_TSS_PAST_END}": 1}


def test_tss_past_chromosome_end_warns_of_a_build_mix_up(tmp_path, caplog):
    """A TSS beyond its chromosome's end cannot happen with the FASTA's own build: the skip is said out loud."""
    genes = default_genes() + [GeneSpec("ENSG90000000011.1", "FAR", "chr4", 2990, 9000, "-")]
    ds = open_dataset(make_dataset(tmp_path / "d", genes=genes))
    with caplog.at_level("WARNING", logger="gta.io.dataset"):
        assert len(ds.genes) == 10
    text = caplog.text
    assert "1 genes have a TSS past the end" in text and "FAR" in text and "builds" in text and "GRCh38" in text


def test_annotation_build_header_against_the_fasta_build(tmp_path):
    """A GENCODE GTF says its build in a #!genome-build header; hg38 (chr1 248,956,422 bp) with a GRCh37
    annotation is refused, naming both builds; matching or unknown builds pass."""
    from gta.io.build import annotation_build, check_builds, fasta_build, normalise_build

    gtf = tmp_path / "gencode.v19.gtf"
    gtf.write_text("##description: evidence-based annotation\n#!genome-build GRCh37.p13\n#!genome-version GRCh37\n"
                   'chr1\tHAVANA\tgene\t11869\t14409\t.\t+\t.\tgene_id "ENSG1.1";\n')
    assert annotation_build(gtf) == "GRCh37"
    gff = tmp_path / "refseq.gff3"
    gff.write_text("##gff-version 3\n##genome-build NCBI GRCh38.p14\n")
    assert annotation_build(gff) == "GRCh38"
    assert annotation_build(tmp_path / "none.gtf") is None
    hg38, hg19 = {"chr1": 248956422, "chr2": 242193529}, {"1": 249250621}
    assert fasta_build(hg38) == "GRCh38" and fasta_build(hg19) == "GRCh37" and fasta_build({"chr1": 5000}) is None
    assert normalise_build("hg38") == "GRCh38" and normalise_build("something else") is None
    with pytest.raises(GtaInputError, match="GRCh37 .* GRCh38") as e:
        check_builds(gtf, hg38, "hg38.fa")
    assert "GENCODE v44" in str(e.value) and "248,956,422" in str(e.value)
    check_builds(gtf, hg19)  # same build
    check_builds(gtf, {"chr1": 5000})  # a FASTA of no known build: nothing to compare
    check_builds(gff, hg38)


def test_build_mix_up_stops_opening_the_genes(tmp_path):
    """The check runs where the genes are read (every command), on the manifest's own files."""
    manifest = make_dataset(tmp_path / "d", gene_format="gtf")
    gtf = manifest.parent / "genes.gtf"
    gtf.write_text("#!genome-build GRCh37.p13\n" + gtf.read_text())
    import gta.io.build as build

    ds = open_dataset(manifest)
    build.CHR1_LENGTH[CHROM_LENGTHS["chr1"]] = "GRCh38"  # pretend the fixture genome is hg38
    try:
        with pytest.raises(GtaInputError, match="genome-build header"):
            _ = ds.genes
    finally:
        del build.CHR1_LENGTH[CHROM_LENGTHS["chr1"]]


def test_no_gene_on_the_genome_is_an_error(tmp_path):
    genes = [GeneSpec("ENSG1", "A", "NC_000001.11", 10, 20, "+")]
    ds = open_dataset(make_dataset(tmp_path / "d", genes=genes, with_expression=False))
    with pytest.raises(GtaInputError, match="no gene lies on a chromosome") as e:
        _ = ds.genes
    assert "NC_000001.11" in str(e.value) and "chr1" in str(e.value)


def test_vcf_header_without_contig_lines(tmp_path):
    p = write_vcf(tmp_path / "v.vcf", {"chr1": 10}, ["S1", "S2"], [("chr1", 3, "A", "C", ["0|1", "1|1"])],
                  contig_lines=False)
    samples, contigs = vcf_header(p)
    assert samples == ["S1", "S2"] and contigs == []
    bad = tmp_path / "bad.vcf"
    bad.write_text("this is not a vcf\n")
    with pytest.raises(GtaInputError, match="bad.vcf"):
        vcf_header(bad)


def test_annotations_fall_back_to_the_shipped_human_table(tmp_path):
    genes = default_genes()[:2] + [GeneSpec("ENSG00000141510.17", "TP53", "chr2", 100, 900, "-")]
    ds = open_dataset(make_dataset(tmp_path / "d", genes=genes))
    assert set(ds.annotations) == {"ENSG00000141510"}  # the made-up genes have no annotation
    assert ds.annotations["ENSG00000141510"]["symbol"] == "TP53"
