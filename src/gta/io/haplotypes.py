"""Personal haplotype windows: which ALT alleles each sample's two haplotypes carry in a gene's input window,
grouped by ``hap_key`` (see :func:`hap_key`; ``REF_KEY`` when none), and the fixed-length, TSS-anchored sequence
of each distinct key. The rules (overlaps, indels, the TSS base, chromosome ends, minus strand) are spelled out
with examples in ``docs/haplotypes.md``.

Work is shared: all haplotypes of a gene are resolved with array operations (only indels and records near the
window edges need per-haplotype placement), and a sequence is built only when asked for, once per key.
"""

from __future__ import annotations

import functools
import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from gta.errors import GtaInputError
from gta.geometry import Geometry
from gta.io.alleles import REF_KEY, allele_label
from gta.io.genome import Genome, reverse_complement
from gta.io.types import Gene
from gta.io.variants import RegionCalls, VariantReader

_NONE = np.zeros(0, dtype=np.int64)
_MARGIN = 2048  # extra bases fetched on each side of the window (grown when indels need more)


@dataclass(frozen=True)
class AppliedAllele:
    """One ALT allele applied to a haplotype. ``pos`` is 1-based (VCF); ``offset`` is the distance in bp from
    the TSS to the allele's first REF base in the direction of transcription (negative = upstream)."""

    chrom: str
    pos: int
    ref: str
    alt: str
    id: str = "."
    offset: int = 0

    @property
    def label(self) -> str:
        return allele_label(self.chrom, self.pos, self.ref, self.alt)


@dataclass(frozen=True)
class Edit:
    """An allele as an edit of the reference: [start, end) (0-based) becomes ``alt``. For an indel whose first
    REF and ALT bases agree (VCF padding base), the shared base is not part of the edit (as bcftools does)."""

    start: int
    end: int
    alt: str
    allele: AppliedAllele

    @property
    def delta(self) -> int:
        return len(self.alt) - (self.end - self.start)


@dataclass(frozen=True)
class WindowInfo:
    """Where a haplotype window comes from: plus-strand reference span of its first/last reference base
    (None when that end is an inserted base or N padding), N bases padded upstream/downstream (chromosome
    ends) and the net length change of the applied alleles upstream/downstream of the TSS."""

    ref_start: int | None
    ref_end: int | None
    pad_upstream: int
    pad_downstream: int
    shift_upstream: int
    shift_downstream: int
    tss_in_edit: bool


def is_anchored_indel(ref: str, alt: str) -> bool:
    """An indel by htslib's classification whose first REF and ALT bases agree: ``bcftools consensus`` lets it
    follow an allele that ends on its padding base."""
    ref, alt = ref.upper(), alt.upper()
    if len(ref) == len(alt) or not ref or not alt or ref[0] != alt[0]:
        return False
    p = 0
    while p < len(ref) and p < len(alt) and ref[p] == alt[p]:
        p += 1
    r, a = ref[p:], alt[p:]
    if not r or not a:
        return True
    m = min(len(r), len(a))
    return r[-m:] == a[-m:]


def allele_edit(start: int, ref: str, alt: str) -> tuple[int, int, str]:
    """(start, end, alt) of the edit an allele makes, 0-based half-open on the reference: a length-changing
    allele whose first REF and ALT bases agree (the VCF padding base) keeps that base."""
    ref, alt = ref.upper(), alt.upper()
    end = start + len(ref)
    if len(ref) != len(alt) and ref[:1] == alt[:1]:
        return start + 1, end, alt[1:]
    return start, end, alt


def _digest(label: str) -> bytes:
    return hashlib.sha1(label.encode()).digest()[:8]


def hap_key(alleles) -> str:
    """``REF_KEY`` for no allele, else 12 hex digits of sha1 over the sorted 8-byte sha1 digests of the allele
    labels (``chrom:pos:REF:ALT``, chrom as in the genome): a set hash, independent of file order."""
    labels = {a.label if isinstance(a, AppliedAllele) else str(a) for a in alleles}
    if not labels:
        return REF_KEY
    return hashlib.sha1(b"".join(sorted(_digest(x) for x in labels))).hexdigest()[:12]


def _flanks(geometry: Geometry, strand: str) -> tuple[int, int]:
    """Bases left and right of the TSS base in plus-strand order."""
    right = geometry.input_len - geometry.tss_index - 1
    return (geometry.tss_index, right) if strand == "+" else (right, geometry.tss_index)


@dataclass
class _Layout:
    anchor: int  # haplotype index of the TSS base (origin: reference position 0, edits shift it)
    starts: list[int]  # haplotype index where each edit's ALT begins
    centre: int | None  # index of the length-changing edit covering the TSS, if any


