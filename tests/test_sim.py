"""gta.sim: the simulated benchmark (tiny preset) read back through gta's readers, checked against its truth."""

from __future__ import annotations

import filecmp
import json
import subprocess
import sys
from pathlib import Path

import cyvcf2
import numpy as np
import pandas as pd
import pyfaidx
import pytest
from scipy.stats import spearmanr

from gta.errors import GtaInputError
from gta.sim import make_config, noise_ceiling, simulate
from gta.sim.config import ExpressionConfig
from gta.sim.elements import Element, SimGene, Site
from gta.sim.expression import GeneModel, contact
from gta.sim.genes import categorize
from gta.sim.motifs import motif_table, score
from gta.sim.simulate import choose_splits
from gta.stats import combine_haplotypes

CODE = {"A": 0, "C": 1, "G": 2, "T": 3}


def stand_in_table(n: int = 80) -> pd.DataFrame:
    """A small table with the columns of gta.io.annotations.load_human_genes()."""
    go = ["translation; ribosome biogenesis", "B cell activation; immune response", "neuron differentiation", "",
          "mRNA splicing, via spliceosome", "interferon-gamma-mediated signaling pathway", "muscle contraction"]
    rows = []
    for i in range(n):
        rows.append({"gene_id": f"ENSG{90000000000 + i:011d}", "entrez": i + 1, "symbol": f"SIMG{i}",
                     "name": f"stand-in gene {i}", "gene_type": "protein_coding" if i % 10 else "ncRNA",
                     "chrom": "chr1", "start": 1000 * i, "end": 1000 * i + 500, "strand": "+",
                     "go_bp": go[i % len(go)], "description": f"SIMG{i} is a stand-in."})
    return pd.DataFrame(rows)


def real_or_stand_in() -> pd.DataFrame:
    from gta.io.annotations import HUMAN_GENES_PATH, load_human_genes

    return load_human_genes() if HUMAN_GENES_PATH.is_file() else stand_in_table()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return simulate("tiny", 7, tmp_path_factory.mktemp("sim") / "a", gene_table=real_or_stand_in(), progress=False)


