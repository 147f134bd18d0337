"""The data set manifest: one YAML file that every command takes as ``--data PATH``.

```yaml
genome: genome.fa            # FASTA, plain or bgzip, with .fai
genes: genes.gtf             # GTF/GFF3 or TSV: gene_id, symbol, chrom, tss, strand
expression: expression.tsv   # genes x samples (Geuvadis layout or plain)
variants: variants.vcf.gz    # optional: phased VCF/BCF, indexed
annotations: annotations.tsv # optional: gene_id -> free-text description
name: my-data                # optional
description: ...             # optional: one sentence on cells/tissue and assay, used in prompts
geometry: {input_len: 196608, bin_size: 128, output_bins: 896}   # optional
splits: {val_chroms: [chr8], test_chroms: [chr9], test_individual_fraction: 0.2, seed: 0}  # optional
# or gene lists (one id or symbol per line): splits: {val_genes: val.txt, test_genes: test.txt}
truth: truth/                # optional: simulator ground truth
variant_policy: {filter_pass: true, unphased: ref, missing: ref, multiallelic: split}  # optional: HaplotypePolicy
```
Relative paths resolve against the manifest's folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from gta.errors import GtaInputError
from gta.geometry import Geometry
from gta.yaml_input import read_yaml, refuse_unknown

if TYPE_CHECKING:
    from gta.io.variants import HaplotypePolicy

PATH_KEYS = ("genome", "genes", "expression", "variants", "annotations", "truth")
KNOWN_KEYS = set(PATH_KEYS) | {"name", "description", "geometry", "splits", "expression_transform", "variant_policy"}
SPLIT_KEYS = {"val_chroms", "test_chroms", "val_genes", "test_genes", "test_individual_fraction", "seed"}


@dataclass(frozen=True)
class SplitConfig:
    """Held-out chromosomes (or gene-list files) for validation/test genes, and the share of individuals held out."""

    val_chroms: tuple[str, ...] = ()
    test_chroms: tuple[str, ...] = ()
    test_individual_fraction: float = 0.2
    seed: int = 0
    val_genes: Path | None = None
    test_genes: Path | None = None


@dataclass(frozen=True)
class Manifest:
    path: Path
    genome: Path
    genes: Path
    expression: Path | None = None
    variants: Path | None = None
    annotations: Path | None = None
    truth: Path | None = None
    name: str = "dataset"
    description: str = "gene expression in lymphoblastoid cell lines (LCL), RNA-seq"
    geometry: Geometry = field(default_factory=Geometry)
    splits: SplitConfig = field(default_factory=SplitConfig)
    expression_transform: str = "none"  # none | log1p | standardize | log1p+standardize
    variant_policy: HaplotypePolicy | None = None  # None: the default HaplotypePolicy()

    @property
    def folder(self) -> Path:
        return self.path.parent


def load_manifest(path: str | Path) -> Manifest:
    """Read and check a manifest; every problem is a GtaInputError naming the file."""
    path = _manifest_file(Path(path))
    raw = _read_mapping(path)
    try:
        geometry = Geometry.from_dict(raw.get("geometry"))
    except (TypeError, ValueError) as e:
        raise GtaInputError(f"bad 'geometry': {e}", path) from None
    splits = _splits(raw.get("splits") or {}, path)
    transform = str(raw.get("expression_transform", "none"))
    if transform not in {"none", "log1p", "standardize", "log1p+standardize"}:
        raise GtaInputError(
            f"bad expression_transform {transform!r}", path, hint="none, log1p, standardize, log1p+standardize"
        )
    return Manifest(
        variant_policy=_variant_policy(raw.get("variant_policy"), path),
        path=path,
        genome=_resolve(raw, "genome", path),  # type: ignore[arg-type]
        genes=_resolve(raw, "genes", path),  # type: ignore[arg-type]
        expression=_resolve(raw, "expression", path),
        variants=_resolve(raw, "variants", path),
        annotations=_resolve(raw, "annotations", path),
        truth=_resolve(raw, "truth", path),
        name=str(raw.get("name", path.parent.name or "dataset")),
        description=str(raw.get("description", Manifest.description)),
        geometry=geometry,
        splits=splits,
        expression_transform=transform,
    )


def _manifest_file(path: Path) -> Path:
    """The manifest file itself: ``path``, or the ``dataset.yaml`` inside a folder."""
    if path.is_dir() and (path / "dataset.yaml").is_file():
        path = path / "dataset.yaml"
    if not path.is_file():
        raise GtaInputError("manifest not found", path, hint="pass --data PATH to a dataset.yaml")
    return path


def _read_mapping(path: Path) -> dict[str, Any]:
    """The manifest's YAML mapping, with only known keys and the required ones present."""
    raw = read_yaml(path, "manifest", hint="pass --data PATH to a dataset.yaml")
    if not isinstance(raw, dict):
        raise GtaInputError("a manifest is a YAML mapping with at least 'genome' and 'genes'", path)
    refuse_unknown(raw, KNOWN_KEYS, path=path)
    for key in ("genome", "genes"):
        if not raw.get(key):
            raise GtaInputError(f"missing required key '{key}'", path)
    return raw


