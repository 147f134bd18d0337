"""Simulator configuration: nested dataclasses, presets and YAML overrides.

Every parameter of the generative model lives here (see docs/simulator.md for what each one does). A preset is
a dict of overrides on the defaults; a user YAML file is a second dict of overrides on top of the preset.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gta.errors import GtaInputError
from gta.yaml_input import CONTAINERS, read_yaml, typed_value


@dataclass
class GenomeConfig:
    """Background sequence: GC isochores, CpG depletion, CpG islands and soft-masked repeats."""

    n_chromosomes: int = 6
    gene_gap_min: int = 125_000  # TSS-to-TSS distance: min + exponential(mean extra)
    gene_gap_extra_mean: int = 60_000
    flank: int = 110_000  # sequence before the first and after the last TSS
    isochore_gc: tuple[float, ...] = (0.37, 0.41, 0.46, 0.53)
    isochore_weights: tuple[float, ...] = (0.3, 0.35, 0.22, 0.13)
    isochore_mean_len: int = 300_000
    cpg_depletion: float = 0.75  # share of CpG dinucleotides mutated away (C>T or G>A) outside islands
    cgi_gc: float = 0.66
    cgi_prob: dict[str, float] = field(
        default_factory=lambda: {"housekeeping": 0.9, "immune": 0.45, "other": 0.4, "unknown": 0.35}
    )
    repeat_fraction: float = 0.3  # share of the genome covered by interspersed repeat copies
    microsatellites_per_mb: float = 40.0
    line_width: int = 60


@dataclass
class GrammarConfig:
    """Which elements are planted around each gene, and where."""

    enhancers_mean: dict[str, float] = field(
        default_factory=lambda: {"housekeeping": 2.5, "immune": 5.0, "other": 3.0, "unknown": 3.5}
    )
    enhancers_max: int = 9
    # distance classes of enhancers: (share, min |d|, max |d|); the far class lies outside the output span
    enhancer_distance: tuple[tuple[float, int, int], ...] = (
        (0.22, 2_000, 20_000), (0.70, 20_000, 55_000), (0.08, 58_000, 90_000)
    )
    enhancer_len: tuple[int, int] = (250, 450)
    activators_per_enhancer: tuple[int, int] = (1, 5)  # inclusive range
    activator_weights: dict[str, float] = field(
        default_factory=lambda: {"EBF1": 1.0, "PAX5": 0.9, "RUNX3": 0.8, "RELA": 0.6, "NFKB1": 0.6,
                                 "POU2F2": 0.8, "MEF2C": 0.7, "IRF8": 0.6}
    )
    composite_prob: dict[str, float] = field(
        default_factory=lambda: {"housekeeping": 0.3, "immune": 0.7, "other": 0.3, "unknown": 0.4}
    )
    repressed_enhancer_prob: float = 0.15  # a BCL6 site inside an enhancer
    silencers_mean: dict[str, float] = field(
        default_factory=lambda: {"housekeeping": 0.3, "immune": 0.4, "other": 1.0, "unknown": 0.6}
    )
    insulators_mean: float = 0.8  # CTCF pairs per gene
    insulator_distance: tuple[int, int] = (4_000, 45_000)
    divergent_ctcf_share: float = 0.15  # CTCF pairs in the non-insulating (divergent) orientation
    promoter_site_prob: dict[str, float] = field(
        default_factory=lambda: {"TBP": 0.35, "NFYA": 0.5, "SP1": 0.6, "ELK1": 0.35, "GABPA": 0.3, "NRF1": 0.35,
                                 "YY1": 0.35}
    )
    promoter_housekeeping_boost: float = 1.5  # GC-box/NRF1/ETS sites more likely at housekeeping promoters
    promoter_decoys_mean: float = 2.0  # promoter motifs at the wrong place within +-2 kb
    decoys_mean: float = 8.0  # single motifs, wrongly spaced SPI1/IRF4 pairs, lone CTCF sites, anywhere
    wrong_orientation_pair_share: float = 0.1  # of SPI1/IRF4 decoy pairs: right spacing, wrong orientation
    site_min_llr_frac: float = 0.75  # planted sites have log-odds >= this share of the motif's maximum


@dataclass
class PopulationConfig:
    """Individuals, variants and haplotypes (founder mosaics give linkage disequilibrium)."""

    n_individuals: int = 100
    variants_per_window: float = 40.0  # expected variants per input window (sets the density)
    indel_fraction: float = 0.1
    indel_max_len: int = 8
    private_fraction: float = 0.15  # variants carried by 1-3 haplotypes only
    n_founders: int = 40
    switches_per_mb: float = 12.0
    break_prob: dict[str, float] = field(
        default_factory=lambda: {"promoter": 0.4, "enhancer": 0.5, "repressor": 0.35, "ctcf": 0.35}
    )
    create_prob: dict[str, float] = field(default_factory=lambda: {"promoter": 0.1, "enhancer": 0.15})
    causal_freq: tuple[float, float] = (0.08, 0.6)
    min_spacing: int = 12  # bp between variant records


@dataclass
class ExpressionConfig:
    """Parameters of the expression function (log scale; natural log of RPKM)."""

    base: float = 1.6
    category_effect: dict[str, float] = field(
        default_factory=lambda: {"housekeeping": 0.8, "immune": 0.4, "other": -0.6, "unknown": -0.2}
    )
    occupancy_theta_frac: float = 0.6  # half-occupancy at this share of the motif's max log-odds
    occupancy_temperature: float = 1.0  # bits
    promoter_beta: dict[str, float] = field(
        default_factory=lambda: {"TBP": 1.4, "NFYA": 1.0, "SP1": 0.7, "ELK1": 0.8, "GABPA": 0.8, "NRF1": 1.0,
                                 "YY1": 0.8}
    )
    # site-centre position window (bp, transcription direction) and orientation rule for promoter motifs
    promoter_rules: dict[str, tuple[int, int, str]] = field(
        default_factory=lambda: {"TBP": (-36, -24, "same"), "NFYA": (-130, -50, "any"), "SP1": (-250, -30, "any"),
                                 "ELK1": (-120, -10, "any"), "GABPA": (-120, -10, "any"),
                                 "NRF1": (-160, -20, "any"), "YY1": (-20, 30, "any")}
    )
    promoter_max: float = 3.0
    enhancer_beta: dict[str, float] = field(
        default_factory=lambda: {"EBF1": 1.3, "PAX5": 1.1, "RUNX3": 0.9, "RELA": 1.0, "NFKB1": 1.0, "POU2F2": 1.0,
                                 "MEF2C": 0.9, "IRF8": 0.7, "SPI1": 0.0, "IRF4": 0.0}
    )
    composite_beta: float = 2.6
    composite_gap: int = 2  # bp between the SPI1 site's end and the IRF4 site's start (same strand)
    composite_tolerance: int = 1
    enhancer_repressor_beta: float = 3.0  # BCL6 inside an enhancer
    enhancer_theta: float = 2.2
    enhancer_max: float = 1.6
    silencer_beta: float = 1.3
    silencer_theta: float = 1.2
    silencer_max: float = 0.9
    contact_d0: float = 25_000.0
    contact_alpha: float = 1.0
    insulation: float = 0.95
    distal_threshold: int = 20_000
    sigma_gene: float = 0.6
    sigma_individual: float = 0.05
    sigma_residual: float = 0.15


@dataclass
class SimConfig:
    """Everything `gta simulate` needs; ``preset`` and ``seed`` are recorded for provenance."""

    preset: str = "demo"
    seed: int = 0
    n_genes: int = 350
    category_mix: dict[str, float] = field(
        default_factory=lambda: {"housekeeping": 0.28, "immune": 0.22, "other": 0.35, "unknown": 0.15}
    )
    geometry: dict[str, int] = field(default_factory=lambda: {"input_len": 196_608, "bin_size": 128,
                                                              "output_bins": 896})
    val_fraction: float = 0.15
    test_fraction: float = 0.20
    genome: GenomeConfig = field(default_factory=GenomeConfig)
    grammar: GrammarConfig = field(default_factory=GrammarConfig)
    population: PopulationConfig = field(default_factory=PopulationConfig)
    expression: ExpressionConfig = field(default_factory=ExpressionConfig)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"n_genes": 30, "genome": {"n_chromosomes": 5, "repeat_fraction": 0.2},
             "population": {"n_individuals": 24, "variants_per_window": 30.0}},
    "demo": {"n_genes": 350, "genome": {"n_chromosomes": 8}, "population": {"n_individuals": 100}},
    "bench": {"n_genes": 2500, "genome": {"n_chromosomes": 16}, "population": {"n_individuals": 400}},
}


def _plain(x: Any) -> Any:
    """Tuples to lists, recursively, so the dict dumps as plain YAML."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    return x