def _layout(edits: list[Edit], tss: int, strand: str) -> _Layout:
    starts, shift, centre, anchor = [], 0, None, None
    for i, e in enumerate(edits):
        hs = e.start + shift
        starts.append(hs)
        if e.start <= tss < e.end:
            if e.delta != 0:
                centre = i
                anchor = hs if strand == "+" else hs + len(e.alt) - 1
            else:
                anchor = hs + (tss - e.start)
        shift += e.delta
    if anchor is None:
        anchor = tss + sum(e.delta for e in edits if e.end <= tss)
    return _Layout(anchor, starts, centre)


def _included(edits: list[Edit], lay: _Layout, nl: int, nr: int) -> list[bool]:
    """Which edits change the window: their ALT overlaps it, or (deletions) they sit strictly inside it."""
    ws, we = lay.anchor - nl, lay.anchor + nr + 1
    out = []
    for e, hs in zip(edits, lay.starts, strict=True):
        if e.alt:
            out.append(hs < we and hs + len(e.alt) > ws)
        else:
            out.append(ws < hs < we)
    return out


def _first_free(cluster_rows, starts, ref_lens, anchored, inserts, col):
    """bcftools' overlap rule over one haplotype's alleles in file order; returns the allele kept per row."""
    out = np.zeros(len(cluster_rows), dtype=col.dtype)
    frz, prev_ins = -1, False
    for j, r in enumerate(cluster_rows):
        k = int(col[j])
        if k == 0:
            continue
        s = int(starts[r])
        if s <= frz and not (s == frz and anchored[r][k] and not prev_ins):
            continue
        out[j] = k
        frz = s + ref_lens[r] - 1
        prev_ins = inserts[r][k]
    return out


