"""``simulate``: build a whole simulated data set (genome, genes, variants, expression, annotations, truth)."""

from __future__ import annotations

import itertools
import json
import logging
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy.stats import rankdata, spearmanr
from tqdm.auto import tqdm

from gta.atomic import atomic_path, atomic_write_text
from gta.errors import GtaInputError
from gta.geometry import Geometry
from gta.io.annotations import describe_gene
from gta.io.manifest import write_manifest
from gta.sim.config import SimConfig, make_config
from gta.sim.effects import GeneResult, evaluate_gene
from gta.sim.elements import SimGene
from gta.sim.expression import COMPONENTS
from gta.sim.genes import layout, sample_identities
from gta.sim.genome import background, cpg_island, repeat_consensi, write_fai, write_fasta_record
from gta.sim.grammar import CGI_REGION, Planter
from gta.sim.motifs import motif_table
from gta.sim.population import SimVariant, haplotypes, random_variants
from gta.sim.write import format_matrix, write_expression, write_gtf, write_tsv, write_vcf
from gta.stats import combine_haplotypes

log = logging.getLogger(__name__)
DESCRIPTION = ("simulated lymphoblastoid cell line (LCL) RNA-seq: gene expression (RPKM) of {n} individuals, "
               "from a planted long-range regulatory grammar (gta simulate, preset {preset}, seed {seed})")


