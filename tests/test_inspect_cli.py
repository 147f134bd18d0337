"""`gta sequence` and `gta variants` on a small data set (CliRunner on the typer app; errors through main())."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from fixtures import make_dataset, write_vcf
from gta.cli import app
from gta.errors import GtaInputError
from gta.geometry import Geometry
from gta.io.genome import Genome, reverse_complement
from gta.io.types import Gene

GEO = {"input_len": 64, "bin_size": 8, "output_bins": 4}
SAMPLES = ["NA18500", "NA18501", "NA18502"]
BETA_TSS = 1999  # chr1, minus strand (fixtures.default_genes)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ds")
    manifest = make_dataset(folder, samples=SAMPLES, geometry=GEO)
    genome = Genome(folder / "genome.fa")
    seq = genome.fetch("chr1", 0, 6000)
    snv_pos = BETA_TSS - 5  # 5 bp downstream of the minus-strand TSS
    snv_alt = "A" if seq[snv_pos] != "A" else "C"
    ins_pos = BETA_TSS + 3  # 3 bp upstream
    records = [
        ("chr1", snv_pos + 1, seq[snv_pos], snv_alt, ["0|1", "1|1", "0/1"]),
        ("chr1", ins_pos + 1, seq[ins_pos], seq[ins_pos] + "GGG", ["1|0", "0|0", "./."]),
    ]
    vcf = write_vcf(folder / "variants.vcf.gz", {"chr1": 6000, "chr2": 5000, "chr3": 4000, "chr4": 3000},
                    SAMPLES, records)
    raw = yaml.safe_load(manifest.read_text())
    raw["variants"] = vcf.name
    manifest.write_text(yaml.safe_dump(raw))
    return {"manifest": manifest, "genome": genome, "seq": seq, "snv": (snv_pos, snv_alt), "ins": ins_pos}


def run(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res.output


def fasta(text):
    lines = text.strip().splitlines()
    return lines[0], "".join(lines[1:])


def test_reference_window_as_fasta(data):
    header, seq = fasta(run("sequence", "--data", data["manifest"], "--gene", "BETA"))
    gene = Gene("ENSG90000000002", "BETA", "chr1", BETA_TSS, "-")
    assert seq == data["genome"].gene_window(gene, Geometry(**GEO))
    for field in (">ENSG90000000002|BETA", "chr1:1969-2032", "strand=-", "sample=reference", "key=ref",
                  "variants=0", "tss_index=32", "length=64"):
        assert field in header, header


def test_haplotype_window_header_and_bases(data):
    pos, alt = data["snv"]
    header, seq = fasta(run("sequence", "-d", data["manifest"], "-g", "ENSG90000000002.1", "-s", "NA18501",
                            "-H", "2"))
    idx = Geometry(**GEO).genome_to_index(pos, BETA_TSS, "-")
    assert seq[idx] == reverse_complement(alt) and idx == 32 + 5
    assert f"chr1:{pos + 1}:" in header and "variants=1[" in header and "@+5" in header  # downstream: positive
    assert "sample=NA18501" in header and "haplotype=2" in header
    # haplotype 1 of NA18500 carries the upstream insertion: the far upstream end is trimmed
    header, seq = fasta(run("sequence", "-d", data["manifest"], "-g", "BETA", "-s", "NA18500", "-H", "1"))
    assert "indel_shift_upstream=+3" in header
    s = data["seq"]  # plus strand: 32 bases downstream, TSS, then upstream with GGG inserted after 2002
    assert seq == reverse_complement(s[1968:2003] + "GGG" + s[2003:2029])


def test_flank_and_out(data, tmp_path):
    text = run("sequence", "-d", data["manifest"], "-g", "BETA", "--flank", "5")
    header, seq = fasta(text)
    assert len(seq) == 11 and "window=27-38" in header
    out = tmp_path / "w.fa"
    assert "wrote" in run("sequence", "-d", data["manifest"], "-g", "BETA", "--flank", "5", "--out", out)
    assert out.read_text() == text
    out.write_text(">mine\nACGT\n")  # an existing file is kept unless --overwrite
    res = CliRunner().invoke(app, ["sequence", "-d", str(data["manifest"]), "-g", "BETA", "--out", str(out)])
    assert res.exit_code != 0 and isinstance(res.exception, GtaInputError) and "already exists" in str(res.exception)
    assert out.read_text() == ">mine\nACGT\n"
    run("sequence", "-d", data["manifest"], "-g", "BETA", "--flank", "5", "--out", out, "--overwrite")
    assert out.read_text() == text


def test_variants_table(data):
    text = run("variants", "-d", data["manifest"], "-g", "BETA", "--unphased", "ref")  # (auto: NA18502 is unphased)
    pos, _ = data["snv"]
    line = next(x for x in text.splitlines() if x.startswith(f"chr1:{pos + 1}"))
    assert line.split()[1] == "+5"  # downstream on the minus strand
    assert "0|1 -> h2" in line and "1|1 -> h1+h2" in line and "0/1 (unphased: reference) -> -" in line
    ins = next(x for x in text.splitlines() if x.startswith(f"chr1:{data['ins'] + 1}"))
    assert "./. (missing: reference) -> -" in ins and ins.split()[1] == "-3"  # upstream
    assert "# policy:" in text and "unphased" in text
    only = run("variants", "-d", data["manifest"], "-g", "BETA", "-s", "NA18502", "--unphased", "as-phased")
    line = next(x for x in only.splitlines() if x.startswith(f"chr1:{pos + 1}"))
    assert "0/1 (unphased: read as phased) -> h2" in line and "NA18500" not in only


def _main(*args):
    code = "import sys; from gta.cli import main; sys.argv = ['gta'] + sys.argv[1:]; main()"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)


def test_errors_are_one_line_exit_2(data):
    res = _main("sequence", "--data", data["manifest"], "--gene", "BETTA")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "BETA" in res.stderr
    res = _main("sequence", "--data", data["manifest"], "--gene", "BETA", "--sample", "NA1850")
    assert res.returncode == 2 and "close names" in res.stderr and res.stderr.startswith("gta: error:")
