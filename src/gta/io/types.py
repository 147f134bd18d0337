"""Value types with their coordinate conventions spelled out (0-based half-open unless named ``pos``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Gene:
    """A gene and its TSS. ``gene_id`` carries no version suffix; ``tss`` is 0-based; chrom is canonical."""

    gene_id: str
    symbol: str
    chrom: str
    tss: int
    strand: str
    gene_type: str = "protein_coding"
    end: int | None = None  # 0-based exclusive end of the gene body, when known (start = tss on +)