def truth(manifest: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(manifest.parent / "truth" / name, sep="\t", keep_default_na=False, na_values=[])


def genome_codes(fa: pyfaidx.Fasta, chrom: str, start: int, end: int) -> np.ndarray:
    return np.array([CODE[b] for b in str(fa[chrom][start:end]).upper()], dtype=np.uint8)


# ----------------------------------------------------------------------------------------------- config


def test_presets_overrides_and_bad_config(tmp_path):
    cfg = make_config("tiny", 3, {"n_genes": 12, "population": {"n_individuals": 5}})
    assert (cfg.n_genes, cfg.population.n_individuals, cfg.seed) == (12, 5, 3)
    assert cfg.genome.n_chromosomes == 5  # from the preset
    path = tmp_path / "o.yaml"
    path.write_text("expression:\n  sigma_gene: 0.1\n  category_effect: {immune: 2.0}\n")
    cfg = make_config("demo", 0, path)
    assert cfg.expression.sigma_gene == 0.1
    assert cfg.expression.category_effect["immune"] == 2.0 and "other" in cfg.expression.category_effect
    path.write_text("grammar:\n  enhancers_meen: 3\n")
    with pytest.raises(GtaInputError, match="grammar.enhancers_meen"):
        make_config("demo", 0, path)
    path.write_text("n_genes: '12'\n")  # a value of the wrong type: named, with what it must be
    with pytest.raises(GtaInputError, match="'n_genes' must be a whole number, got '12'"):
        make_config("demo", 0, path)
    assert make_config("demo", 0, {"expression": {"sigma_gene": 1}}).expression.sigma_gene == 1.0  # int for float
    # mappings and tuples are checked against the parameter's current value (a scalar for a mapping was a traceback
    # deep in the simulation: 'int' object has no attribute 'get')
    for override, message in (({"grammar": {"enhancers_mean": 5}}, "'grammar.enhancers_mean' must be a mapping"),
                              ({"grammar": {"enhancers_mean": {"immune": "x"}}},
                               "'grammar.enhancers_mean.immune' must be a number, got 'x'"),
                              ({"grammar": {"enhancer_len": 250}}, "'grammar.enhancer_len' must be a list"),
                              ({"grammar": {"enhancer_len": [250]}}, "'grammar.enhancer_len' must have 2 entries"),
                              ({"genome": {"isochore_gc": [0.4, "a"]}}, r"'genome.isochore_gc\[1\]' must be a number"),
                              ({"grammar": {"enhancer_distance": [[0.5, 1000]]}},
                               r"'grammar.enhancer_distance\[0\]' must have 3 entries")):
        with pytest.raises(GtaInputError, match=message):
            make_config("demo", 0, override)
    ok = make_config("demo", 0, {"grammar": {"enhancer_len": [200, 400], "enhancers_mean": {"immune": 2}},
                                 "genome": {"isochore_gc": [0.4, 0.5, 0.6]}})  # a variadic tuple: any length
    assert ok.grammar.enhancer_len == (200, 400) and ok.genome.isochore_gc == (0.4, 0.5, 0.6)
    assert ok.grammar.enhancers_mean["immune"] == 2.0 and isinstance(ok.grammar.enhancers_mean["immune"], float)
    with pytest.raises(GtaInputError, match="unknown preset"):
        make_config("huge")


def test_category_rules():
    assert categorize("B cell receptor signaling pathway; translation") == "immune"
    assert categorize("cytoplasmic translation; rRNA processing") == "housekeeping"
    assert categorize("axon guidance; synapse assembly") == "other"
    assert categorize("") == "unknown"


def test_choose_splits_targets_fractions():
    counts = {f"chr{i}": n for i, n in enumerate([30, 25, 20, 15, 10], start=1)}
    val, test = choose_splits(counts, 0.15, 0.2)
    assert sum(counts[c] for c in test) == 20 and sum(counts[c] for c in val) == 15
    assert not set(val) & set(test)
    many = {f"chr{i}": n for i, n in enumerate(range(300, 80, -13), start=1)}  # 17: the greedy path
    val, test = choose_splits(many, 0.15, 0.2)
    total = sum(many.values())
    assert abs(sum(many[c] for c in test) / total - 0.2) < 0.02
    assert abs(sum(many[c] for c in val) / total - 0.15) < 0.02 and not set(val) & set(test)


# ---------------------------------------------------------------------------------------- expression model


def _gene(elements: list[Element], strand: str = "+") -> SimGene:
    return SimGene(0, "ENSG0", "G", "g", "", "other", "chr1", 100_000, strand, elements=elements)


def _enhancer(x: int, sites: list[tuple[str, int, str]] | None = None, eid: str = "E1") -> Element:
    w = motif_table()
    start = 100_000 + x
    sites = sites or [("EBF1", 10, "+"), ("PAX5", 60, "-"), ("RUNX3", 120, "+")]
    return Element(eid, "enhancer", "chr1", start, start + 300, x + 150,
                   [Site(m, start + o, s, w[m].width) for m, o, s in sites])


def _ctcf(x: int, convergent: bool = True) -> Element:
    w = motif_table()["CTCF"].width
    start = 100_000 + x
    strands = ("+", "-") if convergent else ("-", "+")
    return Element("C1", "ctcf", "chr1", start, start + 200, x + 100,
                   [Site("CTCF", start + 10, strands[0], w), Site("CTCF", start + 100, strands[1], w)])


def _contribution(elements: list[Element], cfg: ExpressionConfig | None = None) -> float:
    gene = _gene(elements)
    model = GeneModel(gene, cfg or ExpressionConfig())
    res = model.evaluate(np.ones((1, len(gene.sites()))))
    col = next(i for i, e in enumerate(gene.elements) if e.element_id == "E1")
    return float(res["elements"][0, col])


def test_enhancer_farther_contributes_less():
    near, far = _contribution([_enhancer(10_000)]), _contribution([_enhancer(40_000)])
    assert near > far > 0
    assert contact(0, ExpressionConfig()) == 1.0
    assert np.isclose(near / far, contact(10_150, ExpressionConfig()) / contact(40_150, ExpressionConfig()))


def test_convergent_ctcf_between_insulates():
    free = _contribution([_enhancer(40_000)])
    insulated = _contribution([_ctcf(20_000), _enhancer(40_000)])
    divergent = _contribution([_ctcf(20_000, convergent=False), _enhancer(40_000)])
    beyond = _contribution([_ctcf(45_000), _enhancer(40_000)])  # the pair is not between TSS and enhancer
    assert insulated < 0.1 * free
    assert np.isclose(divergent, free) and np.isclose(beyond, free)


def test_composite_acts_only_together_at_fixed_spacing():
    gap = ExpressionConfig().composite_gap
    w = motif_table()["SPI1"].width
    only = [("EBF1", 150, "+")]
    good = _contribution([_enhancer(10_000, only + [("SPI1", 10, "+"), ("IRF4", 10 + w + gap, "+")])])
    wrong_strand = _contribution([_enhancer(10_000, only + [("SPI1", 10, "+"), ("IRF4", 10 + w + gap, "-")])])
    wrong_gap = _contribution([_enhancer(10_000, only + [("SPI1", 10, "+"), ("IRF4", 10 + w + 40, "+")])])
    alone = _contribution([_enhancer(10_000, only)])
    assert good > 3 * alone
    assert np.isclose(wrong_strand, alone) and np.isclose(wrong_gap, alone)


def test_promoter_rule_and_haplotype_combination():
    w = motif_table()["TBP"].width
    for strand, ok in (("+", True), ("-", False)):
        start = 100_000 - 30 - (w - 1) // 2
        el = Element("P1", "promoter", "chr1", start - 10, start + 40, -30, [Site("TBP", start, strand, w)])
        res = GeneModel(_gene([el]), ExpressionConfig()).evaluate(np.ones((1, 1)))
        assert (res["promoter"][0] > 0) == ok
    assert np.allclose(combine_haplotypes(np.array([1.0]), np.array([1.0])), 1.0)
    assert np.allclose(combine_haplotypes(np.array([0.0]), np.array([np.log(3.0)])), np.log(2.0))


# --------------------------------------------------------------------------------------- written data set


def test_dataset_reads_back_through_gta(tiny):
    from gta.io.dataset import open_dataset
    from gta.io.validate import validate

    report = validate(tiny)
    assert all(c.status == "ok" for c in report.checks), report.checks
    ds = open_dataset(tiny)
    genes = truth(tiny, "genes.tsv")
    got = {g.gene_id: g for g in ds.genes}
    assert set(got) == set(genes["gene_id"])
    for row in genes.itertuples():
        assert (got[row.gene_id].tss, got[row.gene_id].strand, got[row.gene_id].chrom) == (row.tss, row.strand,
                                                                                           row.chrom)
    assert ds.manifest.expression_transform == "log1p"
    assert ds.manifest.description.startswith("simulated lymphoblastoid cell line (LCL) RNA-seq")
    test_genes = genes[genes["split"] == "test"]
    assert set(test_genes["chrom"]) == set(ds.manifest.splits.test_chroms)
    from gta.io.variants import VariantReader

    calls = VariantReader(tiny.parent / "variants.vcf.gz", ds.genome).region("chr1", 0, ds.genome.lengths["chr1"])
    assert len(calls) > 100 and set(calls.status) == {"ok"}
    assert calls.samples == list(pd.read_csv(tiny.parent / "expression.tsv", sep="\t", nrows=1).columns[4:])
    gtf = (tiny.parent / "genes.gtf").read_text()
    assert 'gene_id "ENSG' in gtf and '.1"; gene_type' in gtf and 'tag "Ensembl_canonical"' in gtf


def test_written_by_recognises_the_config_of_a_data_set(tiny):
    from gta.sim.config import written_by

    folder = tiny.parent
    assert written_by(make_config("tiny", 7), folder)  # tuples in the config, lists in the YAML file
    assert not written_by(make_config("tiny", 8), folder)
    assert not written_by(make_config("tiny", 7, {"n_genes": 31}), folder)
    assert not written_by(make_config("tiny", 7), folder / "truth")  # no truth/config.yaml there


def test_written_by_names_a_malformed_config_file(tmp_path):
    from gta.errors import GtaInputError
    from gta.sim.config import written_by

    (tmp_path / "truth").mkdir()
    (tmp_path / "truth" / "config.yaml").write_text("n_genes: 30\nseed: [7\n")  # a truncated write
    with pytest.raises(GtaInputError) as err:
        written_by(make_config("tiny", 7), tmp_path)
    assert "config.yaml" in str(err.value) and "not valid YAML" in str(err.value)


def test_fasta_and_vcf_with_field_readers(tiny):
    fa = pyfaidx.Fasta(str(tiny.parent / "genome.fa"))
    seq = str(fa["chr1"][:200_000])
    assert any(c.islower() for c in seq) and any(c.isupper() for c in seq)
    up = seq.upper()
    cpg = up.count("CG") / max(1, len(up))
    expect = (up.count("C") / len(up)) * (up.count("G") / len(up))
    assert cpg / expect < 0.6  # CpG depletion
    vcf = cyvcf2.VCF(str(tiny.parent / "variants.vcf.gz"))
    assert set(vcf.seqnames) == set(fa.keys())
    n_indel = 0
    for rec in vcf:
        ref = str(fa[rec.CHROM][rec.POS - 1: rec.POS - 1 + len(rec.REF)]).upper()
        assert ref == rec.REF
        assert all(p for p in rec.gt_phases)
        if len(rec.REF) != len(rec.ALT[0]):
            n_indel += 1
            assert rec.REF[0] == rec.ALT[0][0] and rec.REF[-1] != rec.ALT[0][-1]  # anchored and left-aligned
    assert n_indel > 0


def test_planted_sites_match_their_pwm(tiny):
    fa = pyfaidx.Fasta(str(tiny.parent / "genome.fa"))
    pwms = motif_table()
    sites = truth(tiny, "sites.tsv")
    assert {"site", "decoy"} <= set(sites["role"])
    for row in sites.itertuples():
        llr = score(pwms[row.motif], genome_codes(fa, row.chrom, row.start, row.end), row.strand)
        assert np.isclose(llr, row.ref_llr, atol=1e-3)
        if row.role == "latent":
            assert llr < 0.75 * row.max_llr
        else:
            assert llr >= 0.75 * row.max_llr - 1e-6
    elements = truth(tiny, "elements.tsv")
    assert set(elements["kind"]) >= {"promoter", "enhancer", "decoy"}
    assert (elements.loc[elements["kind"] == "decoy", "effect"] == 0).all()
    far = elements["distance"].abs() > 57_344
    assert not elements.loc[far, "in_output_span"].any()
    inside = elements.loc[~far & (elements["distance"].abs() < 57_000)]
    assert inside["in_output_span"].all() and (inside["bin_start"] >= 0).all() and (inside["bin_end"] <= 896).all()


def test_breaking_and_creating_variants_change_the_site(tiny):
    fa = pyfaidx.Fasta(str(tiny.parent / "genome.fa"))
    pwms = motif_table()
    sites = truth(tiny, "sites.tsv")
    variants = truth(tiny, "variants.tsv")
    planted = variants[variants["planted"] != ""]
    assert len(planted) > 0 and (planted["effect"].abs() > 0).any()
    for row in planted.drop_duplicates("variant_id").itertuples():
        pos0 = row.pos - 1
        hit = sites[(sites["chrom"] == row.chrom) & (sites["start"] <= pos0) & (sites["end"] > pos0)]
        assert len(hit) == 1
        s = hit.iloc[0]
        codes = genome_codes(fa, s.chrom, s.start, s.end)
        before = score(pwms[s.motif], codes, s.strand)
        codes[pos0 - s.start] = CODE[row.alt]
        after = score(pwms[s.motif], codes, s.strand)
        if row.planted == "breaks":
            assert after < before - 3
        else:
            assert after > before + 3 and s.role == "latent"
    no_effect = variants[variants["what"] == ""]
    assert (no_effect["effect"] == 0).all()


def test_noise_ceiling_matches_written_files(tiny):
    def read(path: Path) -> np.ndarray:
        return pd.read_csv(path, sep="\t").iloc[:, 4:].to_numpy(dtype=float)

    obs = read(tiny.parent / "expression.tsv")
    nf = read(tiny.parent / "truth" / "expression_noise_free.tsv")
    assert (obs > 0).all() and (nf > 0).all()
    reported = json.loads((tiny.parent / "truth" / "noise_ceiling.json").read_text())
    again = noise_ceiling(nf, obs)
    for key in ("across_genes_mean_over_individuals", "across_individuals_median_per_gene"):
        assert np.isclose(reported[key], again[key])
    direct = np.mean([spearmanr(nf[:, i], obs[:, i])[0] for i in range(obs.shape[1])])
    assert np.isclose(reported["across_genes_mean_over_individuals"], direct)
    assert 0.5 < direct < 0.999
    genes = truth(tiny, "genes.tsv")
    assert np.allclose(genes["noise_free_mean"], np.log(nf).mean(1), atol=1e-4)
    shares = genes[["distal_share", "proximal_share", "promoter_share", "baseline_share"]].sum(1)
    assert np.allclose(shares, 1.0, atol=1e-4)


def test_same_seed_gives_identical_files(tiny, tmp_path):
    again = simulate("tiny", 7, tmp_path / "b", gene_table=real_or_stand_in(), progress=False)
    files = sorted(p.relative_to(tiny.parent) for p in tiny.parent.rglob("*") if p.is_file())
    assert Path("variants.vcf.gz.tbi") in files
    for rel in files:
        assert filecmp.cmp(tiny.parent / rel, again.parent / rel, shallow=False), rel


def test_stand_in_table_other_seed(tmp_path):
    table = stand_in_table()
    m = simulate("tiny", 1, tmp_path / "s", config={"n_genes": 10, "population": {"n_individuals": 6}},
                 gene_table=table, progress=False)
    genes = truth(m, "genes.tsv")
    ann = pd.read_csv(m.parent / "annotations.tsv", sep="\t", keep_default_na=False)
    assert list(ann.columns) == ["gene_id", "symbol", "name", "go_bp", "description"]
    src = table.set_index("gene_id")
    assert set(ann["gene_id"]) <= set(src.index)
    assert (src.loc[ann["gene_id"], "gene_type"] == "protein_coding").all()
    for row in genes.itertuples():
        assert row.category == categorize(src.loc[row.gene_id, "go_bp"])
    first = pd.read_csv(m.parent / "expression.tsv", sep="\t")
    assert first.shape == (10, 4 + 6)


def test_cli_bad_config_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("n_genez: 3\n")
    proc = subprocess.run([sys.executable, "-c", "from gta.cli import main; main()", "simulate", "--preset", "tiny",
                           "--out", str(tmp_path / "x"), "--config", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2 and "n_genez" in proc.stderr


# ------------------------------------------------------------------ written truth against the expression model


@pytest.fixture(scope="module")
def tiny_rebuilt(tiny) -> list[tuple[SimGene, np.ndarray, pd.DataFrame]]:
    """Every tiny gene rebuilt from truth/genes.tsv, elements.tsv and sites.tsv, with its reference site
    occupancies scored on the written genome.fa; (gene, occupancies [n_sites], its elements.tsv rows)."""
    from gta.sim.motifs import occupancy

    ecfg = make_config("tiny", 7, tiny.parent / "truth" / "config.yaml").expression
    fa = pyfaidx.Fasta(str(tiny.parent / "genome.fa"))
    pwms = motif_table()
    genes, elements, sites = (truth(tiny, n) for n in ("genes.tsv", "elements.tsv", "sites.tsv"))
    out = []
    for g in genes.itertuples():
        rows = elements[elements["gene_id"] == g.gene_id].reset_index(drop=True)
        els = []
        for e in rows.itertuples():
            st = sites[sites["element_id"] == e.element_id]
            els.append(Element(e.element_id, e.kind, e.chrom, e.start, e.end, e.distance,
                               [Site(s.motif, s.start, s.strand, s.end - s.start, s.role, s.ref_llr)
                                for s in st.itertuples()]))
        gene = SimGene(0, g.gene_id, g.symbol, "", "", g.category, g.chrom, g.tss, g.strand, elements=els)
        occ = np.array([occupancy(score(pwms[s.motif], genome_codes(fa, gene.chrom, s.start, s.end), s.strand),
                                  pwms[s.motif], ecfg.occupancy_theta_frac, ecfg.occupancy_temperature)
                        for s in gene.sites()], dtype=float)
        out.append((gene, occ, rows))
    return out


def _intrinsic(gene: SimGene, occ: np.ndarray, k: int, cfg: ExpressionConfig) -> float:
    """A_e of element k: the same sites evaluated alone at the TSS (contact 1, nothing between)."""
    offsets = np.cumsum([0] + [len(e.sites) for e in gene.elements])
    el = gene.elements[k]
    alone = SimGene(0, gene.gene_id, "", "", "", gene.category, gene.chrom, gene.tss, gene.strand,
                    elements=[Element(el.element_id, el.kind, el.chrom, el.start, el.end, 0, el.sites)])
    res = GeneModel(alone, cfg).evaluate(occ[None, offsets[k]:offsets[k + 1]])
    return float(res["elements"][0, 0])


def _insulation(gene: SimGene, occ: np.ndarray, k: int, cfg: ExpressionConfig) -> float:
    """iota_e as docs/simulator.md defines it: prod (1 - eta o_b1 o_b2) over convergent CTCF pairs (first site
    in transcription order pointing downstream, the second upstream) between the TSS and element k."""
    offsets = np.cumsum([0] + [len(e.sites) for e in gene.elements])
    d = gene.elements[k].distance
    iota = 1.0
    for c, el in enumerate(gene.elements):
        if el.kind != "ctcf" or len(el.sites) != 2:
            continue
        (_, s1, o1), (_, s2, o2) = sorted((gene.to_tx(s.centre), gene.rel_strand(s), occ[offsets[c] + i])
                                          for i, s in enumerate(el.sites))
        if (s1, s2) == ("+", "-") and el.distance * d > 0 and abs(el.distance) < abs(d):
            iota *= 1.0 - cfg.insulation * o1 * o2
    return iota


def test_tiny_insulated_enhancers_are_reduced_as_modelled(tiny_rebuilt, tiny):
    """elements.tsv `effect` = A_e c(d_e) iota_e, recomputed from the genome, the distance and the CTCF pairs
    between; `insulated` = iota_e < 0.5; an insulated element keeps only iota_e of its uninsulated term."""
    cfg = make_config("tiny", 7, tiny.parent / "truth" / "config.yaml").expression
    n_insulated = n_checked = 0
    for gene, occ, rows in tiny_rebuilt:
        model = GeneModel(gene, cfg)
        ctcf_sites = [i for i, s in enumerate(gene.sites()) if s.motif == "CTCF"
                      and gene.elements[int(model.site_element[i])].kind == "ctcf"]
        unbound = occ.copy()
        unbound[ctcf_sites] = 0.0  # no CTCF bound: nothing insulates
        free = model.evaluate(unbound[None])["elements"][0]
        for k, row in rows.iterrows():
            if row["kind"] not in ("enhancer", "repressor"):
                continue
            a = _intrinsic(gene, occ, k, cfg)
            iota = _insulation(gene, occ, k, cfg)
            c = (1.0 + abs(row["distance"]) / cfg.contact_d0) ** -cfg.contact_alpha
            assert np.isclose(free[k], a * c, rtol=1e-6, atol=1e-9)  # uninsulated term of the same element
            assert np.isclose(row["effect"], a * c * iota, rtol=1e-4, atol=2e-6), row["element_id"]
            assert bool(row["insulated"]) == (iota < 0.5), row["element_id"]
            n_checked += 1
            if row["insulated"] and abs(a) > 0.05:
                n_insulated += 1
                assert abs(row["effect"]) < 0.5 * abs(free[k])
                assert np.isclose(row["effect"] / free[k], iota, rtol=1e-3)
                assert iota == pytest.approx(1 - cfg.insulation, abs=0.05)  # planted CTCF sites: o close to 1
    assert n_insulated >= 1 and n_checked >= 60


def test_tiny_enhancer_effects_decay_with_distance(tiny_rebuilt, tiny):
    """Uninsulated enhancers: effect / A_e is c(d) = (1 + |d|/d0)^-alpha, falling monotonically with |d|."""
    cfg = make_config("tiny", 7, tiny.parent / "truth" / "config.yaml").expression
    dist, ratio = [], []
    for gene, occ, rows in tiny_rebuilt:
        for k, row in rows.iterrows():
            if row["kind"] != "enhancer" or row["insulated"] or _insulation(gene, occ, k, cfg) != 1.0:
                continue
            a = _intrinsic(gene, occ, k, cfg)
            if a < 0.05:  # broken or weak clusters: the ratio is noise on a written 6-digit number
                continue
            dist.append(abs(row["distance"]))
            ratio.append(row["effect"] / a)
    dist, ratio = np.array(dist, dtype=float), np.array(ratio)
    assert len(dist) >= 20 and dist.min() < 20_000 < dist.max()
    documented = (1.0 + dist / 25_000.0) ** -1.0  # docs/simulator.md: d0 = 25 kb, alpha = 1
    np.testing.assert_allclose(ratio, documented, rtol=1e-3)
    np.testing.assert_allclose(ratio, [contact(d, cfg) for d in dist], rtol=1e-3)
    order = np.argsort(dist)
    assert (np.diff(ratio[order]) <= 1e-6).all() and spearmanr(dist, ratio)[0] < -0.99


def test_simulate_refuses_a_folder_of_the_users_own(tmp_path):
    """`gta simulate --out DIR` once replaced a user's own genome.fa in DIR; now a folder simulate did not write
    is refused (exit 2, one line) and left as it was."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "genome.fa").write_text(">chr1\nACGT\n")
    with pytest.raises(GtaInputError, match="did not write"):
        simulate("tiny", 1, mine, config={"n_genes": 10}, gene_table=stand_in_table(), progress=False)
    proc = subprocess.run([sys.executable, "-m", "gta", "simulate", "--preset", "tiny", "-o", str(mine), "-q"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("gta: error: ") and proc.stderr.count("\n") == 1
    assert "genome.fa" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in mine.iterdir()) == ["genome.fa"]
    assert (mine / "genome.fa").read_text() == ">chr1\nACGT\n"
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    with pytest.raises(GtaInputError, match="names a file"):
        simulate("tiny", 1, a_file, gene_table=stand_in_table(), progress=False)


def test_simulate_may_replace_its_own_output(tmp_path):
    """An empty folder, or one simulate wrote before (its marker file), is simulated into."""
    out = tmp_path / "s"
    out.mkdir()
    kw = {"config": {"n_genes": 10, "population": {"n_individuals": 6}}, "gene_table": stand_in_table(),
          "progress": False}
    first = simulate("tiny", 1, out, **kw)
    assert (out / ".gta-simulate").is_file()
    fa = (out / "genome.fa").read_bytes()
    again = simulate("tiny", 1, out, **kw)
    assert again == first and (out / "genome.fa").read_bytes() == fa
