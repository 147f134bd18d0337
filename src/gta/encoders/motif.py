"""The ``motif`` encoder: JASPAR PWM scans pooled into bins (no weights to download).

Per output bin and motif, two features (then optionally one GC feature per bin):

- ``{motif}.max``: the best log-odds score (bits, log2 p/background) over both strands of the motif windows whose
  *centre* falls in the bin. A window of width w centred at index c covers ``[c - w//2, c - w//2 + w)``; the
  reverse-complement match over the same span is assigned to the same bin. Window positions outside the input, and
  N (anything but upper-case A, C, G, T, so soft-masked lower-case bases too), add 0 to a score.
- ``{motif}.count``: the number of centres in the bin whose best-strand score reaches the motif's threshold: the
  score whose right tail under the background (i.i.d. bases, ``BACKGROUND``) has probability ``pvalue`` (default
  1e-4, FIMO's default), computed exactly by dynamic programming over scores rounded to 0.001 bit; a motif so short
  that even its best match is more likely than that counts best matches only. A site counts once whichever strand
  (or both) matches.
- ``gc``: the fraction of G or C among the bin's bases.

So ``d = 2 * n_motifs (+ 1)``. The encoder is local: a base changes only the bins holding centres within the widest
motif's width of it (``receptive_field_bp``), which is what makes personal haplotypes cheap (``encode_region``).

Two interchangeable backends compute the same numbers (to float32 rounding: the kernels add log-odds in different
groupings, which moves a score by ~1e-6 bit):

- ``numba`` (default on CPU), with two kernels; ``kernel="auto"`` takes ``simd`` where it runs:

  - ``simd``: x86-64 with AVX-512F and bins a multiple of 32 bp (``gta.encoders._motif_simd``). Per pair of motif
    columns a 25-entry table (two bases, N included) sits in two vector registers and one permute instruction looks
    up 16 windows at once; bins are reduced 16 lanes at a time. Several times the ``table`` kernel's speed
    (``benchmarks/results/encoders.md``).
  - ``table`` (portable): every position gets the code of the 5 bases starting there (5**5 codes, N included), and
    each motif strand gets, per block of 5 columns, a table of summed log-odds per code; a window's score is then
    ceil(w/5) scalar look-ups instead of 4w multiply-adds.

  Max and count pooling are fused into the scan, so no [motifs, L] score array is ever materialised; memory is flat
  in the sequence length.
- ``torch``: one ``conv1d`` over the one-hot input with the forward and reverse-complement log-odds as output
  channels, chunked over bins; runs on GPU too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from gta.encoders.base import BaseEncoder, register_encoder
from gta.errors import GtaInputError
from gta.geometry import Geometry
from gta.io.jaspar import BACKGROUND, DEFAULT_MOTIFS, Motif, load_motifs

Q = 5  # bases per look-up code
N_CODES = 5**Q
_LOOKUP = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate("ACGT"):
    _LOOKUP[ord(_b)] = _i
_TRANSLATE = _LOOKUP.tobytes()  # the same map for bytes.translate, several times faster than fancy indexing


_EYE5 = np.vstack([np.eye(4, dtype=np.float32), np.zeros((1, 4), dtype=np.float32)])


def seq_to_index(seqs: Sequence[str]) -> np.ndarray:
    """uint8 [B, L]: A, C, G, T -> 0..3, anything else -> 4 (N)."""
    lengths = {len(s) for s in seqs}
    if len(lengths) == 1:  # one translate over the joined strings: no per-sequence arrays to stack
        buf = bytearray("".join(seqs).encode("ascii").translate(_TRANSLATE))
        return np.frombuffer(buf, dtype=np.uint8).reshape(len(seqs), lengths.pop())
    return np.stack([np.frombuffer(s.encode("ascii").translate(_TRANSLATE), dtype=np.uint8) for s in seqs])


def pvalue_threshold(log_odds: np.ndarray, background: np.ndarray, pvalue: float, resolution: float = 1e-3) -> float:
    """Smallest score s with P(score >= s) <= pvalue for i.i.d. background bases (exact DP on rounded scores)."""
    ints = np.round(log_odds / resolution).astype(np.int64)  # [4, w]
    lo = ints.min(axis=0)
    dist = np.ones(1)
    for j in range(ints.shape[1]):
        col = ints[:, j] - lo[j]
        new = np.zeros(len(dist) + col.max())
        for b in range(4):
            new[col[b] : col[b] + len(dist)] += dist * background[b]
        dist = new
    sf = np.cumsum(dist[::-1])[::-1]  # sf[k] = P(S >= k + lo.sum())
    ok = np.flatnonzero(sf <= pvalue * (1 + 1e-9))
    if len(ok) == 0:  # even the best match is more likely than pvalue (short motifs): count best matches only
        return float(log_odds.max(axis=0).sum()) - 1e-6
    return float((ok[0] + lo.sum()) * resolution)


def _code_tables(lo: np.ndarray) -> np.ndarray:
    """[n_blocks, 5**Q] float32: per block of Q columns, the summed log-odds of every Q-base code (N adds 0)."""
    w = lo.shape[1]
    nblk = -(-w // Q)
    lo5 = np.zeros((5, nblk * Q))
    lo5[:4, :w] = lo
    letters = (np.arange(N_CODES)[:, None] // (5 ** np.arange(Q - 1, -1, -1))[None, :]) % 5  # [codes, Q]
    out = np.zeros((nblk, N_CODES))
    for blk in range(nblk):
        for t in range(Q):
            out[blk] += lo5[letters[:, t], blk * Q + t]
    return out.astype(np.float32)


def _codes(idx: np.ndarray) -> np.ndarray:
    """uint16 [B, L]: base-5 code of the Q bases starting at each position (N past the end)."""
    pad = np.concatenate([idx, np.full((idx.shape[0], Q - 1), 4, dtype=np.uint8)], axis=1).astype(np.uint16)
    L = idx.shape[1]
    code = np.zeros(idx.shape, dtype=np.uint16)
    for t in range(Q):
        code *= 5
        code += pad[:, t : t + L]
    return code


_KERNEL = None
KERNELS = ("simd", "table")
SIMD_BINS = 8  # bins per work item of the simd kernel


def _simd_available(bin_size: int) -> bool:
    """Whether the simd kernel runs here for bins of ``bin_size`` (x86-64 with AVX-512F, bins a multiple of 32)."""
    if not _has_numba():
        return False
    from gta.encoders import _motif_simd

    return _motif_simd.available(bin_size)


def _numba_kernel():
    global _KERNEL
    if _KERNEL is None:
        import numba

        @numba.njit(parallel=True, cache=True, nogil=True)
        def scan(codes, seq_of, center0, tables, nblk, offs, thr, bin_size, out_max, out_cnt):  # pragma: no cover
            # One work item = one bin of one sequence; per motif, each centre costs nblk look-ups per strand.
            # (Measured alternatives that were slower here: a branch-and-bound skip on the most selective block,
            # and a blocks-outer loop that lets LLVM vectorise with gathers.)
            for k in numba.prange(seq_of.shape[0]):
                b = seq_of[k]
                for m in range(nblk.shape[0]):
                    p0 = center0[k] + offs[m]
                    t = thr[m]
                    best = np.float32(-np.inf)
                    cnt = 0
                    for c in range(bin_size):
                        p = p0 + c
                        a = np.float32(0.0)
                        r = np.float32(0.0)
                        for blk in range(nblk[m]):
                            code = codes[b, p + blk * 5]
                            a += tables[m, blk, code, 0]
                            r += tables[m, blk, code, 1]
                        s = a if a > r else r
                        if s > best:
                            best = s
                        if s >= t:
                            cnt += 1
                    out_max[k, m] = best
                    out_cnt[k, m] = cnt

        _KERNEL = scan
    return _KERNEL


def _set_numba_threads(threads: int | None) -> None:
    """numba.set_num_threads, skipped when unchanged (the call costs about a millisecond)."""
    import numba

    if threads and (n := min(threads, numba.config.NUMBA_NUM_THREADS)) != numba.get_num_threads():
        numba.set_num_threads(n)


def _has_numba() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


@register_encoder("motif")
class MotifEncoder(BaseEncoder):
    """JASPAR PWM max score and hit count per bin and motif, both strands (see the module docstring)."""

    name = "motif"

    def __init__(
        self,
        geometry: Geometry | None = None,
        motifs: Sequence[Motif] | dict[str, str] | list[str] | None = None,
        pvalue: float = 1e-4,
        gc: bool = True,
        background: Sequence[float] | None = None,
        backend: str = "auto",
        kernel: str = "auto",
        threads: int | None = None,
        device: str = "cpu",
        chunk_bins: int = 256,
        weights: Any = None,
    ) -> None:
        super().__init__(geometry)
        if weights is not None:
            raise GtaInputError("the motif encoder takes no --weights", hint="drop --weights or use another encoder")
        if motifs is None or not all(isinstance(m, Motif) for m in motifs):
            motifs = load_motifs(motifs if motifs is not None else DEFAULT_MOTIFS)  # type: ignore[arg-type]
        self.motifs: list[Motif] = list(motifs)  # type: ignore[arg-type]
        if not self.motifs:
            raise GtaInputError("the motif encoder needs at least one motif")
        if not 0 < pvalue < 1:
            raise GtaInputError(f"motif pvalue must be in (0, 1), got {pvalue}")
        self.pvalue = float(pvalue)
        self.gc = bool(gc)
        self.background = np.asarray(BACKGROUND if background is None else background, dtype=np.float64)
        if backend == "auto":
            backend = "numba" if _has_numba() and device == "cpu" else "torch"
        if backend not in ("numba", "torch"):
            raise GtaInputError(f"unknown motif backend {backend!r}", hint="numba or torch")
        self.backend = backend
        self.kernel = self._choose_kernel(kernel) if backend == "numba" else None
        self.threads = threads
        self.device = device
        self.chunk_bins = int(chunk_bins)
        self.log_odds = [np.log2(m.probs / self.background[:, None]) for m in self.motifs]
        self.widths = np.array([m.width for m in self.motifs], dtype=np.int64)
        self.max_width = int(self.widths.max())
        if self.max_width > self.geometry.bin_size * 4:
            raise GtaInputError(f"motif width {self.max_width} is too wide for bins of {self.geometry.bin_size} bp")
        self.thresholds = np.array(
            [pvalue_threshold(lo, self.background, self.pvalue) for lo in self.log_odds], dtype=np.float32
        )
        names = [m.name for m in self.motifs]
        self._labels = [m.name if names.count(m.name) == 1 else f"{m.name}_{m.matrix_id}" for m in self.motifs]
        self._pad = self.max_width + Q  # N padding on both sides of the scanned region
        self._tables: np.ndarray | None = None
        self._pairs: np.ndarray | None = None
        self._filters = None

    def _choose_kernel(self, kernel: str) -> str:
        """The numba kernel: ``simd`` where the CPU and bin size allow it (for ``auto``), else ``table``."""
        if kernel not in ("auto", *KERNELS):
            raise GtaInputError(f"unknown motif kernel {kernel!r}", hint="auto, simd or table")
        simd_ok = _simd_available(self.geometry.bin_size)
        if kernel == "simd" and not simd_ok:
            raise GtaInputError(
                "the simd motif kernel needs numba, an x86-64 CPU with AVX-512F and bins a multiple of 32 bp",
                hint="use kernel='table' (or 'auto')",
            )
        return kernel if kernel != "auto" else ("simd" if simd_ok else "table")

    # -- protocol ---------------------------------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        return {
            "motifs": {lab: m.matrix_id for lab, m in zip(self._labels, self.motifs, strict=True)},
            "pvalue": self.pvalue,
            "gc": self.gc,
            "background": [float(x) for x in self.background],
            "pooling": "centre-in-bin; max over strands; count of best-strand score >= p-value threshold",
        }

    @property
    def feature_names(self) -> list[str]:
        out = [f"{lab}.max" for lab in self._labels] + [f"{lab}.count" for lab in self._labels]
        return out + (["gc"] if self.gc else [])

    @property
    def receptive_field_bp(self) -> int:
        return self.max_width

    def weights_hash(self) -> str:
        h = hashlib.sha256()
        for m in self.motifs:
            h.update(m.matrix_id.encode())
            h.update(np.ascontiguousarray(m.probs, dtype=np.float64).tobytes())
        h.update(self.thresholds.tobytes())
        h.update(self.background.tobytes())
        return h.hexdigest()[:16]

    def encode(self, seqs: Sequence[str]) -> np.ndarray:
        """float32 [B, output_bins, d] for windows of ``geometry.input_len``."""
        self.check_seqs(seqs)
        bins = np.arange(self.geometry.output_bins)
        return self._features(*self._index(seqs, bins), bins)

    def encode_bins(self, seq: str, bins: np.ndarray) -> np.ndarray:
        self.check_seqs([seq])
        bins = np.asarray(bins, dtype=np.int64)
        return self._features(*self._index([seq], bins), bins)[0]

    # -- computation ------------------------------------------------------------------------------------------
    def _reach(self, bins: np.ndarray) -> tuple[int, int]:
        """Window positions [lo, hi) that the requested output bins read, motif reach included (may pass the ends)."""
        g = self.geometry
        lo = (g.crop_bins + int(bins.min())) * g.bin_size - self._pad
        return lo, (g.crop_bins + int(bins.max()) + 1) * g.bin_size + self._pad

    def _index(self, seqs: Sequence[str], bins: np.ndarray) -> tuple[np.ndarray, int]:
        """Base indices of the part of the windows that ``bins`` read, and the window position of column 0."""
        if len(bins) == 0:
            return seq_to_index(seqs), 0
        lo, hi = self._reach(bins)
        lo, hi = max(lo, 0), min(hi, self.geometry.input_len)
        return seq_to_index([s[lo:hi] for s in seqs]), lo

    def _region(self, idx: np.ndarray, offset: int, bins: np.ndarray) -> tuple[np.ndarray, int]:
        """N-padded indices covering the requested output bins plus motif reach; returns (idx_pad, origin).
        ``idx[:, j]`` holds window position ``offset + j``."""
        lo, hi = self._reach(bins)
        out = np.full((idx.shape[0], hi - lo), 4, dtype=np.uint8)
        a, b = max(lo, offset), min(hi, offset + idx.shape[1])
        out[:, a - lo : b - lo] = idx[:, a - offset : b - offset]
        return out, lo

    def _features(self, idx: np.ndarray, offset: int, bins: np.ndarray) -> np.ndarray:
        B, nb, M = idx.shape[0], len(bins), len(self.motifs)
        out = np.zeros((B, nb, self.n_features), dtype=np.float32)
        if nb == 0:
            return out
        g = self.geometry
        # contiguous runs of bins, each scanned from its own padded slice (keeps sparse recompute cheap)
        breaks = np.flatnonzero(np.diff(bins) != 1) + 1
        for run_idx in np.split(np.arange(nb), breaks):
            step = self.chunk_bins if self.backend == "torch" else len(run_idx)  # numba: memory is flat anyway
            for s in range(0, len(run_idx), step):
                part = run_idx[s : s + step]
                if self.kernel == "simd":  # reads idx in place: positions outside it are N
                    mx, cnt = self._scan_simd(idx, offset, bins[part])
                else:
                    region, origin = self._region(idx, offset, bins[part])
                    scan = self._scan_numba if self.backend == "numba" else self._scan_torch
                    mx, cnt = scan(region, origin, bins[part])
                out[:, part, :M] = mx
                out[:, part, M : 2 * M] = cnt
        if self.gc:
            start = (g.crop_bins + bins) * g.bin_size - offset
            pos = start[:, None] + np.arange(g.bin_size)[None, :]  # [nb, bin_size]
            sub = idx[:, pos]  # [B, nb, bin_size]
            out[:, :, 2 * M] = ((sub == 1) | (sub == 2)).mean(axis=-1)
        return out

    def _scan_numba(self, region: np.ndarray, origin: int, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._tables is None:
            nblk = -(-self.widths // Q)
            # [motif, block, code, strand]: both strands of one code share a cache line
            tables = np.zeros((len(self.motifs), int(nblk.max()), N_CODES, 2), dtype=np.float32)
            for m, lo in enumerate(self.log_odds):
                tables[m, : nblk[m], :, 0] = _code_tables(lo)
                tables[m, : nblk[m], :, 1] = _code_tables(lo[::-1, ::-1])
            self._tables, self._nblk = tables, nblk.astype(np.int64)
        _set_numba_threads(self.threads)
        g = self.geometry
        codes = _codes(region)
        B, nb, M = region.shape[0], len(bins), len(self.motifs)
        seq_of = np.repeat(np.arange(B, dtype=np.int64), nb)
        center0 = np.tile((g.crop_bins + bins) * g.bin_size, B).astype(np.int64)
        offs = (-(self.widths // 2) - origin).astype(np.int64)
        mx = np.empty((B * nb, M), dtype=np.float32)
        cnt = np.empty((B * nb, M), dtype=np.float32)
        _numba_kernel()(
            codes, seq_of, center0, self._tables, self._nblk, offs, self.thresholds, g.bin_size, mx, cnt
        )
        return mx.reshape(B, nb, M), cnt.reshape(B, nb, M)

    def _simd_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """The simd kernel's (pair tables, pairs per motif), built on first use; sets numba's threads."""
        from gta.encoders import _motif_simd as simd

        if self._pairs is None:
            npairs = -(-self.widths // 2)
            pairs = np.zeros((len(self.motifs), int(npairs.max()), 2, 2 * simd.LANES), dtype=np.float32)
            for m, lo in enumerate(self.log_odds):
                pairs[m, : npairs[m], 0] = simd.pair_tables(lo)
                pairs[m, : npairs[m], 1] = simd.pair_tables(lo[::-1, ::-1])
            self._pairs, self._npairs = pairs, npairs.astype(np.int64)
        _set_numba_threads(self.threads)
        return self._pairs, self._npairs

    def _scan_simd(self, idx: np.ndarray, origin: int, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The AVX-512 kernel over work items of up to SIMD_BINS consecutive bins (``bins`` is one run);
        ``idx[:, j]`` holds window position ``origin + j``."""
        from gta.encoders import _motif_simd as simd

        self._simd_tables()
        g, B, nb, M = self.geometry, idx.shape[0], len(bins), len(self.motifs)
        q0 = np.arange(0, nb, SIMD_BINS, dtype=np.int64)
        seq_of = np.repeat(np.arange(B, dtype=np.int64), len(q0))
        start_of = np.tile((g.crop_bins + bins[q0]) * g.bin_size - origin, B).astype(np.int64)
        row_of = (seq_of * nb + np.tile(q0, B)).astype(np.int64)
        nbins = np.tile(np.minimum(SIMD_BINS, nb - q0), B).astype(np.int64)
        mx = np.empty((B * nb, M), dtype=np.float32)
        cnt = np.empty((B * nb, M), dtype=np.float32)
        simd.scan(idx, seq_of, start_of, row_of, nbins, self._pairs, self._npairs,
                  (self.widths // 2).astype(np.int64), self.thresholds, g.bin_size, mx, cnt)
        return mx.reshape(B, nb, M), cnt.reshape(B, nb, M)

    def _scan_torch(self, region: np.ndarray, origin: int, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The convolution as one GEMM over strided windows of the one-hot input: [B, n, W*4] @ [W*4, 2M]."""
        import torch

        W, M, g = self.max_width, len(self.motifs), self.geometry
        if self._filters is None:
            f = np.zeros((W, 4, M, 2), dtype=np.float32)  # (window column, base) x (motif, strand)
            for m, lo in enumerate(self.log_odds):
                k0 = W // 2 - self.motifs[m].width // 2  # aligns every motif's centre on the same output index
                f[k0 : k0 + lo.shape[1], :, m, 0] = lo.T
                f[k0 : k0 + lo.shape[1], :, m, 1] = lo[::-1, ::-1].T
            self._filters = torch.from_numpy(f.reshape(W * 4, 2 * M)).to(self.device)
        if self.threads:
            torch.set_num_threads(self.threads)
        B, nb, bs = region.shape[0], len(bins), g.bin_size
        x = torch.from_numpy(_EYE5[region]).to(self.device)  # [B, Lp, 4]; N -> zeros
        first = (g.crop_bins + int(bins[0])) * bs  # window index of the first centre
        o0 = first - origin - W // 2
        n = nb * bs
        with torch.inference_mode():
            win = torch.as_strided(x, (B, n, W * 4), (x.stride(0), 4, 1), storage_offset=o0 * 4)
            s = (win @ self._filters).view(B, nb, bs, M, 2).amax(dim=-1)  # [B, nb, bs, M]
            thr = torch.from_numpy(self.thresholds).to(s.device)
            mx = s.amax(dim=2)
            cnt = (s >= thr).sum(dim=2, dtype=torch.float32)
        return mx.cpu().numpy(), cnt.cpu().numpy()

