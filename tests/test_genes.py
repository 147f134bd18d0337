from pathlib import Path

import pytest

from fixtures import GeneSpec, default_genes, gtf_text, write_gene_tsv, write_gff3, write_gtf
from gta.errors import GtaInputError
from gta.io.genes import SKIP_CONTIG, read_genes, strip_version
from gta.io.genome import ChromNames

GENOME = ChromNames(["chr1", "chr2", "chr3", "chr4"])


def _by_id(table):
    return {g.gene_id: g for g in table.genes}


def _check_default(table, canonical: bool = True):
    genes = _by_id(table)
    assert len(genes) == 10
    for spec in default_genes():
        g = genes[spec.gene_id.split(".")[0]]
        assert (g.symbol, g.chrom, g.strand) == (spec.symbol, spec.chrom, spec.strand)
        if spec.symbol == "GAMMA" and canonical:
            assert g.tss == 3100  # the Ensembl_canonical transcript, not the gene start
        else:
            assert g.tss == spec.tss
    assert genes["ENSG90000000002"].tss == 1999  # minus strand: end - 1
    assert genes["ENSG90000000004"].tss == 5999  # last base of chr1
    assert genes["ENSG90000000001"].tss == 0


@pytest.mark.parametrize("gz", [False, True])
def test_gencode_gtf(tmp_path, gz):
    table = read_genes(write_gtf(tmp_path / ("g.gtf.gz" if gz else "g.gtf"), default_genes(), gz=gz), GENOME)
    _check_default(table)
    assert table.format == "gtf" and table.skipped == {}
    genes = _by_id(table)
    assert genes["ENSG90000000003"].gene_type == "lncRNA"
    assert genes["ENSG90000000001"].end == 400


def test_gtf_without_gene_lines(tmp_path):
    table = read_genes(write_gtf(tmp_path / "g.gtf", default_genes(), with_gene_lines=False), GENOME)
    _check_default(table)


@pytest.mark.parametrize("style", ["ensembl", "gencode", "refseq"])
def test_gff3_styles(tmp_path, style):
    table = read_genes(write_gff3(tmp_path / "g.gff3", default_genes(), style), GENOME)
    assert table.format == "gff3"
    genes = {g.symbol: g for g in table.genes}
    assert len(genes) == 10
    for spec in default_genes():
        g = genes[spec.symbol]
        assert g.tss == (3100 if spec.symbol == "GAMMA" else spec.tss)
        assert g.gene_type == spec.gene_type
        expected_id = spec.symbol if style == "refseq" else spec.gene_id.split(".")[0]
        assert g.gene_id == expected_id


def test_refseq_mane_select_tag_and_dbxref_fallback(tmp_path):
    spec = GeneSpec("X", "SHOX", "chr1", 100, 900, "-", transcripts=[(100, 900, ()), (100, 700, ("MANE Select",))])
    (g,) = read_genes(write_gff3(tmp_path / "r.gff3", [spec], "refseq"), GENOME).genes
    assert (g.gene_id, g.symbol) == ("SHOX", "SHOX")
    assert g.tss == 699  # MANE Select transcript on the minus strand
    p = tmp_path / "noid.gff3"
    p.write_text("chr2\tRefSeq\tgene\t11\t20\t.\t+\t.\tDbxref=GeneID:7157,HGNC:HGNC:11998;Name=TP53\n")
    (g,) = read_genes(p, GENOME).genes
    assert (g.gene_id, g.symbol, g.tss) == ("7157", "TP53", 10)  # GeneID from Dbxref when there is no ID


def test_chromosome_aliases_and_skipped_contigs(tmp_path):
    specs = default_genes()[:3] + [GeneSpec("ENSG90000000099.1", "ALT", "chrUn_KI270302v1", 10, 90, "+")]
    text = gtf_text(specs).replace("chr1\t", "1\t")
    p = tmp_path / "e.gtf"
    p.write_text(text)
    table = read_genes(p, GENOME)
    assert [g.chrom for g in table.genes] == ["chr1"] * 3
    assert table.skipped == {SKIP_CONTIG: 1}
    assert table.missing_contigs == {"chrUn_KI270302v1": 1}
    assert len(read_genes(p).genes) == 4  # without a genome nothing is skipped


