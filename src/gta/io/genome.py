"""Reference genome: random-access windows from FASTA (plain or bgzip) with N-padding, reverse complement,
one-hot encoding and chromosome-name harmonisation (``chr1``/``1``, ``chrM``/``MT``).

Accepted: plain or BGZF-compressed FASTA with any constant line width (CRLF too), lower-case soft-masking
(returned upper-case) and IUPAC ambiguity codes (returned as ``N``). The ``.fai`` (and ``.gzi``) index is built
beside the FASTA when missing or older than the FASTA and the folder is writable; a rebuilt index that is a cut-off
prefix of the old one (the last sequences gone or shorter) means a truncated FASTA and is an error. Everything else
(plain gzip, lines of unequal length inside a record, a record without sequence, text before the first header,
bytes that are not sequence letters) is a ``GtaInputError`` naming the file.
"""

from __future__ import annotations

import gzip
import os
import re
import shlex
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyfaidx

from gta.errors import GtaInputError
from gta.geometry import Geometry
from gta.io.types import Gene

_COMPLEMENT = str.maketrans("ACGTNacgtn", "TGCANtgcan")
# A, C, G, T -> 0..3; everything else (N and IUPAC ambiguity codes) -> 4 (all-zero row)
_LOOKUP = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate("ACGT"):
    _LOOKUP[ord(_b)] = _i
    _LOOKUP[ord(_b.lower())] = _i
_EYE = np.vstack([np.eye(4, dtype=np.float32), np.zeros((1, 4), dtype=np.float32)])
_AMBIGUOUS = "RYSWKMBDHVNXU"  # IUPAC codes (+ X for masked, U read as unknown) -> N
_CLEAN = str.maketrans({c: "N" for c in _AMBIGUOUS + _AMBIGUOUS.lower()})
_VALID_LETTERS = "ACGT" + _AMBIGUOUS
_VALID_BYTES = np.zeros(256, dtype=bool)
for _c in _VALID_LETTERS + _VALID_LETTERS.lower() + "\n\r":
    _VALID_BYTES[ord(_c)] = True
_DROP_VALID = str.maketrans("", "", _VALID_LETTERS + _VALID_LETTERS.lower())
_BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def reverse_complement(seq: str) -> str:
    return seq.translate(_COMPLEMENT)[::-1]


def clean_sequence(seq: str) -> str:
    """Upper-case ACGTN: soft-masking removed, IUPAC codes mapped to N."""
    return seq.translate(_CLEAN).upper()


def one_hot(seq: str) -> np.ndarray:
    """[L, 4] float32 in A, C, G, T order; N and IUPAC codes are all-zero rows."""
    idx = _LOOKUP[np.frombuffer(seq.encode("ascii", errors="replace"), dtype=np.uint8)]
    return _EYE[idx]


def canonical_chrom_aliases(name: str) -> list[str]:
    """Names under which a chromosome may appear in another file."""
    base = name[3:] if name.lower().startswith("chr") else name
    out = [name, base, "chr" + base]
    if base in ("M", "MT"):
        out += ["chrM", "MT", "M", "chrMT"]
    return list(dict.fromkeys(out))


class ChromNames:
    """Maps chromosome names used by other files onto the names of a reference set (the FASTA's)."""

    def __init__(self, reference_names: list[str]) -> None:
        self.names = list(reference_names)
        self._map: dict[str, str] = {}
        for ref in self.names:  # exact names first, so an alias never shadows a real contig
            self._map.setdefault(ref, ref)
        for ref in self.names:
            for alias in canonical_chrom_aliases(ref):
                self._map.setdefault(alias, ref)
                self._map.setdefault(alias.lower(), ref)

    def resolve(self, name: str) -> str | None:
        return self._map.get(name) or self._map.get(name.lower())

    def __contains__(self, name: str) -> bool:
        return self.resolve(name) is not None


@dataclass(frozen=True)
class GenomeStats:
    """Base composition from a full scan: ``acgt`` upper-case, ``soft_masked`` lower-case acgt, ``n`` N/IUPAC."""

    total_bp: int
    acgt: int
    soft_masked: int
    n: int


