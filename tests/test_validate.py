import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pysam
import pytest

from fixtures import CHROM_LENGTHS, default_sequences, make_dataset, write_vcf
from gta.cli import main
from gta.io.validate import WARN, UnusableDatasetError, gene_regions, validate


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["gta", *args])
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_usable_dataset(tmp_path, monkeypatch, capsys):
    p = make_dataset(tmp_path / "d", with_vcf=True)
    rep = validate(p)
    assert rep.ok and rep.exit_code == 0
    assert rep.stats["genes"] == 10 and rep.stats["contigs"] == 4 and rep.stats["vcf_samples"] == 6
    assert rep.stats["total_bp"] == sum(CHROM_LENGTHS.values()) and rep.stats["genes_with_expression"] == 10
    code, out, _ = run_cli(monkeypatch, capsys, "validate", "--data", str(p), "--json", str(tmp_path / "r.json"))
    assert code == 0 and "usable" in out and "genes with a TSS" in out
    assert json.loads((tmp_path / "r.json").read_text())["ok"] is True


def test_expression_sample_missing_from_vcf_is_an_error(tmp_path, monkeypatch, capsys):
    vs = [f"NA{18500 + i}" for i in range(5)]  # NA18505 has expression but no genotypes
    p = make_dataset(tmp_path / "d", with_vcf=True, vcf_samples=vs)
    with pytest.raises(UnusableDatasetError) as e:
        validate(p)
    (err,) = e.value.report.errors  # every check ran: the report rides along
    assert err.name == "sample overlap expression/VCF" and "NA18505" in err.detail
    assert e.value.path == str(tmp_path / "d" / "expression.txt")
    code, stdout, stderr = run_cli(monkeypatch, capsys, "validate", "--data", str(p))
    lines = [x for x in stderr.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1, stderr
    assert "sample overlap" in stdout  # the report table is still printed before the error
    line = lines[0]
    assert line.startswith(f"gta: error: {tmp_path / 'd' / 'expression.txt'}: 1 of 6 expression sample(s)"), line
    assert str(tmp_path / "d" / "variants.vcf.gz") in line and "(first: NA18505)" in line
    assert "use the same sample ids in both files" in line


def test_vcf_records_in_the_gene_windows_are_read(tmp_path):
    p = make_dataset(tmp_path / "d", with_vcf=True)
    rep = validate(p)
    assert rep.ok and rep.stats["vcf_records_read"] == 1
    row = next(c for c in rep.checks if c.name == "variant records")
    assert "in the gene windows" in row.detail


def test_gene_regions_merge_windows_and_cut_pieces():
    from gta.geometry import Geometry
    from gta.io.types import Gene

    geo = Geometry(input_len=256, bin_size=16, output_bins=8)
    genes = [Gene("A", "A", "chr1", 1000, "+"), Gene("B", "B", "chr1", 10, "-"), Gene("C", "C", "chr1", 1100, "+"),
             Gene("D", "D", "chr2", 500, "-")]
    got = list(gene_regions(genes, geo, chunk_bp=200))
    # B: [-117, 139) clamped at 0; A [872, 1128) and C [972, 1228) merge into [872, 1228); pieces of 200 bases
    assert got == [("chr1", 0, 139), ("chr1", 872, 1072), ("chr1", 1072, 1228), ("chr2", 373, 573),
                   ("chr2", 573, 629)]


def test_vcf_contig_names_that_match_nothing(tmp_path):
    p = make_dataset(tmp_path / "d")
    samples = [f"NA{18500 + i}" for i in range(6)]
    write_vcf(tmp_path / "d" / "v.vcf.gz", {"NC_000001.11": 6000}, samples,
              [("NC_000001.11", 5, "A", "C", ["0|1"] * 6)])
    with open(p, "a") as fh:
        fh.write("variants: v.vcf.gz\n")
    rep = validate(p)
    assert [c.name for c in rep.errors] == ["chromosome names FASTA/VCF"]


def test_plain_gzip_vcf_is_read_with_a_warning(tmp_path):
    p = make_dataset(tmp_path / "d")
    samples = [f"NA{18500 + i}" for i in range(6)]
    plain = write_vcf(tmp_path / "d" / "v.vcf", CHROM_LENGTHS, samples, [("chr1", 5, "A", "C", ["0|1"] * 6)])
    (tmp_path / "d" / "v.vcf.gz").write_bytes(gzip.compress(plain.read_bytes()))
    with open(p, "a") as fh:
        fh.write("variants: v.vcf.gz\n")
    rep = validate(p)
    assert rep.ok and any(c.status == WARN and "bgzip" in c.detail for c in rep.checks)
    assert rep.stats["vcf_records_read"] == 1  # its records are read like any other VCF's


def test_skipped_genes_are_reported(tmp_path):
    p = make_dataset(tmp_path / "d")
    gtf = tmp_path / "d" / "genes.gtf"
    gtf.write_text(gtf.read_text() + 'chrUn\tT\tgene\t1\t9\t.\t+\t.\tgene_id "ENSG77"; gene_name "U";\n')
    rep = validate(p)
    assert rep.ok
    assert rep.skipped == {"genes: chromosome not in genome": 1}
    assert any(c.name == "chromosome names FASTA/genes" and "chrUn" in c.detail for c in rep.checks)


def _bad_vcf(folder: Path, bgzip: bool) -> int:
    """A VCF (bgzipped + tabix-indexed, or plain text) whose last record lacks a sample column, named in the
    manifest; returns the line number of that record."""
    seqs = default_sequences()
    samples = [f"NA{18500 + i}" for i in range(6)]
    recs = [(c, pos, seqs[c][pos - 1], "A" if seqs[c][pos - 1] != "A" else "C", [gt] * 6)
            for c, pos, gt in (("chr1", 1500, "0|1"), ("chr2", 300, "0|0"), ("chr3", 2200, "1|0"))]
    plain = write_vcf(folder / "variants.vcf", CHROM_LENGTHS, samples, recs)
    lines = plain.read_text().splitlines()
    lines[-1] = lines[-1].rsplit("\t", 1)[0]  # the last record lacks a column
    plain.write_text("\n".join(lines) + "\n")
    name = "variants.vcf"
    if bgzip:
        name += ".gz"
        pysam.tabix_compress(str(plain), str(folder / name), force=True)
        pysam.tabix_index(str(folder / name), preset="vcf", force=True)
        plain.unlink()
    with open(folder / "dataset.yaml", "a") as fh:
        fh.write(f"variants: {name}\n")
    return len(lines)


def _break(folder: Path, kind: str) -> str:
    """Damage one file of a made data set; returns the text the error must hold (file name, and line if known)."""
    fa, gtf, expr = folder / "genome.fa", folder / "genes.gtf", folder / "expression.txt"
    if kind.startswith("fasta") and kind != "fasta_truncated":
        for ext in (".fai", ".gzi"):
            Path(str(fa) + ext).unlink(missing_ok=True)
    if kind == "fasta_truncated":  # cut mid-sequence; the .fai of the whole file stays, older than the FASTA
        fa.write_bytes(fa.read_bytes()[:9000])
        os.utime(str(fa) + ".fai", (1, 1))
        return "genome.fa: looks truncated: chr2 has"
    if kind == "vcf_column_count":
        return f"variants.vcf.gz:{_bad_vcf(folder, bgzip=True)}: malformed record: 14 tab-separated columns"
    if kind == "vcf_text_column_count":
        return f"variants.vcf:{_bad_vcf(folder, bgzip=False)}: malformed record: 14 tab-separated columns"
    if kind == "fasta_unequal_lines":
        lines = fa.read_text().splitlines()
        lines[3] = lines[3][:-5]
        fa.write_text("\n".join(lines) + "\n")
    elif kind == "fasta_empty_record":
        fa.write_text(">empty\n" + fa.read_text())
    elif kind == "fasta_binary":
        fa.write_bytes(bytes(range(256)) * 10)
    elif kind == "fasta_junk_in_record":
        data = bytearray(fa.read_bytes())
        data[500] = 0x07
        fa.write_bytes(bytes(data))
    elif kind == "fasta_plain_gzip":
        fa.write_bytes(gzip.compress(fa.read_bytes()))
    elif kind == "gtf_field_count":
        gtf.write_text(gtf.read_text() + "chr1\tT\tgene\t5\n")
    elif kind == "gtf_coordinate":
        gtf.write_text(gtf.read_text().replace("\t1001\t", "\tone\t", 1))
    elif kind == "gtf_no_gene_id":
        gtf.write_text(gtf.read_text() + 'chr1\tT\tgene\t5\t9\t.\t+\t.\tgene_name "X";\n')
    elif kind == "gtf_duplicate":
        lines = gtf.read_text().splitlines()
        gtf.write_text("\n".join(lines + [lines[2]]) + "\n")
    elif kind == "expression_text":
        lines = expr.read_text().splitlines()
        cells = lines[2].split("\t")
        cells[5] = "high"
        lines[2] = "\t".join(cells)
        expr.write_text("\n".join(lines) + "\n")
    elif kind == "expression_duplicate":
        lines = expr.read_text().splitlines()
        expr.write_text("\n".join(lines + [lines[1]]) + "\n")
    elif kind == "manifest":
        (folder / "dataset.yaml").write_text("genome: genome.fa\ngenes: [\n")
        return "dataset.yaml"
    return {"f": "genome.fa", "g": "genes.gtf", "e": "expression.txt"}[kind[0]]


KINDS = ["fasta_unequal_lines", "fasta_empty_record", "fasta_binary", "fasta_junk_in_record", "fasta_plain_gzip",
         "fasta_truncated", "gtf_field_count", "gtf_coordinate", "gtf_no_gene_id", "gtf_duplicate",
         "expression_text", "expression_duplicate", "manifest", "vcf_column_count", "vcf_text_column_count"]


@pytest.mark.parametrize("kind", KINDS)
def test_malformed_files_exit_2_with_one_line(tmp_path, monkeypatch, capfd, kind):
    p = make_dataset(tmp_path / "d")
    name = _break(tmp_path / "d", kind)
    code, _, err = run_cli(monkeypatch, capfd, "validate", "--data", str(p))  # capfd: htslib's own lines too
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("gta: error:") and name in lines[0], err


def test_entry_point_subprocess(tmp_path):
    p = make_dataset(tmp_path / "d")
    _break(tmp_path / "d", "gtf_field_count")
    gta = Path(sys.executable).with_name("gta")
    r = subprocess.run([str(gta), "validate", "--data", str(p), "--quick"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "genes.gtf:" in r.stderr and "9 tab-separated fields" in r.stderr


# -- issue #14: VCFs that validate used to call usable ----------------------------------------------------------
SAMPLES6 = [f"NA{18500 + i}" for i in range(6)]


def _with_vcf(tmp_path, records, index=True, rename=None, policy=None, name="v.vcf.gz"):
    """The fixture data set with a VCF of these records (``rename``: contig names as the VCF writes them)."""
    p = make_dataset(tmp_path / "d")
    contigs = {(rename or {}).get(c, c): n for c, n in CHROM_LENGTHS.items()}
    recs = [((rename or {}).get(c, c), *rest) for c, *rest in records]
    write_vcf(tmp_path / "d" / name, contigs, SAMPLES6, recs, index=index)
    with open(p, "a") as fh:
        fh.write(f"variants: {name}\n")
        if policy:
            fh.write(f"variant_policy: {policy}\n")
    return p


def _snvs(step=3, sep="|", chrom="chr1"):
    seq = default_sequences(0)[chrom]
    gts = [f"0{sep}1", f"1{sep}0", f"1{sep}1", f"0{sep}0", f"0{sep}1", f"1{sep}0"]
    return [(chrom, pos, seq[pos - 1], "A" if seq[pos - 1] != "A" else "C", gts) for pos in range(1, 6000, step)]


def _one_error_line(monkeypatch, capsys, manifest) -> str:
    code, _, err = run_cli(monkeypatch, capsys, "validate", "--quick", "--data", str(manifest))
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1, err
    return lines[0]


def test_truncated_vcf_is_not_usable(tmp_path, monkeypatch, capsys):
    p = _with_vcf(tmp_path, _snvs(step=2), index=False)
    vcf = tmp_path / "d" / "v.vcf.gz"
    data = vcf.read_bytes()
    vcf.write_bytes(data[: int(len(data) * 0.6)])
    line = _one_error_line(monkeypatch, capsys, p)
    assert line.startswith(f"gta: error: {vcf}: truncated: no BGZF end-of-file block"), line


def test_unsorted_vcf_is_found_with_its_line(tmp_path, monkeypatch, capsys):
    recs = _snvs(step=500)
    recs[2], recs[3] = recs[3], recs[2]
    p = _with_vcf(tmp_path, recs, index=False)
    line = _one_error_line(monkeypatch, capsys, p)
    vcf = tmp_path / "d" / "v.vcf.gz"
    header = 2 + len(CHROM_LENGTHS) + 1  # fileformat, FORMAT, contigs, #CHROM
    assert line.startswith(f"gta: error: {vcf}:{header + 4}: records are not sorted: chr1:1001 follows chr1:1501")


def test_stale_index_is_not_usable(tmp_path, monkeypatch, capsys):
    p = _with_vcf(tmp_path, _snvs(step=50))
    vcf = tmp_path / "d" / "v.vcf.gz"
    t = vcf.stat().st_mtime
    os.utime(str(vcf) + ".tbi", (t - 100, t - 100))
    line = _one_error_line(monkeypatch, capsys, p)
    assert "v.vcf.gz.tbi is older than the file" in line and "tabix -f -p vcf v.vcf.gz" in line


def test_unphased_vcf_is_refused_by_default_and_counted_under_ref(tmp_path, monkeypatch, capsys):
    p = _with_vcf(tmp_path, _snvs(step=50, sep="/"))
    line = _one_error_line(monkeypatch, capsys, p)
    assert "unphased VCF: 4 of 6 samples (first: NA18500)" in line and "{unphased: as-phased}" in line
    p = _with_vcf(tmp_path / "b", _snvs(step=50, sep="/"), policy="{unphased: ref}")
    rep = validate(p, scan_genome=False)
    row = next(c for c in rep.checks if c.name == "variant records")
    assert rep.ok and row.status == WARN and rep.stats["vcf_unphased"] > 0
    assert f"{rep.stats['vcf_unphased']:,} unphased heterozygous genotype(s) read as the reference" in row.detail


def test_haploid_and_symbolic_records_are_read_and_counted(tmp_path):
    seq = default_sequences(0)["chr1"]
    recs = [("chr1", 1500, seq[1499], "<DEL>", ["0|1"] * 6), ("chr1", 1510, seq[1509], "*", ["1", "0|1"] * 3),
            ("chr1", 1520, seq[1519], "A" if seq[1519] != "A" else "C", ["1", "0"] * 3)]
    rep = validate(_with_vcf(tmp_path, recs), scan_genome=False)
    row = next(c for c in rep.checks if c.name == "variant records")
    assert rep.ok and row.status == WARN and rep.stats["vcf_unsupported_allele"] == 6 + 3 * 2 + 3
    assert "symbolic or breakend ALT" in row.detail


def test_alias_and_symbol_matches_are_shown_as_such(tmp_path):
    rename = {c: c.removeprefix("chr") for c in CHROM_LENGTHS}
    p = _with_vcf(tmp_path, _snvs(step=500), rename=rename)
    expr = tmp_path / "d" / "expression.txt"
    lines = expr.read_text().splitlines()
    cols = lines[1].split("\t")
    cols[0] = "ENSG_NOT_IN_THE_GENE_FILE"  # matched by its symbol (ALPHA) only
    expr.write_text("\n".join([lines[0], "\t".join(cols), *lines[2:]]) + "\n")
    rep = validate(p, scan_genome=False)
    rows = {c.name: c for c in rep.checks}
    vcf_row = rows["chromosome names FASTA/VCF"]
    assert vcf_row.status == "info"
    assert "4 only through an alias (1 -> chr1, 2 -> chr2, 3 -> chr3 ...)" in vcf_row.detail
    assert rep.stats["vcf_contigs_by_alias"] == 4
    expr_row = rows["genes with expression"]
    assert expr_row.status == WARN and "9 by gene id, 1 only by gene symbol" in expr_row.detail
    assert rep.stats["genes_with_expression_by_symbol"] == 1
    assert rep.ok


def test_plain_gzip_vcf_hint_writes_a_new_file(tmp_path):
    """The fix `validate` prints for a plain-gzip VCF never writes to the file it reads."""
    from pathlib import Path

    from gta.io.variants import plain_gzip_fix

    for name in ("variants.vcf.gz", "FILE.vcf.gz", "calls.bgz", "x.vcf.gz"):
        fix = plain_gzip_fix(Path(name))
        target = fix.split("> ")[1].split(" ")[0]
        assert fix.startswith(f"recompress: zcat {name} |") and target != name and target.endswith(".bgzf.vcf.gz")
