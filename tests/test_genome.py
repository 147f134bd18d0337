import os
import pickle
from pathlib import Path

import numpy as np
import pytest

import gta.io.genome as genome_mod
from fixtures import random_sequence, write_fasta, write_gzip_plain
from gta.errors import GtaInputError
from gta.geometry import Geometry
from gta.io.genome import ChromNames, Genome, clean_sequence, one_hot, reverse_complement
from gta.io.types import Gene

SEQS = {"chr1": random_sequence(1000, 1), "chr2": random_sequence(503, 2), "chrM": random_sequence(77, 3)}
GEOM = Geometry(input_len=256, bin_size=16, output_bins=8)


def _expected(chrom: str, start: int, end: int) -> str:
    s = SEQS[chrom]
    return "".join(s[i] if 0 <= i < len(s) else "N" for i in range(start, end))


@pytest.fixture(params=["plain", "bgzip"])
def genome(request, tmp_path):
    bgzip = request.param == "bgzip"
    path = write_fasta(tmp_path / ("g.fa.gz" if bgzip else "g.fa"), SEQS, line_width=61, bgzip=bgzip, index=False)
    g = Genome(path)
    yield g
    g.close()


def test_index_is_built_and_lengths_match(genome):
    assert genome.fai_path.exists()
    assert genome.lengths == {k: len(v) for k, v in SEQS.items()}
    assert genome.total_bp == sum(map(len, SEQS.values()))


@pytest.mark.parametrize(("chrom", "start", "end"), [
    ("chr1", 0, 1000), ("chr1", 123, 456), ("chr1", -7, 5), ("chr1", 995, 1010), ("chr2", -20, 530),
    ("chrM", 76, 77), ("chr2", 600, 610),
])
def test_fetch_base_by_base_with_n_padding(genome, chrom, start, end):
    got = genome.fetch(chrom, start, end)
    assert len(got) == end - start
    assert got == _expected(chrom, start, end)


def test_fetch_resolves_aliases(genome):
    assert genome.fetch("1", 10, 20) == SEQS["chr1"][10:20]
    assert genome.fetch("MT", 0, 5) == SEQS["chrM"][:5]
    with pytest.raises(GtaInputError, match="chr9"):
        genome.fetch("chr9", 0, 5)


@pytest.mark.parametrize("strand", ["+", "-"])
@pytest.mark.parametrize("tss", [0, 500, 999])
def test_gene_window_both_strands_and_chromosome_ends(genome, strand, tss):
    gene = Gene("G1", "G", "chr1", tss, strand)
    win = genome.gene_window(gene, GEOM)
    assert len(win) == GEOM.input_len
    start, end = GEOM.window(tss, strand)
    ref = _expected("chr1", start, end)
    assert win == (ref if strand == "+" else reverse_complement(ref))
    # the TSS base sits at the window centre, complemented on the minus strand
    centre = win[GEOM.tss_index]
    assert centre == (SEQS["chr1"][tss] if strand == "+" else reverse_complement(SEQS["chr1"][tss]))
    for i in (0, 17, GEOM.input_len - 1):  # index -> genome map agrees with the window, base by base
        pos = GEOM.index_to_genome(i, tss, strand)
        base = SEQS["chr1"][pos] if 0 <= pos < 1000 else "N"
        assert win[i] == (base if strand == "+" else reverse_complement(base))


def test_soft_masking_and_iupac(tmp_path):
    g = Genome(write_fasta(tmp_path / "m.fa", {"c": "acgtNNRYKMacGT" + "A" * 20}, line_width=7))
    assert g.fetch("c", 0, 14) == "ACGTNNNNNNACGT"
    st = g.scan()
    assert (st.total_bp, st.soft_masked, st.n, st.acgt) == (34, 6, 6, 22)


def test_one_hot_and_clean_sequence():
    x = one_hot("ACGTNR")
    assert x.shape == (6, 4) and x.dtype == np.float32
    assert (x[:4] == np.eye(4)).all() and (x[4:] == 0).all()
    assert clean_sequence("acgtRyN") == "ACGTNNN"
    assert reverse_complement("AACGTN") == "NACGTT"


def test_chrom_names_prefer_exact_names():
    names = ChromNames(["1", "chr1", "MT"])
    assert names.resolve("1") == "1" and names.resolve("chr1") == "chr1"
    assert names.resolve("chrM") == "MT" and names.resolve("CHR1") == "chr1"
    assert names.resolve("2") is None