def file_compression(path: Path) -> str:
    """'plain', 'bgzf' or 'gzip' from the magic bytes."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    if head[:2] != b"\x1f\x8b":
        return "plain"
    # BGZF: FLG.FEXTRA set and an extra subfield 'BC'
    return "bgzf" if len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC" else "gzip"


def _fixed_names(name: str) -> tuple[str, str]:
    """(BGZF copy, plain copy) file names for a plain-gzip FASTA ``name``, neither of them ``name`` itself."""
    base = name
    for ext in (".gz", ".bgz", ".gzip"):
        if base.lower().endswith(ext) and len(base) > len(ext):
            base = base[: -len(ext)]
            break
    stem, fa_ext = base, ".fa"
    for ext in (".fa", ".fasta", ".fna"):
        if stem.lower().endswith(ext) and len(stem) > len(ext):
            stem, fa_ext = stem[: -len(ext)], stem[-len(ext):]
            break
    bgzf, plain = f"{stem}.bgzf{fa_ext}.gz", base if base != name else f"{stem}.plain{fa_ext}"
    while bgzf in (name, plain):
        bgzf = f"{bgzf[: -len(fa_ext) - 3]}.bgzf{fa_ext}.gz"
    return bgzf, plain


def recompress_hint(name: str) -> str:
    """A fix for a plain-gzip FASTA that is safe to paste: it writes new files, never over ``name`` itself (``zcat
    x.fa.gz | bgzip -c > x.fa.gz`` truncates its own input before reading it)."""
    bgzf, plain = _fixed_names(name)
    q = shlex.quote
    return (f"in its folder, write a BGZF copy: zcat {q(name)} | bgzip -c > {q(bgzf)} && samtools faidx {q(bgzf)}, "
            f"or a plain one: gunzip -c {q(name)} > {q(plain)}; then point genome: at the new file")


def _folder_writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK)


class Genome:
    """A FASTA file opened through pyfaidx; safe to pickle and to use after ``fork`` (it reopens per process)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise GtaInputError("FASTA file not found", self.path)
        if self.path.is_dir():
            raise GtaInputError("expected a FASTA file, got a folder", self.path)
        self.compression = file_compression(self.path)
        if self.compression == "gzip":
            raise GtaInputError(
                "FASTA is gzip-compressed but not BGZF, so it cannot be read at random",
                self.path,
                hint=recompress_hint(self.path.name),
            )
        if self.compression == "bgzf":
            self._check_bgzf_eof()
        self._ensure_index()
        self._pid = -1
        self._fa: pyfaidx.Fasta | None = None
        fa = self._handle()
        self.lengths = {name: len(rec) for name, rec in fa.records.items()}
        if not self.lengths:
            raise GtaInputError("FASTA holds no sequences", self.path, hint="sequence headers start with '>'")
        empty = [n for n, length in self.lengths.items() if length == 0]
        if empty:
            raise GtaInputError(
                f"record {empty[0]!r} has no sequence ({len(empty)} empty record(s))",
                self.path,
                hint="remove empty records or check whether the file was truncated",
            )
        self._check_index_fits()
        self.names = ChromNames(list(self.lengths))

    # -- opening ---------------------------------------------------------------------------------------------
    @property
    def fai_path(self) -> Path:
        return Path(str(self.path) + ".fai")

    def _check_bgzf_eof(self) -> None:
        with open(self.path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(size - len(_BGZF_EOF), 0))
            tail = fh.read()
        if tail != _BGZF_EOF:
            raise GtaInputError(
                "BGZF FASTA lacks its end-of-file block: the file is truncated",
                self.path,
                hint="download or compress it again (bgzip -c genome.fa > genome.fa.gz)",
            )

    def _ensure_index(self) -> None:
        """Build the .fai when missing or stale; a clear error when the folder is read-only."""
        fai = self.fai_path
        stale = fai.exists() and fai.stat().st_mtime < self.path.stat().st_mtime
        if fai.exists() and not stale:
            return
        if not _folder_writable(self.path.parent):
            if stale:  # an old index in a read-only folder: use it, the size check below catches a mismatch
                return
            raise GtaInputError(
                "FASTA has no .fai index and its folder is not writable",
                self.path,
                hint=f"run: samtools faidx {self.path}  (or copy the FASTA to a writable folder)",
            )
        old = (fai.read_bytes(), fai.stat()) if stale else None
        self._build_index()
        if old is not None:
            self._check_not_truncated(*old)

    def _check_not_truncated(self, old_index: bytes, old_stat: os.stat_result) -> None:
        """Compare a rebuilt .fai with the stale one it replaced: a cut-off prefix means a truncated FASTA.

        On error the old index is put back with its old time, so the next run reports the same problem instead of
        trusting an index of the cut file.
        """
        before = _fai_lengths(old_index.decode("utf-8", errors="replace"))
        after = _fai_lengths(self.fai_path.read_text(encoding="utf-8", errors="replace"))
        cut = _truncation(before, after)
        if cut is None:
            return
        self.fai_path.write_bytes(old_index)
        os.utime(self.fai_path, ns=(old_stat.st_atime_ns, old_stat.st_mtime_ns))
        raise GtaInputError(
            f"looks truncated: {cut}",
            self.path,
            hint=f"re-download it or re-index with samtools faidx {self.path.name}; if you replaced the FASTA "
            f"on purpose, delete {self.fai_path.name}",
        )

    def _build_index(self) -> None:
        """(Re)build the .fai (and .gzi) with pyfaidx; malformed files become a GtaInputError."""
        try:
            pyfaidx.Faidx(str(self.path), rebuild=True, build_index=True).close()
        except pyfaidx.UnsupportedCompressionFormat:
            raise GtaInputError(
                "FASTA is compressed in a way that cannot be read at random", self.path, hint="use bgzip"
            ) from None
        except pyfaidx.FastaIndexingError as e:
            self._remove_partial_index()
            m = re.search(r"at line (\d+)", str(e))
            line = int(m.group(1)) if m and int(m.group(1)) > 0 else None
            raise GtaInputError(f"malformed FASTA: {_short(e)}", self.path, line, hint="samtools faidx") from None
        except ValueError as e:
            self._remove_partial_index()
            msg = str(e)
            if "Duplicate key" in msg:
                msg = f"duplicate sequence name {msg.split('Duplicate key', 1)[1].strip()}"
            raise GtaInputError(f"malformed FASTA: {_short(msg)}", self.path) from None
        except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
            self._remove_partial_index()
            raise GtaInputError(f"cannot read FASTA: {_short(e)}", self.path, hint="is the file complete?") from None

    def _remove_partial_index(self) -> None:
        for p in (self.fai_path, Path(str(self.path) + ".gzi")):
            if p.exists() and p.stat().st_size == 0:
                p.unlink()

    def _handle(self) -> pyfaidx.Fasta:
        """The pyfaidx handle of this process (reopened after fork: a shared file offset is not safe)."""
        if self._fa is None or self._pid != os.getpid():
            try:
                self._fa = pyfaidx.Fasta(
                    str(self.path), sequence_always_upper=False, rebuild=False, build_index=False, as_raw=True
                )
            except ValueError as e:
                raise GtaInputError(f"malformed FASTA index: {_short(e)}", self.fai_path) from None
            except (pyfaidx.FastaIndexingError, OSError, EOFError, zlib.error) as e:
                raise GtaInputError(f"cannot open FASTA: {_short(e)}", self.path) from None
            self._pid = os.getpid()
        return self._fa

    def _check_index_fits(self) -> None:
        """A plain FASTA shorter than its index says is truncated (or the index belongs to another file)."""
        if self.compression != "plain":
            return
        size = self.path.stat().st_size
        for name, rec in self._handle().faidx.index.items():
            if _record_end(rec) > size:
                raise GtaInputError(
                    f"record {name!r} ends past the end of the file: the FASTA is truncated or its .fai is stale",
                    self.path,
                    hint=f"delete {self.fai_path.name} to rebuild it, or fetch the file again",
                )

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_fa"], state["_pid"] = None, -1
        return state

    def __enter__(self) -> Genome:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries ---------------------------------------------------------------------------------------------
    @property
    def contigs(self) -> list[str]:
        return list(self.lengths)

    @property
    def total_bp(self) -> int:
        return sum(self.lengths.values())

    def resolve_chrom(self, name: str, source: str | Path | None = None) -> str:
        """The FASTA's name for ``name``; a GtaInputError when no alias matches."""
        hit = self.names.resolve(name)
        if hit is None:
            shown = ", ".join(self.contigs[:5]) + (" ..." if len(self.contigs) > 5 else "")
            raise GtaInputError(
                f"chromosome {name!r} is not in the genome {self.path.name} (it has {shown})",
                source or self.path,
                hint="use the same genome build and chromosome names in every file",
            )
        return hit

    def fetch(self, chrom: str, start: int, end: int) -> str:
        """Upper-case ACGTN sequence of [start, end) (0-based), N-padded past the chromosome ends."""
        if end < start:
            raise ValueError(f"end {end} < start {start}")
        chrom = self.resolve_chrom(chrom)
        length = self.lengths[chrom]
        lo, hi = max(start, 0), min(end, length)
        body = ""
        if hi > lo:
            try:
                body = self._handle()[chrom][lo:hi]
            except (OSError, EOFError, zlib.error, ValueError, UnicodeDecodeError) as e:
                raise GtaInputError(f"cannot read {chrom}:{lo + 1}-{hi}: {_short(e)}", self.path) from None
            if len(body) != hi - lo:
                raise GtaInputError(
                    f"{chrom}:{lo + 1}-{hi} returned {len(body)} bases instead of {hi - lo}: truncated FASTA "
                    "or stale index",
                    self.path,
                    hint=f"delete {self.fai_path.name} to rebuild it",
                )
            bad = body.translate(_DROP_VALID)
            if bad:
                raise GtaInputError(
                    f"{chrom}:{lo + 1}-{hi} holds {bad[0]!r}, which is not a sequence letter",
                    self.path,
                    hint="FASTA sequence lines hold IUPAC nucleotide letters only",
                )
        left = "N" * (min(end, 0) - start if start < 0 else 0)
        right = "N" * (end - max(start, length) if end > length else 0)
        return clean_sequence(left + body + right)

    def gene_window(self, gene: Gene, geometry: Geometry) -> str:
        """The reference input window of a gene in the direction of transcription (TSS at the centre)."""
        start, end = geometry.window(gene.tss, gene.strand)
        seq = self.fetch(gene.chrom, start, end)
        return seq if gene.strand == "+" else reverse_complement(seq)

    def scan(self, chunk_bytes: int = 1 << 24, progress: bool = False) -> GenomeStats:
        """Read every sequence byte once: base composition, and a GtaInputError on any byte that is not a
        sequence letter (binary junk, a header inside a record)."""
        spans = []
        for name, rec in self._handle().faidx.index.items():
            spans.append((rec.offset, _record_end(rec), name))
        spans.sort()
        counts = np.zeros(256, dtype=np.int64)
        opener = gzip.open if self.compression == "bgzf" else open
        total = sum(e - s for s, e, _ in spans)
        bar = _progress(total, f"scanning {self.path.name}", progress)
        try:
            with opener(self.path, "rb") as fh:
                pos = 0
                for s, e, name in spans:
                    if s > pos:
                        fh.seek(s)
                        pos = s
                    while pos < e:
                        block = fh.read(min(chunk_bytes, e - pos))
                        if not block:
                            raise GtaInputError(f"record {name!r} is cut short: truncated FASTA", self.path)
                        arr = np.frombuffer(block, dtype=np.uint8)
                        c = np.bincount(arr, minlength=256)
                        if (c[~_VALID_BYTES] > 0).any():
                            bad = int(arr[~_VALID_BYTES[arr]][0])
                            offset = pos + int(np.argmax(~_VALID_BYTES[arr]))
                            raise GtaInputError(
                                f"record {name!r} holds byte {bytes([bad])!r} at file offset {offset}, which is not "
                                "a sequence letter",
                                self.path,
                                hint="the file may be corrupt, or its .fai may belong to another file",
                            )
                        counts += c
                        pos += len(block)
                        bar.update(len(block))
        except (OSError, EOFError, zlib.error) as e:
            raise GtaInputError(f"cannot read FASTA: {_short(e)}", self.path) from None
        finally:
            bar.close()
        upper = sum(int(counts[ord(b)]) for b in "ACGT")
        lower = sum(int(counts[ord(b)]) for b in "acgt")
        amb = sum(int(counts[ord(b)]) for b in _AMBIGUOUS + _AMBIGUOUS.lower())
        return GenomeStats(total_bp=upper + lower + amb, acgt=upper, soft_masked=lower, n=amb)

    def close(self) -> None:
        if self._fa is not None and self._pid == os.getpid():
            self._fa.close()
        self._fa = None


