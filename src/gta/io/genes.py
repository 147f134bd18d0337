"""Gene tables from GTF, GFF3 or TSV/CSV: one TSS per gene.

* **GTF** (GENCODE, Ensembl, UCSC; gzipped or not): ``gene`` records, or genes assembled from their
  transcripts/exons when a file has no ``gene`` lines. Every line needs 9 tab-separated fields and a ``gene_id``.
* **GFF3** (GENCODE, Ensembl, RefSeq, FlyBase): gene features (``gene``, ``*_gene``, ``pseudogene``) and their
  child transcripts through ``Parent``/``ID``; in a file without gene features, top-level transcripts
  (``mRNA``, ``transcript``, ``ncRNA``, ``lnc_RNA``, miRBase's ``miRNA_primary_transcript``) stand for their gene
  (mature ``miRNA`` records, derived from a primary transcript, do not). The gene id is the ``gene_id``
  attribute, else ``ID`` without a ``gene:``/``gene-`` prefix, else the ``GeneID`` in ``Dbxref``, else ``Name``.
  Parsing stops at ``##FASTA``.
* **TSV/CSV** with a header: ``gene_id``, ``symbol``, ``chrom``, ``tss`` (0-based), ``strand``
  (+ optional ``gene_type``); ``symbol`` may be left out (the id is used).

Rules. The TSS is the gene start on ``+`` and ``end - 1`` on ``-`` (0-based), unless one transcript of the gene is
tagged canonical (``Ensembl_canonical``, ``canonical``, ``MANE_Select``), whose start is used instead. Version
suffixes are stripped (``ENSG00000123.4`` -> ``ENSG00000123``; GENCODE's ``_PAR_Y`` tail is kept). The symbol
comes from ``gene_name``/``Name``/``gene``; the type from ``gene_type``/``gene_biotype``/``biotype``, else
``"unknown"``. ``Gene.end`` is the gene's 0-based exclusive end on the genome (either strand; ``None`` from a
TSV). Chromosome names are mapped onto the genome's through :class:`~gta.io.genome.ChromNames`; genes on
contigs the genome lacks, or without a strand, are skipped and counted in ``GeneTable.skipped``. A repeated gene
id, a wrong field count or a non-integer coordinate is a ``GtaInputError`` with file and line.
"""

from __future__ import annotations

import csv
import gzip
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from gta.errors import GtaInputError
from gta.io.genome import ChromNames
from gta.io.types import Gene

CANONICAL_TAGS = frozenset({"Ensembl_canonical", "canonical", "MANE_Select", "MANE Select"})
# GFF3 transcripts that stand for their gene in a file without gene features (a miRBase file lists pri-miRNAs)
GFF3_TOP_TRANSCRIPTS = frozenset({"mRNA", "transcript", "primary_transcript", "miRNA_primary_transcript", "lnc_RNA",
                                  "ncRNA"})
GFF3_GENE_TYPES = frozenset({"gene", "pseudogene", "ncRNA_gene", "protein_coding_gene", "transposable_element_gene"})
GFF3_SUBFEATURES = frozenset(
    {"exon", "CDS", "five_prime_UTR", "three_prime_UTR", "UTR", "start_codon", "stop_codon", "intron",
     "stop_codon_redefined_as_selenocysteine", "polyA_site", "polyA_signal"}
)
SKIP_CONTIG = "chromosome not in genome"
SKIP_STRAND = "no strand (+/-)"
LARGE_FILE = 64 << 20  # bytes above which a progress bar is shown
_VERSION = re.compile(r"^([A-Za-z]+\d+)\.\d+(?=$|_PAR_[XY]$)")
_GTF_ATTR = re.compile(r'\s*([^\s;"]+)\s+(?:"([^"]*)"|([^;"\s]*))\s*(?:;|$)')
_TSV_ALIASES = {
    "gene_id": ("gene_id", "geneid", "gene", "id", "ensembl_gene_id", "ensembl_id"),
    "symbol": ("symbol", "gene_symbol", "gene_name", "name"),
    "chrom": ("chrom", "chr", "chromosome", "seqname", "seqid", "contig"),
    "tss": ("tss", "tss0"),
    "strand": ("strand",),
    "gene_type": ("gene_type", "gene_biotype", "biotype", "type"),
}


