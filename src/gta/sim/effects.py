"""Haplotype expression of one gene: apply the variants a haplotype carries to the gene's sites and evaluate.

Only sites change with variants (background hits have no effect by construction). Indels shift the positions
of everything beyond them by a few bp; contact distances ignore that shift.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gta.sim.config import ExpressionConfig
from gta.sim.elements import SimGene, Site
from gta.sim.expression import COMPONENTS, GeneModel
from gta.sim.motifs import motif_table, occupancy, score
from gta.sim.population import SimVariant

_CODE = {"A": 0, "C": 1, "G": 2, "T": 3}


def site_llr(codes: np.ndarray, site: Site, variants: list[SimVariant]) -> float:
    """Log-odds of a site on a haplotype carrying ``variants`` (those overlapping the site), same anchor."""
    pwm = motif_table()[site.motif]
    if not variants:
        return score(pwm, codes[site.start:site.end], site.strand)
    lo = min([site.start] + [v.pos for v in variants]) - 2
    hi = max([site.end] + [v.end for v in variants]) + 20
    seq = [int(c) for c in codes[lo:hi]]
    anchor = site.start - lo
    for v in sorted(variants, key=lambda v: v.pos, reverse=True):
        a = v.pos - lo
        seq[a:a + len(v.ref)] = [_CODE[b] for b in v.alt]
        if v.end <= site.start:
            anchor += len(v.alt) - len(v.ref)
    return score(pwm, np.array(seq[anchor:anchor + site.width], dtype=np.uint8), site.strand)


def _verb(delta: float, role: str) -> str:
    if delta < -3:
        return "breaks"
    if delta < 0:
        return "weakens"
    if delta > 3 and role == "latent":
        return "creates"
    return "strengthens" if delta > 0 else "leaves"


@dataclass
class GeneResult:
    hap: np.ndarray  # [n_haps] log expression per haplotype
    components: dict[str, np.ndarray]  # [n_haps] each
    ref: dict[str, np.ndarray]  # evaluate() output for the reference haplotype
    element_effect: np.ndarray  # [n_elements] reference contribution (CTCF: loss when the pair is removed)
    insulation: np.ndarray  # [n_elements] product of boundary factors at the reference (1 = not insulated)
    variant_effects: dict[int, tuple[float, str]] = field(default_factory=dict)  # variant index -> (effect, what)


def evaluate_gene(gene: SimGene, cfg: ExpressionConfig, codes: np.ndarray, variants: list[SimVariant],
                  haps: np.ndarray, var_pos: np.ndarray) -> GeneResult:
    """Expression of every haplotype, element contributions and single-variant effects for one gene."""
    model = GeneModel(gene, cfg)
    pwms = motif_table()
    sites = gene.sites()
    llr0 = np.array([score(pwms[s.motif], codes[s.start:s.end], s.strand) for s in sites])
    theta, temp = cfg.occupancy_theta_frac, cfg.occupancy_temperature
    occ0 = np.array([occupancy(llr0[i], pwms[s.motif], theta, temp) for i, s in enumerate(sites)])
    # variants that overlap each site
    touching: dict[int, list[int]] = {}
    for i, s in enumerate(sites):
        lo = int(np.searchsorted(var_pos, s.start - 20))
        hi = int(np.searchsorted(var_pos, s.end))
        for j in range(lo, hi):
            a, b = variants[j].key_span()
            if a < s.end and b > s.start:
                touching.setdefault(i, []).append(j)
    rel = sorted({j for js in touching.values() for j in js})
    ref = model.evaluate(occ0[None, :])
    ref = {k: v[0] for k, v in ref.items()}

    def occ_for(carried: set[int]) -> np.ndarray:
        occ = occ0.copy()
        for i, js in touching.items():
            vs = [variants[j] for j in js if j in carried]
            if vs:
                occ[i] = occupancy(site_llr(codes, sites[i], vs), pwms[sites[i].motif], theta, temp)
        return occ

    if rel:
        sub = haps[:, rel]
        uniq, inverse = np.unique(sub, axis=0, return_inverse=True)
        occ = np.stack([occ_for({rel[k] for k in np.flatnonzero(row)}) for row in uniq])
        res = model.evaluate(occ)
        inverse = inverse.reshape(-1)
        hap = res["total"][inverse]
        comps = {k: res[k][inverse] for k in COMPONENTS}
    else:
        n_h = haps.shape[0]
        hap = np.full(n_h, ref["total"])
        comps = {k: np.full(n_h, ref[k]) for k in COMPONENTS}
    effects: dict[int, tuple[float, str]] = {}
    for j in rel:
        h1 = model.evaluate(occ_for({j})[None, :])["total"][0]
        what = []
        for i, js in touching.items():
            if j in js:
                d = site_llr(codes, sites[i], [variants[j]]) - llr0[i]
                verb = _verb(d, sites[i].role)
                elem = next(e.element_id for e in gene.elements if sites[i] in e.sites)
                what.append(f"{verb} {sites[i].motif} site of {elem} ({d:+.1f} bits)")
        effects[j] = (float(h1 - ref["total"]), "; ".join(what))
    element_effect = ref["elements"].copy()
    offsets = np.cumsum([0] + [len(e.sites) for e in gene.elements])
    for k, el in enumerate(gene.elements):
        if el.kind == "ctcf":
            occ = occ0.copy()
            occ[offsets[k]:offsets[k + 1]] = 0.0
            element_effect[k] = ref["total"] - model.evaluate(occ[None, :])["total"][0]
    insulation = np.ones(len(gene.elements))
    bound = [1.0 - cfg.insulation * occ0[a] * occ0[b] for a, b, _ in model.boundaries]
    for e in model.enh:
        for k in e.boundaries:
            insulation[e.col] *= bound[k]
    return GeneResult(hap, comps, ref, element_effect, insulation, effects)
