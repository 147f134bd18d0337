"""``gta validate``: read every file a manifest names and say whether the data set is usable.

A malformed file raises ``GtaInputError`` (one line naming the file; exit 2 through the CLI). That includes the
VCF records that training would read: every record in the gene windows of an indexed VCF, or the first
``SCAN_RECORDS`` records of a VCF without index (streamed, never the whole file at once). Problems between
files are rows of the report with status ``error`` (exit 2): no gene on a FASTA chromosome, no gene with
expression, VCF contigs that match no FASTA chromosome. An expression sample without genotypes
in the VCF is such a row too, and, once every check has run, an ``UnusableDatasetError`` (a one-line
``GtaInputError`` naming both files) that carries the report. ``warn`` rows (skipped genes, missing index, empty
val/test split, REF mismatches, unphased heterozygous calls read as the reference, symbolic alleles, a plain-gzip
VCF, expression matched only by gene symbol) leave the data set usable; ``info`` rows say what gta did for you
(chromosome names matched only through an alias such as ``1``/``chr1``, htslib's notes on header tags gta does
not read).

The VCF is refused with one line (``GtaInputError`` from ``gta.io.variants``) when it is truncated (no BGZF
end-of-file block), its index is older than it, its records are out of order (the first ``SCAN_RECORDS`` of a
VCF without index are read in file order), a sample is entirely unphased under the default policy, or a
genotype has more than two alleles.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from gta.errors import GtaInputError
from gta.geometry import Geometry, Interval
from gta.io.dataset import Dataset, open_dataset, vcf_header
from gta.io.expression import match_report
from gta.io.genome import file_compression
from gta.io.splits import summarize_gene_splits
from gta.io.types import Gene

OK, INFO, WARN, ERROR = "ok", "info", "warn", "error"
SCAN_RECORDS = 200_000  # records read from the start of a VCF that has no index (no region queries)


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | info | warn | error
    detail: str


@dataclass
class ValidationReport:
    manifest: Path
    checks: list[Check] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    stats: dict[str, object] = field(default_factory=dict)

    def add(self, name: str, status: str, detail: str) -> None:
        self.checks.append(Check(name, status, detail))

    @property
    def errors(self) -> list[Check]:
        return [c for c in self.checks if c.status == ERROR]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 2

    def to_dict(self) -> dict:
        return {"manifest": str(self.manifest), "ok": self.ok, "stats": self.stats, "skipped": self.skipped,
                "checks": [c.__dict__ for c in self.checks]}


class UnusableDatasetError(GtaInputError):
    """A ``GtaInputError`` raised after every check ran; ``report`` holds all the rows."""

    def __init__(self, message: str, path: str | Path, hint: str, report: ValidationReport) -> None:
        super().__init__(message, path, hint=hint)
        self.report = report


def _examples(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (" ..." if len(items) > n else "")


def _alias_examples(renamed: dict[str, str], n: int = 3) -> str:
    return _examples([f"{a} -> {b}" for a, b in renamed.items()], n)


def validate(manifest_path: str | Path, scan_genome: bool = True, progress: bool = False) -> ValidationReport:
    """Check a data set end to end; see the module docstring for what is an error."""
    ds = open_dataset(manifest_path)
    m = ds.manifest
    rep = ValidationReport(m.path)
    genome = ds.genome
    detail = f"{len(genome.contigs)} contigs, {genome.total_bp:,} bp"
    if scan_genome:
        st = genome.scan(progress=progress)
        detail += f" ({st.n / max(st.total_bp, 1):.1%} N, {st.soft_masked / max(st.total_bp, 1):.1%} soft-masked)"
        rep.stats["genome_n"] = st.n
    rep.stats.update(contigs=len(genome.contigs), total_bp=genome.total_bp)
    rep.add("sequences", OK, f"{m.genome.name}: {detail}")

    table = ds.gene_table  # raises when no gene lies on a FASTA chromosome
    genes = table.genes
    rep.stats["genes"] = len(genes)
    rep.add("genes with a TSS", OK, f"{len(genes):,} from {m.genes.name} ({table.format.upper()})")
    gene_contigs = sorted({g.chrom for g in genes})
    renamed = sorted(table.missing_contigs)
    names = f"{len(gene_contigs)} gene chromosome(s) found in the FASTA"
    aliased = getattr(table, "renamed_contigs", {}) or {}
    if aliased:
        names += f", {len(aliased)} only through an alias ({_alias_examples(aliased)})"
    if table.missing_contigs:
        names += f"; not in the FASTA: {_examples(renamed)} ({sum(table.missing_contigs.values())} genes skipped)"
    rep.stats["gene_contigs_by_alias"] = len(aliased)
    rep.add("chromosome names FASTA/genes", WARN if table.missing_contigs else INFO if aliased else OK, names)

    expr = ds.expression
    if expr is not None:
        mr = match_report(expr, genes)
        rep.stats.update(expression_genes=mr["expression_genes"], expression_samples=mr["samples"],
                         genes_with_expression=mr["matched"])
        status = ERROR if mr["matched"] == 0 else WARN if mr["matched_by_symbol"] else OK
        rep.stats["genes_with_expression_by_symbol"] = mr["matched_by_symbol"]
        text = f"{mr['matched']:,} of {len(genes):,} genes ({mr['samples']:,} samples)"
        if mr["matched_by_symbol"]:
            text += (f"; {mr['matched_by_id']:,} by gene id, {mr['matched_by_symbol']:,} only by gene symbol (a "
                     "symbol can be renamed or shared between releases: prefer gene ids of the same release)")
        if mr["expression_without_gene"]:
            text += f"; {mr['expression_without_gene']:,} matrix rows match no gene"
        if mr["matched"] == 0:
            text += f" (matrix ids e.g. {_examples(mr['examples_expression_without_gene'])}; genes e.g. " \
                    f"{_examples([g.gene_id for g in genes])})"
        rep.add("genes with expression", status, text)
        if mr["missing_values"]:
            rep.add("missing expression values", INFO, f"{mr['missing_values']:,} NaN values (masked in training)")
    else:
        rep.add("genes with expression", WARN, "no expression matrix in the manifest (prediction only)")

    lacking: list[str] = []
    if m.variants is not None:
        lacking = _check_variants(rep, ds, expr.samples if expr is not None else [])
    else:
        rep.add("samples with genotypes", INFO, "no VCF in the manifest (reference sequence only)")

    splits = summarize_gene_splits(ds.gene_splits)
    status = WARN if not splits["val"] or not splits["test"] else OK
    rep.add("gene splits", status, ", ".join(f"{k} {v:,}" for k, v in splits.items()))
    samples = ds.samples() if expr is not None or m.variants is not None else []
    if samples:
        train, test = ds.individual_splits()
        rep.add("individual splits", OK, f"train {len(train):,}, test {len(test):,}")

    if m.annotations is not None:
        ann = ds.annotations
        hit = sum(g.gene_id in ann for g in genes)
        rep.add("annotations", OK if hit else WARN, f"{hit:,} of {len(genes):,} genes annotated ({m.annotations.name})")

    rep.skipped = ds.skipped
    for reason, n in rep.skipped.items():
        rep.add("skipped", WARN, f"{n:,} {reason}")
    if lacking:
        raise _samples_without_genotypes(rep, m.expression, m.variants, lacking)
    return rep


def _samples_without_genotypes(rep: ValidationReport, expr_path: Path, vcf_path: Path,
                               lacking: list[str]) -> UnusableDatasetError:
    """The one-line error for expression samples that the VCF lacks (the report rides along)."""
    first = ", ".join(lacking[:3]) + (" ..." if len(lacking) > 3 else "")
    return UnusableDatasetError(
        f"{len(lacking)} of {rep.stats['expression_samples']} expression sample(s) have no genotypes in the VCF "
        f"{vcf_path} (first: {first})",
        expr_path,
        hint="use the same sample ids in both files, or drop those columns from the expression matrix",
        report=rep,
    )


def _check_variants(rep: ValidationReport, ds, expr_samples: list[str]) -> list[str]:
    """Rows for the VCF (compression, index, samples, contigs, records); returns the expression samples it lacks."""
    path: Path = ds.manifest.variants
    plain_gzip = file_compression(path) == "gzip"
    if path.suffix in (".gz", ".bgz") and plain_gzip:
        from gta.io.variants import plain_gzip_fix

        rep.add("variants file", WARN, f"{path.name} is plain gzip, not BGZF: it cannot be indexed, so gta reads it "
                f"through a temporary bgzipped copy each time (slow for a large file; {plain_gzip_fix(path)})")
    indexed = any(Path(str(path) + ext).exists() for ext in (".tbi", ".csi"))
    if not indexed and not plain_gzip:
        rep.add("variants index", WARN, f"no .tbi/.csi beside {path.name} (fix: bcftools index {path.name})")
    samples, contigs = vcf_header(path)
    rep.stats["vcf_samples"] = len(samples)
    rep.add("samples with genotypes", OK if samples else ERROR, f"{len(samples):,} in {path.name}")
    found: list[str] = []
    if contigs:
        found = [c for c in contigs if ds.genome.names.resolve(c) is not None]
        missing = [c for c in contigs if ds.genome.names.resolve(c) is None]
        aliased = {c: ds.genome.names.resolve(c) for c in found if ds.genome.names.resolve(c) != c}
        rep.stats["vcf_contigs_by_alias"] = len(aliased)
        status = ERROR if not found else INFO if aliased else OK
        text = f"{len(found)} of {len(contigs)} VCF contigs found in the FASTA"
        if aliased:
            text += f", {len(aliased)} only through an alias ({_alias_examples(aliased)})"
        if missing:
            text += f"; not in the FASTA: {_examples(missing)}"
        gene_chroms = {g.chrom for g in ds.genes}
        shared = {ds.genome.names.resolve(c) for c in found} & gene_chroms
        text += f"; {len(shared)} shared with genes"
        rep.add("chromosome names FASTA/VCF", status, text)
    else:
        rep.add("chromosome names FASTA/VCF", WARN, "the VCF header lists no contigs and there is no index")
    lacking: list[str] = []
    if expr_samples:
        vcf = set(samples)
        lacking = [s for s in expr_samples if s not in vcf]
        if lacking:
            rep.add("sample overlap expression/VCF", ERROR,
                    f"{len(lacking)} of {len(expr_samples)} expression samples are not in the VCF "
                    f"(e.g. {_examples(lacking)}); VCF has e.g. {_examples(samples)}")
        else:
            extra = len(vcf) - len(set(expr_samples))
            rep.add("sample overlap expression/VCF", OK,
                    f"all {len(expr_samples):,} expression samples have genotypes"
                    + (f"; {extra:,} VCF samples without expression" if extra else ""))
    if samples and (found or not contigs):
        _check_records(rep, ds, indexed)
    return lacking


def gene_regions(genes: list[Gene], geometry: Geometry, chunk_bp: int) -> Iterator[tuple[str, int, int]]:
    """The union of the genes' input windows as (chrom, start, end) pieces of at most ``chunk_bp`` bases, in
    genome order (chromosomes in first-gene order)."""
    by_chrom: dict[str, list[Interval]] = {}
    for g in genes:
        by_chrom.setdefault(g.chrom, []).append(geometry.window(g.tss, g.strand))
    for chrom, windows in by_chrom.items():
        merged: list[list[int]] = []
        for start, end in sorted(windows):
            start = max(start, 0)
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        for start, end in merged:
            for lo in range(start, end, chunk_bp):
                yield chrom, lo, min(lo + chunk_bp, end)


@contextmanager
def _quiet_vcf_reading() -> Iterator[None]:
    """Silence cyvcf2's warning for a region without records. (htslib's own stderr lines are captured by the
    VariantReader: an htslib error is a GtaInputError that says what is wrong, in one line.)"""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="no intervals found", category=UserWarning)
        yield


def _check_records(rep: ValidationReport, ds: Dataset, indexed: bool) -> None:
    """Parse the VCF records that feature extraction reads; a malformed one raises (file and line)."""
    from gta.io.variants import VariantReader, describe_skips, sniff_format

    path: Path = ds.manifest.variants
    geometry = ds.manifest.geometry
    n = 0
    skipped: Counter = Counter()
    kind = sniff_format(path)
    policy = getattr(ds, "variant_policy", None)  # the manifest's haplotype policy (None: the default one)
    with _quiet_vcf_reading(), VariantReader(path, ds.genome, policy) as reader:
        if indexed and kind != "vcf":
            for chrom, start, end in gene_regions(ds.genes, geometry, max(geometry.input_len, 10_000)):
                if reader.vcf_name(chrom) is None:
                    continue
                n += len(reader.region(chrom, start, end))
            skipped.update(reader.stats)
            where = "in the gene windows"
        else:
            runs = reader.iter_regions()
            try:
                for calls in runs:
                    n += len(calls)
                    skipped.update(calls.skipped)
                    if n >= SCAN_RECORDS:
                        break
            finally:
                runs.close()
            where = f"from the start (at most {SCAN_RECORDS:,}: {'plain text' if kind == 'vcf' else 'no index'})"
        notes = Counter(reader.htslib_notes)
    rep.stats["vcf_records_read"] = n
    skipped.pop("contig_absent", None)  # (gene windows on a chromosome without records: normal)
    rep.stats.update({f"vcf_{k}": v for k, v in sorted(skipped.items())})
    text = f"{n:,} record(s) {where} parsed"
    if skipped:
        text += "; " + describe_skips(skipped, policy)
    rep.add("variant records", WARN if set(skipped) - {"unphased_as_phased"} else OK, text)
    if notes:
        total = sum(notes.values())
        first = next(iter(notes))
        rep.add("htslib notes", INFO, f"{total:,} htslib warning(s) about header lines or tags gta does not read "
                f"({len(notes)} distinct, first: {first})")


def render_report(report: ValidationReport):
    """The report as a short rich table."""
    from rich.table import Table

    style = {OK: "green", INFO: "cyan", WARN: "yellow", ERROR: "bold red"}
    verdict = "[green]usable[/]" if report.ok else f"[bold red]not usable: {len(report.errors)} error(s)[/]"
    table = Table(title=f"gta validate {report.manifest}", caption=verdict, show_lines=False)
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    for c in report.checks:
        table.add_row(c.name, f"[{style[c.status]}]{c.status}[/]", c.detail)
    return table
