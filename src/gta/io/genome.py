"""Reference genome: random-access windows from FASTA (plain or bgzip) with N-padding, reverse complement,
one-hot encoding and chromosome-name harmonisation (``chr1``/``1``, ``chrM``/``MT``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyfaidx

from gta.errors import GtaInputError
from gta.geometry import Geometry
from gta.io.types import Gene

_COMPLEMENT = str.maketrans("ACGTNacgtn", "TGCANtgcan")
# A, C, G, T -> 0..3; everything else (N and IUPAC ambiguity codes) -> 4 (all-zero row)
_LOOKUP = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate("ACGT"):
    _LOOKUP[ord(_b)] = _i
    _LOOKUP[ord(_b.lower())] = _i
_EYE = np.vstack([np.eye(4, dtype=np.float32), np.zeros((1, 4), dtype=np.float32)])
_CLEAN = str.maketrans({c: "N" for c in "RYSWKMBDHVrysbwkmdhvn"})


def reverse_complement(seq: str) -> str:
    return seq.translate(_COMPLEMENT)[::-1]


def clean_sequence(seq: str) -> str:
    """Upper-case ACGTN: soft-masking removed, IUPAC codes mapped to N."""
    return seq.translate(_CLEAN).upper()


def one_hot(seq: str) -> np.ndarray:
    """[L, 4] float32 in A, C, G, T order; N and IUPAC codes are all-zero rows."""
    idx = _LOOKUP[np.frombuffer(seq.encode("ascii"), dtype=np.uint8)]
    return _EYE[idx]


def canonical_chrom_aliases(name: str) -> list[str]:
    """Names under which a chromosome may appear in another file."""
    base = name[3:] if name.lower().startswith("chr") else name
    out = [name, base, "chr" + base]
    if base in ("M", "MT"):
        out += ["chrM", "MT", "M", "chrMT"]
    return list(dict.fromkeys(out))


class ChromNames:
    """Maps chromosome names used by other files onto the names of a reference set (the FASTA's)."""

    def __init__(self, reference_names: list[str]) -> None:
        self.names = list(reference_names)
        self._map: dict[str, str] = {}
        for ref in self.names:
            for alias in canonical_chrom_aliases(ref):
                self._map.setdefault(alias, ref)
                self._map.setdefault(alias.lower(), ref)

    def resolve(self, name: str) -> str | None:
        return self._map.get(name) or self._map.get(name.lower())


class Genome:
    """A FASTA file opened through pyfaidx (the .fai is created when missing and the folder is writable)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise GtaInputError("FASTA file not found", self.path)
        try:
            self._fa = pyfaidx.Fasta(str(self.path), sequence_always_upper=True, rebuild=False, build_index=True)
        except pyfaidx.UnsupportedCompressionFormat:
            raise GtaInputError(
                "FASTA is gzip-compressed but not BGZF, so it cannot be read at random",
                self.path,
                hint=f"recompress with: zcat {self.path.name} | bgzip -c > genome.fa.gz && samtools faidx genome.fa.gz",
            ) from None
        except (pyfaidx.FastaIndexingError, ValueError, OSError) as e:
            raise GtaInputError(
                f"cannot index FASTA: {e}", self.path, hint="check the file with samtools faidx"
            ) from None
        self.lengths = {name: len(rec) for name, rec in self._fa.records.items()}
        if not self.lengths:
            raise GtaInputError("FASTA holds no sequences", self.path)
        self.names = ChromNames(list(self.lengths))

    @property
    def contigs(self) -> list[str]:
        return list(self.lengths)

    def resolve_chrom(self, name: str, source: str | Path | None = None) -> str:
        """The FASTA's name for ``name``; a GtaInputError when no alias matches."""
        hit = self.names.resolve(name)
        if hit is None:
            shown = ", ".join(self.contigs[:5]) + (" ..." if len(self.contigs) > 5 else "")
            raise GtaInputError(
                f"chromosome {name!r} is not in the genome {self.path.name} (it has {shown})",
                source or self.path,
                hint="use the same genome build and chromosome names in every file",
            )
        return hit

    def fetch(self, chrom: str, start: int, end: int) -> str:
        """Upper-case ACGTN sequence of [start, end) (0-based), N-padded past the chromosome ends."""
        chrom = self.resolve_chrom(chrom)
        length = self.lengths[chrom]
        lo, hi = max(start, 0), min(end, length)
        body = str(self._fa[chrom][lo:hi]) if hi > lo else ""
        left = "N" * (min(end, 0) - start if start < 0 else 0)
        right = "N" * (end - max(start, length) if end > length else 0)
        return clean_sequence(left + body + right)

    def gene_window(self, gene: Gene, geometry: Geometry) -> str:
        """The reference input window of a gene in the direction of transcription (TSS at the centre)."""
        start, end = geometry.window(gene.tss, gene.strand)
        seq = self.fetch(gene.chrom, start, end)
        return seq if gene.strand == "+" else reverse_complement(seq)

    def close(self) -> None:
        self._fa.close()