def stream(seed: int, name: str) -> np.random.Generator:
    """An independent random stream per named stage, so stages do not shift each other's draws."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def choose_splits(counts: dict[str, int], val_fraction: float, test_fraction: float) -> tuple[list[str], list[str]]:
    """Test, then validation chromosomes whose gene shares come closest to the asked fractions."""
    names = list(counts)
    total = sum(counts.values())

    def gap(c: tuple[str, ...] | list[str], share: float) -> float:
        return abs(sum(counts[x] for x in c) / total - share)

    def best(pool: list[str], share: float) -> list[str]:
        if len(pool) <= 1:
            return []
        if len(pool) <= 14:  # exhaustive
            options = (c for r in range(1, len(pool)) for c in itertools.combinations(pool, r))
            return list(min(options, key=lambda c: (gap(c, share), len(c), c)))
        chosen: list[str] = []  # greedy: add the chromosome that brings the share closest, while it helps
        while len(chosen) < len(pool) - 1:
            nxt = min((c for c in pool if c not in chosen), key=lambda c: (gap(chosen + [c], share), c))
            if chosen and gap(chosen + [nxt], share) >= gap(chosen, share):
                break
            chosen.append(nxt)
        return chosen

    test = best(names, test_fraction)
    val = best([c for c in names if c not in test], val_fraction)
    return val, test


def _ranks(x: np.ndarray, axis: int) -> np.ndarray:
    return np.apply_along_axis(rankdata, axis, x)


def noise_ceiling(noise_free: np.ndarray, observed: np.ndarray) -> dict[str, Any]:
    """Spearman between noise-free and observed expression [genes, individuals] (log or RPKM: same ranks)."""
    per_ind = [spearmanr(noise_free[:, i], observed[:, i])[0] for i in range(observed.shape[1])]
    varying = np.ptp(noise_free, axis=1) > 1e-9
    rf, ro = _ranks(noise_free[varying], 1), _ranks(observed[varying], 1)
    rf, ro = rf - rf.mean(1, keepdims=True), ro - ro.mean(1, keepdims=True)
    per_gene = (rf * ro).sum(1) / np.sqrt((rf**2).sum(1) * (ro**2).sum(1))
    return {
        "across_genes_mean_over_individuals": float(np.mean(per_ind)),
        "across_genes_of_means": float(spearmanr(np.log(noise_free).mean(1), np.log(observed).mean(1))[0]),
        "across_individuals_median_per_gene": float(np.median(per_gene)) if len(per_gene) else float("nan"),
        "n_genes": int(noise_free.shape[0]),
        "n_genes_varying": int(varying.sum()),
        "definition": "Spearman(noise-free, observed). across_genes: for each individual over genes, then the mean "
                      "over individuals; of_means: over genes of the per-gene means of log expression; "
                      "across_individuals: for each gene whose noise-free expression varies, over individuals, "
                      "then the median over genes. Computed from the written files.",
    }


MARKER = ".gta-simulate"  # written first into every folder simulate fills: a later run may replace its files


def written_by_simulate(out: Path) -> bool:
    """Whether ``out`` holds a data set gta simulate wrote (its marker, or the dataset.yaml + truth/config.yaml of
    a run from before the marker existed)."""
    return (out / MARKER).is_file() or ((out / "dataset.yaml").is_file() and (out / "truth" / "config.yaml").is_file())


def claim_output(out: Path) -> None:
    """Refuse an ``out`` that holds anything gta simulate did not write (it would replace genome.fa, genes.gtf,
    ... of the user's own); else mark it as simulate's."""
    if out.exists() and not out.is_dir():
        raise GtaInputError("--out names a file, not a folder", out, hint="pass a new folder for the simulated data")
    if out.is_dir() and any(out.iterdir()) and not written_by_simulate(out):
        clash = sorted(p.name for p in out.iterdir())
        shown = ", ".join(clash[:4]) + (" ..." if len(clash) > 4 else "")
        raise GtaInputError(f"--out is a folder gta simulate did not write (it holds {shown}); simulating into "
                            "it would replace files of the same name", out,
                            hint="pass a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by gta simulate; a later gta simulate --out here replaces its files\n")


def simulate(preset: str = "demo", seed: int = 0, out: str | Path = "sim",
             config: SimConfig | dict[str, Any] | str | Path | None = None, gene_table: pd.DataFrame | None = None,
             progress: bool = True) -> Path:
    """Write a simulated data set into ``out`` and return the path of its manifest (``dataset.yaml``).

    ``config``: a full :class:`SimConfig`, or overrides (dict or YAML path) on the preset. ``gene_table``:
    the annotation table to borrow identities from (default: the shipped human table).
    """
    t0 = time.perf_counter()
    cfg = config if isinstance(config, SimConfig) else make_config(preset, seed, config)
    seed = cfg.seed
    out = Path(out)
    claim_output(out)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    geometry = Geometry(**cfg.geometry)
    if gene_table is None:
        from gta.io.annotations import load_human_genes

        gene_table = load_human_genes()
    genes = sample_identities(gene_table, cfg, stream(seed, "identities"))
    lengths = layout(genes, cfg, stream(seed, "layout"))
    consensi = repeat_consensi(stream(seed, "repeats"))
    n_ind = cfg.population.n_individuals
    samples = [f"SIM{i + 1:05d}" for i in range(n_ind)]
    density = cfg.population.variants_per_window / geometry.input_len
    by_chrom = {c: [g for g in genes if g.chrom == c] for c in lengths}
    results: dict[int, GeneResult] = {}
    vcf_records: list[tuple[str, SimVariant, np.ndarray]] = []
    variant_rows: list[dict[str, Any]] = []
    fai = []
    motif_table()
    with atomic_path(out / "genome.fa") as tmp, tmp.open("wb") as fh:
        for name in tqdm(lengths, desc="simulate", unit="chrom", disable=not progress):
            rng = stream(seed, f"chrom:{name}")
            cg = by_chrom[name]
            protect = [(g.tss - 2000, g.tss + 2000) for g in cg]
            chrom = background(name, lengths[name], cfg.genome, consensi, protect, rng)
            for g in cg:
                if rng.random() < cfg.genome.cgi_prob.get(g.category, 0.4):
                    lo, hi = sorted((g.to_genome(CGI_REGION[0]), g.to_genome(CGI_REGION[1])))
                    cpg_island(chrom, lo, hi, cfg.genome.cgi_gc, rng)
            planter = Planter(chrom, cfg, rng)
            for g in cg:
                planter.plant_gene(g)
            variants = random_variants(chrom.codes, cfg.population, density, planter.planned, rng)
            haps = haplotypes(variants, len(chrom), 2 * n_ind, cfg.population, rng)
            ac = haps.sum(0)
            keep = (ac > 0) & (ac < haps.shape[0])
            variants = [v for v, k in zip(variants, keep, strict=True) if k]
            haps = haps[:, keep]
            for j, v in enumerate(variants):
                v.vid = f"simv{len(vcf_records) + 1}"
                vcf_records.append((name, v, haps[:, j]))
            pos = np.array([v.pos for v in variants], dtype=np.int64)
            for g in cg:
                res = evaluate_gene(g, cfg.expression, chrom.codes, variants, haps, pos)
                results[g.index] = res
                lo, hi = geometry.window(g.tss, g.strand)
                for j in range(int(np.searchsorted(pos, lo)), int(np.searchsorted(pos, hi))):
                    v = variants[j]
                    eff, what = res.variant_effects.get(j, (0.0, ""))
                    variant_rows.append({
                        "variant_id": v.vid, "chrom": name, "pos": v.pos + 1, "ref": v.ref, "alt": v.alt,
                        "gene_id": g.gene_id, "tss_distance": int(g.to_tx(v.pos)), "af": float(haps[:, j].mean()),
                        "effect": eff, "planted": v.action or "", "what": what})
            fai.append(write_fasta_record(fh, chrom, cfg.genome.line_width))
    write_fai(out / "genome.fa.fai", fai)
    _finish(out, cfg, geometry, genes, results, lengths, samples, vcf_records, variant_rows, t0)
    return out / "dataset.yaml"


def _finish(out: Path, cfg: SimConfig, geometry: Geometry, genes: list[SimGene], results: dict[int, GeneResult],
            lengths: dict[str, int], samples: list[str], vcf_records: list, variant_rows: list[dict[str, Any]],
            t0: float) -> None:
    """Everything after the chromosomes: expression, the file formats, the truth tables, the summary and, last,
    the manifest (a data set without ``dataset.yaml`` is unfinished)."""
    order = list(lengths)
    genes = sorted(genes, key=lambda g: (order.index(g.chrom), g.tss))
    expr = _write_expression(out, cfg, genes, results, samples)
    _write_formats(out, genes, order, lengths, vcf_records, samples)
    counts = {c: sum(g.chrom == c for g in genes) for c in order}
    val, test = choose_splits(counts, cfg.val_fraction, cfg.test_fraction)
    comp = _components(genes, results)
    gdf, vdf = _write_truth(out, cfg, geometry, genes, results, expr, comp, (val, test), variant_rows)
    summary = _summary(genes, len(samples), vcf_records, lengths, expr, comp, gdf, vdf)
    atomic_write_text(out / "truth" / "summary.json", json.dumps(summary, indent=2) + "\n")
    manifest = {
        "name": f"sim-{cfg.preset}-seed{cfg.seed}",
        "description": DESCRIPTION.format(n=len(samples), preset=cfg.preset, seed=cfg.seed),
        "genome": "genome.fa", "genes": "genes.gtf", "expression": "expression.tsv",
        "variants": "variants.vcf.gz", "annotations": "annotations.tsv", "truth": "truth",
        "geometry": geometry.to_dict(),
        "splits": {"val_chroms": val, "test_chroms": test, "test_individual_fraction": 0.2, "seed": cfg.seed},
        "expression_transform": "log1p",
    }
    write_manifest(out / "dataset.yaml", manifest)
    log.info("simulated %d genes x %d individuals in %.1f s", len(genes), len(samples), time.perf_counter() - t0)


@dataclass
class _Expression:
    """Log-scale expression [genes, individuals]: noise-free (``y``), the per-gene noise ``u`` and the observed."""

    y: np.ndarray
    u: np.ndarray
    observed: np.ndarray


def _write_expression(out: Path, cfg: SimConfig, genes: list[SimGene], results: dict[int, GeneResult],
                      samples: list[str]) -> _Expression:
    """Individuals' expression from their two haplotypes plus gene, individual and residual noise; writes the
    observed and the noise-free tables and the noise ceiling."""
    ecfg = cfg.expression
    y = np.stack([combine_haplotypes(results[g.index].hap[0::2], results[g.index].hap[1::2]) for g in genes])
    noise = stream(cfg.seed, "noise")
    u = noise.normal(0, ecfg.sigma_gene, size=len(genes))
    v = noise.normal(0, ecfg.sigma_individual, size=len(samples))
    eps = noise.normal(0, ecfg.sigma_residual, size=(len(genes), len(samples)))
    observed = y + u[:, None] + v[None, :] + eps
    obs_text, nf_text = format_matrix(np.exp(observed)), format_matrix(np.exp(y))
    write_expression(out / "expression.tsv", genes, samples, obs_text)
    write_expression(out / "truth" / "expression_noise_free.tsv", genes, samples, nf_text)
    ceiling = noise_ceiling(nf_text.astype(float), obs_text.astype(float))
    atomic_write_text(out / "truth" / "noise_ceiling.json", json.dumps(ceiling, indent=2) + "\n")
    return _Expression(y, u, observed)


def _write_formats(out: Path, genes: list[SimGene], order: list[str], lengths: dict[str, int], vcf_records: list,
                   samples: list[str]) -> None:
    """The data set's genes (GTF), variants (VCF) and annotations (TSV)."""
    write_gtf(out / "genes.gtf", genes, order)
    write_vcf(out / "variants.vcf.gz", lengths, vcf_records, samples)
    ann = pd.DataFrame([{"gene_id": g.gene_id, "symbol": g.symbol, "name": g.name, "go_bp": g.go_bp,
                         "description": describe_gene(g.symbol, g.name, "protein_coding", g.chrom,
                                                      [t.strip() for t in g.go_bp.split(";") if t.strip()])}
                        for g in genes])
    write_tsv(out / "annotations.tsv", ann)


@dataclass
class _Components:
    """Per expression component (COMPONENTS), over genes: the mean over individuals (``mu``), the variance across
    individuals (``var``) and the squared deviation ``dev`` whose share of ``total`` each gene's row reports."""

    mu: dict[str, np.ndarray]
    var: dict[str, np.ndarray]
    dev: dict[str, np.ndarray]
    total: np.ndarray


def _components(genes: list[SimGene], results: dict[int, GeneResult]) -> _Components:
    comp_mean = {k: np.array([0.5 * (results[g.index].components[k][0::2] + results[g.index].components[k][1::2])
                              for g in genes]) for k in COMPONENTS}  # [genes, individuals]
    mu = {k: comp_mean[k].mean(1) for k in COMPONENTS}
    var = {k: comp_mean[k].var(1) for k in COMPONENTS}
    dev = {k: (mu[k] - mu[k].mean()) ** 2 + var[k] for k in COMPONENTS}
    return _Components(mu, var, dev, sum(dev.values()) + 1e-12)


def _write_truth(out: Path, cfg: SimConfig, geometry: Geometry, genes: list[SimGene], results: dict[int, GeneResult],
                 expr: _Expression, comp: _Components, splits: tuple[list[str], list[str]],
                 variant_rows: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """truth/: genes.tsv, elements.tsv, sites.tsv, variants.tsv and the config; returns the gene and variant
    tables."""
    val, test = splits
    rows, el_rows, site_rows = [], [], []
    for gi, g in enumerate(genes):
        res = results[g.index]
        split = "test" if g.chrom in test else "val" if g.chrom in val else "train"
        rows.append(_gene_truth(g, gi, res, split, expr, comp))
        for k, el in enumerate(g.elements):
            el_rows.append(_element_truth(g, el, float(res.element_effect[k]), bool(res.insulation[k] < 0.5),
                                          geometry))
            site_rows += _site_truth(g, el)
    truth = out / "truth"
    gdf = pd.DataFrame(rows)
    write_tsv(truth / "genes.tsv", gdf)
    write_tsv(truth / "elements.tsv", pd.DataFrame(el_rows))
    write_tsv(truth / "sites.tsv", pd.DataFrame(site_rows))
    vdf = pd.DataFrame(variant_rows)
    write_tsv(truth / "variants.tsv", vdf)
    atomic_write_text(truth / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return gdf, vdf


def _gene_truth(g: SimGene, gi: int, res: GeneResult, split: str, expr: _Expression,
                comp: _Components) -> dict[str, Any]:
    """One row of truth/genes.tsv."""
    y, mu, dev, total = expr.y, comp.mu, comp.dev, comp.total
    kinds = [e.kind for e in g.elements]
    return {
        "gene_id": g.gene_id, "symbol": g.symbol, "category": g.category, "chrom": g.chrom, "tss": g.tss,
        "strand": g.strand, "split": split, "noise_free_mean": float(y[gi].mean()),
        "noise_free_mean_rpkm": float(np.exp(y[gi]).mean()), "ref_expression": float(res.ref["total"]),
        **{k: float(mu[k][gi]) for k in COMPONENTS},
        "distal_share": float(dev["distal"][gi] / total[gi]),
        "proximal_share": float(dev["proximal"][gi] / total[gi]),
        "promoter_share": float(dev["promoter"][gi] / total[gi]),
        "baseline_share": float(dev["baseline"][gi] / total[gi]),
        "distal_abs_share": float(abs(mu["distal"][gi]) / (abs(mu["promoter"][gi]) + abs(mu["proximal"][gi])
                                                            + abs(mu["distal"][gi]) + 1e-12)),
        "cross_individual_var": float(y[gi].var()), "gene_noise": float(expr.u[gi]),
        "n_enhancers": kinds.count("enhancer"), "n_silencers": kinds.count("repressor"),
        "n_insulators": kinds.count("ctcf"),
        "n_causal_variants": sum(1 for e in res.variant_effects.values() if abs(e[0]) > 0.01),
    }


def _element_truth(g: SimGene, el, effect: float, insulated: bool, geometry: Geometry) -> dict[str, Any]:
    """One row of truth/elements.tsv: where the element lies in the window and in output bins, and its effect."""
    a = [geometry.genome_to_index(p, g.tss, g.strand) for p in (el.start, el.end - 1)]
    lo, hi = min(a), max(a) + 1
    b_lo = lo // geometry.bin_size - geometry.crop_bins
    b_hi = (hi - 1) // geometry.bin_size - geometry.crop_bins + 1
    return {
        "gene_id": g.gene_id, "element_id": el.element_id, "kind": el.kind,
        "motifs": ",".join(f"{s.motif}({g.rel_strand(s)})" + ("*" if s.role == "latent" else "")
                           for s in sorted(el.sites, key=lambda s: g.to_tx(s.centre))),
        "chrom": el.chrom, "start": el.start, "end": el.end, "window_start": lo, "window_end": hi,
        "bin_start": b_lo, "bin_end": b_hi,
        "in_output_span": bool(b_lo >= 0 and b_hi <= geometry.output_bins), "distance": el.distance,
        "effect": effect, "insulated": insulated,
    }


def _site_truth(g: SimGene, el) -> list[dict[str, Any]]:
    """The rows of truth/sites.tsv of one element's motif sites."""
    return [{"gene_id": g.gene_id, "element_id": el.element_id, "motif": s.motif,
             "chrom": el.chrom, "start": s.start, "end": s.end, "strand": s.strand,
             "tx_strand": g.rel_strand(s), "role": s.role, "ref_llr": round(s.ref_llr, 3),
             "max_llr": round(motif_table()[s.motif].max_score, 3),
             "distance": round(g.to_tx(s.centre))} for s in el.sites]


def _summary(genes: list[SimGene], n_ind: int, vcf_records: list, lengths: dict[str, int], expr: _Expression,
             comp: _Components, gdf: pd.DataFrame, vdf: pd.DataFrame) -> dict[str, Any]:
    """truth/summary.json: sizes, variance decomposition across genes and individuals, split and category counts."""
    cross_gene_var = {k: float(comp.mu[k].var()) for k in COMPONENTS}
    return {
        "n_genes": len(genes), "n_individuals": n_ind, "n_variants": len(vcf_records),
        "genome_bp": int(sum(lengths.values())),
        "variants_per_window": float(vdf.groupby("gene_id").size().mean()) if len(vdf) else 0.0,
        "causal_variant_gene_pairs": int((vdf["effect"].abs() > 0.01).sum()) if len(vdf) else 0,
        "cross_gene_variance": {**cross_gene_var, "noise_free_total": float(expr.y.mean(1).var()),
                                "gene_noise": float(expr.u.var()), "observed_mean": float(expr.observed.mean(1).var())},
        "mean_cross_individual_variance": {k: float(comp.var[k].mean()) for k in COMPONENTS},
        "mean_distal_share": float(gdf["distal_share"].mean()),
        "split_genes": gdf["split"].value_counts().to_dict(),
        "categories": gdf["category"].value_counts().to_dict(),
    }