def test_crlf_fasta(tmp_path):
    g = Genome(write_fasta(tmp_path / "c.fa", {"a": SEQS["chr2"]}, crlf=True, index=False))
    assert g.fetch("a", 0, 503) == SEQS["chr2"]


def test_plain_gzip_gets_bgzip_hint(tmp_path):
    p = write_gzip_plain(tmp_path / "g.fa.gz", b">a\nACGT\n")
    with pytest.raises(GtaInputError, match="bgzip") as e:
        Genome(p)
    assert "g.fa.gz" in str(e.value)


@pytest.mark.parametrize("name", ["genome.fa.gz", "hg38.fa.gz", "x.bgzf.fa.gz", "genome.fa", "genome.gz",
                                  "my genome.fasta.gz"])
def test_plain_gzip_hint_never_writes_to_its_input(tmp_path, name):
    """The fix once read `zcat genome.fa.gz | bgzip -c > genome.fa.gz`: pasted for a file of that name, the shell
    truncates the input before zcat reads it. Every command in the hint writes a new name; run as given (where
    bgzip and samtools exist) it leaves the input intact and makes a FASTA gta opens."""
    import shlex
    import shutil
    import subprocess

    p = write_gzip_plain(tmp_path / name, b">a\nACGTACGTNN\n")
    before = p.read_bytes()
    with pytest.raises(GtaInputError) as e:
        Genome(p)
    hint = e.value.hint
    commands = [part.strip() for chunk in hint.split(": ", 1)[1].split(";")[0].split(", or a plain one:")
                for part in chunk.split("&&")]
    targets = []
    for cmd in commands:
        words = shlex.split(cmd)
        if ">" in words:
            targets.append(words[words.index(">") + 1])
    assert len(targets) == 2 and name not in targets, hint
    if not (shutil.which("bgzip") and shutil.which("samtools")):
        pytest.skip("bgzip/samtools not installed: the hint is checked by its text only")
    for cmd in (hint.split("write a BGZF copy: ", 1)[1].split(", or a plain one: ")[0],
                hint.split(", or a plain one: ", 1)[1].split("; then")[0]):
        subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=tmp_path, check=True, capture_output=True)
    assert p.read_bytes() == before
    for target in targets:
        assert Genome(tmp_path / target).fetch("a", 0, 10) == "ACGTACGTNN"


def test_missing_index_in_read_only_folder(tmp_path, monkeypatch):
    p = write_fasta(tmp_path / "g.fa", SEQS, index=False)
    monkeypatch.setattr(genome_mod, "_folder_writable", lambda folder: False)
    with pytest.raises(GtaInputError, match="samtools faidx") as e:
        Genome(p)
    assert str(p) in str(e.value)
    assert not (tmp_path / "g.fa.fai").exists()


def test_stale_index_is_rebuilt(tmp_path):
    p = write_fasta(tmp_path / "g.fa", {"a": "ACGT" * 10})
    write_fasta(tmp_path / "g.fa", {"a": "ACGT" * 10, "b": "GGGG"}, index=False)
    fai = tmp_path / "g.fa.fai"
    os.utime(fai, (1, 1))  # older than the FASTA
    assert Genome(p).lengths == {"a": 40, "b": 4}


@pytest.mark.parametrize(("name", "content", "needle"), [
    ("unequal", b">a\nACGT\nAC\nACGT\n>b\nGG\n", "line 3"),
    ("blank", b">a\nACGT\n\nACGT\n", "line 3"),
    ("empty_record", b">a\n>b\nACGT\n", "no sequence"),
    ("junk", bytes(range(256)) * 3, "malformed FASTA"),
    ("no_header", b"ACGT\nACGT\n", "before the first"),
    ("duplicate", b">a\nAC\n>a\nGG\n", "duplicate"),
    ("empty", b"", "malformed FASTA"),
])
def test_malformed_fasta_names_the_file(tmp_path, name, content, needle):
    p = tmp_path / f"{name}.fa"
    p.write_bytes(content)
    with pytest.raises(GtaInputError, match=needle) as e:
        Genome(p)
    assert f"{name}.fa" in e.value.one_line()


def test_junk_bytes_inside_a_record(tmp_path):
    p = tmp_path / "j.fa"
    p.write_bytes(b">a\nACGTAC\nAC\x00\x07TT\nACG\n")
    g = Genome(p)
    with pytest.raises(GtaInputError, match="not a sequence letter"):
        g.fetch("a", 0, 15)
    with pytest.raises(GtaInputError, match="j.fa"):
        g.scan()
    assert g.fetch("a", 0, 6) == "ACGTAC"  # clean parts stay readable


