"""Per-gene prompts for training: the annotation row, the data set's description and window statistics.

``gene_prompt(dataset, gene)`` is exactly the text the model reads for a gene (and what ``gta prompt`` prints):
:func:`gta.model.prompt.build_prompt` of the gene's annotation row, ``dataset.manifest.description`` and the
window statistics GC content (of the reference input window) and, when the manifest names a VCF, the number of
variant records in that window (``VariantReader.count_records``: an index query; left out if the VCF has no
index, 0 if it lacks the chromosome).
A run keeps the prompts of all its genes in ``runs/NAME/prompts.json`` so they are computed once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from gta.atomic import atomic_write_text
from gta.errors import GtaInputError
from gta.io.variants import VariantReader
from gta.model.prompt import PROMPT_TEMPLATE_VERSION, build_prompt, shuffle_annotations

log = logging.getLogger(__name__)
PROMPTS_FILE = "prompts.json"


def read_prompts_file(path: Path) -> dict[str, Any]:
    """What ``prompts.json`` (a run's, or the cache beside a data set) holds: ``key`` and ``prompts`` ({} when
    there is no such file); a damaged one is a GtaInputError naming it."""
    if not path.exists():
        return {}
    hint = "delete it: gta builds the prompts again from the data set, with the run's template"
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise GtaInputError(f"damaged prompts file ({e})", path, hint=hint) from None
    if not isinstance(saved, dict) or not isinstance(saved.get("prompts", {}), dict):
        raise GtaInputError("a prompts file is a JSON object with a 'prompts' mapping", path, hint=hint)
    return saved


def _gene(dataset, gene):
    return dataset.gene(gene) if isinstance(gene, str) else gene


def gc_fraction(seq: str) -> float | None:
    """G+C share of the called (non-N) bases; None for an all-N window."""
    acgt = len(seq) - seq.count("N")
    return None if acgt == 0 else (seq.count("G") + seq.count("C")) / acgt


class VariantCounter:
    """Counts VCF records in a genome interval (:meth:`gta.io.variants.VariantReader.count_records`, through the
    file's index); ``count`` is None, silently, when that is impossible (no file, unreadable, no index)."""

    def __init__(self, path: str | Path | None, genome=None) -> None:
        self.reader: VariantReader | None = None
        if path is None:
            return
        try:
            self.reader = VariantReader(path, genome)
        except (GtaInputError, OSError) as e:  # an unreadable VCF is reported by `gta validate`, not here
            log.info("variant counts left out of prompts: %s", e)

    def count(self, chrom: str, start: int, end: int) -> int | None:
        if self.reader is None:
            return None
        try:
            return self.reader.count_records(chrom, start, end)
        except Exception as e:  # noqa: BLE001 - cheap counting is impossible: leave the statistic out
            log.info("variant counts left out of prompts: %s", e)
            self.reader = None
            return None


def window_stats(dataset, gene, counter: VariantCounter | None = None) -> dict[str, float | int]:
    """``{"gc": fraction, "n_variants": count}`` of a gene's input window (keys left out when unknown)."""
    gene = _gene(dataset, gene)
    geometry = dataset.manifest.geometry
    stats: dict[str, float | int] = {}
    gc = gc_fraction(dataset.genome.gene_window(gene, geometry))
    if gc is not None:
        stats["gc"] = gc
    if counter is None:
        counter = VariantCounter(getattr(dataset, "variants_path", None), dataset.genome)
    start, end = geometry.window(gene.tss, gene.strand)
    n = counter.count(gene.chrom, start, end)
    if n is not None:
        stats["n_variants"] = n
    return stats


def _fallback_row(gene) -> dict[str, str]:
    """What the gene table itself says, for a gene without an annotation row."""
    return {"gene_id": gene.gene_id, "symbol": gene.symbol, "gene_type": gene.gene_type}


def gene_prompt(dataset, gene, annotations: dict[str, dict] | None = None,
                counter: VariantCounter | None = None, template: str | None = None) -> str:
    """The prompt for one gene (a ``Gene`` or an id/symbol ``dataset.gene`` resolves), as the model sees it.

    ``annotations`` overrides ``dataset.annotations`` (the shuffled-prompt control passes a shuffled mapping);
    ``template`` is a run's ``prompt_template`` (None: the default template).
    """
    gene = _gene(dataset, gene)
    rows = dataset.annotations if annotations is None else annotations
    row = (rows or {}).get(gene.gene_id) or _fallback_row(gene)
    return build_prompt(row, dataset.manifest.description, window_stats(dataset, gene, counter), template=template)


def run_prompts(dataset, gene_ids: Iterable[str], folder: str | Path | None = None, shuffle: bool = False,
                seed: int = 0, progress: bool = True, save: bool = True, template: str | None = None) -> dict[str, str]:
    """Prompts of ``gene_ids``, read from ``folder/prompts.json`` when it holds them all (built with the same
    template, shuffle and seed), else computed (and saved there when ``save``)."""
    gene_ids = list(gene_ids)
    path = Path(folder) / PROMPTS_FILE if folder is not None else None
    key = {"template": PROMPT_TEMPLATE_VERSION if template is None else template, "shuffle": bool(shuffle),
           "seed": int(seed)}
    if path is not None:
        saved = read_prompts_file(path)
        if saved.get("key") == key and set(gene_ids) <= set(saved.get("prompts", {})):
            return {g: saved["prompts"][g] for g in gene_ids}
    annotations = dataset.annotations
    if shuffle:
        annotations = shuffle_annotations(
            {g: (annotations or {}).get(g) or _fallback_row(dataset.gene(g)) for g in gene_ids}, seed)
    counter = VariantCounter(getattr(dataset, "variants_path", None), dataset.genome)
    prompts = {g: gene_prompt(dataset, g, annotations, counter, template)
               for g in tqdm(gene_ids, desc="prompts", unit="gene", disable=not progress or len(gene_ids) < 50)}
    if path is not None and save:
        atomic_write_text(path, json.dumps({"key": key, "prompts": prompts}, indent=0))
    return prompts