def _resolve(section: dict[str, Any], key: str, path: Path, prefix: str = "") -> Path | None:
    """``section[key]`` as an existing path, relative ones against the manifest's folder (None when empty)."""
    value = section.get(key)
    if value in (None, ""):
        return None
    p = Path(str(value)).expanduser()
    p = p if p.is_absolute() else (path.parent / p)
    if not p.exists():
        raise GtaInputError(f"'{prefix}{key}' points to {p}, which does not exist", path)
    return p


def _splits(splits_raw: Any, path: Path) -> SplitConfig:
    """The manifest's ``splits`` mapping as a SplitConfig."""
    if not isinstance(splits_raw, dict):
        raise GtaInputError("'splits' must be a mapping", path, hint=f"keys: {sorted(SPLIT_KEYS)}")
    refuse_unknown(splits_raw, SPLIT_KEYS, path=path, where=" in 'splits'")

    def chroms(key: str) -> tuple[str, ...]:
        value = splits_raw.get(key) or ()
        return (str(value),) if isinstance(value, (str, int)) else tuple(str(c) for c in value)

    try:
        splits = SplitConfig(
            val_chroms=chroms("val_chroms"),
            test_chroms=chroms("test_chroms"),
            test_individual_fraction=float(splits_raw.get("test_individual_fraction", 0.2)),
            seed=int(splits_raw.get("seed", 0)),
            val_genes=_resolve(splits_raw, "val_genes", path, "splits."),
            test_genes=_resolve(splits_raw, "test_genes", path, "splits."),
        )
    except (TypeError, ValueError) as e:
        raise GtaInputError(f"bad 'splits': {e}", path) from None
    if not 0.0 <= splits.test_individual_fraction < 1.0:
        raise GtaInputError(f"splits.test_individual_fraction {splits.test_individual_fraction} is not in [0, 1)", path)
    return splits


def _variant_policy(value: Any, path: Path) -> HaplotypePolicy | None:
    """The manifest's ``variant_policy`` mapping as a HaplotypePolicy (None when absent)."""
    if value is None:
        return None
    from dataclasses import fields

    from gta.io.variants import _CHOICES, HaplotypePolicy

    allowed = [f.name for f in fields(HaplotypePolicy) if f.name != "samples"]
    hint = "keys: filter_pass (true/false), " + ", ".join(f"{k} ({'|'.join(v)})" for k, v in _CHOICES.items())
    if not isinstance(value, dict):
        raise GtaInputError("'variant_policy' must be a mapping", path, hint=hint)
    extra = " (samples are chosen per command, e.g. extract --samples)" if "samples" in value else ""
    refuse_unknown(value, allowed, path=path, where=f" in 'variant_policy'{extra}", hint=hint)
    for key, v in value.items():
        if key == "filter_pass":
            if not isinstance(v, bool):
                raise GtaInputError(f"variant_policy.filter_pass must be true or false, not {v!r}", path)
        elif not isinstance(v, str) or v not in _CHOICES[key]:
            raise GtaInputError(f"variant_policy.{key}={v!r} is not one of {list(_CHOICES[key])}", path)
    return HaplotypePolicy(**value)


def write_manifest(path: str | Path, data: dict[str, Any]) -> None:
    """Write a manifest atomically (paths are written as given, usually relative)."""
    from gta.atomic import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(data, sort_keys=False))
