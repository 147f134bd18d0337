"""Gene identities (real human genes from the shipped annotation table), categories and placement.

**Category rule** (from the ``go_bp`` term names, case-insensitive, first match wins):

1. ``immune``: any term matching :data:`IMMUNE_PATTERN` (B/T cell, lymphocyte, leukocyte, immune, antigen,
   interferon, interleukin, cytokine, inflammatory, NF-kappaB, immunoglobulin, defense response, ...);
2. ``housekeeping``: any term matching :data:`HOUSEKEEPING_PATTERN` (translation, ribosome, rRNA/tRNA/mRNA
   processing, splicing, DNA replication/repair, proteasome, protein folding, mitochondrial respiration,
   nucleosome/chromatin assembly, cell cycle, mitotic, glycolysis, ...);
3. ``other``: the gene has GO terms but none of the above (mostly other tissues' programmes);
4. ``unknown``: no GO biological-process term.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from gta.sim.config import SimConfig
from gta.sim.elements import SimGene

CATEGORIES = ("housekeeping", "immune", "other", "unknown")
IMMUNE_PATTERN = re.compile(
    r"immun|\bB cell|\bT cell|lymphocyte|leukocyte|antigen|interferon|interleukin|cytokine|inflammat|"
    r"NF-kappaB|I-kappaB|immunoglobulin|defen[cs]e response|antiviral|toll-like|humoral|myeloid|lymph node|"
    r"germinal center|natural killer|mast cell|macrophage|neutrophil",
    re.IGNORECASE,
)
HOUSEKEEPING_PATTERN = re.compile(
    r"\btranslation|ribosom|\brRNA|\btRNA|mRNA processing|mRNA splicing|RNA splicing|spliceosom|mRNA export|"
    r"DNA replication|DNA repair|proteasom|protein folding|mitochondrial (?:respiratory|electron|translation)|"
    r"oxidative phosphorylation|ATP synthesis|nucleosome|chromatin assembly|cell cycle|mitotic|cell division|"
    r"glycoly|tricarboxylic|protein import into nucleus|nuclear-transcribed mRNA|ubiquitin-dependent protein "
    r"catabolic|transcription initiation|RNA polymerase I\b|RNA polymerase III|snRNA|snoRNA|mRNA stability|"
    r"protein N-linked glycosylation|ER to Golgi|intracellular protein transport",
    re.IGNORECASE,
)


def categorize(go_bp: str) -> str:
    """The category of a gene from its ``; ``-joined GO biological-process term names."""
    terms = [t for t in str(go_bp or "").split(";") if t.strip()]
    if not terms:
        return "unknown"
    if any(IMMUNE_PATTERN.search(t) for t in terms):
        return "immune"
    if any(HOUSEKEEPING_PATTERN.search(t) for t in terms):
        return "housekeeping"
    return "other"


def sample_identities(table: pd.DataFrame, cfg: SimConfig, rng: np.random.Generator) -> list[SimGene]:
    """``cfg.n_genes`` protein-coding genes drawn without replacement, stratified by ``cfg.category_mix``."""
    pc = table[table["gene_type"] == "protein_coding"] if "gene_type" in table.columns else table
    pc = pc.drop_duplicates("gene_id").sort_values("gene_id").reset_index(drop=True)
    cats = np.array([categorize(g) for g in pc["go_bp"]])
    mix = np.array([cfg.category_mix.get(c, 0.0) for c in CATEGORIES], dtype=np.float64)
    want = np.floor(mix / mix.sum() * cfg.n_genes).astype(int)
    want[np.argmax(mix)] += cfg.n_genes - want.sum()
    chosen: list[int] = []
    short = 0
    for c, n in zip(CATEGORIES, want, strict=True):
        pool = np.flatnonzero(cats == c)
        take = min(n, len(pool))
        short += n - take
        chosen += list(rng.choice(pool, size=take, replace=False)) if take else []
    if short:
        rest = np.setdiff1d(np.arange(len(pc)), chosen)
        if len(rest) < short:
            raise ValueError(f"the annotation table has only {len(pc)} protein-coding genes, {cfg.n_genes} asked")
        chosen += list(rng.choice(rest, size=short, replace=False))
    chosen = [int(i) for i in rng.permutation(np.array(chosen))]
    genes = []
    for k, i in enumerate(chosen):
        row = pc.iloc[i]
        genes.append(SimGene(index=k, gene_id=str(row["gene_id"]), symbol=str(row["symbol"]), name=str(row["name"]),
                             go_bp=str(row["go_bp"]), category=str(cats[i])))
    return genes


def layout(genes: list[SimGene], cfg: SimConfig, rng: np.random.Generator) -> dict[str, int]:
    """Assign chromosomes (unequal sizes, like real ones), TSSs, strands, bodies and exons; returns lengths."""
    n_chrom = cfg.genome.n_chromosomes
    weights = 1.0 / (np.arange(n_chrom) + 3.0)
    counts = np.maximum(1, np.floor(weights / weights.sum() * len(genes))).astype(int)
    while counts.sum() > len(genes):
        counts[np.argmax(counts)] -= 1
    counts[: len(genes) - counts.sum()] += 1
    lengths: dict[str, int] = {}
    k = 0
    for c in range(n_chrom):
        name = f"chr{c + 1}"
        pos = cfg.genome.flank
        for j in range(counts[c]):
            g = genes[k]
            k += 1
            if j:
                pos += cfg.genome.gene_gap_min + int(rng.exponential(cfg.genome.gene_gap_extra_mean))
            g.chrom, g.tss, g.strand = name, int(pos), "+" if rng.random() < 0.5 else "-"
            body = int(np.clip(rng.lognormal(np.log(18_000), 0.9), 1_500, 90_000))
            g.body_start, g.body_end = (g.tss, g.tss + body) if g.strand == "+" else (g.tss - body + 1, g.tss + 1)
            g.exons = _exons(g.body_start, g.body_end, rng)
        lengths[name] = int(pos + cfg.genome.flank)
    return lengths


def _exons(lo: int, hi: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """First and last exon at the body ends, 0-8 internal exons in between; 0-based half-open, sorted."""
    size = hi - lo
    first = (lo, lo + int(rng.integers(80, min(400, size // 4) + 1)))
    last = (hi - int(rng.integers(300, max(301, min(2000, size // 4)) + 1)), hi)
    out = [first]
    a, b = first[1] + 100, last[0] - 350
    n_inner = int(rng.integers(0, 9)) if b > a else 0
    for s in np.sort(rng.integers(a, max(a + 1, b), size=n_inner)):
        if s > out[-1][1] + 80:
            out.append((int(s), int(s) + int(rng.integers(60, 250))))
    out.append(last)
    return out
