"""Small real-format data files for tests, written from scratch (FASTA + .fai through pysam, bgzip, GTF, GFF3,
gene TSV, Geuvadis matrix, VCF, manifest). Plain functions: ``from fixtures import write_fasta, make_dataset``.

Coordinates: ``GeneSpec.start``/``end`` are 0-based half-open (written 1-based into GTF/GFF3); the TSS is
``start`` on + and ``end - 1`` on -.
"""

from __future__ import annotations

import gzip
import importlib.util
import random
import socket
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pysam
import yaml

from gta.encoders import BaseEncoder, register_encoder
from gta.encoders.motif import seq_to_index


@dataclass
class GeneSpec:
    gene_id: str  # may carry a version suffix, as written into the file
    symbol: str
    chrom: str
    start: int  # 0-based
    end: int  # exclusive
    strand: str
    gene_type: str = "protein_coding"
    # (start, end, tags) per transcript; none -> one transcript spanning the gene, tagged basic
    transcripts: list[tuple[int, int, tuple[str, ...]]] = field(default_factory=list)

    @property
    def tss(self) -> int:
        return self.start if self.strand == "+" else self.end - 1


@register_encoder("interp-test-gc")
class GCCount(BaseEncoder):
    """A local test encoder: G/C and A counts per output bin (each base reaches only its own bin). Registered, so a
    store it made can be rebuilt from its attributes (``gta.encoders.rebuild``)."""

    feature_names = ["gc", "a"]  # type: ignore[assignment]
    receptive_field_bp = 1  # type: ignore[assignment]

    def encode(self, seqs):
        g = self.geometry
        idx = seq_to_index(seqs)[:, g.crop_bins * g.bin_size : (g.crop_bins + g.output_bins) * g.bin_size]
        idx = idx.reshape(len(seqs), g.output_bins, g.bin_size)
        return np.stack([((idx == 1) | (idx == 2)).sum(-1), (idx == 0).sum(-1)], axis=-1).astype(np.float32)