def _unique_columns(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct columns of a 2-D array and, per column, the index of its distinct column."""
    if m.shape[1] == 0:
        return m, np.zeros(0, np.int64)
    cols = np.ascontiguousarray(m.T)
    if cols.shape[1] == 0:
        return m[:, :1], np.zeros(m.shape[1], np.int64)
    view = cols.view(np.dtype((np.void, cols.dtype.itemsize * cols.shape[1]))).ravel()
    _, first, inverse = np.unique(view, return_index=True, return_inverse=True)
    return m[:, first], inverse.ravel()


@dataclass
class GeneHaplotypes:
    """Haplotypes of many samples in one gene's window. ``sample_keys[s] = (key of haplotype 1, key of 2)``."""

    gene: Gene
    geometry: Geometry
    chrom: str
    sample_keys: dict[str, tuple[str, str]]
    alleles: Mapping[str, tuple[AppliedAllele, ...]]
    skipped: Counter
    genome: Genome
    edits: Mapping[str, tuple[Edit, ...]] = field(repr=False)
    _layouts: dict[str, _Layout] = field(default_factory=dict, repr=False)

    @property
    def keys(self) -> list[str]:
        """Distinct haplotype keys, the reference first."""
        return sorted(self.alleles, key=lambda k: (k != REF_KEY, k))

    @property
    def key_counts(self) -> Counter:
        """Number of haplotypes carrying each key."""
        return Counter(k for pair in self.sample_keys.values() for k in pair)

    def _lay(self, key: str) -> _Layout:
        if key not in self._layouts:
            self._layouts[key] = _layout(list(self.edits[key]), self.gene.tss, self.gene.strand)
        return self._layouts[key]

    def _check(self, key: str) -> None:
        if key not in self.edits:
            raise KeyError(f"unknown haplotype key {key!r} for gene {self.gene.gene_id}")

    def sequence(self, key: str) -> str:
        """The input window of a haplotype in the direction of transcription, TSS at ``input_len // 2``."""
        self._check(key)
        if key == REF_KEY:
            return self.genome.gene_window(self.gene, self.geometry)
        edits = list(self.edits[key])
        lay = self._lay(key)
        nl, nr = _flanks(self.geometry, self.gene.strand)
        length = self.genome.lengths[self.chrom]
        grow = sum(max(0, -e.delta) for e in edits) + sum(e.end - e.start for e in edits) + 1
        lo = max(0, min([self.gene.tss] + [e.start for e in edits]) - nl - grow)
        hi = min(length, max([self.gene.tss + 1] + [e.end for e in edits]) + nr + grow)
        ref = self.genome.fetch(self.chrom, lo, hi)
        pieces, pos = [], lo
        for e in edits:
            pieces.append(ref[pos - lo : e.start - lo])
            pieces.append(e.alt)
            pos = e.end
        pieces.append(ref[pos - lo :])
        hap = "".join(pieces)
        a = lay.anchor - nl - lo  # hap origin: reference position lo (no edit lies before it)
        b = lay.anchor + nr + 1 - lo
        left = "N" * max(0, -a)
        right = "N" * max(0, b - len(hap))
        if (left and lo > 0) or (right and hi < length):
            raise AssertionError(f"haplotype {key} of {self.gene.gene_id}: window not covered by [{lo}, {hi})")
        window = left + hap[max(a, 0) : min(b, len(hap))] + right
        return window if self.gene.strand == "+" else reverse_complement(window)

    def changed_span(self, key: str) -> list[tuple[int, int]]:
        """Window-index ranges [a, b) (direction of transcription) outside which the haplotype window equals the
        reference window. A substitution changes its own bases; an indel shifts everything on its far side from
        the TSS, so its range runs to the window edge; a length-changing allele over the TSS changes it all."""
        self._check(key)
        if key == REF_KEY:
            return []
        edits = list(self.edits[key])
        lay = self._lay(key)
        big = self.geometry.input_len
        nl, _ = _flanks(self.geometry, self.gene.strand)
        ws = lay.anchor - nl
        spans = []
        for i, (e, hs) in enumerate(zip(edits, lay.starts, strict=True)):
            lo, hi = hs - ws, hs - ws + len(e.alt)
            if i == lay.centre:
                lo, hi = 0, big
            elif e.delta != 0:
                lo, hi = (0, hi) if hs <= lay.anchor else (lo, big)
            lo, hi = max(lo, 0), min(hi, big)
            if hi > lo:
                spans.append((lo, hi) if self.gene.strand == "+" else (big - hi, big - lo))
        return _merge(spans)

    def runs(self, key: str) -> list[tuple[int, int, int | str]]:
        """The haplotype window as sorted runs ``(lo, hi, what)`` covering window indices [0, input_len)
        (direction of transcription): ``what`` an int ``s`` means reference bases, ``window[i] = R[i + s]`` with
        R the reference window extended past its ends (:meth:`ref_extended`, N past the chromosome ends); a str
        is ALT bases. Two adjacent reference runs with different shifts meet at a deletion. Joining the runs
        gives :meth:`sequence` (tested); it is the edit view that personal features are computed from."""
        self._check(key)
        big = self.geometry.input_len
        if key == REF_KEY:
            return [(0, big, 0)]
        edits, lay = list(self.edits[key]), self._lay(key)
        nl, _ = _flanks(self.geometry, self.gene.strand)
        ws, plus = lay.anchor - nl, self.gene.strand == "+"
        sign, base = (1 if plus else -1), lay.anchor - self.gene.tss
        out: list[tuple[int, int, int | str]] = []

        def add(h0: int, h1: int, what: int | str) -> None:  # plus-strand haplotype indices [h0, h1)
            lo0, hi0 = (h0 - ws, h1 - ws) if plus else (ws + big - h1, ws + big - h0)
            lo, hi = max(lo0, 0), min(hi0, big)
            if hi > lo:
                out.append((lo, hi, what if isinstance(what, int) else what[lo - lo0 : hi - lo0]))

        far, cs, prev = 1 << 62, 0, -(1 << 62)
        for e, hs in zip(edits, lay.starts, strict=True):
            add(prev, hs, sign * (base - cs))
            if e.alt:
                add(hs, hs + len(e.alt), e.alt if plus else reverse_complement(e.alt))
            cs, prev = cs + e.delta, hs + len(e.alt)
        add(prev, far, sign * (base - cs))
        return sorted(out, key=lambda r: r[0])

    def edit_arrays(self, keys: list[str]) -> EditArrays:
        """The edits of ``keys`` as flat arrays, each key's in the order of :attr:`edits` (what compiled code
        reads instead of Edit objects)."""
        table = getattr(self.edits, "_table", None)
        members = getattr(self.edits, "_members", None)
        if table is None or members is None:  # a hand-made edits mapping
            return EditArrays.from_edits([list(self.edits[k]) for k in keys])
        if isinstance(members, _Members):
            j, k, lens = members.gather(keys)
        else:
            pairs = [members[k] if k != REF_KEY else (_NONE, _NONE) for k in keys]
            lens = np.fromiter((len(j) for j, _ in pairs), np.int64, len(pairs))
            if lens.sum():
                j, k = np.concatenate([j for j, _ in pairs]), np.concatenate([k for _, k in pairs])
        if not lens.sum():
            return EditArrays.from_edits([[] for _ in keys])
        from gta.io._segments import segment_order

        offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        flat = j * table.estart.shape[1] + k  # (record, allele) as an index into the tables' flat views
        start, end = table.estart.ravel()[flat], table.eend.ravel()[flat]
        order = segment_order(offsets, start, end)  # stable, like sorted(key=(start, end)) per key
        flat = flat[order]
        alt_off, alt_len, alt = table.alt_arrays
        return EditArrays(
            offsets=offsets,
            start=start[order].astype(np.int64), end=end[order].astype(np.int64),
            delta=table.delta.ravel()[flat].astype(np.int64), alt_off=alt_off.ravel()[flat],
            alt_len=alt_len.ravel()[flat], alt=alt,
        )

    def ref_extended(self, lo: int, hi: int) -> str:
        """Reference window indices [lo, hi) (may reach past [0, input_len)), direction of transcription; N past
        the chromosome ends."""
        start, end = self.geometry.window(self.gene.tss, self.gene.strand)
        if self.gene.strand == "+":
            return self.genome.fetch(self.chrom, start + lo, start + hi)
        return reverse_complement(self.genome.fetch(self.chrom, end - hi, end - lo))

    def window_info(self, key: str) -> WindowInfo:
        """Reference span, N padding and indel shifts of a haplotype window (for headers and debugging)."""
        self._check(key)
        nl, nr = _flanks(self.geometry, self.gene.strand)
        edits = list(self.edits[key])
        lay = self._lay(key) if edits else _Layout(self.gene.tss, [], None)
        length, t = self.genome.lengths[self.chrom], self.gene.tss
        first = _hap_to_ref(edits, lay.starts, lay.anchor - nl)
        last = _hap_to_ref(edits, lay.starts, lay.anchor + nr)
        pad_l = max(0, -first) if first is not None else 0
        pad_r = max(0, last - length + 1) if last is not None else 0
        shift_l = sum(e.delta for i, e in enumerate(edits) if e.end <= t and i != lay.centre)
        shift_r = sum(e.delta for i, e in enumerate(edits) if e.start > t and i != lay.centre)
        ref_start = None if first is None else max(first, 0)
        ref_end = None if last is None else min(last + 1, length)
        if self.gene.strand == "+":
            return WindowInfo(ref_start, ref_end, pad_l, pad_r, shift_l, shift_r, lay.centre is not None)
        return WindowInfo(ref_start, ref_end, pad_r, pad_l, shift_r, shift_l, lay.centre is not None)


@dataclass
class EditArrays:
    """Edits of many haplotype keys, flat: key i owns edits ``offsets[i]:offsets[i + 1]`` (sorted by start,
    end); each edit replaces reference [start, end) (0-based, plus strand) by ``alt[alt_off:alt_off + alt_len]``
    (ASCII bytes); ``delta`` = alt_len - (end - start)."""

    offsets: np.ndarray
    start: np.ndarray
    end: np.ndarray
    delta: np.ndarray
    alt_off: np.ndarray
    alt_len: np.ndarray
    alt: np.ndarray

    @classmethod
    def from_edits(cls, per_key: list[list[Edit]]) -> EditArrays:
        flat = [e for eds in per_key for e in eds]
        lens = np.array([len(e.alt) for e in flat], dtype=np.int64)
        return cls(
            offsets=np.concatenate([[0], np.cumsum([len(x) for x in per_key])]).astype(np.int64),
            start=np.array([e.start for e in flat], dtype=np.int64),
            end=np.array([e.end for e in flat], dtype=np.int64),
            delta=np.array([e.delta for e in flat], dtype=np.int64),
            alt_off=np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64) if flat else lens,
            alt_len=lens,
            alt=np.frombuffer("".join(e.alt for e in flat).encode("ascii"), dtype=np.uint8).copy(),
        )


