"""Features of one allele's window: the gene's window with a single ALT allele applied (the haplotype rules of
:mod:`gta.io.haplotypes`: TSS-anchored, indels included), encoded the way the store's windows were. Local encoders
(motif) recompute only the bins within reach of the edit (``encode_region``); global ones (Enformer) encode whole
windows in batches. Features are rounded to the store's dtype, as ``gta extract`` stores them, so an allele that
changes no stored feature leaves the window as it was. Variant scoring and eQTL supervision both read alleles so."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from gta.geometry import Geometry
from gta.io.alleles import REF_KEY
from gta.io.haplotypes import AppliedAllele, Edit, GeneHaplotypes, allele_edit, hap_key
from gta.io.types import Gene

# (chrom, 0-based REF start, REF, ALT, VCF id) of one allele
Allele = tuple[str, int, str, str, str]


def tss_distance(gene: Gene, pos0: int) -> int:
    """Signed distance (bp) from the TSS to a 0-based position, in the direction of transcription."""
    return pos0 - gene.tss if gene.strand == "+" else gene.tss - pos0


def allele_window(genome, gene: Gene, geometry: Geometry, chrom: str, start: int, ref: str, alt: str,
                  vid: str = ".") -> tuple[str, list[tuple[int, int]]]:
    """(ALT window sequence, window spans that differ from the reference) of one allele in a gene's window."""
    allele = AppliedAllele(chrom, start + 1, ref, alt, vid, tss_distance(gene, start))
    s, e, a = allele_edit(start, ref, alt)
    key = hap_key([allele])
    haps = GeneHaplotypes(gene, geometry, chrom, {}, {REF_KEY: (), key: (allele,)}, Counter(), genome,
                          edits={REF_KEY: (), key: (Edit(s, e, a, allele),)})
    return haps.sequence(key), haps.changed_span(key)


def round_to(x: np.ndarray, dtype: np.dtype | str | None) -> np.ndarray:
    """float32 features rounded through ``dtype`` (the store's), as ``gta extract`` writes them; None: as they are."""
    x = np.asarray(x, dtype=np.float32)
    return x.astype(dtype).astype(np.float32) if dtype is not None else x


def encode_alleles(encoder, genome, gene: Gene, geometry: Geometry, ref: np.ndarray, alleles: Sequence[Allele],
                   dtype: np.dtype | str | None = None, batch_size: int = 8) -> np.ndarray:
    """float32 [len(alleles), bins, d]: the gene's window with each allele alone, given its reference features
    ``ref`` [bins, d] (already rounded to ``dtype``)."""
    windows = [allele_window(genome, gene, geometry, *a) for a in alleles]
    if not windows:
        return np.zeros((0, *np.shape(ref)), np.float32)
    if encoder.receptive_field_bp is not None:
        return round_to(np.stack([encoder.encode_region(seq, ref, spans) for seq, spans in windows]), dtype)
    out = [encoder.encode([seq for seq, _ in windows[s : s + batch_size]]) for s in range(0, len(windows), batch_size)]
    return round_to(np.concatenate(out), dtype)
