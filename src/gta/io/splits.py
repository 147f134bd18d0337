"""Train/val/test splits of genes (by chromosome or by gene list) and of individuals (seeded).

Genes, in this order of precedence:
1. **Gene lists** (``splits.val_genes`` / ``splits.test_genes``: files with one gene id, id.version or symbol per
   line, ``#`` comments): listed genes go to val/test, all others to train.
2. **Chromosomes** (``splits.val_chroms`` / ``splits.test_chroms``, any alias: ``8`` = ``chr8``).
3. **Default**: whole chromosomes chosen deterministically (greedy over chromosomes by gene count, largest
   first, each added when it brings the share closer to the target) so that test holds ~20% and val ~10% of genes.
   When whole chromosomes cannot do this (fewer than three carry genes, or one holds nearly all): genes are
   ordered along the genome and the last 20% go to test, the 10% before them to val (contiguous blocks, so
   neighbouring genes, whose windows overlap, stay on one side except at two boundaries).

Individuals: samples are ordered by a seeded hash of their id (independent of input order) and the first
``round(fraction * n)`` (at least one when the fraction is > 0 and n >= 2) are held out for test.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

from gta.errors import GtaInputError
from gta.io.genes import iter_lines, strip_version
from gta.io.genome import ChromNames
from gta.io.manifest import SplitConfig
from gta.io.types import Gene

TEST_SHARE = 0.2
VAL_SHARE = 0.1


def assign_gene_splits(genes: list[Gene], cfg: SplitConfig, source: str | Path | None = None) -> dict[str, str]:
    """gene_id -> 'train' | 'val' | 'test' (see the module docstring for the rules)."""
    if cfg.val_genes is not None or cfg.test_genes is not None:
        return _by_lists(genes, cfg)
    if cfg.val_chroms or cfg.test_chroms:
        val, test = _resolve_chroms(genes, cfg, source)
    else:
        picked = default_split_chroms(genes)
        if picked is None:
            return _by_position(genes)
        val, test = picked
    return {g.gene_id: "test" if g.chrom in test else "val" if g.chrom in val else "train" for g in genes}


def default_split_chroms(genes: list[Gene]) -> tuple[set[str], set[str]] | None:
    """(val chromosomes, test chromosomes) near 10% / 20% of genes, or None when fewer than 3 carry genes."""
    counts = Counter(g.chrom for g in genes)
    if len(counts) < 3:
        return None
    order = sorted(counts, key=lambda c: (-counts[c], c))
    test = _greedy(order, counts, TEST_SHARE * len(genes))
    rest = [c for c in order if c not in test]
    val = _greedy(rest, counts, VAL_SHARE * len(genes))
    smallest = lambda cs: min(cs, key=lambda c: (counts[c], c))  # noqa: E731
    if not val and len(rest) >= 2:
        val = {smallest(rest)}
    elif not val and len(test) >= 2:
        val = {smallest(test)}
        test -= val
    if not val or not test or not set(order) - test - val:
        return None
    return val, test


def _greedy(order: list[str], counts: Counter, target: float) -> set[str]:
    chosen: set[str] = set()
    total = 0
    for c in order:
        if abs(total + counts[c] - target) < abs(total - target):
            chosen.add(c)
            total += counts[c]
    return chosen


def _by_position(genes: list[Gene]) -> dict[str, str]:
    ordered = sorted(genes, key=lambda g: (g.chrom, g.tss, g.gene_id))
    n = len(ordered)
    n_test = round(TEST_SHARE * n)
    n_val = round(VAL_SHARE * n)
    out = {}
    for i, g in enumerate(ordered):
        out[g.gene_id] = "test" if i >= n - n_test else "val" if i >= n - n_test - n_val else "train"
    return out


def _resolve_chroms(genes: list[Gene], cfg: SplitConfig, source: str | Path | None) -> tuple[set[str], set[str]]:
    names = ChromNames(sorted({g.chrom for g in genes}))

    def resolve(chroms: tuple[str, ...], key: str) -> set[str]:
        out = set()
        for c in chroms:
            hit = names.resolve(c)
            if hit is None:
                raise GtaInputError(f"splits.{key}: no gene lies on chromosome {c!r}", source,
                                    hint=f"gene chromosomes: {', '.join(names.names[:8])}")
            out.add(hit)
        return out

    val, test = resolve(cfg.val_chroms, "val_chroms"), resolve(cfg.test_chroms, "test_chroms")
    if val & test:
        raise GtaInputError(f"chromosome(s) {sorted(val & test)} are in both val_chroms and test_chroms", source)
    if not {g.chrom for g in genes} - val - test:
        raise GtaInputError("val_chroms and test_chroms leave no chromosome for training", source)
    return val, test


def read_gene_list(path: Path) -> list[str]:
    """Entries of a gene-list file (first whitespace-separated word of each non-comment line)."""
    out = []
    for _, text in iter_lines(path, progress=False):
        word = text.split("#", 1)[0].strip().split()
        if word:
            out.append(word[0])
    return out


def _by_lists(genes: list[Gene], cfg: SplitConfig) -> dict[str, str]:
    by_key: dict[str, str] = {}
    for g in genes:
        by_key.setdefault(g.symbol.upper(), g.gene_id)
    for g in genes:
        by_key[g.gene_id.upper()] = g.gene_id
    out = {g.gene_id: "train" for g in genes}
    for split, path in (("val", cfg.val_genes), ("test", cfg.test_genes)):
        if path is None:
            continue
        entries = read_gene_list(path)
        hits = [by_key.get(strip_version(e).upper()) for e in entries]
        if entries and not any(hits):
            raise GtaInputError(f"none of the {len(entries)} genes listed for {split} is in the gene table", path,
                                hint="list gene ids (with or without version) or symbols, one per line")
        for gid in hits:
            if gid is None:
                continue
            if out[gid] != "train" and out[gid] != split:
                raise GtaInputError(f"gene {gid} is listed for both val and test", path)
            out[gid] = split
    return out


def split_individuals(samples: list[str], cfg: SplitConfig) -> tuple[list[str], list[str]]:
    """(train, test) samples; the test share is ``cfg.test_individual_fraction``, chosen by a seeded hash."""
    uniq = sorted(set(samples))
    n = len(uniq)
    n_test = round(cfg.test_individual_fraction * n)
    if cfg.test_individual_fraction > 0 and n >= 2:
        n_test = min(max(n_test, 1), n - 1)
    ranked = sorted(uniq, key=lambda s: hashlib.sha256(f"{cfg.seed}:{s}".encode()).hexdigest())
    test = set(ranked[:n_test])
    return [s for s in uniq if s not in test], [s for s in uniq if s in test]


def summarize_gene_splits(splits: dict[str, str]) -> dict[str, int]:
    """Genes per split, in train/val/test order."""
    c = Counter(splits.values())
    return {k: c.get(k, 0) for k in ("train", "val", "test")}