def test_truncated_plain_fasta_with_old_index(tmp_path):
    p = write_fasta(tmp_path / "t.fa", {"a": "ACGT" * 100})
    p.write_bytes(p.read_bytes()[:200])
    os.utime(p.with_name("t.fa.fai"), None)  # index looks fresh
    with pytest.raises(GtaInputError, match="truncated"):
        Genome(p)


@pytest.mark.parametrize(("cut", "needle"), [
    (-10, "chr3 has 68 bases, its index said 77"),  # the last line cut short
    (600, "chr1 has 571 bases, its index said 1,000; sequence(s) chr2, chr3 in the old index are gone"),
])
def test_truncated_fasta_with_stale_index_is_an_error(tmp_path, cut, needle):
    seqs = {"chr1": SEQS["chr1"], "chr2": SEQS["chr2"], "chr3": SEQS["chrM"]}
    p = write_fasta(tmp_path / "t.fa", seqs)
    full_index = (tmp_path / "t.fa.fai").read_bytes()
    p.write_bytes(p.read_bytes()[:cut])
    os.utime(tmp_path / "t.fa.fai", (1, 1))  # the index of the whole file, older than the cut FASTA
    for _ in range(2):  # the old index is put back, still older: a second open says the same
        with pytest.raises(GtaInputError, match="looks truncated") as e:
            Genome(p)
        assert needle in e.value.message and e.value.path == str(p)
        assert "samtools faidx" in e.value.one_line()
        assert (tmp_path / "t.fa.fai").read_bytes() == full_index
        assert (tmp_path / "t.fa.fai").stat().st_mtime < p.stat().st_mtime


def test_stale_index_of_another_genome_is_rebuilt(tmp_path):
    p = write_fasta(tmp_path / "g.fa", SEQS)
    write_fasta(tmp_path / "g.fa", {"chr9": "ACGT" * 10}, index=False)  # replaced, not cut: other names
    os.utime(tmp_path / "g.fa.fai", (1, 1))
    assert Genome(p).lengths == {"chr9": 40}


def test_fasta_without_final_newline(tmp_path):
    p = tmp_path / "n.fa"
    p.write_bytes(b">a\n" + SEQS["chr1"][:120].encode() + b"\n" + SEQS["chr1"][120:180].encode())  # full lines
    g = Genome(p)
    assert g.lengths == {"a": 180} and g.fetch("a", 0, 180) == SEQS["chr1"][:180]
    assert g.scan().total_bp == 180
    assert Genome(p).lengths == {"a": 180}  # and once more with the index now in place


def test_truncated_bgzip(tmp_path):
    p = write_fasta(tmp_path / "t.fa.gz", {"a": random_sequence(5000)}, bgzip=True)
    p.write_bytes(p.read_bytes()[:-40])
    with pytest.raises(GtaInputError, match="truncated"):
        Genome(p)


def test_pickle_reopens(genome):
    clone = pickle.loads(pickle.dumps(genome))
    assert clone.fetch("chr2", 5, 25) == SEQS["chr2"][5:25]


CORPORA = Path(__file__).parent / "corpora" / "root"


@pytest.mark.skipif(not CORPORA.exists(), reason="real-world corpora absent (scripts/fetch_test_corpora.sh)")
def test_real_world_fasta_files(tmp_path):
    import shutil

    src = CORPORA / "usr/share/doc/python-pyfaidx-examples/examples"
    for name in ("genes.fasta", "genes.fasta.lower", "genes.fasta.gz", "chr17.hg19.part.fa"):
        shutil.copy(src / name, tmp_path / name)  # the index is written beside the copy
    upper, lower = Genome(tmp_path / "genes.fasta"), Genome(tmp_path / "genes.fasta.lower")
    bgz = Genome(tmp_path / "genes.fasta.gz")
    assert len(upper.contigs) == 20 and upper.lengths == lower.lengths == bgz.lengths
    for name, n in upper.lengths.items():
        assert upper.fetch(name, 0, n) == lower.fetch(name, 0, n) == bgz.fetch(name, 0, n)
    assert lower.scan().soft_masked == upper.total_bp
    assert Genome(tmp_path / "chr17.hg19.part.fa").scan().total_bp == 40000
    shutil.copy(CORPORA / "usr/share/doc/python-pysam/tests/pysam_data/faidx_ex1.fa.gz", tmp_path / "ex1.fa.gz")
    with pytest.raises(GtaInputError, match="bgzip"):  # Debian gzipped it: plain gzip
        Genome(tmp_path / "ex1.fa.gz")