def load_script(relative: str):
    """A script of the repository (``scripts/X.py``, ``benchmarks/X.py``) imported as a module, for its tests."""
    path = Path(__file__).resolve().parents[1] / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def free_port() -> int:
    """A TCP port nobody listens on now, for a test's rendezvous (a fixed one collides with a parallel run)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def random_sequence(n: int, seed: int = 0, alphabet: str = "ACGT") -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(n))


def write_fasta(path: str | Path, seqs: dict[str, str], line_width: int = 60, bgzip: bool = False,
                index: bool = True, crlf: bool = False) -> Path:
    """FASTA (optionally BGZF via pysam.tabix_compress) and its .fai (+ .gzi) via pysam.faidx."""
    path = Path(path)
    eol = "\r\n" if crlf else "\n"
    lines = []
    for name, seq in seqs.items():
        lines.append(f">{name} test sequence")
        lines.extend(seq[i : i + line_width] for i in range(0, len(seq), line_width))
    text = eol.join(lines) + eol
    if bgzip:
        plain = path.with_name(path.name.removesuffix(".gz") + ".plain.tmp")
        plain.write_text(text, newline="")
        pysam.tabix_compress(str(plain), str(path), force=True)
        plain.unlink()
    else:
        path.write_bytes(text.encode())
    if index:
        pysam.faidx(str(path))
    return path


def write_gzip_plain(path: str | Path, data: bytes) -> Path:
    """Plain (non-BGZF) gzip, the kind users make with ``gzip``."""
    path = Path(path)
    with gzip.open(path, "wb") as fh:
        fh.write(data)
    return path


def _transcripts(g: GeneSpec) -> list[tuple[int, int, tuple[str, ...]]]:
    return g.transcripts or [(g.start, g.end, ("basic",))]


def gtf_text(genes: list[GeneSpec], with_gene_lines: bool = True) -> str:
    """GENCODE-style GTF: gene, transcript and exon lines with versioned ids, gene_type, gene_name, tags."""
    out = ["##description: test annotation", "##provider: GENCODE-like"]
    for g in genes:
        common = f'gene_id "{g.gene_id}"; gene_type "{g.gene_type}"; gene_name "{g.symbol}";'
        if with_gene_lines:
            out.append(f"{g.chrom}\tTEST\tgene\t{g.start + 1}\t{g.end}\t.\t{g.strand}\t.\t{common} level 2;")
        for k, (s, e, tags) in enumerate(_transcripts(g), start=1):
            tid = f"{g.gene_id.split('.')[0].replace('G', 'T', 1)}{k:02d}.1"
            tag_text = "".join(f' tag "{t}";' for t in tags)
            tx = f'{common} transcript_id "{tid}"; transcript_type "{g.gene_type}";{tag_text}'
            out.append(f"{g.chrom}\tTEST\ttranscript\t{s + 1}\t{e}\t.\t{g.strand}\t.\t{tx}")
            out.append(f"{g.chrom}\tTEST\texon\t{s + 1}\t{min(e, s + 50)}\t.\t{g.strand}\t.\t{tx} exon_number 1;")
    return "\n".join(out) + "\n"


def write_gtf(path: str | Path, genes: list[GeneSpec], gz: bool = False, with_gene_lines: bool = True) -> Path:
    path = Path(path)
    text = gtf_text(genes, with_gene_lines).encode()
    if gz:
        write_gzip_plain(path, text)
    else:
        path.write_bytes(text)
    return path


def gff3_text(genes: list[GeneSpec], style: str = "ensembl") -> str:
    """GFF3 in Ensembl (ID=gene:..., biotype), GENCODE (gene_id, gene_type) or RefSeq (ID=gene-SYM, Dbxref,
    gene_biotype) style, with mRNA children through Parent and exons below them."""
    out = ["##gff-version 3"]
    for i, g in enumerate(genes):
        if style == "ensembl":
            gid = f"gene:{g.gene_id.split('.')[0]}"
            attrs = f"ID={gid};Name={g.symbol};biotype={g.gene_type};gene_id={g.gene_id.split('.')[0]};version=1"
        elif style == "gencode":
            gid = g.gene_id
            attrs = f"ID={gid};gene_id={g.gene_id};gene_type={g.gene_type};gene_name={g.symbol}"
        elif style == "refseq":
            gid = f"gene-{g.symbol}"
            attrs = (f"ID={gid};Dbxref=GeneID:{1000 + i},HGNC:HGNC:{5000 + i};Name={g.symbol};gbkey=Gene;"
                     f"gene={g.symbol};gene_biotype={g.gene_type}")
        else:
            raise ValueError(style)
        out.append(f"{g.chrom}\tTEST\tgene\t{g.start + 1}\t{g.end}\t.\t{g.strand}\t.\t{attrs}")
        for k, (s, e, tags) in enumerate(_transcripts(g), start=1):
            tid = f"tx-{g.symbol}-{k}"
            tag = ("tag=" + ",".join(t.replace(" ", "%20") for t in tags) + ";") if tags else ""
            out.append(f"{g.chrom}\tTEST\tmRNA\t{s + 1}\t{e}\t.\t{g.strand}\t.\tID={tid};Parent={gid};{tag}Name={tid}")
            out.append(f"{g.chrom}\tTEST\texon\t{s + 1}\t{min(e, s + 50)}\t.\t{g.strand}\t.\tParent={tid}")
    return "\n".join(out) + "\n"


def write_gff3(path: str | Path, genes: list[GeneSpec], style: str = "ensembl") -> Path:
    path = Path(path)
    path.write_text(gff3_text(genes, style))
    return path


def write_gene_tsv(path: str | Path, genes: list[GeneSpec], sep: str = "\t", gene_type: bool = True) -> Path:
    """gene_id, symbol, chrom, tss (0-based), strand [, gene_type]."""
    path = Path(path)
    cols = ["gene_id", "symbol", "chrom", "tss", "strand"] + (["gene_type"] if gene_type else [])
    rows = [sep.join(cols)]
    for g in genes:
        vals = [g.gene_id, g.symbol, g.chrom, str(g.tss), g.strand] + ([g.gene_type] if gene_type else [])
        rows.append(sep.join(vals))
    path.write_text("\n".join(rows) + "\n")
    return path


def expression_values(gene_ids: list[str], samples: list[str], seed: int = 0) -> np.ndarray:
    """Positive RPKM-like values [genes, samples]."""
    rng = np.random.default_rng(seed)
    base = rng.gamma(2.0, 5.0, size=(len(gene_ids), 1))
    return np.round(base * rng.lognormal(0.0, 0.3, size=(len(gene_ids), len(samples))), 4)


def write_geuvadis(path: str | Path, genes: list[GeneSpec], samples: list[str], values: np.ndarray | None = None,
                   seed: int = 0) -> Path:
    """Geuvadis layout: TargetID Gene_Symbol Chr Coord <samples...> (tab-separated; Chr without 'chr')."""
    path = Path(path)
    values = expression_values([g.gene_id for g in genes], samples, seed) if values is None else values
    rows = ["\t".join(["TargetID", "Gene_Symbol", "Chr", "Coord", *samples])]
    for g, v in zip(genes, values, strict=True):
        rows.append("\t".join([g.gene_id, g.symbol, g.chrom.removeprefix("chr"), str(g.tss + 1),
                               *[repr(float(x)) for x in v]]))
    path.write_text("\n".join(rows) + "\n")
    return path


def write_expression_tsv(path: str | Path, gene_ids: list[str], samples: list[str], values: np.ndarray,
                         sep: str = "\t") -> Path:
    path = Path(path)
    rows = [sep.join(["gene_id", *samples])]
    rows += [sep.join([gid, *[repr(float(x)) for x in v]]) for gid, v in zip(gene_ids, values, strict=True)]
    path.write_text("\n".join(rows) + "\n")
    return path


def write_vcf(path: str | Path, contigs: dict[str, int], samples: list[str],
              records: list[tuple], index: bool = True, contig_lines: bool = True) -> Path:
    """VCF 4.2 from (chrom, pos 1-based, ref, alt, genotypes like '0|1'[, id]); bgzipped + tabix-indexed when the
    path ends with .gz."""
    path = Path(path)
    lines = ["##fileformat=VCFv4.2", '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">']
    if contig_lines:
        lines += [f"##contig=<ID={c},length={n}>" for c, n in contigs.items()]
    lines.append("\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples]))
    for chrom, pos, ref, alt, gts, *vid in records:
        lines.append("\t".join([chrom, str(pos), vid[0] if vid else ".", ref, alt, ".", "PASS", ".", "GT", *gts]))
    text = "\n".join(lines) + "\n"
    if path.name.endswith(".gz"):
        plain = path.with_name(path.name.removesuffix(".gz"))
        plain.write_text(text)
        pysam.tabix_compress(str(plain), str(path), force=True)
        plain.unlink()
        if index:
            pysam.tabix_index(str(path), preset="vcf", force=True)
    else:
        path.write_text(text)
    return path


def write_manifest(folder: str | Path, filename: str = "dataset.yaml", **entries) -> Path:
    """dataset.yaml in ``folder`` with the given keys (Paths are written relative to the folder when inside it)."""
    folder = Path(folder)
    data = {}
    for k, v in entries.items():
        if v is None:
            continue
        if isinstance(v, Path):
            v = str(v.relative_to(folder)) if v.is_relative_to(folder) else str(v)
        data[k] = v
    path = folder / filename
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# -- a complete small data set ----------------------------------------------------------------------------------
CHROM_LENGTHS = {"chr1": 6000, "chr2": 5000, "chr3": 4000, "chr4": 3000}


def default_genes() -> list[GeneSpec]:
    """Ten genes on four chromosomes, both strands, one at each end of chr1, one with a canonical transcript."""
    return [
        GeneSpec("ENSG90000000001.3", "ALPHA", "chr1", 0, 400, "+"),  # starts at the chromosome start
        GeneSpec("ENSG90000000002.1", "BETA", "chr1", 1000, 2000, "-"),
        GeneSpec("ENSG90000000003.7", "GAMMA", "chr1", 3000, 3500, "+", "lncRNA",
                 transcripts=[(3000, 3500, ("basic",)), (3100, 3400, ("basic", "Ensembl_canonical"))]),
        GeneSpec("ENSG90000000004.2", "DELTA", "chr1", 5500, 6000, "-"),  # TSS on the last base of chr1
        GeneSpec("ENSG90000000005.1", "EPSILON", "chr2", 200, 900, "+"),
        GeneSpec("ENSG90000000006.1", "ZETA", "chr2", 2500, 3300, "-"),
        GeneSpec("ENSG90000000007.1", "ETA", "chr3", 100, 700, "+"),
        GeneSpec("ENSG90000000008.1", "THETA", "chr3", 2000, 2600, "-"),
        GeneSpec("ENSG90000000009.1", "IOTA", "chr4", 500, 1500, "+"),
        GeneSpec("ENSG90000000010.1", "KAPPA", "chr4", 2000, 2900, "-"),
    ]


def default_sequences(seed: int = 0) -> dict[str, str]:
    seqs = {c: random_sequence(n, seed + i) for i, (c, n) in enumerate(CHROM_LENGTHS.items())}
    s = seqs["chr2"]  # soft-masked and IUPAC stretches
    seqs["chr2"] = s[:100] + s[100:160].lower() + "RYKMSWN" + s[167:]
    return seqs


def make_dataset(folder: str | Path, genes: list[GeneSpec] | None = None, samples: list[str] | None = None,
                 gene_format: str = "gtf", bgzip: bool = False, with_expression: bool = True,
                 with_vcf: bool = False, vcf_samples: list[str] | None = None, seed: int = 0,
                 **manifest_extra) -> Path:
    """A whole data set (FASTA, genes, Geuvadis expression, optional VCF) and its dataset.yaml; returns the
    manifest path. ``gene_format``: gtf, gtf.gz, gff3, tsv."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    genes = default_genes() if genes is None else genes
    samples = [f"NA{18500 + i}" for i in range(6)] if samples is None else samples
    seqs = default_sequences(seed)
    fasta = write_fasta(folder / ("genome.fa.gz" if bgzip else "genome.fa"), seqs, bgzip=bgzip)
    if gene_format == "gtf":
        gene_path = write_gtf(folder / "genes.gtf", genes)
    elif gene_format == "gtf.gz":
        gene_path = write_gtf(folder / "genes.gtf.gz", genes, gz=True)
    elif gene_format == "gff3":
        gene_path = write_gff3(folder / "genes.gff3", genes)
    elif gene_format == "tsv":
        gene_path = write_gene_tsv(folder / "genes.tsv", genes)
    else:
        raise ValueError(gene_format)
    expr = write_geuvadis(folder / "expression.txt", genes, samples, seed=seed) if with_expression else None
    vcf = None
    if with_vcf:
        vs = samples if vcf_samples is None else vcf_samples
        recs = [("chr1", 1500, seqs["chr1"][1499], "A" if seqs["chr1"][1499] != "A" else "C",
                 ["0|1" if i % 2 else "0|0" for i in range(len(vs))])]
        vcf = write_vcf(folder / "variants.vcf.gz", CHROM_LENGTHS, vs, recs)
    return write_manifest(folder, genome=fasta, genes=gene_path, expression=expr, variants=vcf, name="test",
                          **manifest_extra)


def cli_commands(group, prefix: tuple[str, ...] = ()):
    """(name path, command) of every leaf command under a click group, subgroups walked."""
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):  # a group (typer may bring its own click: no isinstance)
            yield from cli_commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


def run_cli(argv, capsys):
    """``gta.cli.main(argv)`` in process, as the installed command runs it: (exit code, stdout, stderr)."""
    import pytest

    from gta.cli import main

    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
        raise SystemExit(0)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err