def test_version_stripping_keeps_par_y():
    assert strip_version("ENSG00000123.4") == "ENSG00000123"
    assert strip_version("ENSG00000182378.14_PAR_Y") == "ENSG00000182378_PAR_Y"
    assert strip_version("RP11-34P13.3") == "RP11-34P13.3"


@pytest.mark.parametrize("sep", ["\t", ","])
def test_tsv_and_csv(tmp_path, sep):
    p = write_gene_tsv(tmp_path / ("g.tsv" if sep == "\t" else "g.csv"), default_genes(), sep=sep)
    table = read_genes(p, GENOME)
    _check_default(table, canonical=False)
    assert table.format == "tsv"


def test_tsv_without_symbol_or_type(tmp_path):
    p = tmp_path / "g.tsv"
    p.write_text("gene_id\tchr\ttss\tstrand\nENSG1.2\t2\t5\t-\n")
    (g,) = read_genes(p, GENOME).genes
    assert (g.gene_id, g.symbol, g.chrom, g.tss, g.strand, g.gene_type) == ("ENSG1", "ENSG1", "chr2", 5, "-", "unknown")


def _gtf_line(chrom="chr1", feature="gene", start="11", end="20", strand="+", attrs='gene_id "G1"; gene_name "A";'):
    return "\t".join([chrom, "T", feature, start, end, ".", strand, ".", attrs])


@pytest.mark.parametrize(("lines", "line_no", "needle"), [
    ([_gtf_line(), _gtf_line(start="30", end="40")], 2, "duplicate gene id G1"),
    ([_gtf_line(), "chr1\tT\tgene\t5\t9"], 2, "9 tab-separated fields, found 5"),
    (["#c", _gtf_line(start="1e3")], 2, "not integers"),
    ([_gtf_line(attrs='gene_name "A";')], 1, "no gene_id"),
    ([_gtf_line(start="50", end="10")], 1, "bad coordinates"),
    ([_gtf_line(), "chr1 T gene 1 5 . + . gene_id x"], 2, "tab-separated"),
])
def test_gtf_errors_name_file_and_line(tmp_path, lines, line_no, needle):
    p = tmp_path / "bad.gtf"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(GtaInputError, match=needle) as e:
        read_genes(p, GENOME)
    assert e.value.line == line_no
    assert e.value.one_line().startswith(f"{p}:{line_no}:")


@pytest.mark.parametrize(("text", "needle"), [
    ("gene_id\tsymbol\tchrom\tstrand\nG\tA\tchr1\t+\n", "lacks column"),
    ("gene_id\tsymbol\tchrom\ttss\tstrand\nG\tA\tchr1\tx\t+\n", "not an integer"),
    ("gene_id\tsymbol\tchrom\ttss\tstrand\nG\tA\tchr1\t5\t.\n", "strand"),
    ("gene_id\tsymbol\tchrom\ttss\tstrand\nENSG5\tA\tchr1\t5\t+\nENSG5.2\tB\tchr1\t9\t+\n", "duplicate gene id ENSG5"),
    ("gene_id\tsymbol\tchrom\ttss\tstrand\nG\tA\tchr1\t5\n", "expected 5 fields"),
])
def test_tsv_errors(tmp_path, text, needle):
    p = tmp_path / "bad.tsv"
    p.write_text(text)
    with pytest.raises(GtaInputError, match=needle) as e:
        read_genes(p, GENOME)
    assert "bad.tsv" in e.value.one_line() and e.value.line is not None