def strip_version(gene_id: str) -> str:
    """``ENSG00000141510.17`` -> ``ENSG00000141510`` (a GENCODE ``_PAR_Y`` tail is kept)."""
    gene_id = gene_id.strip()
    if "." not in gene_id:
        return gene_id
    m = _VERSION.match(gene_id)
    return m.group(1) + gene_id[m.end():] if m else gene_id


@dataclass
class GeneTable:
    """Genes read from one file, plus what was skipped and why (reason -> count)."""

    genes: list[Gene]
    skipped: dict[str, int] = field(default_factory=dict)
    path: Path | None = None
    format: str = ""
    missing_contigs: dict[str, int] = field(default_factory=dict)  # contig -> genes skipped on it
    renamed_contigs: dict[str, str] = field(default_factory=dict)  # the file's name -> the FASTA's (an alias)

    def __len__(self) -> int:
        return len(self.genes)

    def __iter__(self) -> Iterator[Gene]:
        return iter(self.genes)

    def by_id(self) -> dict[str, Gene]:
        return {g.gene_id: g for g in self.genes}


@dataclass
class _Acc:
    """A gene being assembled."""

    gene_id: str
    symbol: str
    gene_type: str
    chrom: str
    strand: str
    start: int  # 0-based
    end: int  # exclusive
    line: int
    canonical: tuple[int, int] | None = None