def _record_end(rec) -> int:
    """File offset just past the last base of a .fai record (its final newline, if any, not included)."""
    if rec.rlen <= 0:
        return rec.offset
    last = rec.rlen - 1
    return rec.offset + (last // rec.lenc) * rec.lenb + last % rec.lenc + 1


def _fai_lengths(text: str) -> dict[str, int] | None:
    """name -> length from .fai text, in file order; ``None`` when it is not a readable index."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        cols = line.split("\t")
        if len(cols) < 5 or not cols[1].isdigit():
            return None
        out[cols[0]] = int(cols[1])
    return out or None


def _truncation(before: dict[str, int] | None, after: dict[str, int] | None) -> str | None:
    """What a cut-off FASTA lost, when the new index is a prefix of the old one that ends early; else ``None``.

    A truncated file keeps its first sequences whole and loses the rest: the new names are the first names of the
    old index, in order, all but the last with the same length, and something is gone (a shorter last sequence or
    sequences missing). Other differences (new names, reordered or longer sequences) mean another file: no error.
    """
    if not before or not after:
        return None
    old_names, new_names = list(before), list(after)
    k = len(new_names)
    if k > len(old_names) or old_names[:k] != new_names:
        return None
    if any(after[n] != before[n] for n in new_names[:-1]):
        return None
    last = new_names[-1]
    lost = old_names[k:]
    if after[last] > before[last] or (after[last] == before[last] and not lost):
        return None
    parts = []
    if after[last] < before[last]:
        parts.append(f"{last} has {after[last]:,} bases, its index said {before[last]:,}")
    if lost:
        more = f" ... ({len(lost)} in all)" if len(lost) > 3 else ""
        parts.append(f"sequence(s) {', '.join(lost[:3])}{more} in the old index are gone")
    return "; ".join(parts)


def _short(e: object, limit: int = 200) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, disable=not enabled or total < (1 << 26))