def test_gff3_stops_at_fasta_and_unstranded_genes_are_counted(tmp_path):
    p = tmp_path / "g.gff3"
    p.write_text("##gff-version 3\nchr1\tT\tgene\t5\t50\t.\t+\t.\tID=a\nchr1\tT\tgene\t60\t90\t.\t.\t.\tID=b\n"
                 "##FASTA\n>chr1\nACGT\n")
    table = read_genes(p, GENOME)
    assert [g.gene_id for g in table.genes] == ["a"]
    assert table.skipped == {"no strand (+/-)": 1}


def test_mirbase_gff3_primary_transcripts_are_genes(tmp_path):
    """miRBase lists pri-miRNAs (no gene features); mature miRNAs derive from them and are not genes of their own."""
    p = tmp_path / "hsa.gff3"
    p.write_text("##gff-version 3\n"
                 "chr1\t.\tmiRNA_primary_transcript\t17369\t17436\t.\t-\t.\tID=MI0022705;Name=hsa-mir-6859-1\n"
                 "chr1\t.\tmiRNA\t17409\t17431\t.\t-\t.\tID=MIMAT0027618;Name=hsa-miR-6859-5p;"
                 "Derives_from=MI0022705\n"
                 "chr1\t.\tmiRNA_primary_transcript\t30366\t30503\t.\t+\t.\tID=MI0006363;Name=hsa-mir-1302-2\n")
    genes = read_genes(p).genes
    assert [(g.gene_id, g.symbol, g.strand, g.tss, g.gene_type) for g in genes] == [
        ("MI0022705", "hsa-mir-6859-1", "-", 17435, "miRNA_primary_transcript"),
        ("MI0006363", "hsa-mir-1302-2", "+", 30365, "miRNA_primary_transcript")]


def test_binary_and_broken_gzip_files(tmp_path):
    p = tmp_path / "bin.gtf"
    p.write_bytes(b"\xff\xfe\x00junk\n")
    with pytest.raises(GtaInputError, match="UTF-8"):
        read_genes(p)
    gz = write_gtf(tmp_path / "t.gtf.gz", default_genes(), gz=True)
    gz.write_bytes(gz.read_bytes()[:-30])
    with pytest.raises(GtaInputError, match="truncated"):
        read_genes(gz)


def test_empty_file(tmp_path):
    p = tmp_path / "e.gtf"
    p.write_text("# only a comment\n")
    with pytest.raises(GtaInputError, match="no genes"):
        read_genes(p)


CORPORA = Path(__file__).parent / "corpora" / "root"
GFFUTILS = CORPORA / "usr/lib/python3/dist-packages/gffutils/test/data"
TABIX = CORPORA / "usr/share/doc/python-pysam/tests/tabix_data"


@pytest.mark.skipif(not CORPORA.exists(), reason="real-world corpora absent (scripts/fetch_test_corpora.sh)")
def test_real_world_annotation_files():
    (g,) = read_genes(GFFUTILS / "gencode-v19.gtf").genes
    assert (g.gene_id, g.symbol, g.chrom, g.tss, g.strand, g.gene_type) == (
        "ENSG00000223972", "DDX11L1", "chr1", 11868, "+", "pseudogene")
    assert len(read_genes(TABIX / "example.gtf.gz").genes) == 20
    fly = {g.gene_id: g for g in read_genes(GFFUTILS / "dmel-all-no-analysis-r5.49_50k_lines.gff").genes}
    assert fly["FBgn0031208"].tss == 7528 and fly["FBgn0031208"].symbol == "CG11023"
    assert read_genes(GFFUTILS / "FBgn0031208.gtf").by_id()["FBgn0031208"].tss == 7528  # no gene lines
    for bad in ("gtf_wrong_fields.gtf.gz", "gtf_toofew_fields.gtf.gz", "gtf_toomany_fields.gtf.gz"):
        with pytest.raises(GtaInputError, match="tab-separated fields") as e:
            read_genes(TABIX / bad)
        assert e.value.line == 1