def iter_lines(path: Path, progress: bool = True) -> Iterator[tuple[int, str]]:
    """(1-based line number, text without end-of-line) of a plain or gzipped text file; bad bytes or a broken
    gzip stream become a GtaInputError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise GtaInputError("file not found" if not path.exists() else "expected a file, got a folder", path)
    size = path.stat().st_size
    from tqdm.auto import tqdm

    bar = tqdm(total=size, desc=f"reading {path.name}", unit="B", unit_scale=True,
               disable=not progress or size < LARGE_FILE)
    with open(path, "rb") as raw:
        fh = gzip.GzipFile(fileobj=raw) if raw.read(2) == b"\x1f\x8b" else raw
        raw.seek(0)
        lineno = 0
        try:
            for lineno, data in enumerate(fh, start=1):  # noqa: B007 (lineno is used after the loop)
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    raise GtaInputError("line is not UTF-8 text (binary or corrupt file?)", path, lineno) from None
                if lineno % 65536 == 0:
                    bar.update(raw.tell() - bar.n)
                text = text.rstrip("\r\n")
                yield lineno, text.lstrip("\ufeff") if lineno == 1 else text
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
            raise GtaInputError(f"gzip stream breaks after line {lineno}: {e}", path,
                                hint="the file is truncated or corrupt; download or compress it again") from None
        finally:
            bar.close()


def read_genes(path: str | Path, genome_names: ChromNames | None = None, progress: bool = True) -> GeneTable:
    """Read genes from GTF, GFF3 or TSV/CSV (format from the extension, else from the content)."""
    path = Path(path)
    fmt = detect_gene_format(path)
    table = _read_tsv(path, genome_names) if fmt == "tsv" else _read_features(path, fmt, genome_names, progress)
    table.path, table.format = path, fmt
    if not table.genes and not table.skipped:
        raise GtaInputError(f"no genes found in this {fmt.upper()} file", path,
                            hint="GTF/GFF3 need 'gene' (or transcript) records; TSV needs a header and rows")
    return table


def detect_gene_format(path: Path) -> str:
    """'gtf', 'gff3' or 'tsv'."""
    name = path.name.lower().removesuffix(".gz").removesuffix(".bgz")
    if name.endswith((".gtf", ".gtf2")):
        return "gtf"
    if name.endswith((".gff3", ".gff")):
        return "gff3"
    if name.endswith((".tsv", ".csv")):
        return "tsv"
    for _, line in iter_lines(path, progress=False):
        if line.startswith("##gff-version 3"):
            return "gff3"
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) >= 9 and fields[3].strip().isdigit():
            return "gff3" if "=" in fields[8] and '"' not in fields[8] else "gtf"
        return "tsv"
    raise GtaInputError("gene file is empty", path)


def _gtf_attributes(text: str) -> tuple[dict[str, str], set[str]]:
    attrs: dict[str, str] = {}
    tags: set[str] = set()
    for m in _GTF_ATTR.finditer(text):
        key, value = m.group(1), m.group(2) if m.group(2) is not None else m.group(3)
        if key == "tag":
            tags.add(value)
        else:
            attrs.setdefault(key, value)
    return attrs, tags


def _gff3_attributes(text: str) -> tuple[dict[str, str], set[str]]:
    attrs: dict[str, str] = {}
    for part in text.split(";"):
        key, eq, value = part.strip().partition("=")
        if eq and key:
            attrs.setdefault(key, value)
    tags = {unquote(t) for t in attrs.get("tag", "").split(",") if t}
    return {k: unquote(v) for k, v in attrs.items()}, tags


def _gff3_gene_id(attrs: dict[str, str]) -> str:
    if attrs.get("gene_id"):
        return attrs["gene_id"]
    if attrs.get("ID"):
        return re.sub(r"^gene[:-]", "", attrs["ID"])
    for ref in attrs.get("Dbxref", "").split(","):
        if ref.startswith("GeneID:"):
            return ref.split(":", 1)[1]
    return attrs.get("Name", "")


def _parse_feature_line(path: Path, lineno: int, line: str) -> tuple[str, str, int, int, str, str]:
    """(seqid, type, start0, end, strand, attributes) of one GTF/GFF3 line, checked."""
    fields = line.split("\t")
    if len(fields) != 9 and not (len(fields) == 10 and not fields[9].strip()):
        raise GtaInputError(f"expected 9 tab-separated fields, found {len(fields)}", path, lineno,
                            hint="GTF/GFF3 columns are separated by tabs")
    try:
        start, end = int(fields[3]), int(fields[4])
    except ValueError:
        raise GtaInputError(f"start/end {fields[3]!r}/{fields[4]!r} are not integers", path, lineno) from None
    if start < 1 or end < start:
        raise GtaInputError(f"bad coordinates start={start} end={end} (1-based, start <= end)", path, lineno)
    return fields[0], fields[2], start - 1, end, fields[6], fields[8]


def _read_features(path: Path, fmt: str, names: ChromNames | None, progress: bool) -> GeneTable:
    gtf = fmt == "gtf"
    parse_attrs = _gtf_attributes if gtf else _gff3_attributes
    genes: dict[str, _Acc] = {}
    gff_ids: dict[str, str] = {}  # GFF3 ID of a gene feature -> gene id
    transcripts: list[tuple[str, int, int, str, set[str]]] = []  # (gene key, start0, end, strand, tags)
    loose: dict[str, _Acc] = {}  # genes seen only through transcripts/exons (GTF without gene lines)
    top_tx: dict[str, _Acc] = {}  # GFF3 mRNA/transcript features without Parent (files without gene features)
    for lineno, line in iter_lines(path, progress):
        if not line.strip() or line.startswith("#"):
            if line.startswith("##FASTA"):
                break
            continue
        if line.startswith(">") and not gtf:  # a FASTA section without its ##FASTA directive
            break
        if gtf and genes:  # fast path for the bulk of a GTF (exons, CDS, ...) once gene lines are known
            f = line.split("\t")
            valid = len(f) == 9 and f[3].isdigit() and f[4].isdigit() and 0 < int(f[3]) <= int(f[4])
            valid = valid and "gene_id" in f[8]
            if valid and not (f[2] == "gene" or (f[2] == "transcript" and ("canonical" in f[8] or "MANE" in f[8]))):
                continue
        seqid, ftype, start0, end, strand, attr_text = _parse_feature_line(path, lineno, line)
        if gtf and "gene_id" not in attr_text:
            raise GtaInputError(f"{ftype} record has no gene_id attribute", path, lineno,
                                hint='every GTF line needs gene_id "..."; is this a GFF3 file?')
        is_gene = ftype == "gene" if gtf else (ftype in GFF3_GENE_TYPES or ftype.endswith("_gene"))
        if not gtf and not is_gene and ftype in GFF3_TOP_TRANSCRIPTS and "Parent=" not in attr_text:
            attrs, tags = parse_attrs(attr_text)
            tid = strip_version(_gff3_gene_id(attrs))
            if tid and tid not in top_tx:
                symbol = attrs.get("gene_name") or attrs.get("gene") or attrs.get("Name") or tid
                gtype = attrs.get("biotype") or (ftype if ftype not in ("mRNA", "transcript") else "unknown")
                top_tx[tid] = _Acc(tid, symbol, gtype, seqid, strand, start0, end, lineno)
            continue
        if not gtf and not is_gene and ("Parent=" not in attr_text or ftype in GFF3_SUBFEATURES):
            continue
        if gtf and not is_gene and ftype != "transcript" and genes:
            continue  # exons etc.: only needed when the file has no gene lines
        attrs, tags = parse_attrs(attr_text)
        if is_gene:
            raw_id = attrs.get("gene_id", "") if gtf else _gff3_gene_id(attrs)
            gid = strip_version(raw_id)
            if not gid:
                raise GtaInputError(f"{ftype} record has no gene_id/ID/Name", path, lineno)
            if gid in genes:
                raise GtaInputError(f"duplicate gene id {gid} (first on line {genes[gid].line})", path, lineno,
                                    hint="keep one gene record per id")
            symbol = attrs.get("gene_name") or attrs.get("Name") or attrs.get("gene") or attrs.get("gene_symbol") or gid
            gtype = attrs.get("gene_type") or attrs.get("gene_biotype") or attrs.get("biotype") or "unknown"
            genes[gid] = _Acc(gid, symbol, gtype, seqid, strand, start0, end, lineno)
            if not gtf and attrs.get("ID"):
                gff_ids[attrs["ID"]] = gid
            continue
        if gtf:
            key = strip_version(attrs.get("gene_id", ""))
            if not key:
                raise GtaInputError(f"{ftype} record has an empty gene_id", path, lineno)
            if ftype == "transcript":
                transcripts.append((key, start0, end, strand, tags))
            acc = loose.get(key)
            if acc is None:
                symbol = attrs.get("gene_name") or attrs.get("gene_symbol") or key
                gtype = attrs.get("gene_type") or attrs.get("gene_biotype") or "unknown"
                loose[key] = _Acc(key, symbol, gtype, seqid, strand, start0, end, lineno)
            else:
                acc.start, acc.end = min(acc.start, start0), max(acc.end, end)
        else:
            for parent in attrs.get("Parent", "").split(","):
                transcripts.append((parent, start0, end, strand, tags))
    if not gtf:
        transcripts = [(gff_ids[p], s, e, st, t) for p, s, e, st, t in transcripts if p in gff_ids]
        genes = genes or top_tx
    elif not genes:
        genes = loose
    for key, start0, end, strand, tags in transcripts:
        acc = genes.get(key)
        if acc is not None and acc.canonical is None and tags & CANONICAL_TAGS and strand == acc.strand:
            acc.canonical = (start0, end)
    return _finish(list(genes.values()), names)


def _finish(accs: list[_Acc], names: ChromNames | None) -> GeneTable:
    out: list[Gene] = []
    skipped: Counter[str] = Counter()
    missing: Counter[str] = Counter()
    renamed: dict[str, str] = {}
    for a in accs:
        chrom = names.resolve(a.chrom) if names is not None else a.chrom
        if chrom is None:
            skipped[SKIP_CONTIG] += 1
            missing[a.chrom] += 1
            continue
        if chrom != a.chrom:
            renamed[a.chrom] = chrom
        if a.strand not in ("+", "-"):
            skipped[SKIP_STRAND] += 1
            continue
        s, e = a.canonical or (a.start, a.end)
        tss = s if a.strand == "+" else e - 1
        out.append(Gene(a.gene_id, a.symbol, chrom, tss, a.strand, a.gene_type, a.end))
    return GeneTable(out, dict(skipped), missing_contigs=dict(missing), renamed_contigs=renamed)


def split_row(text: str, sep: str, path: Path, lineno: int) -> list[str]:
    """One delimited row (quotes allowed); a malformed row is a GtaInputError."""
    try:
        return next(csv.reader([text], delimiter=sep), [])
    except csv.Error as e:
        raise GtaInputError(f"cannot split this row: {e}", path, lineno) from None


def _read_tsv(path: Path, names: ChromNames | None) -> GeneTable:
    lines = ((n, t) for n, t in iter_lines(path, progress=False) if t.strip() and not t.startswith("#"))
    first = next(lines, None)
    if first is None:
        raise GtaInputError("gene table is empty", path, hint="header: gene_id symbol chrom tss strand")
    hdr_line, header_text = first
    sep = "," if path.name.lower().removesuffix(".gz").endswith(".csv") or "\t" not in header_text else "\t"
    header = [h.strip().lower() for h in split_row(header_text, sep, path, hdr_line)]
    col: dict[str, int] = {}
    for key, aliases in _TSV_ALIASES.items():
        for alias in aliases:
            if alias in header:
                col[key] = header.index(alias)
                break
    missing = [k for k in ("gene_id", "chrom", "tss", "strand") if k not in col]
    if missing:
        raise GtaInputError(f"gene table lacks column(s) {missing}; header is {header}", path, hdr_line,
                            hint="columns: gene_id, symbol, chrom, tss (0-based), strand [, gene_type]")
    accs: list[_Acc] = []
    seen: dict[str, int] = {}
    for lineno, text in lines:
        row = split_row(text, sep, path, lineno)
        if len(row) != len(header):
            raise GtaInputError(f"expected {len(header)} fields, found {len(row)}", path, lineno)
        gid = strip_version(row[col["gene_id"]])
        if not gid:
            raise GtaInputError("empty gene_id", path, lineno)
        if gid in seen:
            raise GtaInputError(f"duplicate gene id {gid} (first on line {seen[gid]})", path, lineno)
        seen[gid] = lineno
        try:
            tss = int(row[col["tss"]])
        except ValueError:
            raise GtaInputError(f"tss {row[col['tss']]!r} is not an integer", path, lineno) from None
        if tss < 0:
            raise GtaInputError(f"tss {tss} is negative (0-based coordinates)", path, lineno)
        strand = row[col["strand"]].strip()
        if strand not in ("+", "-"):
            raise GtaInputError(f"strand {strand!r} is not + or -", path, lineno)
        symbol = row[col["symbol"]].strip() if "symbol" in col else ""
        gtype = row[col["gene_type"]].strip() if "gene_type" in col else ""
        accs.append(_Acc(gid, symbol or gid, gtype or "unknown", row[col["chrom"]].strip(), strand,
                         tss, tss + 1, lineno))
    table = _finish(accs, names)
    table.genes = [Gene(g.gene_id, g.symbol, g.chrom, g.tss, g.strand, g.gene_type, None) for g in table.genes]
    return table
