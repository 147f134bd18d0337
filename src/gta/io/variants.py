"""Phased variants from VCF/BCF: a streaming, indexed reader with explicit haplotype policies.

``VariantReader(path, genome, policy)`` reads VCF (plain, bgzipped or plain gzip) and BCF through cyvcf2, one
region at a time (never the whole file). Chromosome names are harmonised with the genome's (``chr1``/``1``); REF
alleles are checked against the genome. What a policy drops is counted (``RegionCalls.skipped``,
``VariantReader.stats``):

* ``filtered``, ``ref_mismatch``, ``multiallelic`` (policy ``multiallelic='ref'``): records;
* ``missing``, ``unsupported_allele`` (symbolic and breakend ALTs: ``<DEL>``, ``N[chr2:123[``, ``*``): haplotype
  calls set to the reference;
* ``unphased``: unphased heterozygous genotypes set to the reference (policy ``unphased='ref'``, and ``'auto'`` on a
  phased file); ``unphased_as_phased`` counts those read in written order (``'as-phased'``, what
  ``bcftools consensus -H`` does).

Refused with one line (``GtaInputError``): a BGZF file without its end-of-file block (truncated), an index older
than its file, records out of order, genotypes of more than two alleles, a sample whose genotypes are all unphased
under the default ``unphased='auto'``, and anything htslib reports as an error. What htslib writes on stderr is
captured around each call: errors become the one line, warnings about header tags gta does not read
(``INFO 'X' is not defined in the header``) are counted in ``VariantReader.htslib_notes``.

Genotype matrices are ``int8 [records, samples, 2]`` allele indices after the policy (0 = REF, k = ALT k).
See ``docs/haplotypes.md`` for how alleles become haplotype sequences.
"""

from __future__ import annotations

import difflib
import gzip
import itertools
import logging
import os
import re
import sys
import tempfile
import warnings
import weakref
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cyvcf2
import numpy as np
import pysam

from gta.errors import GtaInputError
from gta.io.genome import Genome, canonical_chrom_aliases, clean_sequence

log = logging.getLogger(__name__)

_ALLELE_OK = re.compile(r"^[ACGTNacgtn]+$")
_FIX_GZIP = "recompress: zcat {name} | bgzip -c > {stem}.bgzf.vcf.gz && bcftools index {stem}.bgzf.vcf.gz"


def plain_gzip_fix(path: Path) -> str:
    """The fix for a plain-gzip VCF, writing a new file (never the input's name)."""
    return _FIX_GZIP.format(name=path.name, stem=path.name.split(".")[0])
_FIX_BCF = "recompress: bcftools view -Ob -o {stem}.bgzf.bcf {name} && bcftools index {stem}.bgzf.bcf"
_LOG_FIRST = 5  # how many skipped records a policy names in the log
PHASING_SCAN = 2_000  # records read from the start to tell a phased VCF from an unphased one (unphased='auto')
# the 28-byte empty block that ends every complete BGZF file (htslib's bgzf.c)
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
# htslib warnings that are errors for gta (the other warnings concern header lines and tag definitions: htslib
# reads the records all the same, as bcftools does)
_HTS_SERIOUS = re.compile(r"EOF marker|truncated|index file is older|Failed to|Could not|Error", re.I)
_CHOICES = {
    "multiallelic": ("split", "error", "ref"),
    "missing": ("ref", "error"),
    "unphased": ("auto", "ref", "as-phased", "error"),
    "overlap": ("first", "error"),
    "ref_mismatch": ("skip", "error"),
}


@dataclass(frozen=True)
class HaplotypePolicy:
    """How genotypes become haplotypes; every choice that drops data is counted.

    multiallelic: ``split`` (each ALT is its own allele; the GT index picks it), ``error``, or ``ref`` (a record
        with more than one ALT is read as the reference for every sample, counted as ``multiallelic``).
    missing: ``ref`` (a missing allele is the reference) or ``error``.
    unphased: ``auto`` (``ref`` for a phased VCF; an error naming the sample when a sample has unphased
        heterozygous genotypes and no phased one in the first ``PHASING_SCAN`` records: an unphased VCF would
        silently lose every heterozygous call), ``ref`` (an unphased heterozygous genotype becomes reference on both
        haplotypes, counted), ``as-phased`` (the first written allele is haplotype 1, as ``bcftools consensus -H``
        does) or ``error``. Unphased homozygous genotypes are unambiguous and always used; a haploid call's allele
        is on both haplotypes; a genotype of more than two alleles is an error.
    filter_pass: keep only records whose FILTER is PASS or ``.``.
    samples: the samples to read (``None``: all), in the file's order.
    overlap: ``first`` (an allele overlapping one already applied on the same haplotype is skipped, in file
        order, like ``bcftools consensus``) or ``error``.
    ref_mismatch: ``skip`` (count and report records whose REF differs from the genome) or ``error`` (strict).
    """

    multiallelic: str = "split"
    missing: str = "ref"
    unphased: str = "auto"
    filter_pass: bool = False
    samples: tuple[str, ...] | None = None
    overlap: str = "first"
    ref_mismatch: str = "skip"

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise GtaInputError(f"haplotype policy {name}={value!r} is not one of {list(allowed)}")
        if self.samples is not None:
            if isinstance(self.samples, str):
                object.__setattr__(self, "samples", (self.samples,))
            else:
                object.__setattr__(self, "samples", tuple(self.samples))

    @property
    def unphased_mode(self) -> str:
        """What is done with an unphased heterozygous genotype once the file passed the ``auto`` check."""
        return "ref" if self.unphased == "auto" else self.unphased

    def to_dict(self) -> dict:
        d = {name: getattr(self, name) for name in (*_CHOICES, "filter_pass")}
        d["samples"] = list(self.samples) if self.samples is not None else None
        return d


