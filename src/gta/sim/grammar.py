"""Planting the regulatory grammar: promoters, enhancers, silencers, CTCF pairs and decoys around each gene.

Sites are sampled from the JASPAR PWMs (sharpened, log-odds >= ``site_min_llr_frac`` x max) and written over
the background, unmasked. The planter also plans the causal variants: a base change that breaks a site, or the
one base that turns a ``latent`` site into a full one.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from gta.sim.config import SimConfig
from gta.sim.elements import Element, SimGene, Site
from gta.sim.expression import promoter_rule
from gta.sim.genome import Chromosome, random_codes
from gta.sim.motifs import breaking_change, motif_table, sample_site, score

PROMOTER_REGION = (-320, 120)  # element span around the TSS (tx coordinates)
CGI_REGION = (-700, 500)


@dataclass
class PlannedVariant:
    pos: int  # 0-based
    ref: int  # base code
    alt: int
    action: str  # breaks | creates
    element_id: str
    motif: str


class Intervals:
    """Non-overlapping occupied intervals on one chromosome."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def free(self, lo: int, hi: int) -> bool:
        k = bisect.bisect_left(self.starts, hi)
        return k == 0 or self.ends[k - 1] <= lo

    def add(self, lo: int, hi: int) -> None:
        k = bisect.bisect_left(self.starts, lo)
        self.starts.insert(k, lo)
        self.ends.insert(k, hi)


