"""One object for everything a manifest names: genome, genes, expression, annotations, splits, variants path and
the haplotype policy its genotypes are read with.

Everything is read lazily on first use and kept. Genes are read with the genome's chromosome names; a gene whose
TSS lies past the end of its chromosome (another genome build?) is skipped and counted.
"""

from __future__ import annotations

import difflib
import importlib
import json
import logging
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gta.errors import GtaInputError
from gta.io.build import check_builds
from gta.io.expression import ExpressionTable, read_expression
from gta.io.fingerprint import files_fingerprint
from gta.io.genes import GeneTable, read_genes, strip_version
from gta.io.genome import Genome
from gta.io.manifest import Manifest, load_manifest
from gta.io.splits import assign_gene_splits, split_individuals
from gta.io.types import Gene

if TYPE_CHECKING:
    from gta.io.variants import HaplotypePolicy

log = logging.getLogger(__name__)
SKIP_TSS_PAST_END = "TSS past the end of its chromosome"


class Dataset:
    """A data set opened from its manifest (see :func:`open_dataset`)."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self._fingerprints: dict[bool, str] = {}

    # -- files -----------------------------------------------------------------------------------------------
    @cached_property
    def genome(self) -> Genome:
        return Genome(self.manifest.genome)

    @cached_property
    def gene_table(self) -> GeneTable:
        lengths = self.genome.lengths
        check_builds(self.manifest.genes, lengths, self.manifest.genome)
        table = read_genes(self.manifest.genes, self.genome.names)
        past = [g for g in table.genes if not 0 <= g.tss < lengths[g.chrom]]
        kept = [g for g in table.genes if 0 <= g.tss < lengths[g.chrom]]
        if past:
            table.skipped[SKIP_TSS_PAST_END] = len(past)
            table.genes = kept
            g = past[0]
            log.warning("%s: %d genes have a TSS past the end of their chromosome in the genome (e.g. %s at %s:%d, "
                        "which is %d bp long) and are skipped: are the annotation and the FASTA from different "
                        "builds? (hg38 needs a GRCh38 annotation such as GENCODE v44)", self.manifest.genes,
                        len(past), g.symbol, g.chrom, g.tss + 1, lengths[g.chrom])
        if not kept:
            raise GtaInputError(
                f"no gene lies on a chromosome of the genome ({_skip_text(table.skipped)})",
                self.manifest.genes,
                hint=_contig_hint(table, self.genome),
            )
        return table

    @property
    def genes(self) -> list[Gene]:
        return self.gene_table.genes

    @cached_property
    def expression(self) -> ExpressionTable | None:
        if self.manifest.expression is None:
            return None
        return read_expression(self.manifest.expression, self.manifest.expression_transform)

    @property
    def variants_path(self) -> Path | None:
        return self.manifest.variants

    @cached_property
    def variant_policy(self) -> HaplotypePolicy:
        """How genotypes become haplotypes: the manifest's ``variant_policy``, else the default policy."""
        if self.manifest.variant_policy is not None:
            return self.manifest.variant_policy
        from gta.io.variants import HaplotypePolicy

        return HaplotypePolicy()

    def _policy_settings(self) -> dict[str, str]:
        """The policy fields that differ from the default, for the fingerprint (none: the hash of the files)."""
        if self.manifest.variant_policy is None or self.manifest.variants is None:
            return {}
        from gta.io.variants import HaplotypePolicy

        ours, default = self.manifest.variant_policy.to_dict(), HaplotypePolicy().to_dict()
        for d in (ours, default):  # 'auto' reads a file it accepts exactly as 'ref' does: the same features
            if d["unphased"] == "auto":
                d["unphased"] = "ref"
        changed = {k: v for k, v in ours.items() if k != "samples" and v != default[k]}
        return {"variant_policy": json.dumps(changed, sort_keys=True)} if changed else {}

    @cached_property
    def annotations(self) -> dict[str, dict[str, Any]]:
        """gene_id -> annotation row: from the manifest's annotations file, else the shipped human table."""
        try:
            mod = importlib.import_module("gta.io.annotations")
        except ImportError:
            return {}
        if self.manifest.annotations is not None:
            return dict(mod.read_annotation_table(self.manifest.annotations))
        lookup = getattr(mod, "annotation_for", None)
        if lookup is None:
            return {}
        try:
            found = {g.gene_id: lookup(g.gene_id, g.symbol) for g in self.genes}
        except GtaInputError as e:  # the shipped table is missing: prompts go without annotations
            log.warning("no gene annotations: %s", e.one_line())
            return {}
        return {k: v for k, v in found.items() if v is not None}

    # -- lookups ---------------------------------------------------------------------------------------------
    @cached_property
    def _gene_index(self) -> tuple[dict[str, Gene], dict[str, list[Gene]]]:
        by_id = {g.gene_id.upper(): g for g in self.genes}
        by_symbol: dict[str, list[Gene]] = {}
        for g in self.genes:
            by_symbol.setdefault(g.symbol.upper(), []).append(g)
        return by_id, by_symbol

    def gene(self, query: str) -> Gene:
        """A gene by id (with or without version) or symbol (any case); close matches in the error."""
        by_id, by_symbol = self._gene_index
        q = query.strip()
        hit = by_id.get(strip_version(q).upper()) or by_id.get(q.upper())
        if hit is not None:
            return hit
        matches = by_symbol.get(q.upper(), [])
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            ids = ", ".join(g.gene_id for g in matches[:5])
            raise GtaInputError(f"symbol {query!r} names {len(matches)} genes ({ids})", self.manifest.genes,
                                hint="ask by gene id")
        close = difflib.get_close_matches(q.upper(), list(by_symbol) + list(by_id), n=5, cutoff=0.6)
        shown = [by_symbol[c][0].symbol if c in by_symbol else by_id[c].gene_id for c in close]
        raise GtaInputError(f"gene {query!r} is not in the gene table", self.manifest.genes,
                            hint=f"did you mean {', '.join(shown)}?" if shown else "check the id or symbol")

    # -- splits ----------------------------------------------------------------------------------------------
    @cached_property
    def gene_splits(self) -> dict[str, str]:
        return assign_gene_splits(self.genes, self.manifest.splits, self.manifest.path)

    def samples(self) -> list[str]:
        """Individuals with expression (and genotypes, when the manifest names a VCF)."""
        expr = self.expression.samples if self.expression is not None else []
        if self.variants_path is None:
            return expr
        vcf = set(vcf_samples(self.variants_path))
        return [s for s in expr if s in vcf] if expr else sorted(vcf)

    def individual_splits(self) -> tuple[list[str], list[str]]:
        """(train, test) individuals, held out by ``splits.test_individual_fraction`` with ``splits.seed``."""
        return split_individuals(self.samples(), self.manifest.splits)

    # -- bookkeeping -----------------------------------------------------------------------------------------
    @property
    def skipped(self) -> dict[str, int]:
        """Everything skipped so far, as 'what: reason' -> count (reads the genes; expression if already read)."""
        out = {f"genes: {k}": v for k, v in self.gene_table.skipped.items()}
        expr = self.__dict__.get("expression")
        if expr is not None:
            out.update({f"expression: {k}": v for k, v in expr.skipped.items()})
        return out

    def fingerprint(self, include_expression: bool = False, progress: bool = False) -> str:
        """Hash of the genome, genes and variants file contents (+ expression when asked) and of the manifest's
        variant_policy where it differs from the default: the data-set identity that the feature store records, so
        a store built under another policy is refused. Expression is left out by default (features do not depend
        on it)."""
        if include_expression not in self._fingerprints:
            files = {"genome": self.manifest.genome, "genes": self.manifest.genes, "variants": self.manifest.variants}
            if include_expression:
                files["expression"] = self.manifest.expression
            self._fingerprints[include_expression] = files_fingerprint(files, progress=progress,
                                                                       settings=self._policy_settings())
        return self._fingerprints[include_expression]

    def close(self) -> None:
        if "genome" in self.__dict__:
            self.genome.close()

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_dataset(manifest_path: str | Path) -> Dataset:
    """Open the data set a manifest (``dataset.yaml``) describes; files are read when first used."""
    return Dataset(load_manifest(manifest_path))


