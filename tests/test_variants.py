"""VariantReader (formats, indexes, names, REF checks, policies) and gene_haplotypes (the window rules of
docs/haplotypes.md, as golden strings built from explicit slices of a known reference)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pysam
import pytest

from fixtures import random_sequence, write_fasta
from gta.errors import GtaInputError
from gta.geometry import Geometry
from gta.io.alleles import REF_KEY
from gta.io.genome import Genome, reverse_complement
from gta.io.haplotypes import allele_edit, gene_haplotypes, hap_key, is_anchored_indel
from gta.io.types import Gene
from gta.io.variants import HaplotypePolicy, VariantReader, locate_bad_line

SEQ = "ACGTTGCAACGGATCCTAGGCATGCCAATTGGCCTTAAGG"  # 40 bp, chrom "chr1" in the FASTA
GEO = Geometry(input_len=8, bin_size=4, output_bins=2)  # TSS at window index 4
T = 20


def vcf_text(records, samples=("S1",), contig="chr1", length=40, extra_header=""):
    head = [
        "##fileformat=VCFv4.2",
        f"##contig=<ID={contig},length={length}>" if contig else "",
        '##FILTER=<ID=q10,Description="low quality">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        extra_header,
        "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples]),
    ]
    lines = [h for h in head if h]
    for rec in records:
        chrom, pos, ref, alt, gts, *rest = rec
        filt = rest[0] if rest else "PASS"
        lines.append("\t".join([chrom, str(pos), ".", ref, alt, ".", filt, ".", "GT", *gts]))
    return "\n".join(lines) + "\n"


def write_vcf(path: Path, text: str, bgzip=True, index=True) -> Path:
    path = Path(path)
    if not bgzip:
        path.write_text(text)
        return path
    plain = path.with_name(path.name + ".txt")
    plain.write_text(text)
    pysam.tabix_compress(str(plain), str(path), force=True)
    plain.unlink()
    if index:
        pysam.tabix_index(str(path), preset="vcf", force=True)
    return path


@pytest.fixture
def genome(tmp_path):
    return Genome(write_fasta(tmp_path / "g.fa", {"chr1": SEQ}))


def one(tmp_path, genome, records, samples=("S1",), policy=None, strand="+", tss=T, geo=GEO, contig="chr1"):
    """Haplotypes of one gene from a bgzipped VCF with the given records."""
    path = write_vcf(tmp_path / "v.vcf.gz", vcf_text(records, samples, contig=contig))
    reader = VariantReader(path, genome, policy)
    return gene_haplotypes(reader, Gene("G", "G", "chr1", tss, strand), geo)


def rec(pos0: int, ref_len: int, alt: str, gt="1|1") -> tuple:
    """A record from a 0-based position; REF is read from SEQ."""
    return ("chr1", pos0 + 1, SEQ[pos0 : pos0 + ref_len], alt, [gt])


def seq_of(gh, sample="S1", hap=0):
    return gh.sequence(gh.sample_keys[sample][hap])


# -- allele edits --------------------------------------------------------------------------------------------
def test_allele_edit_drops_the_vcf_padding_base_only_for_length_changes():
    assert allele_edit(10, "A", "ATT") == (11, 11, "TT")
    assert allele_edit(10, "ACG", "A") == (11, 13, "")
    assert allele_edit(10, "AC", "GT") == (10, 12, "GT")  # MNP: whole span
    assert allele_edit(10, "AC", "G") == (10, 12, "G")  # first bases differ: whole span
    assert is_anchored_indel("ACG", "AG") and is_anchored_indel("A", "AT")
    assert not is_anchored_indel("AC", "AGT")  # htslib calls this 'other', bcftools does not let it follow


# -- golden windows, plus strand -----------------------------------------------------------------------------
def test_reference_window_is_genome_gene_window(tmp_path, genome):
    gh = one(tmp_path, genome, [rec(2, 1, "T" if SEQ[2] != "T" else "A")])  # far outside the window
    assert gh.sample_keys["S1"] == (REF_KEY, REF_KEY)
    gene = Gene("G", "G", "chr1", T, "+")
    assert gh.sequence(REF_KEY) == genome.gene_window(gene, GEO) == SEQ[16:24]


def test_snv_on_the_tss(tmp_path, genome):
    gh = one(tmp_path, genome, [rec(T, 1, "A")])
    assert seq_of(gh) == SEQ[16:20] + "A" + SEQ[21:24]
    assert gh.changed_span(gh.sample_keys["S1"][0]) == [(4, 5)]


def test_upstream_insertion_trims_the_far_end(tmp_path, genome):
    gh = one(tmp_path, genome, [rec(17, 1, SEQ[17] + "TT")])
    assert seq_of(gh) == "TT" + SEQ[18:20] + SEQ[20:24]
    assert gh.changed_span(gh.sample_keys["S1"][0]) == [(0, 2)]  # indel: runs to the far window edge
    info = gh.window_info(gh.sample_keys["S1"][0])
    assert info.shift_upstream == 2 and info.shift_downstream == 0


def test_upstream_deletion_pulls_in_bases(tmp_path, genome):
    gh = one(tmp_path, genome, [rec(16, 3, SEQ[16])])  # deletes 17, 18
    assert seq_of(gh) == SEQ[14:17] + SEQ[19:20] + SEQ[20:24]


def test_downstream_indels(tmp_path, genome):
    gh = one(tmp_path, genome, [rec(21, 1, SEQ[21] + "AAAA")])
    assert seq_of(gh) == SEQ[16:22] + "AA"
    gh = one(tmp_path, genome, [rec(21, 3, SEQ[21])])
    assert seq_of(gh) == SEQ[16:22] + SEQ[24:26]


def test_deletion_over_the_tss(tmp_path, genome):
    # anchored at 18, deletes 19-21 (the TSS, 20, among them)
    gh = one(tmp_path, genome, [rec(18, 4, SEQ[18])])
    key = gh.sample_keys["S1"][0]
    # + strand: upstream flank ends where the edit begins; the TSS index holds the first base after it
    assert gh.sequence(key) == SEQ[15:19] + SEQ[22:26]
    assert gh.window_info(key).tss_in_edit
    assert gh.changed_span(key) == [(0, 8)]
    # - strand: mirror image, the TSS index holds the first base before it (next in transcription direction)
    gh = one(tmp_path, genome, [rec(18, 4, SEQ[18])], strand="-")
    assert seq_of(gh) == reverse_complement(SEQ[15:19] + SEQ[22:26])
    assert seq_of(gh)[4] == reverse_complement(SEQ[18])


def test_insertion_anchored_on_the_tss_base(tmp_path, genome):
    r = rec(T, 1, SEQ[T] + "GG")
    # + strand: the TSS base stays; the inserted bases follow it (downstream)
    assert seq_of(one(tmp_path, genome, [r])) == SEQ[16:21] + "GG" + SEQ[21:22]
    # - strand: the same bases lie upstream of the TSS in transcription direction
    minus = seq_of(one(tmp_path, genome, [r], strand="-"))
    assert minus == reverse_complement(SEQ[17:21] + "GG" + SEQ[21:23])
    assert minus[4] == reverse_complement(SEQ[T])


def test_substitution_changing_length_on_the_tss(tmp_path, genome):
    alt = "GT" if SEQ[T] != "G" else "CT"
    gh = one(tmp_path, genome, [rec(T, 1, alt)])
    assert seq_of(gh) == SEQ[16:20] + alt + SEQ[21:23]


def test_window_edges(tmp_path, genome):
    edge_l, edge_r = T - GEO.tss_index, T + GEO.input_len - GEO.tss_index - 1  # 16, 23
    for pos, inside in [(edge_l, True), (edge_l - 1, False), (edge_r, True), (edge_r + 1, False)]:
        gh = one(tmp_path, genome, [rec(pos, 1, "A" if SEQ[pos] != "A" else "C")])
        key = gh.sample_keys["S1"][0]
        assert (key != REF_KEY) == inside, pos
        if inside:
            assert gh.changed_span(key) == [(pos - edge_l, pos - edge_l + 1)]
    # a deletion ending right before the window start does not change it
    gh = one(tmp_path, genome, [rec(edge_l - 3, 3, SEQ[edge_l - 3])])
    assert gh.sample_keys["S1"][0] == REF_KEY
    # one base further right it removes the window's first reference base
    gh = one(tmp_path, genome, [rec(edge_l - 2, 3, SEQ[edge_l - 2])])
    assert seq_of(gh) == SEQ[edge_l - 2] + SEQ[edge_l + 1 : 24]


def test_minus_strand_is_reverse_complement(tmp_path, genome):
    gh = one(tmp_path, genome, [rec(22, 1, "A" if SEQ[22] != "A" else "C")], strand="-")
    start, end = GEO.window(T, "-")
    plus = SEQ[start:22] + ("A" if SEQ[22] != "A" else "C") + SEQ[23:end]
    assert seq_of(gh) == reverse_complement(plus)
    idx = GEO.genome_to_index(22, T, "-")
    assert gh.changed_span(gh.sample_keys["S1"][0]) == [(idx, idx + 1)]


def test_chromosome_ends_pad_with_n(tmp_path, genome):
    gh = one(tmp_path, genome, [rec(0, 1, SEQ[0] + "A")], tss=2)
    assert seq_of(gh) == "N" + SEQ[0] + "A" + SEQ[1] + SEQ[2:6]
    assert gh.window_info(gh.sample_keys["S1"][0]).pad_upstream == 1
    gh = one(tmp_path, genome, [rec(38, 1, "T" if SEQ[38] != "T" else "A")], tss=38)
    assert seq_of(gh).endswith("NN") and len(seq_of(gh)) == 8


def test_indel_far_upstream_beyond_the_fetch_margin(tmp_path):
    seq = random_sequence(20_000, seed=3)
    g = Genome(write_fasta(tmp_path / "big.fa", {"chr1": seq}))
    geo = Geometry(input_len=64, bin_size=8, output_bins=8)
    tss = 15_000
    # a 6 kb deletion ending right before the TSS: the upstream flank comes from beyond it
    records = [("chr1", tss - 6001 + 1, seq[tss - 6001 : tss], seq[tss - 6001], ["1|0"])]
    path = write_vcf(tmp_path / "v.vcf.gz", vcf_text(records, contig="chr1", length=len(seq)))
    gh = gene_haplotypes(VariantReader(path, g), Gene("G", "G", "chr1", tss, "+"), geo)
    hap1 = gh.sequence(gh.sample_keys["S1"][0])
    assert hap1 == seq[tss - 6001 - 31 : tss - 6000] + seq[tss : tss + 32]
    assert gh.sample_keys["S1"][1] == REF_KEY


# -- keys, sharing, overlaps ---------------------------------------------------------------------------------
def test_keys_are_shared_and_hash_the_alleles(tmp_path, genome):
    alt = "A" if SEQ[18] != "A" else "C"
    gh = one(tmp_path, genome, [rec(18, 1, alt, "x")[:4] + (["1|0", "0|1", "0|0"],)], samples=("A", "B", "C"))
    ka = gh.sample_keys["A"][0]
    assert gh.sample_keys["B"] == (REF_KEY, ka) and gh.sample_keys["C"] == (REF_KEY, REF_KEY)
    assert len(ka) == 12 and int(ka, 16) >= 0
    assert ka == hap_key([f"chr1:19:{SEQ[18]}:{alt}"])
    assert gh.key_counts == {REF_KEY: 4, ka: 2}
    assert [a.label for a in gh.alleles[ka]] == [f"chr1:19:{SEQ[18]}:{alt}"]
    assert gh.alleles[ka][0].offset == -2


def test_overlap_rule_first_in_file_order_wins(tmp_path, genome):
    records = [
        ("chr1", 18, SEQ[17:21], SEQ[17], ["1|1"]),  # deletes 18-20
        ("chr1", 20, SEQ[19], "A" if SEQ[19] != "A" else "C", ["1|0"]),  # SNV inside the deletion
        ("chr1", 23, SEQ[22], "A" if SEQ[22] != "A" else "C", ["0|1"]),
    ]
    gh = one(tmp_path, genome, records)
    assert gh.skipped["overlap"] == 1
    k1, k2 = gh.sample_keys["S1"]
    assert len(gh.alleles[k1]) == 1 and len(gh.alleles[k2]) == 2
    with pytest.raises(GtaInputError, match="overlapping"):
        one(tmp_path, genome, records, policy=HaplotypePolicy(overlap="error"))


def test_indel_anchored_on_the_last_base_of_a_substitution_is_kept(tmp_path, genome):
    snv = "A" if SEQ[18] != "A" else "C"
    records = [("chr1", 19, SEQ[18], snv, ["1|1"]), ("chr1", 19, SEQ[18], SEQ[18] + "TT", ["1|0"])]
    gh = one(tmp_path, genome, records)
    assert seq_of(gh, hap=0) == snv + "TT" + SEQ[19:24]  # like bcftools: the SNV base, then the insertion
    assert gh.skipped["overlap"] == 0


def test_sample_subset_and_unknown_sample(tmp_path, genome):
    path = write_vcf(tmp_path / "v.vcf.gz", vcf_text([rec(18, 1, "A" if SEQ[18] != "A" else "C")[:4]
                                                      + (["1|0", "0|1"],)], samples=("NA12878", "NA12891")))
    gene = Gene("G", "G", "chr1", T, "+")
    gh = gene_haplotypes(VariantReader(path, genome), gene, GEO, samples=["NA12891"])
    assert list(gh.sample_keys) == ["NA12891"]
    with pytest.raises(GtaInputError, match="NA12878"):
        gene_haplotypes(VariantReader(path, genome), gene, GEO, samples=["NA12788"])
    with pytest.raises(GtaInputError, match="close names: NA12878"):
        VariantReader(path, genome, HaplotypePolicy(samples=["NA12878x"]))
    r = VariantReader(path, genome, HaplotypePolicy(samples=["NA12891"]))
    assert r.samples == ["NA12891"]
    assert gene_haplotypes(r, gene, GEO).sample_keys == gh.sample_keys


# -- policies ------------------------------------------------------------------------------------------------
def _policy_case(tmp_path, genome, gts, policy, alts=None):
    alt = alts or ("A" if SEQ[18] != "A" else "C")
    samples = tuple(f"S{i}" for i in range(len(gts)))
    return one(tmp_path, genome, [("chr1", 19, SEQ[18], alt, gts)], samples=samples, policy=policy)


def test_unphased_policies(tmp_path, genome):
    gts = ["0/1", "1/1", "1|0"]
    gh = _policy_case(tmp_path, genome, gts, HaplotypePolicy(unphased="ref"))
    assert gh.sample_keys["S0"] == (REF_KEY, REF_KEY)  # unphased het: reference, counted
    assert REF_KEY not in gh.sample_keys["S1"]  # unphased hom: unambiguous
    assert gh.skipped["unphased"] == 1
    gh = _policy_case(tmp_path, genome, gts, HaplotypePolicy(unphased="as-phased"))
    assert gh.sample_keys["S0"][0] == REF_KEY and gh.sample_keys["S0"][1] != REF_KEY
    assert gh.skipped["unphased_as_phased"] == 1
    with pytest.raises(GtaInputError, match="unphased genotype for sample S0 at chr1:19"):
        _policy_case(tmp_path, genome, gts, HaplotypePolicy(unphased="error"))


def test_missing_policies_and_haploid_calls(tmp_path, genome):
    gts = [".|1", "./.", "1"]
    gh = _policy_case(tmp_path, genome, gts, HaplotypePolicy())
    assert gh.sample_keys["S0"][0] == REF_KEY and gh.sample_keys["S0"][1] != REF_KEY
    assert gh.sample_keys["S1"] == (REF_KEY, REF_KEY)
    assert gh.skipped["missing"] == 3
    assert REF_KEY not in gh.sample_keys["S2"]  # haploid call: both haplotypes
    with pytest.raises(GtaInputError, match="missing genotype for sample S0"):
        _policy_case(tmp_path, genome, gts, HaplotypePolicy(missing="error"))
    # a half-missing unphased call is missing data first: missing='error' raises whatever the unphased policy
    for unphased in ("ref", "as-phased"):
        with pytest.raises(GtaInputError, match="missing genotype for sample S1"):
            _policy_case(tmp_path, genome, ["0|0", "1/."], HaplotypePolicy(missing="error", unphased=unphased))


def test_multiallelic_split_and_error(tmp_path, genome):
    a, b = [x for x in "ACGT" if x != SEQ[18]][:2]
    gh = _policy_case(tmp_path, genome, ["1|2"], HaplotypePolicy(), alts=f"{a},{b}")
    k1, k2 = gh.sample_keys["S0"]
    assert gh.alleles[k1][0].alt == a and gh.alleles[k2][0].alt == b
    with pytest.raises(GtaInputError, match="multi-allelic record at chr1:19"):
        _policy_case(tmp_path, genome, ["1|2"], HaplotypePolicy(multiallelic="error"), alts=f"{a},{b}")


def test_multiallelic_ref_reads_the_reference_counts_and_warns(tmp_path, genome, caplog):
    a, b = [x for x in "ACGT" if x != SEQ[18]][:2]
    snv = "A" if SEQ[21] != "A" else "C"
    records = [("chr1", 19, SEQ[18], f"{a},{b}", ["1|2", "2|0"]), ("chr1", 22, SEQ[21], snv, ["1|0", "0|1"]),
               ("chr1", 23, SEQ[22], f"{a},{b}", ["0|1", "1|1"])]
    records.sort(key=lambda r: r[1])
    caplog.set_level("WARNING", logger="gta.io.variants")
    gh = one(tmp_path, genome, records, samples=("S0", "S1"), policy=HaplotypePolicy(multiallelic="ref"))
    assert gh.skipped["multiallelic"] == 2  # records, as for 'filtered'
    (k1, k2), (j1, j2) = gh.sample_keys["S0"], gh.sample_keys["S1"]
    assert [x.label for x in gh.alleles[k1]] == [f"chr1:22:{SEQ[21]}:{snv}"] and k2 == REF_KEY
    assert j1 == REF_KEY and [x.label for x in gh.alleles[j2]] == [f"chr1:22:{SEQ[21]}:{snv}"]
    warned = [r.getMessage() for r in caplog.records if "multi-allelic" in r.getMessage()]
    assert len(warned) == 1 and "chr1:19, chr1:23" in warned[0] and "multiallelic='ref'" in warned[0]
    split = one(tmp_path, genome, records, samples=("S0", "S1"))  # the default still splits
    assert "multiallelic" not in split.skipped and len(split.alleles[split.sample_keys["S0"][0]]) == 2
    with pytest.raises(GtaInputError, match="multiallelic='split' or 'ref'"):
        one(tmp_path, genome, records, samples=("S0", "S1"), policy=HaplotypePolicy(multiallelic="error"))


def test_filter_pass_and_symbolic_alleles(tmp_path, genome):
    alt = "A" if SEQ[18] != "A" else "C"
    records = [("chr1", 19, SEQ[18], alt, ["1|1"], "q10"), ("chr1", 21, SEQ[20], "<DEL>", ["1|1"])]
    gh = one(tmp_path, genome, records, policy=HaplotypePolicy(filter_pass=True))
    assert gh.sample_keys["S1"] == (REF_KEY, REF_KEY)
    assert gh.skipped["filtered"] == 1 and gh.skipped["unsupported_allele"] == 2
    gh = one(tmp_path, genome, records)
    assert gh.sample_keys["S1"][0] != REF_KEY


def test_policy_values_are_checked():
    with pytest.raises(GtaInputError, match="unphased='maybe'"):
        HaplotypePolicy(unphased="maybe")
    assert HaplotypePolicy(samples=["a", "b"]).samples == ("a", "b")


# -- REF and chromosome names --------------------------------------------------------------------------------
def test_ref_mismatch_counted_or_strict(tmp_path, genome):
    wrong = "A" if SEQ[18] != "A" else "C"
    records = [("chr1", 19, wrong, "G" if wrong != "G" else "T", ["1|1"])]
    gh = one(tmp_path, genome, records)
    assert gh.skipped["ref_mismatch"] == 1 and gh.sample_keys["S1"] == (REF_KEY, REF_KEY)
    with pytest.raises(GtaInputError, match=r"v\.vcf\.gz: REF . at chr1:19 does not match"):
        one(tmp_path, genome, records, policy=HaplotypePolicy(ref_mismatch="error"))


@pytest.mark.parametrize(("fasta_name", "vcf_name"), [("chr1", "1"), ("1", "chr1"), ("chrM", "MT")])
def test_chromosome_names_are_harmonised(tmp_path, fasta_name, vcf_name):
    g = Genome(write_fasta(tmp_path / "g.fa", {fasta_name: SEQ}))
    alt = "A" if SEQ[T] != "A" else "C"
    path = write_vcf(tmp_path / "v.vcf.gz", vcf_text([(vcf_name, T + 1, SEQ[T], alt, ["1|0"])], contig=vcf_name))
    reader = VariantReader(path, g)
    gh = gene_haplotypes(reader, Gene("G", "G", fasta_name, T, "+"), GEO)
    assert seq_of(gh)[4] == alt
    assert gh.alleles[gh.sample_keys["S1"][0]][0].chrom == fasta_name
    assert reader.vcf_name(fasta_name) == vcf_name


def test_no_common_chromosome_is_an_error(tmp_path, genome):
    path = write_vcf(tmp_path / "v.vcf.gz", vcf_text([("chr7", 5, "A", "C", ["1|0"])], contig="chr7", length=99))
    with pytest.raises(GtaInputError, match="no chromosome of the VCF"):
        VariantReader(path, genome).region("chr1", 0, 40)


# -- formats and indexes -------------------------------------------------------------------------------------
def _alt_records():
    return [rec(18, 1, "A" if SEQ[18] != "A" else "C", "1|0"), rec(21, 2, SEQ[21], "0|1")]


def test_plain_bgzipped_unindexed_and_bcf_agree(tmp_path, genome):
    text = vcf_text(_alt_records())
    gene = Gene("G", "G", "chr1", T, "+")
    plain = write_vcf(tmp_path / "a.vcf", text, bgzip=False)
    noidx = write_vcf(tmp_path / "b.vcf.gz", text, index=False)
    bcf = tmp_path / "c.bcf"
    with pysam.VariantFile(str(noidx)) as src, pysam.VariantFile(str(bcf), "wb", header=src.header) as dst:
        for r in src:
            dst.write(r)
    results = []
    for p in (plain, noidx, bcf):
        gh = gene_haplotypes(VariantReader(p, genome), gene, GEO)
        results.append([gh.sequence(k) for k in gh.sample_keys["S1"]])
    assert results[0] == results[1] == results[2]
    assert results[0][0] != results[0][1]
    assert (tmp_path / "b.vcf.gz.tbi").exists() and (tmp_path / "c.bcf.csi").exists()
    assert not (tmp_path / "a.vcf.gz").exists()  # the plain file's indexed copy lives in a temporary folder


def test_plain_gzip_is_read_through_a_bgzf_copy(tmp_path, genome, caplog):
    text = vcf_text(_alt_records(), samples=("S1", "S2")).replace("\t1|0\n", "\t1|0\t1|1\n")
    text = text.replace("\t0|1\n", "\t0|1\t0|0\n")
    p = tmp_path / "x.vcf.gz"
    p.write_bytes(gzip.compress(text.encode()))
    bgz = write_vcf(tmp_path / "y.vcf.gz", text)
    gene = Gene("G", "G", "chr1", T, "+")
    caplog.set_level("WARNING", logger="gta.io.variants")
    reader = VariantReader(p, genome)
    assert reader.kind == "gzip" and reader.header_contigs == ["chr1"]
    gh, want = gene_haplotypes(reader, gene, GEO), gene_haplotypes(VariantReader(bgz, genome), gene, GEO)
    assert gh.sample_keys == want.sample_keys and REF_KEY not in gh.sample_keys["S1"]
    assert {k: gh.sequence(k) for k in gh.alleles} == {k: want.sequence(k) for k in want.alleles}
    assert any("plain gzip, not BGZF" in r.getMessage() and "bgzip -c" in r.getMessage() for r in caplog.records)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["g.fa", "g.fa.fai", "x.vcf.gz", "y.vcf.gz",
                                                            "y.vcf.gz.tbi"]  # the copy is temporary
    assert sum(len(c) for c in reader.iter_regions()) == 2  # sequential scans read the gzip directly


def test_plain_gzip_that_is_not_a_vcf_is_refused(tmp_path, genome):
    p = tmp_path / "x.vcf.gz"
    p.write_bytes(gzip.compress(b"hello\tworld\n"))
    with pytest.raises(GtaInputError, match=r"x\.vcf\.gz: gzip-compressed, but not a VCF inside"):
        VariantReader(p, genome)
    p.write_bytes(gzip.compress(b""))
    with pytest.raises(GtaInputError, match="empty"):
        VariantReader(p, genome)


def test_empty_and_foreign_files(tmp_path, genome):
    (tmp_path / "e.vcf").write_text("")
    with pytest.raises(GtaInputError, match="empty"):
        VariantReader(tmp_path / "e.vcf", genome)
    (tmp_path / "f.vcf").write_text("hello\tworld\n")
    with pytest.raises(GtaInputError, match="not a VCF"):
        VariantReader(tmp_path / "f.vcf", genome)
    with pytest.raises(GtaInputError, match="not found"):
        VariantReader(tmp_path / "none.vcf.gz", genome)


def test_malformed_line_is_named(tmp_path, genome):
    text = vcf_text(_alt_records(), samples=("S1", "S2")).replace("\t1|0\n", "\t1|0\t0|0\n", 1)
    lines = text.splitlines()
    bad_line = len(lines)  # the last record has one genotype column too few
    p = write_vcf(tmp_path / "m.vcf.gz", text)
    assert locate_bad_line(p) == (bad_line, "10 tab-separated columns where the header has 11")
    with pytest.raises(GtaInputError, match=rf"m\.vcf\.gz:{bad_line}: malformed record"):
        gene_haplotypes(VariantReader(p, genome), Gene("G", "G", "chr1", T, "+"), GEO)


def test_unsorted_plain_vcf_says_sort(tmp_path, genome):
    records = list(reversed(_alt_records()))
    p = write_vcf(tmp_path / "u.vcf", vcf_text(records), bgzip=False)
    with pytest.raises(GtaInputError, match="bcftools sort"):
        VariantReader(p, genome).region("chr1", 0, 40)


def test_positions_beyond_tabix_range_use_csi(tmp_path):
    pos = 600_000_000  # > 2^29: .tbi cannot hold it
    text = vcf_text([("chrBig", pos, "A", "C", ["1|0"])], contig="chrBig", length=700_000_000)
    p = write_vcf(tmp_path / "big.vcf.gz", text, index=False)
    calls = VariantReader(p).region("chrBig", pos - 10, pos + 10)
    assert len(calls) == 1 and calls.starts[0] == pos - 1
    assert (tmp_path / "big.vcf.gz.csi").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_unindexed_in_read_only_folder(tmp_path, genome):
    (tmp_path / "ro").mkdir()
    p = write_vcf(tmp_path / "ro" / "v.vcf.gz", vcf_text([]), index=False)
    os.chmod(tmp_path / "ro", 0o555)
    try:
        with pytest.raises(GtaInputError, match="bcftools index"):
            VariantReader(p, genome).region("chr1", 0, 40)
    finally:
        os.chmod(tmp_path / "ro", 0o755)


def test_sliding_cache_gives_the_same_answers(tmp_path):
    rng = np.random.default_rng(1)
    seq = random_sequence(3000, seed=5)
    g = Genome(write_fasta(tmp_path / "g.fa", {"chr1": seq}))
    records = []
    for p0 in sorted(set(rng.integers(0, 2990, 150).tolist())):
        alt = seq[p0] + "T" if p0 % 3 == 0 else ("A" if seq[p0] != "A" else "G")
        records.append(("chr1", p0 + 1, seq[p0], alt, [f"{rng.integers(0, 2)}|{rng.integers(0, 2)}" for _ in "ab"]))
    path = write_vcf(tmp_path / "v.vcf.gz", vcf_text(records, samples=("a", "b"), length=3000))
    geo = Geometry(input_len=256, bin_size=8, output_bins=32)
    shared = VariantReader(path, g)
    for tss in range(100, 2900, 97):
        gene = Gene("G", "G", "chr1", tss, "+" if tss % 2 else "-")
        a = gene_haplotypes(shared, gene, geo)
        b = gene_haplotypes(VariantReader(path, g), gene, geo)
        assert a.sample_keys == b.sample_keys
        for key in a.alleles:
            assert a.sequence(key) == b.sequence(key)
            ref = a.sequence(REF_KEY)
            seq_k = a.sequence(key)
            outside = np.ones(geo.input_len, bool)
            for lo, hi in a.changed_span(key):
                outside[lo:hi] = False
            assert all(seq_k[i] == ref[i] for i in np.flatnonzero(outside)), (tss, key)


@pytest.mark.parametrize(
    ("pos", "ref", "alt", "tss", "window"),
    [
        (21, "C", "A", T, "TAGGAATG"),
        (18, "A", "ATT", T, "TTGGCATG"),
        (17, "TAG", "T", T, "CCTGCATG"),
        (21, "C", "CGG", T, "TAGGCGGA"),
        (19, "GGCA", "G", T, "CTAGTGCC"),
        (1, "A", "AA", 2, "NAACGTTG"),
    ],
)
def test_docs_haplotypes_table(tmp_path, genome, pos, ref, alt, tss, window):
    """The example table of docs/haplotypes.md, literally."""
    assert SEQ[16:24] == "TAGGCATG"
    gh = one(tmp_path, genome, [("chr1", pos, ref, alt, ["1|1"])], tss=tss)
    assert seq_of(gh) == window


def test_gene_on_a_chromosome_absent_from_the_vcf(tmp_path):
    g = Genome(write_fasta(tmp_path / "g.fa", {"chr1": SEQ, "chr2": SEQ}))
    path = write_vcf(tmp_path / "v.vcf.gz", vcf_text([rec(T, 1, "A")]))
    gh = gene_haplotypes(VariantReader(path, g), Gene("G", "G", "chr2", T, "+"), GEO)
    assert gh.sample_keys["S1"] == (REF_KEY, REF_KEY) and gh.skipped["contig_absent"] == 1


# -- issue #14: files that used to be read wrongly or crash the reader ----------------------------------------
def _many_records(n: int, samples=("S1", "S2"), length=10_000_000, sep="|") -> str:
    """``n`` SNVs on chrBig (no genome): enough text for several BGZF blocks of 64 KiB."""
    recs = [("chrBig", 1 + 7 * i, "A", "C", [f"0{sep}1", f"1{sep}0"][: len(samples)]) for i in range(n)]
    return vcf_text(recs, samples=samples, contig="chrBig", length=length)


@pytest.mark.parametrize("cut", ["eof-block", "mid-block"])
def test_truncated_bgzf_is_refused_in_one_line(tmp_path, capfd, cut):
    p = write_vcf(tmp_path / "t.vcf.gz", _many_records(6000), index=False)
    data = p.read_bytes()
    # without its 28-byte EOF block htslib reads every record before the cut and stops without a word
    p.write_bytes(data[:-28] if cut == "eof-block" else data[: len(data) // 2])
    with pytest.raises(GtaInputError, match="truncated: no BGZF end-of-file block") as e:
        list(VariantReader(p).iter_regions())
    assert str(p) in e.value.one_line() and "bgzip -t" in e.value.one_line()
    assert capfd.readouterr().err == ""


def test_corrupt_block_is_an_htslib_error_in_one_line(tmp_path, capfd):
    p = write_vcf(tmp_path / "c.vcf.gz", _many_records(6000), index=False)
    data = bytearray(p.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(64)  # inside a compressed block; the EOF block stays
    p.write_bytes(bytes(data))
    with pytest.raises(GtaInputError) as e:
        list(VariantReader(p).iter_regions())
    assert "\n" not in e.value.one_line() and str(p) in e.value.one_line()
    assert capfd.readouterr().err == ""  # htslib's own lines never reach the terminal


@pytest.mark.parametrize("ext", [".tbi", ".csi"])
def test_stale_index_is_refused_with_the_fix(tmp_path, ext):
    p = write_vcf(tmp_path / "s.vcf.gz", _many_records(50), index=False)
    pysam.tabix_index(str(p), preset="vcf", force=True, csi=ext == ".csi")
    index = Path(str(p) + ext)
    t = p.stat().st_mtime
    os.utime(index, (t - 60, t - 60))  # the VCF was rewritten after its index was made
    fix = "tabix -f -C -p vcf s.vcf.gz" if ext == ".csi" else "tabix -f -p vcf s.vcf.gz"
    with pytest.raises(GtaInputError, match=f"index s.vcf.gz{ext} is older than the file") as e:
        VariantReader(p).region("chrBig", 0, 1000)
    assert fix in e.value.one_line()
    os.utime(index, (t + 1, t + 1))  # rebuilt (newer): read
    assert len(VariantReader(p).region("chrBig", 0, 1000)) == 50


def test_missing_index_is_built(tmp_path):
    p = write_vcf(tmp_path / "m.vcf.gz", _many_records(50), index=False)
    assert len(VariantReader(p).region("chrBig", 0, 1000)) == 50
    assert Path(str(p) + ".tbi").exists()


def test_unsorted_bgzipped_vcf_is_found_by_the_sequential_scan(tmp_path):
    recs = [("chr1", 5, SEQ[4], "A", ["0|1"]), ("chr1", 20, SEQ[19], "A", ["0|1"]), ("chr1", 9, SEQ[8], "A", ["1|0"])]
    p = write_vcf(tmp_path / "u.vcf.gz", vcf_text(recs), index=False)
    header_lines = vcf_text([]).count("\n")
    with pytest.raises(GtaInputError, match="records are not sorted: chr1:9 follows chr1:20") as e:
        list(VariantReader(p).iter_regions())
    assert e.value.line == header_lines + 3 and "bcftools sort" in e.value.one_line()
    recs = [("chr1", 5, SEQ[4], "A", ["0|1"]), ("chr2", 2, "A", "C", ["0|1"]), ("chr1", 9, SEQ[8], "A", ["1|0"])]
    p = write_vcf(tmp_path / "u2.vcf.gz", vcf_text(recs), index=False)
    with pytest.raises(GtaInputError, match="chromosome chr1 comes back after chr2"):
        list(VariantReader(p).iter_regions())


def test_haploid_records_and_mixed_ploidy(tmp_path, genome):
    """A haploid call (chrX of a male, as 1000 Genomes writes it) is on both haplotypes, also in records where
    every call is haploid (cyvcf2 then returns 2 columns, not 3) and next to diploid calls."""
    a = "A" if SEQ[18] != "A" else "C"
    b = "A" if SEQ[21] != "A" else "C"
    recs = [("chr1", 19, SEQ[18], a, ["1", "0"]), ("chr1", 22, SEQ[21], b, ["1", "0|1"])]
    gh = one(tmp_path, genome, recs, samples=("M", "F"))
    k1, k2 = gh.sample_keys["M"]
    assert k1 == k2 != REF_KEY and len(gh.alleles[k1]) == 2
    f1, f2 = gh.sample_keys["F"]
    assert f1 == REF_KEY and [x.pos for x in gh.alleles[f2]] == [22]
    calls = VariantReader(tmp_path / "v.vcf.gz", genome).region("chr1", 0, 40)
    assert calls.gt.shape == (2, 2, 2) and calls.gt[:, 0].tolist() == [[1, 1], [1, 1]]


def test_genotype_of_more_than_two_alleles_is_an_error(tmp_path, genome):
    a = "A" if SEQ[18] != "A" else "C"
    for gts in (["0/1/1", "0|1"], ["0|1", "1|1|0"]):
        with pytest.raises(GtaInputError, match=r"genotype of 3 alleles for sample S\d at chr1:19: gta reads "
                           "diploid and haploid calls only"):
            one(tmp_path, genome, [("chr1", 19, SEQ[18], a, gts)], samples=("S0", "S1"))


def test_unphased_auto_refuses_an_unphased_sample(tmp_path, genome):
    a = "A" if SEQ[18] != "A" else "C"
    b = "A" if SEQ[21] != "A" else "C"
    recs = [("chr1", 19, SEQ[18], a, ["0/1", "0|1", "1/1"]), ("chr1", 22, SEQ[21], b, ["1/0", "1/0", "0/0"])]
    with pytest.raises(GtaInputError, match=r"unphased VCF: sample S0 has 2 unphased heterozygous genotype\(s\) "
                       "and no phased one") as e:
        one(tmp_path, genome, recs, samples=("S0", "S1", "S2"))
    assert "variant_policy: {unphased: as-phased}" in e.value.one_line()
    # S1 is phased (one unphased het among phased ones: counted), S2 has no het call: read under 'ref' rules
    gh = one(tmp_path, genome, recs, samples=("S0", "S1", "S2"), policy=HaplotypePolicy(samples=("S1", "S2")))
    assert gh.skipped["unphased"] == 1 and REF_KEY not in gh.sample_keys["S2"]
    for unphased in ("ref", "as-phased"):  # said explicitly: no check
        gh = one(tmp_path, genome, recs, samples=("S0", "S1", "S2"), policy=HaplotypePolicy(unphased=unphased))
        assert gh.skipped["unphased" if unphased == "ref" else "unphased_as_phased"] == 3


def test_symbolic_and_breakend_records_are_counted_without_htslib_noise(tmp_path, genome, capfd):
    """A VCF 4.1 structural-variant file (INFO tags its header does not define) reads in silence; its symbolic
    and breakend ALTs are the reference, counted; htslib's header warnings are counted as notes."""
    a = "A" if SEQ[9] != "A" else "C"
    text = vcf_text([("chr1", 10, SEQ[9], a, ["0|1"]), ("chr1", 16, SEQ[15], "<DEL>", ["1|1"]),
                     ("chr1", 20, SEQ[19], SEQ[19] + "[chr1:35[", ["0|1"]), ("chr1", 24, SEQ[23], "*", ["1|0"])])
    text = text.replace("VCFv4.2", "VCFv4.1").replace("\t.\tGT\t1|1", "\tSVTYPE=DEL;END=18;SVLEN=-2\tGT\t1|1")
    text = text.replace("\t.\tGT\t0|1\n", "\tSVTYPE=BND;MATEID=b1\tGT\t0|1\n")
    p = write_vcf(tmp_path / "sv.vcf.gz", text)
    reader = VariantReader(p, genome)
    calls = reader.region("chr1", 0, 40)
    assert len(calls) == 4 and calls.skipped["unsupported_allele"] == 4
    assert calls.gt[0, 0].tolist() == [0, 1]  # the SNV is read
    assert any("'SVTYPE' is not defined in the header" in k for k in reader.htslib_notes)
    assert capfd.readouterr().err == ""