class Planter:
    """Plants every gene of one chromosome; collects planned causal variants."""

    def __init__(self, chrom: Chromosome, cfg: SimConfig, rng: np.random.Generator) -> None:
        self.chrom, self.cfg, self.g, self.rng = chrom, cfg, cfg.grammar, rng
        self.pwms = motif_table()
        self.used = Intervals()
        self.planned: list[PlannedVariant] = []
        self._planned_pos: list[int] = []

    # ----------------------------------------------------------------------------------------------- sites
    def _write_site(self, motif: str, start: int, strand: str, role: str = "site", element_id: str = "") -> Site:
        pwm = self.pwms[motif]
        codes = sample_site(pwm, self.rng, self.g.site_min_llr_frac, strand)
        self.chrom.codes[start:start + pwm.width] = codes
        self.chrom.mask[start:start + pwm.width] = False
        site = Site(motif, start, strand, pwm.width, role)
        if role == "latent":
            off, base = breaking_change(pwm, codes, strand)
            if self._plan(start + off, base, int(codes[off]), "creates", motif, element_id):
                self.chrom.codes[start + off] = base
            else:
                site.role = "site"
        site.ref_llr = score(pwm, self.chrom.codes[start:start + pwm.width], strand)
        return site

    def _plan(self, pos: int, ref: int, alt: int, action: str, motif: str, element_id: str = "") -> bool:
        k = bisect.bisect_left(self._planned_pos, pos)
        gap = self.cfg.population.min_spacing + 1
        if (k > 0 and pos - self._planned_pos[k - 1] < gap) or (k < len(self._planned_pos)
                                                                and self._planned_pos[k] - pos < gap):
            return False
        self._planned_pos.insert(k, pos)
        self.planned.insert(k, PlannedVariant(pos, ref, alt, action, element_id, motif))
        return True

    def _pack(self, length: int, widths: list[int]) -> list[int] | None:
        """Random non-overlapping offsets (>= 4 bp apart) for blocks of ``widths`` inside ``length``."""
        taken: list[tuple[int, int]] = []
        out = []
        for w in widths:
            for _ in range(60):
                o = int(self.rng.integers(5, max(6, length - w - 5)))
                if all(o + w + 4 <= a or b + 4 <= o for a, b in taken):
                    taken.append((o, o + w))
                    out.append(o)
                    break
            else:
                return None
        return out

    def _region(self, gene: SimGene, x: float, length: int, pad: int = 40) -> tuple[int, int] | None:
        centre = gene.to_genome(x)
        lo, hi = centre - length // 2, centre - length // 2 + length
        if lo < 1000 or hi > len(self.chrom) - 1000 or not self.used.free(lo - pad, hi + pad):
            return None
        return lo, hi

    def _new_element(self, gene: SimGene, kind: str, lo: int, hi: int, refill: bool = True) -> Element:
        if refill:
            self.chrom.codes[lo:hi] = random_codes(0.45, hi - lo, self.rng)
        self.chrom.mask[lo:hi] = False
        self.used.add(lo, hi)
        prefix = {"promoter": "P", "enhancer": "E", "repressor": "R", "ctcf": "C", "decoy": "D"}[kind]
        k = sum(e.kind == kind for e in gene.elements) + 1
        el = Element(f"{gene.gene_id}:{prefix}{k}", kind, gene.chrom, lo, hi, round(gene.to_tx((lo + hi - 1) / 2)))
        gene.elements.append(el)
        return el

    def _distance(self, classes: tuple[tuple[float, int, int], ...]) -> float:
        shares = np.array([c[0] for c in classes])
        c = classes[int(self.rng.choice(len(classes), p=shares / shares.sum()))]
        return float(self.rng.uniform(c[1], c[2])) * (1 if self.rng.random() < 0.5 else -1)

    def _place(self, gene: SimGene, kind: str, length: int, dist: tuple | None = None, x: float | None = None,
               tries: int = 30) -> Element | None:
        for _ in range(tries):
            xx = x if x is not None else self._distance(dist or self.g.enhancer_distance)
            reg = self._region(gene, xx, length)
            if reg:
                return self._new_element(gene, kind, *reg)
            if x is not None:
                return None
        return None

    # ------------------------------------------------------------------------------------------- elements
    def plant_gene(self, gene: SimGene) -> None:
        cat = gene.category
        self.plant_promoter(gene)
        for _ in range(self.rng.poisson(self.g.insulators_mean)):
            self.plant_ctcf_pair(gene)
        n_enh = min(self.g.enhancers_max, self.rng.poisson(self.g.enhancers_mean.get(cat, 3.0)))
        for _ in range(n_enh):
            self.plant_enhancer(gene)
        for _ in range(self.rng.poisson(self.g.silencers_mean.get(cat, 0.5))):
            self.plant_silencer(gene)
        for _ in range(self.rng.poisson(self.g.promoter_decoys_mean)):
            motif = str(self.rng.choice(list(self.g.promoter_site_prob)))
            self.plant_decoy(gene, [motif], x=float(self.rng.uniform(350, 2000)) * self.rng.choice([-1, 1]))
        for _ in range(self.rng.poisson(self.g.decoys_mean)):
            self.plant_random_decoy(gene)
        gene.elements.sort(key=lambda e: e.start)

    def plant_promoter(self, gene: SimGene) -> None:
        lo, hi = sorted((gene.to_genome(PROMOTER_REGION[0]), gene.to_genome(PROMOTER_REGION[1])))
        el = self._new_element(gene, "promoter", lo, hi + 1, refill=False)
        rules = self.cfg.expression.promoter_rules
        taken: list[tuple[int, int]] = []
        boost = self.g.promoter_housekeeping_boost if gene.category == "housekeeping" else 1.0

        def put(motif: str, role: str, wrong_strand: bool = False) -> Site | None:
            w = self.pwms[motif].width
            r_lo, r_hi, orient = rules[motif]
            for _ in range(30):
                x = float(self.rng.uniform(r_lo + 1, r_hi - 1))
                start = int(round(gene.to_genome(x) - (w - 1) / 2))
                if orient == "same":
                    strand = gene.strand if not wrong_strand else ("-" if gene.strand == "+" else "+")
                else:
                    strand = "+" if self.rng.random() < 0.5 else "-"
                if any(start < b + 2 and a < start + w + 2 for a, b in taken):
                    continue
                site = Site(motif, start, strand, w)
                if promoter_rule(motif, gene.to_tx(site.centre), gene.rel_strand(site), self.cfg.expression) != (
                        0.0 if wrong_strand else 1.0):
                    continue
                taken.append((start, start + w))
                s = self._write_site(motif, start, strand, role, el.element_id)
                el.sites.append(s)
                return s
            return None

        for motif, p in self.g.promoter_site_prob.items():
            pb = min(0.95, p * boost) if motif in ("SP1", "NRF1", "ELK1", "GABPA") else p
            n = int(self.rng.random() < pb) + (int(self.rng.random() < pb / 2) if motif == "SP1" else 0)
            for _ in range(n):
                put(motif, "site")
        if not any(s.motif == "TBP" for s in el.sites) and self.rng.random() < 0.15:
            put("TBP", "decoy", wrong_strand=True)
        if self.rng.random() < self.cfg.population.create_prob["promoter"]:
            free = [m for m in self.g.promoter_site_prob if m != "TBP"]
            put(str(self.rng.choice(free)), "latent")
        self._maybe_break(el, "promoter")
        el.sites.sort(key=lambda s: s.start)

    def _blocks(self, el: Element, blocks: list[list[tuple[str, int, str]]]) -> bool:
        """Write blocks of (motif, offset-in-block, strand) at random non-overlapping places in ``el``."""
        widths = [max(o + self.pwms[m].width for m, o, _ in b) for b in blocks]
        offs = self._pack(el.end - el.start, widths)
        if offs is None:
            return False
        for b, o in zip(blocks, offs, strict=True):
            for m, off, strand in b:
                role = "latent" if strand.endswith("*") else "site"
                el.sites.append(self._write_site(m, el.start + o + off, strand.rstrip("*"), role, el.element_id))
        el.sites.sort(key=lambda s: s.start)
        return True

    def _strand(self) -> str:
        return "+" if self.rng.random() < 0.5 else "-"

    def _composite(self, strand: str) -> list[tuple[str, int, str]]:
        gap = self.cfg.expression.composite_gap
        w_s, w_i = self.pwms["SPI1"].width, self.pwms["IRF4"].width
        if strand == "+":
            return [("SPI1", 0, "+"), ("IRF4", w_s + gap, "+")]
        return [("IRF4", 0, "-"), ("SPI1", w_i + gap, "-")]

    def plant_enhancer(self, gene: SimGene) -> None:
        length = int(self.rng.integers(*self.g.enhancer_len))
        el = self._place(gene, "enhancer", length)
        if el is None:
            return
        names = list(self.g.activator_weights)
        p = np.array([self.g.activator_weights[n] for n in names])
        k = int(self.rng.integers(self.g.activators_per_enhancer[0], self.g.activators_per_enhancer[1] + 1))
        blocks = [[(str(m), 0, self._strand())] for m in self.rng.choice(names, size=k, p=p / p.sum())]
        if self.rng.random() < self.g.composite_prob.get(gene.category, 0.4):
            blocks.append(self._composite(self._strand()))
        if self.rng.random() < self.g.repressed_enhancer_prob:
            blocks.append([("BCL6", 0, self._strand())])
        if self.rng.random() < self.cfg.population.create_prob["enhancer"]:
            blocks.append([(str(self.rng.choice(names, p=p / p.sum())), 0, self._strand() + "*")])
        self._blocks(el, blocks)
        self._maybe_break(el, "enhancer")

    def plant_silencer(self, gene: SimGene) -> None:
        el = self._place(gene, "repressor", int(self.rng.integers(180, 300)))
        if el is None:
            return
        self._blocks(el, [[("BCL6", 0, self._strand())] for _ in range(int(self.rng.integers(2, 4)))])
        self._maybe_break(el, "repressor")

    def plant_ctcf_pair(self, gene: SimGene) -> None:
        lo, hi = self.g.insulator_distance
        el = self._place(gene, "ctcf", 200, dist=((1.0, lo, hi),))
        if el is None:
            return
        w = self.pwms["CTCF"].width
        spacing = int(self.rng.integers(40, 200 - 2 * w - 20))
        convergent = self.rng.random() >= self.g.divergent_ctcf_share
        # tx order: first site points downstream ('+'), second upstream ('-') when convergent
        rel = ("+", "-") if convergent else ("-", "+")
        a, b = 10, 10 + w + spacing
        if gene.strand == "+":
            plan = [(el.start + a, rel[0]), (el.start + b, rel[1])]
        else:  # tx order runs right to left on the genome
            flip = {"+": "-", "-": "+"}
            plan = [(el.end - a - w, flip[rel[0]]), (el.end - b - w, flip[rel[1]])]
        for start, strand in sorted(plan):
            el.sites.append(self._write_site("CTCF", start, strand))
        self._maybe_break(el, "ctcf")

    def plant_decoy(self, gene: SimGene, motifs: list[str], x: float | None = None, spacing: int = 0,
                    same_strand: bool = True) -> None:
        widths = [self.pwms[m].width for m in motifs]
        length = sum(widths) + spacing * (len(motifs) - 1) + 20
        el = self._place(gene, "decoy", length, dist=((1.0, 2_500, 57_000),), x=x)
        if el is None:
            return
        strand = self._strand()
        pos = el.start + 10
        for m, w in zip(motifs, widths, strict=True):
            el.sites.append(self._write_site(m, pos, strand, "decoy"))
            pos += w + spacing
            if not same_strand:
                strand = "-" if strand == "+" else "+"

    def plant_random_decoy(self, gene: SimGene) -> None:
        u = self.rng.random()
        if u < 0.45:
            names = list(self.g.activator_weights) + ["SPI1", "IRF4"]
            self.plant_decoy(gene, [str(self.rng.choice(names))])
        elif u < 0.65:
            pair = ["SPI1", "IRF4"] if self.rng.random() < 0.5 else ["IRF4", "SPI1"]
            if self.rng.random() < self.g.wrong_orientation_pair_share:
                self.plant_decoy(gene, pair, spacing=self.cfg.expression.composite_gap, same_strand=False)
            else:
                self.plant_decoy(gene, pair, spacing=int(self.rng.integers(150, 400)))
        elif u < 0.8:
            self.plant_decoy(gene, ["CTCF"])
        elif u < 0.9:
            self.plant_decoy(gene, ["BCL6"])
        else:
            self.plant_decoy(gene, [str(self.rng.choice(list(self.g.promoter_site_prob)))])

    def _maybe_break(self, el: Element, kind: str) -> None:
        if self.rng.random() >= self.cfg.population.break_prob.get(kind, 0.0):
            return
        cands = [s for s in el.sites if s.role == "site"]
        if not cands:
            return
        s = cands[int(self.rng.integers(len(cands)))]
        pwm = self.pwms[s.motif]
        off, base = breaking_change(pwm, self.chrom.codes[s.start:s.end], s.strand)
        self._plan(s.start + off, int(self.chrom.codes[s.start + off]), base, "breaks", s.motif, el.element_id)