def vcf_samples(path: str | Path) -> list[str]:
    """Sample names in a VCF/BCF header (cyvcf2)."""
    return vcf_header(path)[0]


def vcf_header(path: str | Path) -> tuple[list[str], list[str]]:
    """(samples, contigs) of a VCF/BCF: contigs from ``##contig`` lines, else from the index, else empty."""
    path = Path(path)
    import cyvcf2

    from gta.io.variants import _captured_stderr, check_variant_file, htslib_problem

    check_variant_file(path)  # truncated BGZF, stale index
    lines: list[str] = []
    try:
        with _captured_stderr(lines):
            vcf = cyvcf2.VCF(str(path), lazy=True, threads=1)
    except (OSError, ValueError, Exception) as e:  # cyvcf2 raises bare Exceptions for unreadable headers
        why = htslib_problem(lines) or " ".join(str(e).split())[:200]
        raise GtaInputError(f"cannot read VCF header: {why}", path,
                            hint="check it with: bcftools view -h FILE") from None
    problem = htslib_problem(lines)
    if problem:
        vcf.close()
        raise GtaInputError(problem, path, hint="check it with: bcftools view -h FILE")
    try:
        samples = list(vcf.samples)
        try:
            contigs = list(vcf.seqnames)
        except Exception:  # no ##contig lines and no index
            contigs = []
    finally:
        vcf.close()
    return samples, contigs


def _skip_text(skipped: dict[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in skipped.items()) or "nothing read"


def _contig_hint(table: GeneTable, genome: Genome) -> str:
    theirs = ", ".join(list(table.missing_contigs)[:4])
    ours = ", ".join(genome.contigs[:4])
    return f"gene file uses {theirs}; genome has {ours}: use the same build and naming" if theirs else ""
