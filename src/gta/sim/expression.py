"""The expression function: log expression of one haplotype from the occupancies of a gene's planted sites.

``h = base + category + P + sum_e A_e * c(d_e) * iota_e`` (natural log of RPKM), with

* ``P = P_max (1 - exp(-S / P_max))``, ``S = sum_i beta_m o_i r_m(x_i, orientation_i)`` over promoter sites,
  ``r_m`` = 1 inside the motif's position window (and orientation, for TATA) relative to the TSS, else 0;
* enhancers ``A = A_max g(z - theta)``, ``z = sum beta_m o_i + beta_c sum_pairs o_SPI1 o_IRF4 - gamma sum o_BCL6``,
  where a SPI1/IRF4 pair counts only on the same strand at the composite spacing, and
  ``g(u) = (sigmoid(u) - sigmoid(-theta)) / (1 - sigmoid(-theta))`` (so z = 0 gives 0);
* silencers ``A = -A_sil g_sil(sum beta_BCL6 o_i - theta_sil)``;
* contact ``c(d) = (1 + |d| / d0)^-alpha``;
* insulation ``iota_e = prod_b (1 - eta o_b1 o_b2)`` over convergent CTCF pairs b lying between the TSS and e.

Occupancy ``o = sigmoid((llr - theta_frac * llr_max) / T)``. Individuals: ``log((e^h1 + e^h2) / 2)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gta.sim.config import ExpressionConfig
from gta.sim.elements import SimGene

COMPONENTS = ("baseline", "promoter", "proximal", "distal")


def _sig(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


def _g(z: np.ndarray, theta: float) -> np.ndarray:
    lo = _sig(-theta)
    return (_sig(z - theta) - lo) / (1.0 - lo)


def contact(distance: float, cfg: ExpressionConfig) -> float:
    """Contact probability of an element at ``distance`` bp from the TSS (1 at the TSS)."""
    return float((1.0 + abs(distance) / cfg.contact_d0) ** (-cfg.contact_alpha))


def promoter_rule(motif: str, x: float, rel_strand: str, cfg: ExpressionConfig) -> float:
    """1 when a promoter motif's centre ``x`` (bp from the TSS) and orientation follow its rule, else 0."""
    rule = cfg.promoter_rules.get(motif)
    if rule is None:
        return 0.0
    lo, hi, orient = rule
    return float(lo <= x <= hi and (orient == "any" or rel_strand == "+"))


@dataclass
class _Enh:
    col: int  # element index
    kind: str
    act: np.ndarray  # [n_sites] activator weights
    rep: np.ndarray  # [n_sites] BCL6 weights
    pairs: list[tuple[int, int]]
    contact: float
    distance: int
    boundaries: list[int]  # boundary indices between the TSS and this element


class GeneModel:
    """A gene's grammar compiled once; :meth:`evaluate` maps occupancies [H, n_sites] to log expression."""

    def __init__(self, gene: SimGene, cfg: ExpressionConfig) -> None:
        self.gene, self.cfg = gene, cfg
        sites = gene.sites()
        self.n_sites = len(sites)
        self.site_element = np.array([i for i, e in enumerate(gene.elements) for _ in e.sites], dtype=np.int64)
        self.baseline = cfg.base + cfg.category_effect.get(gene.category, 0.0)
        self.prom_w = np.zeros(self.n_sites)
        offsets = np.cumsum([0] + [len(e.sites) for e in gene.elements])
        # CTCF boundaries: convergent pairs (first site points downstream, second upstream, in tx order)
        self.boundaries: list[tuple[int, int, float]] = []  # (site a, site b, signed distance)
        for ei, el in enumerate(gene.elements):
            if el.kind != "ctcf" or len(el.sites) != 2:
                continue
            a, b = offsets[ei], offsets[ei] + 1
            sa, sb = sorted([(gene.to_tx(sites[a].centre), a), (gene.to_tx(sites[b].centre), b)])
            if gene.rel_strand(sites[sa[1]]) == "+" and gene.rel_strand(sites[sb[1]]) == "-":
                self.boundaries.append((sa[1], sb[1], float(el.distance)))
        self.enh: list[_Enh] = []
        for ei, el in enumerate(gene.elements):
            idx = range(offsets[ei], offsets[ei + 1])
            if el.kind == "promoter":
                for i in idx:
                    s = sites[i]
                    rule = promoter_rule(s.motif, gene.to_tx(s.centre), gene.rel_strand(s), cfg)
                    self.prom_w[i] = cfg.promoter_beta.get(s.motif, 0.0) * rule
            elif el.kind in ("enhancer", "repressor"):
                act, rep = np.zeros(self.n_sites), np.zeros(self.n_sites)
                pairs = []
                for i in idx:
                    s = sites[i]
                    if el.kind == "enhancer":
                        act[i] = cfg.enhancer_beta.get(s.motif, 0.0)
                        rep[i] = cfg.enhancer_repressor_beta if s.motif == "BCL6" else 0.0
                    else:
                        rep[i] = cfg.silencer_beta if s.motif == "BCL6" else 0.0
                    if el.kind == "enhancer" and s.motif == "SPI1":
                        for j in idx:
                            t = sites[j]
                            if t.motif != "IRF4" or t.strand != s.strand:
                                continue
                            gap = t.start - s.end if s.strand == "+" else s.start - t.end
                            if abs(gap - cfg.composite_gap) <= cfg.composite_tolerance:
                                pairs.append((i, j))
                d = el.distance
                between = [k for k, (_, _, bd) in enumerate(self.boundaries) if bd * d > 0 and abs(bd) < abs(d)]
                self.enh.append(_Enh(ei, el.kind, act, rep, pairs, contact(d, cfg), d, between))

    def evaluate(self, occ: np.ndarray) -> dict[str, np.ndarray]:
        """Occupancies [H, n_sites] -> {'total', 'baseline', 'promoter', 'proximal', 'distal': [H],
        'elements': [H, n_elements] contribution of each element (0 for decoys and CTCF pairs)}."""
        occ = np.atleast_2d(np.asarray(occ, dtype=np.float64))
        cfg = self.cfg
        n_h = occ.shape[0]
        out = {k: np.zeros(n_h) for k in COMPONENTS}
        out["baseline"][:] = self.baseline
        s = occ @ self.prom_w
        out["promoter"] = cfg.promoter_max * (1.0 - np.exp(-s / cfg.promoter_max))
        elements = np.zeros((n_h, len(self.gene.elements)))
        prom_idx = [i for i, e in enumerate(self.gene.elements) if e.kind == "promoter"]
        if prom_idx:
            elements[:, prom_idx[0]] = out["promoter"]
        bound = [1.0 - cfg.insulation * occ[:, a] * occ[:, b] for a, b, _ in self.boundaries]
        for e in self.enh:
            if e.kind == "enhancer":
                z = occ @ e.act - occ @ e.rep
                for i, j in e.pairs:
                    z = z + cfg.composite_beta * occ[:, i] * occ[:, j]
                a = cfg.enhancer_max * _g(z, cfg.enhancer_theta)
            else:
                a = -cfg.silencer_max * _g(occ @ e.rep, cfg.silencer_theta)
            iota = np.ones(n_h)
            for k in e.boundaries:
                iota = iota * bound[k]
            c = a * e.contact * iota
            elements[:, e.col] = c
            key = "distal" if abs(e.distance) > cfg.distal_threshold else "proximal"
            out[key] = out[key] + c
        out["total"] = out["baseline"] + out["promoter"] + out["proximal"] + out["distal"]
        out["elements"] = elements
        return out