@dataclass
class RegionCalls:
    """Records overlapping a region, with genotypes after the policy.

    ``status[i]`` is ``ok``, ``filtered``, ``ref_mismatch`` or ``multiallelic``; rows that are not ``ok`` carry only
    reference alleles in ``gt``. ``raw`` keeps cyvcf2's ``[records, samples, 3]`` genotype array
    (allele, allele, phased; -1 missing, -2 absent second allele) for display.
    """

    chrom: str
    start: int
    end: int
    samples: list[str]
    starts: np.ndarray  # int64 [R], 0-based REF start
    ends: np.ndarray  # int64 [R], 0-based exclusive REF end (start + len(REF))
    refs: list[str]
    alts: list[tuple[str, ...]]
    ids: list[str]
    status: list[str]
    gt: np.ndarray  # int8 (int16 past 126 ALTs) [R, S, 2]
    raw: np.ndarray  # int8 (int16 past 126 ALTs) [R, S, 3]
    row_skips: dict[str, np.ndarray] = field(default_factory=dict)  # reason -> int64 [R] calls per record
    vcf_chrom: str | None = None

    def __len__(self) -> int:
        return len(self.refs)

    @property
    def skipped(self) -> Counter:
        """What the policy dropped in these records (see the module docstring for the units)."""
        out = Counter(s for s in self.status if s != "ok")
        for reason, per_row in self.row_skips.items():
            n = int(per_row.sum())
            if n:
                out[reason] += n
        return out

    def subset(self, rows: np.ndarray, start: int, end: int) -> RegionCalls:
        rows = np.asarray(rows, dtype=np.int64)
        pick = rows.tolist()
        if len(pick) and pick[-1] - pick[0] + 1 == len(pick):  # contiguous: views, no copies
            rows = slice(pick[0], pick[-1] + 1)
        return RegionCalls(
            self.chrom, start, end, self.samples, self.starts[rows], self.ends[rows],
            [self.refs[i] for i in pick], [self.alts[i] for i in pick], [self.ids[i] for i in pick],
            [self.status[i] for i in pick], self.gt[rows], self.raw[rows],
            {k: v[rows] for k, v in self.row_skips.items()}, self.vcf_chrom,
        )

    def overlapping(self, start: int, end: int) -> RegionCalls:
        rows = np.nonzero((self.ends > start) & (self.starts < end))[0]
        return self.subset(rows, start, end)

    @staticmethod
    def concat(a: RegionCalls, b: RegionCalls, start: int, end: int) -> RegionCalls:
        return RegionCalls(
            a.chrom, start, end, a.samples, np.concatenate([a.starts, b.starts]), np.concatenate([a.ends, b.ends]),
            a.refs + b.refs, a.alts + b.alts, a.ids + b.ids, a.status + b.status,
            np.concatenate([a.gt, b.gt]), np.concatenate([a.raw, b.raw]),
            {k: np.concatenate([a.row_skips.get(k, np.zeros(len(a), np.int64)),
                                b.row_skips.get(k, np.zeros(len(b), np.int64))])
             for k in set(a.row_skips) | set(b.row_skips)},
            a.vcf_chrom or b.vcf_chrom,
        )

    def sample_index(self, sample: str) -> int:
        try:
            return self.samples.index(sample)
        except ValueError:
            raise GtaInputError(_missing_sample_message(sample, self.samples)) from None


def _missing_sample_message(sample: str, known: list[str]) -> str:
    close = difflib.get_close_matches(sample, known, n=5, cutoff=0.5)
    shown = ", ".join(close) if close else ", ".join(known[:5]) + (" ..." if len(known) > 5 else "")
    return f"sample {sample!r} is not in the VCF ({'close names' if close else 'it has'}: {shown or 'no samples'})"