def _merge(obj: Any, overrides: dict[str, Any], where: str, source: str | Path | None) -> Any:
    """A copy of dataclass ``obj`` with ``overrides`` applied; unknown keys are a GtaInputError."""
    if not isinstance(overrides, dict):
        raise GtaInputError(f"'{where or 'config'}' must be a mapping", source)
    fields = {f.name: f for f in dataclasses.fields(obj)}
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        name = f"{where}.{key}" if where else str(key)
        if key not in fields:
            raise GtaInputError(f"unknown simulator parameter '{name}'", source,
                                hint=f"known here: {', '.join(sorted(fields))}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            changes[key] = _merge(current, value, name, source)
        elif isinstance(current, dict):
            if not isinstance(value, dict):
                raise GtaInputError(f"'{name}' must be {CONTAINERS[dict]}, got {value!r}", source)
            sample = next(iter(current.values()), None)  # a new key (another motif) takes the type of the others
            changes[key] = {**current, **{k: _typed_like(current.get(k, sample), v, f"{name}.{k}", source)
                                          for k, v in value.items()}}
        else:
            changes[key] = _typed_like(current, value, name, source, _variadic(obj, key))
    return dataclasses.replace(obj, **changes)


def _variadic(obj: Any, key: str) -> bool:
    """Whether the field is a tuple of any length (``tuple[float, ...]``) rather than a fixed one (``(low, high)``)."""
    args = typing.get_args(typing.get_type_hints(type(obj)).get(key))
    return bool(args) and args[-1] is Ellipsis


def _typed_like(current: Any, value: Any, name: str, source: str | Path | None, variadic: bool = False) -> Any:
    """``value`` checked against the shape and types of the parameter's current value: a scalar by
    ``typed_value``; a tuple from a list of the same length (any length when ``variadic``), item by item."""
    if isinstance(current, tuple):
        if not isinstance(value, list | tuple):
            raise GtaInputError(f"'{name}' must be {CONTAINERS[list]}, got {value!r}", source)
        if not variadic and len(value) != len(current):
            raise GtaInputError(f"'{name}' must have {len(current)} entries, got {len(value)}", source)
        items = [current[0] if current else None] * len(value) if variadic else current
        return tuple(_typed_like(items[i], v, f"{name}[{i}]", source) for i, v in enumerate(value))
    if isinstance(current, bool | int | float | str):
        return typed_value(type(current), value, f"'{name}'", source)
    return _to_tuple(value)


def _to_tuple(x: Any) -> Any:
    return tuple(_to_tuple(v) for v in x) if isinstance(x, list | tuple) else x


def make_config(preset: str = "demo", seed: int = 0, overrides: dict[str, Any] | str | Path | None = None) -> SimConfig:
    """The configuration of a preset, with optional overrides (a dict or a YAML file path)."""
    if preset not in PRESETS:
        raise GtaInputError(f"unknown preset {preset!r}", hint=f"choose one of {', '.join(PRESETS)}")
    cfg = _merge(SimConfig(preset=preset, seed=int(seed)), PRESETS[preset], "", None)
    source: str | Path | None = None
    if isinstance(overrides, str | Path):
        source = Path(overrides)
        overrides = read_yaml(source, "config file", hint="pass a YAML file of parameter overrides") or {}
    if overrides:
        overrides = dict(overrides)
        overrides.pop("preset", None)
        if "seed" in overrides:
            overrides.pop("seed")
        cfg = _merge(cfg, overrides, "", source)
    if cfg.n_genes < cfg.genome.n_chromosomes:
        raise GtaInputError(f"n_genes ({cfg.n_genes}) must be at least n_chromosomes ({cfg.genome.n_chromosomes})",
                            source)
    return cfg


def written_by(cfg: SimConfig, folder: str | Path) -> bool:
    """Whether the data set in ``folder`` (its ``truth/config.yaml``) was simulated from ``cfg``: compared as YAML
    reads both back, since the file holds lists where the config holds tuples."""
    recorded = Path(folder) / "truth" / "config.yaml"
    if not recorded.is_file():
        return False
    return yaml.safe_load(yaml.safe_dump(cfg.to_dict())) == read_yaml(recorded, "simulator config")
