"""Value types of the simulated regulatory grammar: motif sites, elements and genes (0-based genome coords)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Site:
    """One planted motif instance. ``strand`` is the genome strand the motif reads on.

    ``role``: ``site`` (planted to act), ``latent`` (one base short of a site: a variant can create it) or
    ``decoy`` (planted to follow no rule). Whether a site acts is decided by the expression function alone.
    """

    motif: str
    start: int
    strand: str
    width: int
    role: str = "site"
    ref_llr: float = 0.0

    @property
    def end(self) -> int:
        return self.start + self.width

    @property
    def centre(self) -> float:
        return self.start + (self.width - 1) / 2


@dataclass
class Element:
    """A promoter, enhancer, repressor (silencer), CTCF pair or decoy; ``distance`` is signed from the TSS to
    the element's centre in the direction of transcription (upstream < 0)."""

    element_id: str
    kind: str
    chrom: str
    start: int
    end: int
    distance: int
    sites: list[Site] = field(default_factory=list)


@dataclass
class SimGene:
    """A simulated gene with a real human gene's identity and its planted elements."""

    index: int
    gene_id: str
    symbol: str
    name: str
    go_bp: str
    category: str
    chrom: str = ""
    tss: int = 0
    strand: str = "+"
    body_start: int = 0
    body_end: int = 0
    exons: list[tuple[int, int]] = field(default_factory=list)
    elements: list[Element] = field(default_factory=list)

    def sites(self) -> list[Site]:
        return [s for e in self.elements for s in e.sites]

    def to_tx(self, pos: float) -> float:
        """Signed distance of a genome position from the TSS in the direction of transcription."""
        return pos - self.tss if self.strand == "+" else self.tss - pos

    def to_genome(self, x: float) -> int:
        return int(self.tss + x) if self.strand == "+" else int(self.tss - x)

    def rel_strand(self, site: Site) -> str:
        """A site's orientation relative to transcription: ``+`` reads downstream."""
        return "+" if site.strand == self.strand else "-"
