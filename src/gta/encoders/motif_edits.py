"""Personal motif features from a haplotype's edits instead of its full window (``gta extract --samples``).

A haplotype window is a list of runs (:meth:`gta.io.haplotypes.GeneHaplotypes.runs`): reference bases at a shift
``s`` (``window[i] = R[i + s]``, R the reference window extended past its ends) and ALT bases. The features of a
bin depend only on the bases within ``max_width`` bp of it (its *reach*), so:

- a bin whose reach lies in one reference run of shift 0 is the reference's bin (nothing to compute or store);
- one whose reach lies in a run of shift ``s != 0`` is the reference's bin moved by ``s`` (centres
  ``[start + s, end + s)`` of the extended reference), computed once per distinct (shift, bin) of the gene; with
  the simd kernel the reference bins and these come from one pass that scores each centre of the extended
  reference once (``_motif_simd.scan_windows``), as most shifted bins' centres are reference centres too;
- every other bin ("dirty": within reach of an ALT base or a deletion junction, or of the window edge in a
  shifted run) is scanned from its own short sequence, once per distinct (bin, sequence) over all of the
  gene's haplotypes, in one batched kernel call.

The per-haplotype work (layout, runs, dirty bins and their bases) is one compiled pass over flat edit arrays
(:mod:`gta.encoders._edit_kernels`); no haplotype window is ever built. Every score comes from the encoder's own
scan kernel on the same bases, so the features equal ``encode()`` of the full haplotype window bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gta.encoders.motif import _LOOKUP, MotifEncoder, seq_to_index
from gta.io.haplotypes import EditArrays


@dataclass
class GeneFeatures:
    """A gene's reference features and its haplotypes as rows of one value table.

    ``values`` [n, d] float32, row i belonging to output bin ``value_bins[i]``; key j owns the rows
    ``rows[offsets[j]:offsets[j + 1]]``, in increasing bin order (bins without a row equal the reference)."""

    ref: np.ndarray
    keys: list[str]
    rows: np.ndarray
    offsets: np.ndarray
    values: np.ndarray
    value_bins: np.ndarray

    def full(self, j: int) -> np.ndarray:
        """The features [bins, d] of ``keys[j]`` (for tests and debugging)."""
        r = self.rows[self.offsets[j] : self.offsets[j + 1]]
        out = self.ref.copy()
        out[self.value_bins[r]] = self.values[r]
        return out


def supports(enc: Any) -> bool:
    """Whether ``enc`` can use the edit path (the motif encoder on its numba backend)."""
    return isinstance(enc, MotifEncoder) and enc.backend == "numba"


class MotifEdits:
    """Computes a gene's reference and personal motif features from the haplotypes' edits (module docstring)."""

    def __init__(self, enc: MotifEncoder, chunk: int = 4096) -> None:
        g = enc.geometry
        self.enc, self.chunk = enc, int(chunk)
        self.bs, self.crop, self.nout, self.L = g.bin_size, g.crop_bins, g.output_bins, g.input_len
        self.W, self.pad = int(enc.max_width), int(enc._pad)
        self.M = len(enc.motifs)
        self.starts = (self.crop + np.arange(self.nout)) * self.bs  # window index of each output bin's first base

    # -- one gene ---------------------------------------------------------------------------------------------
    def gene(self, haps: Any, keys: list[str]) -> GeneFeatures:
        """Reference features and the haplotypes ``keys`` of one gene (``haps``: a GeneHaplotypes)."""
        from gta.encoders import _edit_kernels as K

        ed = haps.edit_arrays(keys)
        plus = haps.gene.strand == "+"
        tss, L = int(haps.gene.tss), self.L
        nl = haps.geometry.tss_index if plus else L - haps.geometry.tss_index - 1
        runs = K._buffers(ed.offsets)
        layout = (ed.offsets, ed.start, ed.end, ed.delta)
        smax = K.max_shift(*layout, ed.alt_len, tss, plus, nl, L, *runs)
        e0 = min(self.crop * self.bs - smax - self.pad, 0)
        e1 = max((self.crop + self.nout) * self.bs + smax + self.pad, L)
        idx = seq_to_index([haps.ref_extended(e0, e1)])[0]
        flat, offsets, shifts, regions, dbins = K.touched_rows(
            *layout, ed.alt_off, ed.alt_len, _LOOKUP[ed.alt], tss, plus, nl, L, self.bs, self.crop, self.nout,
            self.W, self.pad, idx, e0, *runs)
        ref = None if self._pooled else self.enc._features(idx[None, -e0 : L - e0], 0, np.arange(self.nout))[0]
        return self._assemble(list(keys), ref, flat, offsets, shifts, regions, dbins, idx, e0)

    def _assemble(self, keys: list[str], ref: np.ndarray | None, flat: np.ndarray, offsets: np.ndarray,
                  shifts: np.ndarray, regions: np.ndarray, dbins: np.ndarray, idx: np.ndarray,
                  e0: int) -> GeneFeatures:
        """One value table (distinct shifted bins, then distinct dirty bins) and each key's rows into it
        (``flat[offsets[j]:offsets[j + 1]]``: key j's codes, as :func:`_edit_kernels.touched_rows` gives them).
        ``ref`` None: the reference bins are scanned here, with the shifted ones (:meth:`scan_windows`)."""
        from gta.encoders._edit_kernels import code_rows

        nout = self.nout
        ctx_first, ctx_inv = _distinct_rows(regions, dbins)
        pairs, rows = code_rows(flat, len(shifts) * nout, ctx_inv)  # distinct (shift, bin) codes, sorted
        values = [np.zeros((0, self.enc.n_features), dtype=np.float32)]
        if ref is None:
            first = self.starts[pairs % nout] + shifts[pairs // nout] - e0
            both = self.scan_windows(idx, np.concatenate([self.starts - e0, first]))
            ref = both[:nout]
            values.append(both[nout:])
        elif len(pairs):
            values.append(self.scan_shifted(idx, e0, shifts[pairs // nout], pairs % nout))
        if len(ctx_first):
            values.append(self.scan_bins(regions[ctx_first]))
        value_bins = np.concatenate([pairs % nout, dbins[ctx_first]]).astype(np.int64)
        return GeneFeatures(ref, keys, rows, offsets, np.concatenate(values), value_bins)

    # -- kernels ----------------------------------------------------------------------------------------------
    @property
    def _pooled(self) -> bool:
        """Whether the reference bins are scanned with the shifted ones from the extended reference
        (:meth:`scan_windows`): the simd kernel, and no reference bin reads past the window (where the
        reference window has N and the extended reference has bases)."""
        return (self.enc.kernel == "simd" and self.crop * self.bs >= self.pad
                and (self.crop + self.nout) * self.bs + self.pad <= self.L)

    def scan_windows(self, idx: np.ndarray, first: np.ndarray, block_bins: int = 16) -> np.ndarray:
        """float32 [n, d]: the features of the bins whose first centre is ``idx[first[i]]`` (as :meth:`_scan_at`
        gives them), each centre's scores computed once however many of the bins hold it
        (:func:`_motif_simd.scan_windows`, ``block_bins`` bins of centres at a time)."""
        from gta.encoders import _motif_simd as simd

        enc, bs, M, n = self.enc, self.bs, self.M, len(first)
        out = np.zeros((n, enc.n_features), dtype=np.float32)
        if not n:
            return out
        first = first.astype(np.int64)
        order = np.argsort(first, kind="stable")
        pairs, npairs = enc._simd_tables()
        mx, cnt = np.empty((n, M), dtype=np.float32), np.empty((n, M), dtype=np.float32)
        simd.scan_windows(idx, first[order], pairs, npairs, (enc.widths // 2).astype(np.int64), enc.thresholds,
                          bs, block_bins * bs, mx, cnt)
        out[order, :M], out[order, M : 2 * M] = mx, cnt
        if enc.gc:  # an exact count divided as mean() divides it: the same float64, then float32
            from gta.encoders._edit_kernels import gc_counts

            out[:, 2 * M] = gc_counts(idx, first, bs) / bs
        return out

    def scan_bins(self, regions: np.ndarray) -> np.ndarray:
        """float32 [B, d]: the features of one bin per region, region = the bin's bases with ``pad`` bases on
        each side ([B, bin_size + 2 pad] indices); the encoder's own kernel, as ``encode`` runs it."""
        enc = self.enc
        out = np.zeros((len(regions), enc.n_features), dtype=np.float32)
        origin = self.crop * self.bs - self.pad  # as if every region sat at output bin 0
        for s in range(0, len(regions), self.chunk):
            part = regions[s : s + self.chunk]
            out[s : s + len(part)] = enc._features(part, origin, np.zeros(1, dtype=np.int64))[:, 0]
        return out

    def scan_shifted(self, idx: np.ndarray, e0: int, shift: np.ndarray, bins: np.ndarray) -> np.ndarray:
        """float32 [n, d]: output bin ``bins[i]`` of the reference window moved by ``shift[i]`` (its centres
        ``[start + shift, end + shift)``), ``idx`` holding window indices from ``e0``; every (shift, bin) in one
        call of the simd kernel (it only sees bins whose first centre sits elsewhere in ``idx``)."""
        enc, bs, pad = self.enc, self.bs, self.pad
        if enc.kernel == "simd":
            return self._scan_at(idx, self.starts[bins] + shift - e0)
        out = np.empty((len(bins), enc.n_features), dtype=np.float32)
        for s in np.unique(shift).tolist():
            at = np.flatnonzero(shift == s)
            b = bins[at]
            lo = int(self.starts[b[0]]) + s - pad  # window index of the slice's first base (bins sorted)
            hi = int(self.starts[b[-1]]) + bs + s + pad
            out[at] = enc._features(idx[None, lo - e0 : hi - e0], lo - s, b)[0]
        return out

    def _scan_at(self, idx: np.ndarray, first: np.ndarray) -> np.ndarray:
        """float32 [n, d]: the features of the bins whose first centre is ``idx[first[i]]`` (the encoder's simd
        kernel, as ``_features`` runs it: runs of consecutive bins in work items of up to SIMD_BINS bins)."""
        from gta.encoders import _motif_simd as simd
        from gta.encoders.motif import SIMD_BINS

        enc, bs, M, n = self.enc, self.bs, self.M, len(first)
        out = np.zeros((n, enc.n_features), dtype=np.float32)
        if not n:
            return out
        first = first.astype(np.int64)
        pairs, npairs = enc._simd_tables()
        new_run = np.concatenate([[True], np.diff(first) != bs])
        run_start = np.maximum.accumulate(np.where(new_run, np.arange(n), 0))
        q = np.flatnonzero((np.arange(n) - run_start) % SIMD_BINS == 0)  # each work item's first row
        nbins = np.diff(np.append(q, n))  # up to the next item's first row: at most SIMD_BINS
        mx, cnt = np.empty((n, M), dtype=np.float32), np.empty((n, M), dtype=np.float32)
        simd.scan(idx[None, :], np.zeros(len(q), dtype=np.int64), first[q], q.astype(np.int64),
                  nbins.astype(np.int64), pairs, npairs, (enc.widths // 2).astype(np.int64),
                  enc.thresholds, bs, mx, cnt)
        out[:, :M], out[:, M : 2 * M] = mx, cnt
        if enc.gc:  # an exact count divided as mean() divides it: the same float64, then float32
            from gta.encoders._edit_kernels import gc_counts

            out[:, 2 * M] = gc_counts(idx, first, bs) / bs
        return out

def _distinct_rows(regions: np.ndarray, dbins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first index of each distinct (bin, region), index of each row's distinct one)."""
    if not len(regions):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    rows = np.ascontiguousarray(np.concatenate([dbins.astype("<u4").view(np.uint8).reshape(-1, 4), regions], 1))
    view = rows.view(np.dtype((np.void, rows.shape[1]))).ravel()
    _, first, inv = np.unique(view, return_index=True, return_inverse=True)
    return first.astype(np.int64), inv.ravel().astype(np.int64)


def runs_of(ed: EditArrays, k: int, tss: int, strand: str, nl: int, L: int) -> list[tuple[int, int, int | str]]:
    """The compiled runs of key ``k`` in the form of :meth:`GeneHaplotypes.runs` (to test them against it)."""
    from gta.encoders._edit_kernels import _buffers, key_runs

    r = _buffers(ed.offsets)
    n = key_runs(k, ed.offsets, ed.start, ed.end, ed.delta, ed.alt_len, tss, strand == "+", nl, L, *r)
    out: list[tuple[int, int, int | str]] = []
    for i in range(n):
        lo, hi, s, e, a0 = (int(x[i]) for x in r)
        if e < 0:
            out.append((lo, hi, s))
            continue
        alt = ed.alt[ed.alt_off[e] : ed.alt_off[e] + ed.alt_len[e]].tobytes().decode("ascii")
        if strand == "-":
            from gta.io.genome import reverse_complement

            alt = reverse_complement(alt)
        out.append((lo, hi, alt[lo - a0 : hi - a0]))
    return out