def sniff_format(path: Path) -> str:
    """'vcf' (plain text), 'bgzf-vcf', 'bgzf-bcf', 'bcf' (uncompressed), 'gzip' (not BGZF), 'empty' or 'unknown'."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    if not head:
        return "empty"
    if head[:2] == b"\x1f\x8b":
        is_bgzf = len(head) >= 16 and head[3] & 4 and head[12:14] == b"BC"
        if not is_bgzf:
            return "gzip"
        try:
            with gzip.open(path, "rb") as fh:
                inner = fh.read(5)
        except (OSError, EOFError):
            return "unknown"
        if not inner:
            return "empty"
        return "bgzf-bcf" if inner[:3] == b"BCF" else "bgzf-vcf"
    if head[:3] == b"BCF":
        return "bcf"
    if head[:1] == b"#":
        return "vcf"
    return "unknown"


def _has_index(path: Path) -> bool:
    return any(Path(str(path) + ext).exists() for ext in (".tbi", ".csi"))


def _reindex_hint(path: Path, index: Path) -> str:
    if sniff_format(path) == "bgzf-bcf":
        return f"rebuild it: bcftools index -f {path.name}"
    return f"rebuild it: tabix -f {'-C ' if index.suffix == '.csi' else ''}-p vcf {path.name}"


def check_variant_file(path: str | Path) -> str:
    """The checks every opening of a VCF/BCF makes before htslib sees it; returns ``sniff_format(path)``.

    Refuses a BGZF file whose last 28 bytes are not the BGZF end-of-file block (a truncated file: htslib would
    read the records before the cut and stop without an error) and an index older than its file (a stale index
    points into another file's blocks: wrong records, or a crash).
    """
    path = Path(path)
    if not path.exists():
        raise GtaInputError("variant file not found", path)
    kind = sniff_format(path)
    if kind in ("bgzf-vcf", "bgzf-bcf"):
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - len(BGZF_EOF)))
            tail = fh.read()
        if tail != BGZF_EOF:
            raise GtaInputError(
                "truncated: no BGZF end-of-file block at the end of the file (it was cut short, e.g. by an "
                "interrupted download or copy; the records after the cut would be lost without a word)", path,
                hint=f"download or write it again; bgzip -t {path.name} checks a BGZF file",
            )
        mtime = path.stat().st_mtime_ns
        for ext in (".tbi", ".csi"):
            index = Path(str(path) + ext)
            if index.exists() and index.stat().st_mtime_ns < mtime:
                raise GtaInputError(
                    f"the index {index.name} is older than the file (stale: it describes an earlier version)",
                    path, hint=_reindex_hint(path, index),
                )
    return kind


@contextmanager
def _captured_stderr(into: list[str]) -> Iterator[None]:
    """Redirect file descriptor 2 (where htslib writes) into a temporary file; its lines land in ``into``."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable stderr: nothing to capture
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            into.extend(x for x in tmp.read().decode("utf-8", "replace").splitlines() if x.strip())


def htslib_problem(lines: list[str], notes: Counter | None = None) -> str | None:
    """The first htslib line that is an error for gta, in gta's words where it is a known one: every ``[E::...]``
    line, and the warnings of a truncated file, a stale index or a failed read. The other warnings concern header
    lines and tag definitions that htslib works around and reads the records all the same, as bcftools does
    (``INFO 'X' is not defined in the header``, ``PL should be declared as Number=G``, ``Invalid tag name``):
    counted in ``notes``. Lines that are not htslib's pass through to stderr."""
    problem = None
    after_htslib = False
    for line in lines:
        if not line.startswith(("[E::", "[W::", "[I::", "[D::")):
            if not after_htslib:  # (a line after htslib's is the rest of its message, e.g. the header line)
                print(line, file=sys.stderr)
            continue
        after_htslib = True
        if line.startswith(("[I::", "[D::")):
            continue
        text = line.split("] ", 1)[-1].strip()
        if line.startswith("[W::") and not _HTS_SERIOUS.search(text):
            if notes is not None:
                notes[text] += 1
            continue
        if problem is None:
            if "EOF marker is absent" in text:
                problem = "truncated: no BGZF end-of-file block (htslib: the input is probably truncated)"
            elif "index file is older" in text:
                problem = "the index is older than the file (stale: rebuild it with tabix -f -p vcf FILE)"
            else:
                problem = f"htslib: {text}"
    return problem


def locate_bad_line(path: str | Path, max_lines: int = 5_000_000) -> tuple[int, str] | None:
    """First line of a text VCF (plain or gzip) whose shape is wrong: (1-based line, what is wrong)."""
    path = Path(path)
    opener = gzip.open if sniff_format(path) in ("gzip", "bgzf-vcf") else open
    n_cols = None
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                if lineno > max_lines:
                    return None
                line = line.rstrip("\r\n")
                if line.startswith("##"):
                    continue
                if line.startswith("#"):
                    n_cols = len(line.split("\t"))
                    if n_cols < 8:
                        return lineno, f"header line has {n_cols} tab-separated columns, VCF needs at least 8"
                    continue
                if not line:
                    continue
                if n_cols is None:
                    return lineno, "record before the #CHROM header line"
                cols = line.split("\t")
                if len(cols) != n_cols:
                    return lineno, f"{len(cols)} tab-separated columns where the header has {n_cols}"
                if not cols[1].isdigit():
                    return lineno, f"POS {cols[1]!r} is not a number"
                if not cols[3] or not cols[4]:
                    return lineno, "empty REF or ALT"
    except (OSError, EOFError, UnicodeError):
        return None
    return None


def locate_unsorted_line(path: str | Path, max_lines: int = 20_000_000) -> tuple[int, str] | None:
    """First record line of a text VCF (plain or gzip) that is out of order: (1-based line, what is wrong)."""
    path = Path(path)
    opener = gzip.open if sniff_format(path) in ("gzip", "bgzf-vcf") else open
    seen: set[str] = set()
    last_chrom, last_pos = None, -1
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                if lineno > max_lines:
                    return None
                if line.startswith("#") or not line.strip():
                    continue
                cols = line.split("\t", 2)
                if len(cols) < 2 or not cols[1].isdigit():
                    return None
                chrom, pos = cols[0], int(cols[1])
                if chrom != last_chrom:
                    if chrom in seen:
                        return lineno, f"chromosome {chrom} comes back after {last_chrom}"
                    seen.add(chrom)
                    last_chrom, last_pos = chrom, -1
                elif pos < last_pos:
                    return lineno, f"{chrom}:{pos} follows {chrom}:{last_pos}"
                last_pos = pos
    except (OSError, EOFError, UnicodeError):
        return None
    return None


class VariantReader:
    """Streaming, indexed access to a phased VCF/BCF, harmonised with a genome (``genome=None``: names as in
    the file, REF unchecked). Regions are fetched with tabix/CSI indexes; a missing index is created beside the
    file when its folder is writable. A plain-text VCF is bgzipped and indexed into a temporary folder."""

    def __init__(self, path: str | Path, genome: Genome | None = None, policy: HaplotypePolicy | None = None) -> None:
        self.path = Path(path)
        self.genome = genome
        self.policy = policy or HaplotypePolicy()
        self.stats: Counter = Counter()
        self.records_read = 0  # records parsed so far (each once when regions move along the genome)
        self._cache: RegionCalls | None = None
        self._warned: set[str] = set()
        self._multi_logged: set[str] = set()
        self.htslib_notes: Counter = Counter()  # htslib's header warnings (tags gta does not read), by text
        self._hts_lines: list[str] = []  # what htslib wrote during the last captured call
        self._phasing_checked = self.policy.unphased != "auto"
        self.kind = check_variant_file(self.path)
        name, stem = self.path.name, self.path.name.split(".")[0]
        if self.kind == "empty":
            raise GtaInputError("variant file is empty", self.path, hint="a VCF starts with ##fileformat=VCFv4.x")
        if self.kind == "gzip":
            self._check_plain_gzip(name, stem)
        if self.kind == "bcf":
            raise GtaInputError(
                "uncompressed BCF cannot be indexed", self.path, hint=_FIX_BCF.format(name=name, stem=stem)
            )
        if self.kind == "unknown":
            raise GtaInputError("not a VCF or BCF file (no '#' header, no BGZF/BCF magic)", self.path)
        self._query_path = self.path
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._indexed = False
        header = self._open(self.path)
        self.header_samples: list[str] = list(header.samples)
        self.header_contigs: list[str] = (
            _header_contigs(header) if self.kind in ("vcf", "gzip") else list(header.seqnames)
        )
        header.close()
        if self.policy.samples is not None:
            missing = [s for s in self.policy.samples if s not in set(self.header_samples)]
            if missing:
                raise GtaInputError(_missing_sample_message(missing[0], self.header_samples), self.path)
            wanted = set(self.policy.samples)
            self.samples = [s for s in self.header_samples if s in wanted]
        else:
            self.samples = list(self.header_samples)
        self._vcf: cyvcf2.VCF | None = None
        self._to_vcf: dict[str, str] | None = None

    # -- opening ---------------------------------------------------------------------------------------------
    def _check_plain_gzip(self, name: str, stem: str) -> None:
        """A plain-gzip file is read through a BGZF copy; refuse what that copy cannot be (BCF, not VCF, broken)."""
        fix = _FIX_GZIP.format(name=name, stem=stem)
        try:
            with gzip.open(self.path, "rb") as fh:
                inner = fh.read(5)
        except (OSError, EOFError) as e:
            raise GtaInputError(f"cannot decompress this gzip file ({_short(e)})", self.path,
                                hint="check it with gzip -t") from None
        if not inner:
            raise GtaInputError("variant file is empty (gzip of nothing)", self.path,
                                hint="a VCF starts with ##fileformat=VCFv4.x")
        if inner[:3] == b"BCF":
            raise GtaInputError("BCF compressed with plain gzip (not BGZF) cannot be indexed", self.path,
                                hint=_FIX_BCF.format(name=name, stem=stem))
        if inner[:1] != b"#":
            raise GtaInputError("gzip-compressed, but not a VCF inside (no '#' header)", self.path, hint=fix)

    @contextmanager
    def _htslib(self, strict: bool = True) -> Iterator[None]:
        """Capture what htslib writes on stderr during the block; with ``strict``, an htslib error (or a warning
        other than a header note) raises a one-line GtaInputError. When the block raises, the lines are kept in
        ``_hts_lines`` for the error message."""
        lines: list[str] = []
        self._hts_lines = lines
        with _captured_stderr(lines):
            yield
        problem = htslib_problem(lines, self.htslib_notes)
        if problem and strict:
            raise GtaInputError(problem, self.path, hint="check it with bcftools view")

    def _hts_error(self) -> str | None:
        """The htslib error of the last captured call that failed (its lines were not checked yet)."""
        return htslib_problem(self._hts_lines, Counter())

    def _open(self, path: Path, samples: list[str] | None = None) -> cyvcf2.VCF:
        try:
            with self._htslib():
                if samples is not None and samples != self.header_samples:
                    return cyvcf2.VCF(str(path), samples=samples, lazy=True)
                return cyvcf2.VCF(str(path), lazy=True)
        except GtaInputError:
            raise
        except Exception as e:  # cyvcf2 raises bare Exception / OSError for unreadable headers
            raise GtaInputError(
                f"cannot read the VCF/BCF header ({self._hts_error() or _short(e)})", self.path,
                hint="check it with bcftools view -h",
            ) from None

    def _ensure_index(self) -> None:
        if self._indexed:
            return
        if self.kind in ("vcf", "gzip"):
            self._tmp = tempfile.TemporaryDirectory(prefix="gta-vcf-")
            weakref.finalize(self, self._tmp.cleanup)
            if self.kind == "vcf":
                target = Path(self._tmp.name) / (self.path.name + ".gz")
                log.warning("%s is plain text: bgzipping and indexing a temporary copy (bgzip + index it once to "
                            "skip this)", self.path)
                with self._htslib():
                    pysam.tabix_compress(str(self.path), str(target), force=True)
            else:
                stem = self.path.name.split(".")[0]
                target = Path(self._tmp.name) / f"{stem}.bgzf.vcf.gz"
                log.warning("%s is plain gzip, not BGZF: decompressing, bgzipping and indexing a temporary copy "
                            "(to skip this once and for all, %s)", self.path, plain_gzip_fix(self.path))
                self._rebgzip(target)
            self._index(target)
            self._query_path = target
        elif not _has_index(self.path):
            if not _writable(self.path.parent):
                raise GtaInputError(
                    "no index (.tbi/.csi) and the folder is not writable", self.path,
                    hint=f"bcftools index {self.path.name} (or copy the file to a writable folder)",
                )
            log.info("indexing %s", self.path)
            self._index(self.path)
        self._indexed = True

    def _rebgzip(self, target: Path) -> None:
        """Stream the plain-gzip file into a BGZF copy at ``target``."""
        try:
            with gzip.open(self.path, "rb") as src, pysam.BGZFile(str(target), "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
        except (OSError, EOFError) as e:
            raise GtaInputError(f"cannot decompress this gzip file ({_short(e)})", self.path,
                                hint="check it with gzip -t") from None

    def _index(self, path: Path) -> None:
        preset = "bcf" if self.kind == "bgzf-bcf" else "vcf"
        last = None
        for csi in (False, True):  # (a .tbi that cannot hold the positions fails with an htslib error: try CSI)
            try:
                with self._htslib(strict=csi):
                    pysam.tabix_index(str(path), preset=preset, keep_original=True, force=True, csi=csi)
                return
            except (OSError, ValueError) as e:
                last = e
            except GtaInputError as e:
                last = e
                break
        unsorted = next((x for x in self._hts_lines if "Unsorted positions" in x or "different region" in x), None)
        if unsorted is not None:
            self._raise_unsorted()
        bad = locate_bad_line(path) if preset == "vcf" else None
        if bad:
            raise GtaInputError(f"malformed record: {bad[1]}", self.path, line=bad[0]) from None
        raise GtaInputError(
            f"cannot index: {_short(last)}", self.path,
            hint="records must be sorted by chromosome and position: bcftools sort -Oz -o sorted.vcf.gz "
            f"{self.path.name} && bcftools index sorted.vcf.gz",
        ) from None

    def _reader(self) -> cyvcf2.VCF:
        self._ensure_index()
        if self._vcf is None:
            self._vcf = self._open(self._query_path, self.samples)
            contigs = set(self.header_contigs)
            try:
                with self._htslib(strict=False), pysam.VariantFile(str(self._query_path)) as vf:
                    contigs |= set(vf.index.keys()) if vf.index is not None else set()
            except (OSError, ValueError):
                pass
            self.vcf_contigs = sorted(contigs)
            self._to_vcf = {}
            if self.genome is not None:
                for c in self.vcf_contigs:
                    g = self.genome.names.resolve(c)
                    if g is not None:
                        self._to_vcf.setdefault(g, c)
                if self.vcf_contigs and not self._to_vcf:
                    raise GtaInputError(
                        f"no chromosome of the VCF ({', '.join(self.vcf_contigs[:4])}) is in the genome "
                        f"{self.genome.path.name} ({', '.join(self.genome.contigs[:4])})",
                        self.path, hint="use a VCF and a FASTA of the same genome build",
                    )
        return self._vcf

    def vcf_name(self, chrom: str) -> str | None:
        """The VCF's name for a genome chromosome (or ``chrom`` itself when there is no genome)."""
        self._reader()
        if self.genome is None:
            return chrom if chrom in self.vcf_contigs else None
        canonical = self.genome.names.resolve(chrom) or chrom
        hit = self._to_vcf.get(canonical)
        if hit is None:  # contigs absent from header and index: try the usual aliases
            hit = next((a for a in canonical_chrom_aliases(canonical) if a in self.vcf_contigs), None)
        return hit

    # -- reading ---------------------------------------------------------------------------------------------
    def region(self, chrom: str, start: int, end: int) -> RegionCalls:
        """Records whose REF span overlaps [start, end) (0-based) on a genome chromosome.

        Consecutive calls that move along a chromosome reuse what was parsed before (each record is parsed once
        when genes are visited in genome order).
        """
        start = max(0, start)
        self._check_phasing()
        c = self._cache
        if c is not None and c.chrom == chrom and c.start <= start and end <= c.end:
            return c.overlapping(start, end)
        if c is not None and c.chrom == chrom and c.start <= start <= c.end < end:
            new = self._fetch(chrom, c.end, end)
            new = new.subset(np.nonzero(new.starts >= c.end)[0], c.end, end)
            self.stats.update(new.skipped)
            self._cache = RegionCalls.concat(c.overlapping(start, c.end), new, start, end)
        else:
            self._cache = self._fetch(chrom, start, end)
            self.stats.update(self._cache.skipped)
        return self._cache.overlapping(start, end)

    def count_records(self, chrom: str, start: int, end: int) -> int | None:
        """Records htslib returns for [start, end) (0-based, ``start`` clipped at 0) on a genome chromosome, every
        record counted (no policy, no genotypes, no REF check), through the file's own index only: None when the
        file has no .tbi/.csi (a count never indexes or copies the file), 0 when the VCF lacks the chromosome."""
        if self.kind not in ("bgzf-vcf", "bgzf-bcf") or not _has_index(self.path):
            return None
        try:
            vcf = self._reader()
        except GtaInputError:
            if self._to_vcf is None:  # the file could not be opened
                raise
            vcf = self._vcf  # no chromosome of the VCF is in the genome: only the aliases below can match
        vchrom = self.vcf_name(chrom)
        if vchrom is None:
            return 0 if self.vcf_contigs else None
        with warnings.catch_warnings(), self._htslib(strict=False):  # an empty region warns: zero is the answer
            warnings.simplefilter("ignore")
            return sum(1 for _ in vcf(f"{vchrom}:{max(start, 0) + 1}-{end}"))

    def _fetch(self, chrom: str, start: int, end: int) -> RegionCalls:
        vcf = self._reader()
        vchrom = self.vcf_name(chrom)
        canonical = chrom if self.genome is None else (self.genome.names.resolve(chrom) or chrom)
        if vchrom is None:
            if canonical not in self._warned:
                self._warned.add(canonical)
                log.warning("%s: chromosome %s has no records in %s", self.path.name, canonical, self.path.name)
            self.stats["contig_absent"] += 1
            return self._empty(canonical, start, end)
        region = f"{vchrom}:{start + 1}-{max(end, start + 1)}"
        try:
            with warnings.catch_warnings(), self._htslib():  # a window without variants is normal: no warning
                warnings.filterwarnings("ignore", message="no intervals found", category=UserWarning)
                records = list(vcf(region))
        except GtaInputError:
            raise
        except Exception as e:  # cyvcf2 raises bare Exception on parse errors
            self._raise_parse_error(e, f"{vchrom}:{start + 1}-{end}")
        return self._build(records, canonical, vchrom, start, end)

    def _records(self, path: Path, read: int = 1_000) -> Iterator:
        """The file's records in file order (sequential, no index), read ``read`` at a time with htslib's
        stderr captured; records out of order raise (``_raise_unsorted``)."""
        vcf = self._open(path, self.samples)
        n = 0
        seen: set[str] = set()
        last_chrom, last_pos = None, -1
        try:
            while True:
                try:
                    with self._htslib():
                        block = list(itertools.islice(vcf, read))
                except GtaInputError:
                    raise
                except Exception as e:  # cyvcf2 raises bare Exception on parse errors
                    self._raise_parse_error(e, f"record {n + 1}")
                if not block:
                    return
                for rec in block:
                    n += 1
                    chrom, pos = rec.CHROM, rec.POS
                    if chrom != last_chrom:
                        if chrom in seen:
                            self._raise_unsorted(f"chromosome {chrom} comes back after {last_chrom} (record {n})")
                        seen.add(chrom)
                        last_chrom, last_pos = chrom, -1
                    elif pos < last_pos:
                        self._raise_unsorted(f"{chrom}:{pos} follows {chrom}:{last_pos} (record {n})")
                    last_pos = pos
                    yield rec
        finally:
            vcf.close()

    def iter_regions(self, chunk: int = 20_000):
        """Every record of the file in file order, as RegionCalls of at most ``chunk`` records on one
        chromosome each (sequential: no index needed). Records out of order raise a GtaInputError."""
        self._check_phasing()
        batch: list = []
        records = self._records(self.path)
        try:
            for rec in records:
                if batch and (len(batch) >= chunk or rec.CHROM != batch[-1].CHROM):
                    yield self._build_run(batch)
                    batch = []
                batch.append(rec)
        finally:
            records.close()
        if batch:
            yield self._build_run(batch)

    def _raise_unsorted(self, what: str | None = None) -> None:
        bad = locate_unsorted_line(self.path) if self.kind in ("vcf", "bgzf-vcf", "gzip") else None
        if bad is not None:
            line, what = bad
        else:
            line = None
        raise GtaInputError(
            f"records are not sorted{': ' + what if what else ''}", self.path, line=line,
            hint=f"sort it: bcftools sort -Oz -o sorted.vcf.gz {self.path.name} && bcftools index sorted.vcf.gz",
        ) from None

    def check_phasing(self) -> None:
        """Run the ``unphased='auto'`` check now (it runs before the first read otherwise)."""
        self._check_phasing()

    def _check_phasing(self) -> None:
        """Policy ``unphased='auto'``: refuse a sample whose genotypes in the first ``PHASING_SCAN`` records are
        unphased heterozygous calls without a single phased one (the policy ``ref`` would drop them all)."""
        if self._phasing_checked:
            return
        self._phasing_checked = True
        s = len(self.samples)
        if not s:
            return
        unphased = np.zeros(s, np.int64)
        phased = np.zeros(s, np.int64)
        n = 0
        records = self._records(self.path)
        try:
            for rec in records:
                if n >= PHASING_SCAN:
                    break
                n += 1
                g = self._gt_row(rec, s, rec.CHROM)
                a1, a2 = g[:, 0], g[:, 1]
                het = (a1 >= 0) & (a2 >= 0) & (a1 != a2)
                is_phased = g[:, 2] != 0
                unphased += het & ~is_phased
                phased += het & is_phased
        finally:
            records.close()
        bad = np.nonzero((unphased > 0) & (phased == 0))[0]
        if not len(bad):
            return
        first = self.samples[bad[0]]
        who = f"{len(bad)} of {s} samples (first: {first})" if len(bad) > 1 else f"sample {first}"
        raise GtaInputError(
            f"unphased VCF: {who} {'have' if len(bad) > 1 else 'has'} {int(unphased[bad].sum()):,} unphased "
            f"heterozygous genotype(s) and no phased one in the first {n:,} records; read as the reference (the "
            "policy unphased='ref') every heterozygous call would be lost", self.path,
            hint="phase it (SHAPEIT5, Beagle, Eagle), or set variant_policy: {unphased: as-phased} in the manifest "
            "(first written allele on haplotype 1, as bcftools consensus -H 1/-H 2) or {unphased: ref} (drop them, "
            "counted)",
        )

    def _build_run(self, records: list) -> RegionCalls:
        vchrom = records[0].CHROM
        canonical = vchrom if self.genome is None else (self.genome.names.resolve(vchrom) or vchrom)
        return self._build(records, canonical, vchrom, records[0].start, max(r.end for r in records))

    def _raise_parse_error(self, e: Exception, where: str) -> None:
        bad = locate_bad_line(self.path) if self.kind in ("vcf", "bgzf-vcf", "gzip") else None
        if bad:
            raise GtaInputError(f"malformed record: {bad[1]}", self.path, line=bad[0]) from None
        raise GtaInputError(
            f"cannot parse records near {where} ({self._hts_error() or _short(e)})", self.path,
            hint="check it with bcftools view",
        ) from None

    def _empty(self, chrom: str, start: int, end: int) -> RegionCalls:
        s = len(self.samples)
        return RegionCalls(
            chrom, start, end, self.samples, np.zeros(0, np.int64), np.zeros(0, np.int64), [], [], [], [],
            np.zeros((0, s, 2), np.int16), np.zeros((0, s, 3), np.int16), {}, None,
        )

    def _build(self, records: list, chrom: str, vchrom: str, start: int, end: int) -> RegionCalls:
        pol = self.policy
        s = len(self.samples)
        self.records_read += len(records)
        if not records:
            out = self._empty(chrom, start, end)
            out.vcf_chrom = vchrom
            return out
        starts = np.fromiter((r.start for r in records), np.int64, len(records))
        refs = [r.REF for r in records]
        ends = starts + np.fromiter((len(x) for x in refs), np.int64, len(records))
        alts = [tuple(r.ALT) for r in records]
        ids = [r.ID or "." for r in records]
        raw = self._gt_rows(records, s, vchrom) if s else np.zeros((len(records), 0, 3), np.int16)
        status = ["ok"] * len(records)
        if pol.filter_pass:
            for i, r in enumerate(records):
                if r.FILTER not in (None, "PASS", "."):
                    status[i] = "filtered"
        self._check_ref(records, starts, ends, refs, status, chrom, vchrom)
        if pol.multiallelic != "split":
            self._multiallelic(records, refs, alts, status, vchrom)
        gt, row_skips = self._genotypes(raw, alts, status, vchrom, records)
        if gt.dtype == np.int8:
            raw = raw.astype(np.int8)
        return RegionCalls(chrom, start, end, self.samples, starts, ends, refs, alts, ids, status, gt, raw,
                           row_skips, vchrom)

    def _gt_rows(self, records: list, s: int, vchrom: str) -> np.ndarray:
        """int16 ``[records, samples, 3]``: :meth:`_gt_row` of each record, in one step when every record is
        diploid-shaped (cyvcf2's usual [samples, 3])."""
        arrays = [_gt_array(r, s) for r in records]
        if all(g.shape[1] == 3 for g in arrays):
            raw = np.stack(arrays)
            raw[..., 2][raw[..., 1] == -2] = 1  # haploid calls count as phased (see _gt_row)
        else:
            raw = np.stack([self._gt_row(r, s, vchrom) for r in records])
        return raw.astype(np.int16, copy=False)

    def _gt_row(self, rec, s: int, vchrom: str) -> np.ndarray:
        """``[samples, 3]`` (allele, allele, phased) for any ploidy cyvcf2 returns; a genotype of more than two
        alleles raises (gta builds two haplotypes per sample)."""
        g = _gt_array(rec, s)
        width = g.shape[1]
        if width == 3:
            g = g.copy()
            g[g[:, 1] == -2, 2] = 1  # a haploid call has no phase to lose (see below)
            return g
        if width == 2:  # every call haploid: (allele, phase flag)
            # cyvcf2's phase flag of a haploid call is not initialised (it reads 0 or 1 from run to run on the same
            # file): a single allele has no phase to lose, so it counts as phased
            out = np.full((s, 3), -2, np.int16)
            out[:, 0], out[:, 2] = g[:, 0], 1
            return out
        extra = (g[:, 2 : width - 1] != -2).any(axis=1)
        if extra.any():
            c = int(np.nonzero(extra)[0][0])
            n = int((g[c, : width - 1] != -2).sum())
            raise GtaInputError(
                f"genotype of {n} alleles for sample {self.samples[c]} at {vchrom}:{rec.POS}: gta reads diploid and "
                "haploid calls only (two haplotypes per sample)", self.path,
                hint=f"drop the record (bcftools view -t ^{vchrom}:{rec.POS}) or the sample (bcftools view -s "
                f"^{self.samples[c]})",
            )
        out = g[:, [0, 1, width - 1]]
        out[out[:, 1] == -2, 2] = 1  # haploid calls count as phased (see above)
        return out

    def _multiallelic(self, records, refs, alts, status, vchrom) -> None:
        """Policy ``error``: raise on the first multi-allelic record; ``ref``: mark them, log the first few."""
        multi = [i for i, a in enumerate(alts) if status[i] == "ok" and len(a) > 1]
        if not multi:
            return
        if self.policy.multiallelic == "error":
            i = multi[0]
            raise GtaInputError(
                f"multi-allelic record at {vchrom}:{records[i].POS} ({refs[i]} -> {','.join(alts[i])})", self.path,
                hint="split it with bcftools norm -m -any, or use the policy multiallelic='split' or 'ref'",
            )
        for i in multi:
            status[i] = "multiallelic"
        if len(self._multi_logged) < _LOG_FIRST:  # (a record refetched by the sliding cache is named once)
            labels = [f"{vchrom}:{records[i].POS}" for i in multi]
            shown = [x for x in dict.fromkeys(labels) if x not in self._multi_logged]
            shown = shown[: _LOG_FIRST - len(self._multi_logged)]
            if shown:
                self._multi_logged.update(shown)
                more = " (further ones are counted, not logged)" if len(self._multi_logged) >= _LOG_FIRST else ""
                log.warning("%s: multi-allelic record(s) read as the reference (policy multiallelic='ref'): %s%s",
                            self.path.name, ", ".join(shown), more)

    def _check_ref(self, records, starts, ends, refs, status, chrom, vchrom) -> None:
        """REF of every record against the genome, read a span of nearby records at a time (_ref_spans)."""
        if self.genome is None or chrom not in self.genome.lengths:
            return
        group, lo, hi = _ref_spans(starts, ends)
        seqs = [self.genome.fetch(chrom, a, b) for a, b in zip(lo, hi, strict=True)]
        for i, (ref, g, a, b) in enumerate(zip(refs, group, starts.tolist(), ends.tolist(), strict=True)):
            if status[i] != "ok":
                continue
            want = seqs[g][a - lo[g] : b - lo[g]]
            got = clean_sequence(ref)
            if got == want or all(a == b or a == "N" or b == "N" for a, b in zip(got, want, strict=True)):
                continue
            status[i] = "ref_mismatch"
            msg = f"REF {ref} at {vchrom}:{records[i].POS} does not match the genome ({want})"
            if self.policy.ref_mismatch == "error":
                raise GtaInputError(msg, self.path, hint="VCF and FASTA must be the same build; check with "
                                    "bcftools norm --check-ref e -f genome.fa")
            if self.stats["ref_mismatch"] < 5:
                log.warning("%s: %s (skipped)", self.path.name, msg)

    def _genotypes(self, raw, alts, status, vchrom, records) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        pol = self.policy
        counts: dict[str, np.ndarray] = {}
        a1 = raw[:, :, 0].astype(np.int16)
        a2 = raw[:, :, 1].astype(np.int16)
        a2 = np.where(a2 == -2, a1, a2)  # haploid call: both haplotypes carry it
        not_ok = np.array([st != "ok" for st in status], dtype=bool)
        a1[not_ok] = 0
        a2[not_ok] = 0
        if pol.missing == "error" and ((a1 < 0) | (a2 < 0)).any():  # before phasing: `1/.` is missing data too
            r, c = np.argwhere((a1 < 0) | (a2 < 0))[0]
            raise GtaInputError(
                f"missing genotype for sample {self.samples[c]} at {vchrom}:{records[r].POS}", self.path,
                hint="use the policy missing='ref' to read missing calls as the reference",
            )
        phased = raw[:, :, 2] != 0
        het = (a1 != a2) & ~phased
        if het.any():
            if pol.unphased == "error":
                r, c = np.argwhere(het)[0]
                raise GtaInputError(
                    f"unphased genotype for sample {self.samples[c]} at {vchrom}:{records[r].POS}", self.path,
                    hint="phase the VCF (e.g. SHAPEIT/Beagle) or use the policy unphased='ref' or 'as-phased'",
                )
            if pol.unphased_mode == "ref":
                counts["unphased"] = het.sum(axis=1).astype(np.int64)
                a1 = np.where(het, 0, a1)
                a2 = np.where(het, 0, a2)
            else:
                counts["unphased_as_phased"] = het.sum(axis=1).astype(np.int64)
        gt = np.stack([a1, a2], axis=-1)
        miss = gt < 0
        if miss.any():
            counts["missing"] = miss.sum(axis=(1, 2)).astype(np.int64)
            gt[miss] = 0
        n_alts = np.array([len(a) for a in alts], dtype=np.int16)
        over = gt > n_alts[:, None, None]
        if over.any():
            r = int(np.argwhere(over)[0][0])
            raise GtaInputError(
                f"genotype allele index {int(gt[over].max())} but only {n_alts[r]} ALT allele(s) at "
                f"{vchrom}:{records[r].POS}", self.path,
            )
        for i, a in enumerate(alts):
            if status[i] != "ok":
                continue
            for k, alt in enumerate(a, 1):
                if not _ALLELE_OK.match(alt or ""):
                    hit = gt[i] == k
                    n = int(hit.sum())
                    if n:
                        counts.setdefault("unsupported_allele", np.zeros(len(alts), np.int64))[i] += n
                        gt[i][hit] = 0
        return (gt.astype(np.int8) if n_alts.max(initial=0) < 127 else gt), counts

    def close(self) -> None:
        if self._vcf is not None:
            self._vcf.close()
            self._vcf = None
        self._cache = None

    def __enter__(self) -> VariantReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_REF_GAP = 2048  # records closer than this share one genome read (a read costs about 2 kb of bases in time)


def _ref_spans(starts: np.ndarray, ends: np.ndarray) -> tuple[list[int], list[int], list[int]]:
    """(span of each record, span starts, span ends): records grouped into spans of the genome, one read each,
    a new span wherever a record starts more than _REF_GAP bases past the ends of those before it."""
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], np.maximum.accumulate(ends[order])
    new = np.concatenate([[True], s[1:] - e[:-1] > _REF_GAP])
    first = np.flatnonzero(new)
    group = np.empty(len(starts), dtype=np.int64)
    group[order] = np.cumsum(new) - 1
    return group.tolist(), s[first].tolist(), e[np.append(first[1:], len(s)) - 1].tolist()


def _gt_array(rec, s: int) -> np.ndarray:
    """cyvcf2's [samples, 3] genotype array; all missing for a record without GT (sites-only, PL-only)."""
    try:  # (rec.FORMAT would crash cyvcf2 0.35 on lazily parsed records)
        g = rec.genotype
    except Exception:  # cyvcf2: "couldn't get genotypes for variant"
        return _no_gt(s)
    return g.array() if g is not None else _no_gt(s)


def _no_gt(s: int) -> np.ndarray:
    out = np.zeros((s, 3), np.int16)
    out[:, 0] = out[:, 1] = -1
    return out


def _header_contigs(header: cyvcf2.VCF) -> list[str]:
    out = []
    for h in header.header_iter():
        info = h.info()
        if info.get("HeaderType") == "CONTIG" and info.get("ID"):
            out.append(info["ID"])
    return out


def _writable(folder: Path) -> bool:
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".gta-write-test"):
            return True
    except OSError:
        return False


