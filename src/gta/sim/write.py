"""Writers for the simulated data set, in the formats users bring: GENCODE-style GTF, phased bgzipped VCF,
Geuvadis-layout expression, annotation TSV; plus the truth tables."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pysam

from gta.atomic import atomic_path, atomic_write_text
from gta.sim.elements import SimGene
from gta.sim.population import SimVariant


def versioned(gene_id: str) -> str:
    return f"{gene_id}.1"


def _attrs(pairs: list[tuple[str, str | int]]) -> str:
    return " ".join(f'{k} {v};' if isinstance(v, int) else f'{k} "{v}";' for k, v in pairs)


def write_gtf(path: Path, genes: list[SimGene], chrom_order: list[str]) -> None:
    """gene + transcript + exon lines; 1-based inclusive coordinates; exons numbered in transcription order."""
    rank = {c: i for i, c in enumerate(chrom_order)}
    lines = ["##description: gta simulate: simulated genes carrying real human gene identities",
             "##provider: gta", "##format: gtf"]
    for g in sorted(genes, key=lambda g: (rank[g.chrom], g.body_start)):
        tid = f"ENST9{g.index:010d}.1"
        common = [("gene_id", versioned(g.gene_id)), ("transcript_id", tid), ("gene_type", "protein_coding"),
                  ("gene_name", g.symbol), ("transcript_type", "protein_coding"),
                  ("transcript_name", f"{g.symbol}-201"), ("level", 2)]
        tags = [("tag", "basic"), ("tag", "Ensembl_canonical")]
        row = [g.chrom, "gta_sim", "", str(g.body_start + 1), str(g.body_end), ".", g.strand, "."]
        gene_attrs = [("gene_id", versioned(g.gene_id)), ("gene_type", "protein_coding"), ("gene_name", g.symbol),
                      ("level", 2)]
        lines.append("\t".join([*row[:2], "gene", *row[3:], _attrs(gene_attrs)]))
        lines.append("\t".join([*row[:2], "transcript", *row[3:], _attrs(common + tags)]))
        exons = g.exons if g.strand == "+" else list(reversed(g.exons))
        for k, (s, e) in enumerate(exons, start=1):
            attrs = common + [("exon_number", k), ("exon_id", f"ENSE9{g.index:08d}{k:02d}.1")] + tags
            lines.append("\t".join([g.chrom, "gta_sim", "exon", str(s + 1), str(e), ".", g.strand, ".",
                                    _attrs(attrs)]))
    atomic_write_text(path, "\n".join(lines) + "\n")


def write_vcf(path: Path, contigs: dict[str, int], records: list[tuple[str, SimVariant, np.ndarray]],
              samples: list[str]) -> None:
    """Phased VCF 4.2, bgzipped with pysam (BGZF has no timestamp) and tabix-indexed."""
    head = ["##fileformat=VCFv4.2", "##source=gta simulate"]
    head += [f"##contig=<ID={c},length={n}>" for c, n in contigs.items()]
    head += ['##INFO=<ID=AC,Number=A,Type=Integer,Description="Alternate allele count">',
             '##INFO=<ID=AN,Number=1,Type=Integer,Description="Total number of alleles">',
             '##INFO=<ID=AF,Number=A,Type=Float,Description="Alternate allele frequency">',
             '##INFO=<ID=VT,Number=1,Type=String,Description="Variant type: SNP or INDEL">',
             '##FORMAT=<ID=GT,Number=1,Type=String,Description="Phased genotype">',
             "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples])]
    gt = np.array(["0|0", "0|1", "1|0", "1|1"])
    out = Path(path)
    with tempfile.TemporaryDirectory(prefix=".gta-vcf-", dir=out.parent) as tmp:
        plain = Path(tmp) / "variants.vcf"
        with plain.open("w") as fh:
            fh.write("\n".join(head) + "\n")
            for chrom, v, alleles in records:
                ac = int(alleles.sum())
                an = len(alleles)
                vt = "SNP" if len(v.ref) == len(v.alt) == 1 else "INDEL"
                calls = gt[alleles[0::2].astype(int) * 2 + alleles[1::2].astype(int)]
                fh.write(f"{chrom}\t{v.pos + 1}\t{v.vid}\t{v.ref}\t{v.alt}\t.\tPASS\t"
                         f"AC={ac};AN={an};AF={ac / an:.4g};VT={vt}\tGT\t" + "\t".join(calls) + "\n")
        with atomic_path(out) as gz:
            pysam.tabix_compress(str(plain), str(gz), force=True)
    tbi = Path(str(out) + ".tbi")
    if tbi.exists():
        os.remove(tbi)
    pysam.tabix_index(str(out), preset="vcf", force=True)


def format_matrix(values: np.ndarray) -> np.ndarray:
    """RPKM-like strings: positive, 6 significant digits (values below 1e-4 are written as 1e-4)."""
    v = np.maximum(values, 1e-4)
    return np.array([[f"{x:.6g}" for x in row] for row in v])


def write_expression(path: Path, genes: list[SimGene], samples: list[str], text: np.ndarray) -> None:
    """Geuvadis layout: TargetID Gene_Symbol Chr Coord <samples>; Chr without 'chr', Coord = 1-based TSS."""
    lines = ["\t".join(["TargetID", "Gene_Symbol", "Chr", "Coord", *samples])]
    for g, row in zip(genes, text, strict=True):
        chrom = g.chrom[3:] if g.chrom.startswith("chr") else g.chrom
        lines.append("\t".join([versioned(g.gene_id), g.symbol, chrom, str(g.tss + 1), *row]))
    atomic_write_text(path, "\n".join(lines) + "\n")


def write_tsv(path: Path, df: pd.DataFrame) -> None:
    atomic_write_text(path, df.to_csv(sep="\t", index=False, lineterminator="\n", float_format="%.6g"))
