"""Population: variants (SNVs and short left-aligned indels) and phased haplotypes with linkage disequilibrium.

Each chromosome has ``n_founders`` founder haplotypes; every sampled haplotype is a mosaic of founders with
switch points at ``switches_per_mb`` (so nearby variants are in LD). A founder variant's derived allele count k
among the founders follows the neutral spectrum P(k) ~ 1/k; private variants sit on 1-3 sampled haplotypes;
planned causal variants get a common frequency.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gta.sim.config import PopulationConfig
from gta.sim.grammar import PlannedVariant

_ACGT = "ACGT"
_TRANSITION = {0: 2, 2: 0, 1: 3, 3: 1}


@dataclass
class SimVariant:
    pos: int  # 0-based start of REF
    ref: str
    alt: str
    action: str = ""  # breaks | creates | "" (random)
    element_id: str = ""
    motif: str = ""
    vid: str = ""

    @property
    def end(self) -> int:
        return self.pos + len(self.ref)

    def key_span(self) -> tuple[int, int]:
        """Bases a variant can change: its REF span (an insertion also touches the base after its anchor)."""
        return self.pos, self.pos + max(len(self.ref), 2 if len(self.alt) > len(self.ref) else 1)


def _seq(codes: np.ndarray, lo: int, hi: int) -> str:
    return "".join(_ACGT[c] for c in codes[lo:hi])


def left_align_deletion(codes: np.ndarray, s: int, n: int) -> int:
    """Leftmost start of the deletion of ``codes[s:s+n]`` that gives the same sequence."""
    while s > 1 and codes[s - 1] == codes[s + n - 1]:
        s -= 1
    return s


def left_align_insertion(codes: np.ndarray, s: int, ins: list[int]) -> tuple[int, list[int]]:
    """Leftmost position (insert before ``s``) and rotated bases of an insertion."""
    while s > 1 and codes[s - 1] == ins[-1]:
        ins = [ins[-1]] + ins[:-1]
        s -= 1
    return s, ins


def random_variants(codes: np.ndarray, cfg: PopulationConfig, density: float, planned: list[PlannedVariant],
                    rng: np.random.Generator) -> list[SimVariant]:
    """Planned causal variants plus random SNVs/indels at ``density`` per bp, none closer than min_spacing."""
    n = len(codes)
    gap = cfg.min_spacing
    out = [SimVariant(p.pos, _ACGT[p.ref], _ACGT[p.alt], p.action, p.element_id, p.motif) for p in planned]
    fixed = np.array(sorted(p.pos for p in planned), dtype=np.int64)
    cands = np.unique(rng.integers(100, n - 100, size=rng.poisson(density * n)))
    last_end = -10**9
    for pos in cands:
        pos = int(pos)
        if rng.random() < cfg.indel_fraction:
            length = min(cfg.indel_max_len, int(rng.geometric(0.55)))
            if rng.random() < 0.5:
                s = left_align_deletion(codes, pos, length)
                v = SimVariant(s - 1, _seq(codes, s - 1, s + length), _ACGT[codes[s - 1]])
            else:
                ins = [int(b) for b in rng.integers(0, 4, size=length)]
                s, ins = left_align_insertion(codes, pos, ins)
                v = SimVariant(s - 1, _ACGT[codes[s - 1]], _ACGT[codes[s - 1]] + "".join(_ACGT[b] for b in ins))
        else:
            ref = int(codes[pos])
            alt = _TRANSITION[ref] if rng.random() < 2 / 3 else int((ref + rng.choice([1, 3])) % 4)
            v = SimVariant(pos, _ACGT[ref], _ACGT[alt])
        lo, hi = v.pos - gap, v.end + gap
        k = int(np.searchsorted(fixed, lo))
        if v.pos <= last_end + gap or (k < len(fixed) and fixed[k] < hi):
            continue
        out.append(v)
        last_end = v.end
    out.sort(key=lambda v: v.pos)
    return out


def haplotypes(variants: list[SimVariant], chrom_len: int, n_haps: int, cfg: PopulationConfig,
               rng: np.random.Generator) -> np.ndarray:
    """Alt-allele matrix [n_haps, n_variants] (uint8) from founder mosaics plus private variants."""
    k_f = cfg.n_founders
    n_v = len(variants)
    founders = np.zeros((k_f, n_v), dtype=np.uint8)
    ks = np.arange(1, k_f)
    p_k = (1.0 / ks) / (1.0 / ks).sum()
    private = np.zeros(n_v, dtype=bool)
    for j, v in enumerate(variants):
        if v.action:
            k = int(np.clip(round(rng.uniform(*cfg.causal_freq) * k_f), 1, k_f - 1))
        elif rng.random() < cfg.private_fraction:
            private[j] = True
            continue
        else:
            k = int(rng.choice(ks, p=p_k))
        founders[rng.choice(k_f, size=k, replace=False), j] = 1
    pos = np.array([v.pos for v in variants], dtype=np.int64)
    haps = np.zeros((n_haps, n_v), dtype=np.uint8)
    rate = cfg.switches_per_mb * chrom_len / 1e6
    for h in range(n_haps):
        breaks = np.sort(rng.integers(0, chrom_len, size=rng.poisson(rate)))
        src = rng.integers(0, k_f, size=len(breaks) + 1)
        haps[h] = founders[src[np.searchsorted(breaks, pos, side="right")], np.arange(n_v)]
    for j in np.flatnonzero(private):
        haps[rng.choice(n_haps, size=int(rng.integers(1, 4)), replace=False), j] = 1
    return haps
