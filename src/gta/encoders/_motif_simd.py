"""The motif encoder's AVX-512 kernel: 16 windows scored per instruction with table look-ups held in registers.

Each motif strand is cut into pairs of columns; a pair's score depends on the two bases under it only, 5 x 5 = 25
cases (N adds 0), so its table fits in two 16-lane registers and one ``vpermi2ps`` looks up 16 consecutive windows
at once, keyed by the dinucleotide code ``5 * x[p] + x[p + 1]``. A window's score is the float32 sum of its pairs,
added in column order. Per bin, max over strands, then max and count >= threshold over the bin, are reduced 16 lanes
at a time. LLVM does not emit the permute from plain loops (it would gather), hence the numba intrinsic ``_bin_score``.

``scan_windows`` serves bins that overlap (a gene's reference bins and its haplotypes' indel-shifted copies of
them): ``_centre_scores`` stores each centre's best strand score once (the same sums), and ``_pool`` reduces
each bin's centres from them as ``_bin_score`` does. The scores are sums from +0.0 of finite or -inf table
entries, never NaN nor -0.0, so the lanes a score is reduced in cannot change a max: the features are equal bit
for bit.

Only for x86-64 CPUs with AVX-512F (``available``); the encoder falls back to its portable table kernel elsewhere.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 16
UNROLL = 2  # vectors of windows per load of a pair's tables (measured: 1 -> 2 is +20%, 2 -> 4 is +3%)
STEP = LANES * UNROLL  # windows per iteration: a bin must be a multiple of this
_F = ir.VectorType(ir.FloatType(), LANES)
_I = ir.VectorType(ir.IntType(32), LANES)
_I64 = ir.IntType(64)


def available(bin_size: int) -> bool:
    """True when numba compiles for this host, the host has AVX-512F (a custom NUMBA_CPU_NAME disables it) and
    bins are a multiple of STEP."""
    import llvmlite.binding as llvm

    if bin_size % STEP or numba.config.CPU_NAME or numba.config.CPU_FEATURES:
        return False
    return bool(llvm.get_host_cpu_features().get("avx512f", False))


def pair_tables(lo: np.ndarray) -> np.ndarray:
    """float32 [ceil(w/2), 32]: per pair of columns, the summed log-odds of each code 5*b0 + b1 (N adds 0)."""
    w = lo.shape[1]
    npair = -(-w // 2)
    lo5 = np.zeros((5, 2 * npair))
    lo5[:4, :w] = lo
    codes = np.arange(25)
    out = np.zeros((npair, 2 * LANES))
    for p in range(npair):
        out[p, :25] = lo5[codes // 5, 2 * p] + lo5[codes % 5, 2 * p + 1]
    return out.astype(np.float32)


def _contiguous(ty, dtype) -> bool:
    return isinstance(ty, types.Array) and ty.dtype == dtype and ty.layout == "C"


def _data(context, builder, ty, val):
    return context.make_array(ty)(context, builder, val).data


def _vec(builder, ptr, i, vty):
    return builder.bitcast(builder.gep(ptr, [i]), vty.as_pointer())


def _splat(builder, x, vty):
    v = builder.insert_element(ir.Constant(vty, None), x, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(v, ir.Constant(vty, None), ir.Constant(_I, [0] * LANES))


@intrinsic
def _bin_score(typingctx, code, start, tables, npairs, n, thr):  # pragma: no cover - compiled
    """(max, count of >= thr) over the windows starting at code[start : start + n] (n a multiple of STEP) of the
    best strand score, a window's strand score being the sum over pairs p of tables[p, strand][code[i + 2p]]."""
    if not (_contiguous(code, types.int32) and _contiguous(tables, types.float32) and tables.ndim == 3
            and thr == types.float32 and start == n == npairs == types.int64):
        return None  # the vector loads below assume contiguous data of these types
    sig = types.UniTuple(types.float32, 2)(code, start, tables, npairs, n, thr)

    def codegen(context, builder, signature, args):
        code_p = _data(context, builder, signature.args[0], args[0])
        tab_p = _data(context, builder, signature.args[2], args[2])
        start, npairs, n = args[1], args[3], args[4]
        perm = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_F, [_F, _I, _F]), "llvm.x86.avx512.vpermi2var.ps.512"
        )
        zero = ir.Constant(_F, [0.0] * LANES)
        best = cgutils.alloca_once_value(builder, ir.Constant(_F, [float("-inf")] * LANES))
        cnt = cgutils.alloca_once_value(builder, ir.Constant(_I, [0] * LANES))
        accs = [[cgutils.alloca_once_value(builder, zero) for _ in range(2)] for _ in range(UNROLL)]
        thv = _splat(builder, args[5], _F)
        lanes = ir.Constant(_I64, LANES)
        with cgutils.for_range_slice(builder, start, builder.add(start, n), ir.Constant(_I64, STEP), _I64) as (i, _):
            for acc in accs:
                builder.store(zero, acc[0])
                builder.store(zero, acc[1])
            with cgutils.for_range(builder, npairs) as loop:
                p = loop.index
                row = builder.mul(p, ir.Constant(_I64, 4 * LANES))  # tables[p]: [strand, 32]
                tabs = []
                for k in range(2):
                    base = builder.add(row, ir.Constant(_I64, 2 * LANES * k))
                    tabs.append((builder.load(_vec(builder, tab_p, base, _F), align=4),
                                 builder.load(_vec(builder, tab_p, builder.add(base, lanes), _F), align=4)))
                for u, acc in enumerate(accs):
                    at = builder.add(builder.add(i, ir.Constant(_I64, u * LANES)), builder.add(p, p))
                    x = builder.load(_vec(builder, code_p, at, _I), align=4)
                    for (lo, hi), a in zip(tabs, acc, strict=True):
                        builder.store(builder.fadd(builder.load(a), builder.call(perm, [lo, x, hi])), a)
            for acc in accs:
                f, r = builder.load(acc[0]), builder.load(acc[1])
                _pool_lanes(builder, builder.select(builder.fcmp_ordered(">", f, r), f, r), best, cnt, thv)
        return _max_and_count(context, builder, signature, best, cnt)

    return sig, codegen