def _hap_to_ref(edits: list[Edit], starts: list[int], h: int) -> int | None:
    """Reference position of haplotype index ``h`` (None inside an inserted/replaced run)."""
    shift = 0
    for e, hs in zip(edits, starts, strict=True):
        if h < hs:
            break
        if h < hs + len(e.alt):
            return e.start + (h - hs) if e.delta == 0 else None
        shift += e.delta
    return h - shift


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


class _AlleleTable:
    """Per (record, allele index) edit coordinates of the records of a region; objects are made on demand."""

    def __init__(self, calls: RegionCalls, rows: np.ndarray, chrom: str, gene: Gene) -> None:
        n = len(rows)
        k1 = 1 + max((len(calls.alts[r]) for r in rows.tolist()), default=0)
        self.calls, self.rows, self.chrom, self.gene = calls, rows, chrom, gene
        self.estart = np.zeros((n, k1), np.int64)
        self.eend = np.zeros((n, k1), np.int64)
        self.delta = np.zeros((n, k1), np.int64)
        self.digest = np.zeros((n, k1), ">u8")
        self.anchored = [[False] * k1 for _ in range(n)]
        self.inserts = [[False] * k1 for _ in range(n)]
        self.ref_lens = [0] * n
        self.alt_eff: list[list[str]] = [[""] * k1 for _ in range(n)]
        self._edits: dict[tuple[int, int], Edit] = {}
        for j, r in enumerate(rows.tolist()):
            ref, start = calls.refs[r].upper(), int(calls.starts[r])
            self.ref_lens[j] = len(ref)
            self.estart[j, 0] = self.eend[j, 0] = start
            for k, alt in enumerate(calls.alts[r], 1):
                alt_u = (alt or "").upper()
                es, ee, a = allele_edit(start, ref, alt_u)
                self.estart[j, k], self.eend[j, k], self.delta[j, k] = es, ee, len(a) - (ee - es)
                self.alt_eff[j][k] = a
                self.anchored[j][k] = is_anchored_indel(ref, alt_u)
                self.inserts[j][k] = len(alt_u) > len(ref)
                self.digest[j, k] = int.from_bytes(_digest(allele_label(chrom, start + 1, ref, alt_u)), "big")
        self.valid = np.zeros((n, k1), bool)  # (row, k) is an ALT allele of the row
        for j, r in enumerate(rows.tolist()):
            self.valid[j, 1 : 1 + len(calls.alts[r])] = True
        self.indel_row = (self.delta != 0).any(axis=1) if n else np.zeros(0, bool)

    @functools.cached_property
    def alt_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(offset [rows, k1], length [rows, k1], ASCII bytes) of every allele's effective ALT bases in one buffer
        (what :meth:`GeneHaplotypes.edit_arrays` hands out, built once per gene)."""
        flat = [a.encode("ascii") for row in self.alt_eff for a in row]
        lens = np.array([len(a) for a in flat], dtype=np.int64)
        off = np.cumsum(lens) - lens
        shape = self.estart.shape
        return off.reshape(shape), lens.reshape(shape), np.frombuffer(b"".join(flat), dtype=np.uint8).copy()

    def edit(self, j: int, k: int) -> Edit:
        hit = self._edits.get((j, k))
        if hit is None:
            r = int(self.rows[j])
            start = int(self.calls.starts[r])
            offset = start - self.gene.tss if self.gene.strand == "+" else self.gene.tss - start
            allele = AppliedAllele(self.chrom, start + 1, self.calls.refs[r].upper(),
                                   (self.calls.alts[r][k - 1] or "").upper(), self.calls.ids[r], offset)
            hit = Edit(int(self.estart[j, k]), int(self.eend[j, k]), self.alt_eff[j][k], allele)
            self._edits[(j, k)] = hit
        return hit


class _Members(Mapping):
    """hap_key -> (carried record, allele index) arrays of its alleles, as slices of two arrays grouped by
    haplotype (:func:`_haplotype_keys`): key -> the first haplotype carrying it, whose alleles are
    ``[bounds[h], bounds[h + 1])``."""

    def __init__(self, records: np.ndarray, ks: np.ndarray, bounds: np.ndarray, hap: dict[str, int]) -> None:
        self._records, self._ks, self._bounds, self._hap = records, ks, bounds, hap

    def __getitem__(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        h = self._hap[key]
        a, b = int(self._bounds[h]), int(self._bounds[h + 1])
        return self._records[a:b], self._ks[a:b]

    def __iter__(self):
        return iter(self._hap)

    def __len__(self) -> int:
        return len(self._hap)

    def __contains__(self, key) -> bool:
        return key in self._hap

    def gather(self, keys: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(records, allele indices, count per key) of ``keys`` one after another (``REF_KEY``: none)."""
        hap, n = self._hap, len(self._bounds) - 1  # index n: an empty span (the reference)
        h = np.fromiter((hap[k] if k != REF_KEY else n for k in keys), np.int64, len(keys))
        bounds = np.append(self._bounds, self._bounds[-1])
        a, lens = bounds[h], bounds[h + 1] - bounds[h]
        ends = np.cumsum(lens)
        at = np.arange(int(ends[-1]) if len(ends) else 0) + np.repeat(a - (ends - lens), lens)
        return self._records[at], self._ks[at], lens


