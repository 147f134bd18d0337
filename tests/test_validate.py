import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures import CHROM_LENGTHS, make_dataset, write_vcf
from gta.cli import main
from gta.io.validate import ERROR, validate


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
    rep = validate(p)
    (err,) = rep.errors
    assert err.name == "sample overlap expression/VCF" and "NA18505" in err.detail
    code, out, _ = run_cli(monkeypatch, capsys, "validate", "--data", str(p))
    assert code == 2 and "not usable" in out


def test_vcf_contig_names_that_match_nothing(tmp_path):
    p = make_dataset(tmp_path / "d")
    samples = [f"NA{18500 + i}" for i in range(6)]
    write_vcf(tmp_path / "d" / "v.vcf.gz", {"NC_000001.11": 6000}, samples,
              [("NC_000001.11", 5, "A", "C", ["0|1"] * 6)])
    with open(p, "a") as fh:
        fh.write("variants: v.vcf.gz\n")
    rep = validate(p)
    assert [c.name for c in rep.errors] == ["chromosome names FASTA/VCF"]


def test_plain_gzip_vcf_is_an_error(tmp_path):
    p = make_dataset(tmp_path / "d")
    samples = [f"NA{18500 + i}" for i in range(6)]
    plain = write_vcf(tmp_path / "d" / "v.vcf", CHROM_LENGTHS, samples, [("chr1", 5, "A", "C", ["0|1"] * 6)])
    (tmp_path / "d" / "v.vcf.gz").write_bytes(gzip.compress(plain.read_bytes()))
    with open(p, "a") as fh:
        fh.write("variants: v.vcf.gz\n")
    rep = validate(p)
    assert any(c.status == ERROR and "bgzip" in c.detail for c in rep.checks)


def test_skipped_genes_are_reported(tmp_path):
    p = make_dataset(tmp_path / "d")
    gtf = tmp_path / "d" / "genes.gtf"
    gtf.write_text(gtf.read_text() + 'chrUn\tT\tgene\t1\t9\t.\t+\t.\tgene_id "ENSG77"; gene_name "U";\n')
    rep = validate(p)
    assert rep.ok
    assert rep.skipped == {"genes: chromosome not in genome": 1}
    assert any(c.name == "chromosome names FASTA/genes" and "chrUn" in c.detail for c in rep.checks)


def _break(folder: Path, kind: str) -> str:
    """Damage one file of a made data set; returns the name the error must mention."""
    fa, gtf, expr = folder / "genome.fa", folder / "genes.gtf", folder / "expression.txt"
    if kind.startswith("fasta"):
        for ext in (".fai", ".gzi"):
            Path(str(fa) + ext).unlink(missing_ok=True)
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
         "gtf_field_count", "gtf_coordinate", "gtf_no_gene_id", "gtf_duplicate", "expression_text",
         "expression_duplicate", "manifest"]


@pytest.mark.parametrize("kind", KINDS)
def test_malformed_files_exit_2_with_one_line(tmp_path, monkeypatch, capsys, kind):
    p = make_dataset(tmp_path / "d")
    name = _break(tmp_path / "d", kind)
    code, _, err = run_cli(monkeypatch, capsys, "validate", "--data", str(p))
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