def _short(e: Exception | None) -> str:
    text = " ".join(str(e).split()) if e is not None else "unknown error"
    return text[:200]


_SKIP_TEXT = {
    "filtered": "{n} record(s) without FILTER PASS read as the reference (filter_pass)",
    "ref_mismatch": "{n} record(s) whose REF differs from the genome skipped (ref_mismatch={ref_mismatch})",
    "multiallelic": "{n} multi-allelic record(s) read as the reference (multiallelic={multiallelic})",
    "missing": "{n} missing allele call(s) read as the reference (missing={missing})",
    "unsupported_allele": "{n} haplotype call(s) of a symbolic or breakend ALT (<DEL>, N[chr2:123[, *) read as the "
                          "reference",
    "unphased": "{n} unphased heterozygous genotype(s) read as the reference on both haplotypes "
                "(unphased={unphased})",
    "unphased_as_phased": "{n} unphased heterozygous genotype(s) read in written order (unphased=as-phased)",
    "overlap": "{n} haplotype allele(s) overlapping one already applied skipped (overlap=first)",
    "contig_absent": "{n} region(s) on a chromosome without records",
}


def describe_skips(counts: dict[str, int], policy: HaplotypePolicy | None = None) -> str:
    """What a policy dropped, in words with counts (``VariantReader.stats``, ``RegionCalls.skipped``)."""
    pol = (policy or HaplotypePolicy()).to_dict()
    out = []
    for key, n in sorted(counts.items()):
        if n:
            out.append(_SKIP_TEXT.get(key, "{n} " + key).format(n=f"{n:,}", **pol))
    return "; ".join(out)