def _pool_lanes(builder, s, best, cnt, thv) -> None:
    """Per lane: best = max(best, s); cnt += (s >= threshold)."""
    b = builder.load(best)
    builder.store(builder.select(builder.fcmp_ordered(">", s, b), s, b), best)
    hit = builder.zext(builder.fcmp_ordered(">=", s, thv), _I)
    builder.store(builder.add(builder.load(cnt), hit), cnt)


def _max_and_count(context, builder, signature, best, cnt):
    """The (max over lanes of best, sum over lanes of cnt as float32) tuple an intrinsic returns."""
    fmax = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.FloatType(), [_F]), "llvm.vector.reduce.fmax.v16f32"
    )
    add = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.IntType(32), [_I]), "llvm.vector.reduce.add.v16i32"
    )
    mx = builder.call(fmax, [builder.load(best)])
    ct = builder.sitofp(builder.call(add, [builder.load(cnt)]), ir.FloatType())
    return context.make_tuple(builder, signature.return_type, [mx, ct])


@numba.njit(cache=True, nogil=True)
def _codes_into(buf, idx, lo):  # pragma: no cover - compiled
    """buf[i] = 5 * idx[lo + i] + idx[lo + i + 1], N (4) outside idx."""
    n, m = idx.shape[0], buf.shape[0]
    if lo >= 0 and lo + m + 1 <= n:  # inside: a loop LLVM vectorises
        a, b = idx[lo : lo + m], idx[lo + 1 : lo + m + 1]
        for i in range(m):
            buf[i] = 5 * np.int32(a[i]) + np.int32(b[i])
        return
    for i in range(m):
        p = lo + i
        x = idx[p] if 0 <= p < n else 4
        y = idx[p + 1] if 0 <= p + 1 < n else 4
        buf[i] = 5 * x + y


@numba.njit(parallel=True, cache=True, nogil=True)
def scan(idx, seq_of, start_of, row_of, nbins, tables, npairs, half, thr, bin_size, out_max, out_cnt):
    """One work item = ``nbins[k]`` consecutive bins of sequence ``seq_of[k]`` whose first centre is at
    ``start_of[k]`` in the base indices ``idx`` [B, L] (positions outside it read as N); writes rows
    ``row_of[k]...`` of out_max/out_cnt [rows, motifs]."""
    reach = 2 * (half.max() + 1) + STEP  # bases a window reaches beyond its bin
    for k in numba.prange(seq_of.shape[0]):
        lo = start_of[k] - half.max()
        code = np.empty(nbins[k] * bin_size + reach, np.int32)  # int32, not uint8: widening would take the permute port
        _codes_into(code, idx[seq_of[k]], lo)
        for m in range(npairs.shape[0]):
            s0 = start_of[k] - half[m] - lo
            for q in range(nbins[k]):
                mx, ct = _bin_score(code, s0 + q * bin_size, tables[m], npairs[m], bin_size, thr[m])
                out_max[row_of[k] + q, m] = mx
                out_cnt[row_of[k] + q, m] = ct


