"""Catch a genome-build mix-up between the gene annotation and the FASTA (hg38 with a GRCh37 annotation, say).

Two checks, both cheap: the build an annotation declares in its header (GENCODE/Ensembl GTF ``#!genome-build
GRCh38.p14``, GFF3 ``##genome-build NCBI GRCh38.p14``) against the build the FASTA's chromosome 1 length names;
and (in :mod:`gta.io.dataset`) genes whose TSS lies past the end of their chromosome, which no annotation of the
FASTA's own build has.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from gta.errors import GtaInputError

# chromosome 1 length -> assembly (the primary assemblies users meet)
CHR1_LENGTH = {248956422: "GRCh38", 249250621: "GRCh37", 248387328: "T2T-CHM13", 195154279: "GRCm39",
               195471971: "GRCm38"}
_ALIASES = {"hg38": "GRCh38", "hg19": "GRCh37", "hs37d5": "GRCh37", "b37": "GRCh37", "mm39": "GRCm39",
            "mm10": "GRCm38", "chm13": "T2T-CHM13", "hs1": "T2T-CHM13"}
_HEADER = re.compile(r"^#[#!]\s*genome-build\s+(.+)$", re.IGNORECASE)
# the GTF that goes with each build (what the hint suggests)
ANNOTATION_FOR = {"GRCh38": "GENCODE v44 (or any release >= 20)", "GRCh37": "GENCODE v19 or the GRCh37 mapping "
                  "of a later release (e.g. v44lift37)", "T2T-CHM13": "the CHM13 v2.0 annotation"}


def normalise_build(text: str | None) -> str | None:
    """'GRCh38.p14', 'NCBI GRCh38', 'hg38' -> 'GRCh38'; None when no known assembly is named."""
    if not text:
        return None
    m = re.search(r"GRC([hm])(\d+)", text, re.IGNORECASE)
    if m:
        return f"GRC{m.group(1).lower()}{m.group(2)}"
    if re.search(r"CHM13|T2T", text, re.IGNORECASE):
        return "T2T-CHM13"
    for word in re.split(r"[\s,;/]+", text.strip()):
        if word.lower() in _ALIASES:
            return _ALIASES[word.lower()]
    return None


def annotation_build(path: str | Path, max_lines: int = 200) -> str | None:
    """The build a GTF/GFF3 declares in its ``#!genome-build`` / ``##genome-build`` header line, else None."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            gz = fh.read(2) == b"\x1f\x8b"
        opener = gzip.open if gz else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            for i, line in enumerate(fh):
                if i >= max_lines or not line.startswith("#"):
                    break
                m = _HEADER.match(line.strip())
                if m:
                    return normalise_build(m.group(1))
    except (OSError, EOFError):  # the gene reader reports unreadable files itself
        return None
    return None


def fasta_build(lengths: dict[str, int]) -> str | None:
    """The assembly whose chromosome 1 has the FASTA's chromosome 1 length, else None."""
    for name in ("chr1", "1", "NC_000001.11", "NC_000001.10"):
        if name in lengths:
            return CHR1_LENGTH.get(int(lengths[name]))
    return None


def check_builds(genes_path: str | Path, lengths: dict[str, int], genome_path: str | Path | None = None) -> None:
    """GtaInputError when the annotation's declared build and the FASTA's build differ (nothing when either is
    unknown)."""
    declared, fasta = annotation_build(genes_path), fasta_build(lengths)
    if declared is None or fasta is None or declared == fasta:
        return
    chr1 = next(lengths[n] for n in ("chr1", "1", "NC_000001.11", "NC_000001.10") if n in lengths)
    suggestion = ANNOTATION_FOR.get(fasta)
    raise GtaInputError(
        f"the gene annotation is for {declared} (its genome-build header) but the genome FASTA is {fasta} "
        f"(chromosome 1 is {chr1:,} bp{f' in {Path(genome_path).name}' if genome_path else ''}): every TSS would "
        "land in the wrong place", genes_path,
        hint=f"use an annotation of the genome's build{f', e.g. {suggestion}' if suggestion else ''}",
    )