class _KeyEdits(Mapping):
    """hap_key -> edits (sorted by position), built on first access from (row, allele) index arrays."""

    def __init__(self, table: _AlleleTable | None, members: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
        self._table, self._members = table, members
        self._done: dict[str, tuple[Edit, ...]] = {REF_KEY: ()}

    def __getitem__(self, key: str) -> tuple[Edit, ...]:
        if key not in self._done:
            js, ks = self._members[key]
            eds = [self._table.edit(int(j), int(k)) for j, k in zip(js.tolist(), ks.tolist(), strict=True)]
            self._done[key] = tuple(sorted(eds, key=lambda e: (e.start, e.end)))
        return self._done[key]

    def __iter__(self):
        yield REF_KEY
        yield from (k for k in self._members if k != REF_KEY)

    def __len__(self) -> int:
        return len(self._members) + (REF_KEY not in self._members)

    def __contains__(self, key) -> bool:
        return key == REF_KEY or key in self._members


class _KeyAlleles(Mapping):
    """hap_key -> applied alleles sorted by position (a view of :class:`_KeyEdits`)."""

    def __init__(self, edits: _KeyEdits) -> None:
        self._edits = edits

    def __getitem__(self, key: str) -> tuple[AppliedAllele, ...]:
        return tuple(sorted((e.allele for e in self._edits[key]), key=lambda a: (a.pos, a.ref, a.alt)))

    def __iter__(self):
        return iter(self._edits)

    def __len__(self) -> int:
        return len(self._edits)

    def __contains__(self, key) -> bool:
        return key in self._edits


def gene_haplotypes(
    reader: VariantReader, gene: Gene, geometry: Geometry, samples: list[str] | None = None
) -> GeneHaplotypes:
    """Haplotype keys of every (or the given) sample's two haplotypes in a gene's window.

    The reader's policy decides genotypes; overlapping alleles on one haplotype are resolved like ``bcftools
    consensus`` (first in file order wins; an indel anchored on the last base of the previous allele is kept).
    """
    genome = reader.genome
    if genome is None:
        raise GtaInputError("gene haplotypes need a genome: open the VariantReader with one", reader.path)
    chrom = genome.resolve_chrom(gene.chrom)
    length = genome.lengths[chrom]
    nl, nr = _flanks(geometry, gene.strand)
    t = gene.tss
    ws, we = t - nl, t + nr + 1
    margin = _MARGIN
    while True:
        qa, qb = max(0, ws - margin), min(length, we + margin)
        calls = reader.region(chrom, qa, qb)
        result = _resolve(reader, calls, gene, chrom, samples, nl, nr, qa, qb, length)
        if result is not None:
            break
        margin *= 8
    keys_of_hap, edits, skipped = result
    names = calls.samples if samples is None else list(samples)
    sample_keys = {s: (keys_of_hap[2 * i], keys_of_hap[2 * i + 1]) for i, s in enumerate(names)}
    return GeneHaplotypes(gene, geometry, chrom, sample_keys, _KeyAlleles(edits), skipped, genome, edits)


def reference_haplotypes(gene: Gene, geometry: Geometry, genome: Genome) -> GeneHaplotypes:
    """The reference alone in a gene's window (no sample, no allele): ``REF_KEY`` is its one key."""
    edits = _KeyEdits(None, {})
    return GeneHaplotypes(gene, geometry, genome.resolve_chrom(gene.chrom), {}, _KeyAlleles(edits), Counter(), genome,
                          edits)


def _apply_overlap_rule(reader, calls, table, applied, skipped) -> None:
    """bcftools' overlap rule, in place, only inside clusters of records whose REF spans overlap."""
    starts = calls.starts[table.rows]
    ends = calls.ends[table.rows]
    if len(starts) < 2:
        return
    run_end = np.maximum.accumulate(ends)
    new_cluster = np.ones(len(starts), bool)
    new_cluster[1:] = starts[1:] >= run_end[:-1]
    bounds = np.flatnonzero(new_cluster).tolist() + [len(starts)]
    for c0, c1 in zip(bounds[:-1], bounds[1:], strict=True):
        if c1 - c0 < 2:
            continue
        sub = applied[c0:c1]
        uniq, inv = _unique_columns(sub)
        local = list(range(c0, c1))
        fixed = np.stack(
            [_first_free(local, starts, table.ref_lens, table.anchored, table.inserts, uniq[:, u])
             for u in range(uniq.shape[1])], axis=1,
        )
        resolved = fixed[:, inv]
        lost = int((sub != 0).sum() - (resolved != 0).sum())
        if lost:
            if reader.policy.overlap == "error":
                raise GtaInputError(
                    f"overlapping alleles on one haplotype near {calls.vcf_chrom}:{starts[c0] + 1}",
                    reader.path, hint="normalise with bcftools norm, or use the policy overlap='first'",
                )
            skipped["overlap"] += lost
            applied[c0:c1] = resolved


@dataclass(frozen=True)
class _Reach:
    """A gene's window around its TSS base and the region fetched for it (0-based, plus-strand coordinates)."""

    tss: int
    strand: str
    left: int  # window bases left of the TSS base
    right: int  # window bases right of the TSS base
    fetch_start: int
    fetch_end: int
    chrom_length: int


def _resolve(reader, calls, gene, chrom, samples, nl, nr, qa, qb, length):
    """(key per haplotype column, edits per key, skipped), or None when the fetched region is too small."""
    genotypes, n_hap = _haplotype_genotypes(calls, samples)
    skipped = Counter(calls.skipped)
    if calls.vcf_chrom is None:
        skipped["contig_absent"] += 1  # the VCF has no records on this chromosome: reference haplotypes
    carried = np.flatnonzero(genotypes.any(axis=1)) if genotypes.size else np.zeros(0, np.int64)
    applied = genotypes[carried]  # [carried records, haplotypes]: the allele index each haplotype applies
    table = _AlleleTable(calls, carried, chrom, gene)
    _apply_overlap_rule(reader, calls, table, applied, skipped)
    if n_hap == 0:
        return [], _KeyEdits(table, {}), skipped
    if not len(carried):
        return [REF_KEY] * n_hap, _KeyEdits(table, {}), skipped
    reach = _Reach(gene.tss, gene.strand, nl, nr, qa, qb, length)
    in_reach, exact = _classify_records(calls, table, reach)
    kept = _window_alleles(table, applied, in_reach, exact, reach, gene.gene_id)
    if kept is None:
        return None
    keys, members = _haplotype_keys(table, in_reach, kept, n_hap)
    return keys, _KeyEdits(table, members), skipped


def _haplotype_genotypes(calls, samples) -> tuple[np.ndarray, int]:
    """The genotypes as [records, haplotypes] (two columns per sample, of all or the given samples) and the
    number of haplotypes."""
    if samples is None:
        columns = np.arange(len(calls.samples))
        genotypes = calls.gt
    else:
        columns = np.array([calls.sample_index(s) for s in samples], dtype=np.int64)
        genotypes = calls.gt[:, columns, :]
    n_hap = 2 * len(columns)
    return genotypes.reshape(len(calls), n_hap), n_hap


def _classify_records(calls, table: _AlleleTable, reach: _Reach) -> tuple[np.ndarray, np.ndarray]:
    """(the carried records that can be in the window, which carried records are placed exactly).

    Records are sorted into: certainly in the window / certainly out / computed exactly (indels and records near
    the window edges, where the indels of a haplotype may move them in or out)."""
    tss, starts, ends = reach.tss, calls.starts[table.rows], calls.ends[table.rows]
    max_shift = np.abs(table.delta).max(axis=1)  # the largest length change of a record's alleles
    left_of_tss, right_of_tss = ends <= tss, starts >= tss + 1
    over_tss = ~left_of_tss & ~right_of_tss
    shift_over_tss = int((ends - starts + max_shift)[over_tss].max(initial=0))
    shift_left = int(max_shift[left_of_tss].sum()) + shift_over_tss
    shift_right = int(max_shift[right_of_tss].sum()) + shift_over_tss
    sure_in = ((left_of_tss & ((tss - starts) + shift_left < reach.left))
               | (right_of_tss & ((ends - tss - 1) + shift_right < reach.right)))
    sure_out = ((left_of_tss & ((tss - ends) - shift_left >= reach.left))
                | (right_of_tss & ((starts - tss - 1) - shift_right >= reach.right)))
    exact = ~(sure_in | sure_out) | table.indel_row
    sure_out &= ~exact
    return np.flatnonzero(~sure_out), exact


def _window_alleles(table: _AlleleTable, applied: np.ndarray, in_reach: np.ndarray, exact: np.ndarray,
                    reach: _Reach, gene_id: str) -> np.ndarray | None:
    """``applied[in_reach]`` with the alleles that the exact placement puts outside the window set to 0; None
    when the fetched region is too small."""
    kept = applied[in_reach]
    exact_at = np.flatnonzero(exact[in_reach])  # positions in ``in_reach`` of the exactly placed records
    if not len(exact_at):
        return kept
    exact_records = in_reach[exact_at]
    placed = _place_exactly(table, exact_records, applied[exact_records], reach)
    if placed is None:
        return None
    included, tss_length_change = placed
    kept[exact_at] = np.where(included, applied[exact_records], 0)
    slot = np.full(len(table.rows), -1, np.int64)  # carried record -> its row in ``kept`` (-1: not in reach)
    slot[in_reach] = np.arange(len(in_reach))
    for hap in np.flatnonzero(tss_length_change).tolist():
        _place_around_tss(table, applied, kept, slot, hap, reach, gene_id)
    return kept


def _place_exactly(table: _AlleleTable, records: np.ndarray, alleles: np.ndarray,
                   reach: _Reach) -> tuple[np.ndarray, np.ndarray] | None:
    """(which of the records' alleles each haplotype has in its window [records, haplotypes], which haplotypes
    have a length-changing allele over the TSS), or None when the fetched region is too small."""
    tss = reach.tss
    allele = alleles.astype(np.int64)
    edit_start = np.take_along_axis(table.estart[records], allele, axis=1)
    edit_end = np.take_along_axis(table.eend[records], allele, axis=1)
    delta = np.take_along_axis(table.delta[records], allele, axis=1)
    carried = allele != 0
    left = carried & (edit_end <= tss)
    right = carried & ~left & (edit_start >= tss + 1)
    centre = carried & ~left & ~right
    delta_left = np.where(left, delta, 0)
    shift_before_left = np.cumsum(delta_left[::-1], axis=0)[::-1] - delta_left  # of the alleles nearer the TSS
    included_left = left & ((tss - edit_end) + shift_before_left < reach.left)
    delta_right = np.where(right, delta, 0)
    shift_before_right = np.cumsum(delta_right, axis=0) - delta_right
    included_right = right & ((edit_start - (tss + 1)) + shift_before_right < reach.right)
    included = included_left | included_right | centre
    # enough haplotype bases fetched on each side? (conservative around a length-changing TSS allele)
    centre_span = np.where(centre, edit_end - edit_start, 0).sum(axis=0)
    left_bases = (tss - reach.fetch_start) + np.where(included_left, delta, 0).sum(axis=0) - centre_span
    right_bases = (reach.fetch_end - tss - 1) + np.where(included_right, delta, 0).sum(axis=0) - centre_span
    short_left = (left_bases < reach.left) | (included & (edit_start < reach.fetch_start)).any(axis=0)
    short_right = (right_bases < reach.right) | (included & (edit_end > reach.fetch_end)).any(axis=0)
    if (reach.fetch_start > 0 and short_left.any()) or (reach.fetch_end < reach.chrom_length and short_right.any()):
        return None
    return included, (centre & (delta != 0)).any(axis=0)


def _place_around_tss(table: _AlleleTable, applied: np.ndarray, kept: np.ndarray, slot: np.ndarray, hap: int,
                      reach: _Reach, gene_id: str) -> None:
    """Haplotype ``hap`` has a length change over the TSS: its window alleles, from its laid-out edits, into
    ``kept[:, hap]``."""
    records = np.flatnonzero(applied[:, hap]).tolist()
    edits = [table.edit(j, int(applied[j, hap])) for j in records]
    in_window = _included(edits, _layout(edits, reach.tss, reach.strand), reach.left, reach.right)
    kept[:, hap] = 0
    for j, inside in zip(records, in_window, strict=True):
        if inside:
            if slot[j] < 0:
                raise AssertionError(f"row {j} of {gene_id} was classified outside the window")
            kept[slot[j], hap] = applied[j, hap]


def _haplotype_keys(table: _AlleleTable, in_reach: np.ndarray, kept: np.ndarray,
                    n_hap: int) -> tuple[list[str], _Members]:
    """(hap_key per haplotype, key -> (carried record, allele index) arrays of its alleles).

    Keys: sha1 over each haplotype's allele digests in sorted order. Alleles (record, k) are laid out in digest
    order; the non-zeros of the [alleles, haplotypes] indicator, stably sorted by haplotype, come out grouped by
    haplotype and already in digest order."""
    allele_row, allele_k = np.nonzero(table.valid[in_reach])
    digests = table.digest[in_reach[allele_row], allele_k]
    order = np.argsort(digests, kind="stable")
    allele_row, allele_k, digests = allele_row[order], allele_k[order], digests[order]
    carries = kept[allele_row] == allele_k.astype(kept.dtype)[:, None]  # [alleles, haplotypes]
    allele_idx, hap_idx = np.nonzero(carries)
    by_hap = np.argsort(hap_idx.astype(np.uint16) if n_hap < 65536 else hap_idx, kind="stable")  # radix for uint16
    allele_idx, hap_idx = allele_idx[by_hap], hap_idx[by_hap]
    records, ks = in_reach[allele_row[allele_idx]], allele_k[allele_idx]
    buf = memoryview(digests[allele_idx].tobytes())
    bounds = np.searchsorted(hap_idx, np.arange(n_hap + 1))
    edges = bounds.tolist()
    keys = [
        hashlib.sha1(buf[8 * a : 8 * b]).hexdigest()[:12] if b > a else REF_KEY
        for a, b in zip(edges[:-1], edges[1:], strict=True)
    ]
    hap: dict[str, int] = {}  # key -> its first haplotype, keys in that order
    for h, key in enumerate(keys):
        hap.setdefault(key, h)
    hap.pop(REF_KEY, None)
    return keys, _Members(records, ks, bounds, hap)