@intrinsic
def _centre_scores(typingctx, code, start, tables, npairs, n, out):  # pragma: no cover - compiled
    """out[i] = the best strand score of the window starting at code[start + i], for i < n (a multiple of STEP):
    :func:`_bin_score`'s sums and strand choice, stored instead of pooled."""
    if not (_contiguous(code, types.int32) and _contiguous(tables, types.float32) and tables.ndim == 3
            and _contiguous(out, types.float32) and out.ndim == 1 and start == n == npairs == types.int64):
        return None
    sig = types.void(code, start, tables, npairs, n, out)

    def codegen(context, builder, signature, args):
        code_p = _data(context, builder, signature.args[0], args[0])
        tab_p = _data(context, builder, signature.args[2], args[2])
        out_p = _data(context, builder, signature.args[5], args[5])
        start, npairs, n = args[1], args[3], args[4]
        perm = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_F, [_F, _I, _F]), "llvm.x86.avx512.vpermi2var.ps.512"
        )
        zero = ir.Constant(_F, [0.0] * LANES)
        accs = [[cgutils.alloca_once_value(builder, zero) for _ in range(2)] for _ in range(UNROLL)]
        lanes = ir.Constant(_I64, LANES)
        with cgutils.for_range_slice(builder, ir.Constant(_I64, 0), n, ir.Constant(_I64, STEP), _I64) as (j, _):
            i = builder.add(start, j)
            for acc in accs:
                builder.store(zero, acc[0])
                builder.store(zero, acc[1])
            with cgutils.for_range(builder, npairs) as loop:
                p = loop.index
                row = builder.mul(p, ir.Constant(_I64, 4 * LANES))  # tables[p]: [strand, 32]
                tabs = []
                for k in range(2):
                    base = builder.add(row, ir.Constant(_I64, 2 * LANES * k))
                    tabs.append((builder.load(_vec(builder, tab_p, base, _F), align=4),
                                 builder.load(_vec(builder, tab_p, builder.add(base, lanes), _F), align=4)))
                for u, acc in enumerate(accs):
                    at = builder.add(builder.add(i, ir.Constant(_I64, u * LANES)), builder.add(p, p))
                    x = builder.load(_vec(builder, code_p, at, _I), align=4)
                    for (lo, hi), a in zip(tabs, acc, strict=True):
                        builder.store(builder.fadd(builder.load(a), builder.call(perm, [lo, x, hi])), a)
            for u, acc in enumerate(accs):
                f, r = builder.load(acc[0]), builder.load(acc[1])
                s = builder.select(builder.fcmp_ordered(">", f, r), f, r)
                builder.store(s, _vec(builder, out_p, builder.add(j, ir.Constant(_I64, u * LANES)), _F), align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _pool(typingctx, t, a, n, thr):  # pragma: no cover - compiled
    """(max, count of >= thr) of t[a : a + n] (n a multiple of LANES), reduced as :func:`_bin_score` reduces
    its windows' scores (which are never NaN nor -0.0, so the lanes a score lands in cannot change the max)."""
    if not (_contiguous(t, types.float32) and t.ndim == 1 and a == n == types.int64 and thr == types.float32):
        return None
    sig = types.UniTuple(types.float32, 2)(t, a, n, thr)

    def codegen(context, builder, signature, args):
        t_p = _data(context, builder, signature.args[0], args[0])
        a, n = args[1], args[2]
        best = cgutils.alloca_once_value(builder, ir.Constant(_F, [float("-inf")] * LANES))
        cnt = cgutils.alloca_once_value(builder, ir.Constant(_I, [0] * LANES))
        thv = _splat(builder, args[3], _F)
        with cgutils.for_range_slice(builder, a, builder.add(a, n), ir.Constant(_I64, LANES), _I64) as (i, _):
            _pool_lanes(builder, builder.load(_vec(builder, t_p, i, _F), align=4), best, cnt, thv)
        return _max_and_count(context, builder, signature, best, cnt)

    return sig, codegen


@numba.njit(cache=True, nogil=True)
def _blocks(first, bin_size, block):  # pragma: no cover - compiled
    """Index of the first window of each block (and the end): a block starts at a window's first centre and
    takes the windows that end within ``block`` centres of it (``first`` sorted)."""
    out = np.empty(len(first) + 1, np.int64)
    nb, w = 0, 0
    while w < len(first):
        out[nb] = w
        nb += 1
        c0 = first[w]
        while w < len(first) and first[w] + bin_size <= c0 + block:
            w += 1
    out[nb] = len(first)
    return out[: nb + 1]


@numba.njit(parallel=True, cache=True, nogil=True)
def scan_windows(idx, first, tables, npairs, half, thr, bin_size, block, out_max, out_cnt):  # pragma: no cover
    """Row w of out_max/out_cnt [rows, motifs]: the max and count of the ``bin_size`` centres from ``first[w]``
    (``first`` sorted, positions in the base indices ``idx`` [L], outside it N), as :func:`scan` gives them for
    a bin starting there; every centre's scores computed once for all windows over it, ``block`` (>= bin_size)
    centres at a time, one block per work item (:func:`_blocks`)."""
    M = len(npairs)
    hmax = half.max()
    reach = 2 * (hmax + 1) + STEP
    bounds = _blocks(first, bin_size, block)
    for k in numba.prange(len(bounds) - 1):
        w, e = bounds[k], bounds[k + 1]
        c0 = first[w]
        n = -(-(first[e - 1] + bin_size - c0) // STEP) * STEP
        code = np.empty(n + reach, np.int32)
        track = np.empty((M, n), np.float32)
        _codes_into(code, idx, c0 - hmax)
        for m in range(M):
            _centre_scores(code, hmax - half[m], tables[m], npairs[m], n, track[m])
        for q in range(w, e):
            a = first[q] - c0
            for m in range(M):
                mx, ct = _pool(track[m], a, bin_size, thr[m])
                out_max[q, m] = mx
                out_cnt[q, m] = ct
