"""Compiled (numba) helpers of :mod:`gta.encoders.motif_edits`: haplotype runs from flat edit arrays, the bins
each haplotype touches with the bases of its dirty bins, and pooling of a score track into shifted bins.

``key_runs`` is :meth:`gta.io.haplotypes.GeneHaplotypes.runs` (with ``_layout``) over arrays; the tests compare
the two on every haplotype of their data sets.
"""

from __future__ import annotations

import numba
import numpy as np

BIG = 1 << 60


@numba.njit(cache=True, nogil=True)
def key_runs(k, offsets, start, end, delta, alt_len, tss, plus, nl, L, r_lo, r_hi, r_shift, r_alt, r_alt0):
    """Runs of key ``k`` into the r_* arrays, in window order: reference runs have r_alt = -1 and shift r_shift;
    ALT runs name their edit in r_alt, whose bases start at window index r_alt0 (unclipped). Returns the count."""
    a0, a1 = offsets[k], offsets[k + 1]
    hs = np.empty(a1 - a0, dtype=np.int64)
    shift, anchor, found = 0, 0, False
    for e in range(a0, a1):  # _layout: where each ALT starts, and the haplotype index of the TSS base
        hs[e - a0] = start[e] + shift
        if start[e] <= tss < end[e]:
            found = True
            if delta[e] != 0:
                anchor = hs[e - a0] if plus else hs[e - a0] + alt_len[e] - 1
            else:
                anchor = hs[e - a0] + (tss - start[e])
        shift += delta[e]
    if not found:
        anchor = tss
        for e in range(a0, a1):
            if end[e] <= tss:
                anchor += delta[e]
    ws, sign, base = anchor - nl, 1 if plus else -1, anchor - tss
    n, cs, prev = 0, 0, -BIG
    for e in range(a0, a1 + 1):
        h1 = hs[e - a0] if e < a1 else BIG
        for part in range(2):  # the reference bases before the edit, then its ALT bases
            if part == 0:
                lo0, hi0, what = prev, h1, -1
            elif e < a1 and alt_len[e] > 0:
                lo0, hi0, what = h1, h1 + alt_len[e], e
            else:
                continue
            if plus:
                lo0, hi0 = lo0 - ws, hi0 - ws
            else:
                lo0, hi0 = ws + L - hi0, ws + L - lo0
            lo, hi = max(lo0, 0), min(hi0, L)
            if hi > lo:
                r_lo[n], r_hi[n], r_shift[n], r_alt[n], r_alt0[n] = lo, hi, sign * (base - cs), what, lo0
                n += 1
        if e < a1:
            cs += delta[e]
            prev = h1 + alt_len[e]
    if not plus:  # built in plus-strand order: reverse into window order
        for x in (r_lo, r_hi, r_shift, r_alt, r_alt0):
            x[:n] = x[:n][::-1].copy()
    return n


def _buffers(offsets):
    n_max = 2 * int(np.max(offsets[1:] - offsets[:-1], initial=0)) + 1
    return [np.empty(n_max, dtype=np.int64) for _ in range(5)]


@numba.njit(cache=True, nogil=True)
def max_shift(offsets, start, end, delta, alt_len, tss, plus, nl, L, r_lo, r_hi, r_shift, r_alt, r_alt0):
    """The largest |shift| of any reference run of any key."""
    out = 0
    for k in range(len(offsets) - 1):
        n = key_runs(k, offsets, start, end, delta, alt_len, tss, plus, nl, L, r_lo, r_hi, r_shift, r_alt, r_alt0)
        for i in range(n):
            if r_alt[i] < 0:
                out = max(out, abs(r_shift[i]))
    return out


@numba.njit(cache=True, nogil=True)
def _fill(out, lo, hi, o, n, r_lo, r_hi, r_shift, r_alt, r_alt0, idx, e0, alt, alt_off, alt_len, plus):
    """out[p - o] = the haplotype's base at window index p, for p in [lo, hi) covered by a run."""
    for i in range(n):
        a, b = max(r_lo[i], lo), min(r_hi[i], hi)
        e = r_alt[i]
        for p in range(a, b):
            if e < 0:
                out[p - o] = idx[p + r_shift[i] - e0]
            elif plus:
                out[p - o] = alt[alt_off[e] + p - r_alt0[i]]
            else:
                c = alt[alt_off[e] + alt_len[e] - 1 - (p - r_alt0[i])]
                out[p - o] = 3 - c if c < 4 else 4


@numba.njit(cache=True, nogil=True)
def _mark(stamp, k, todo, nt, lo, hi):
    """Add bins [lo, hi] (clipped) to key k's dirty bins ``todo[:nt]`` once each; returns the new count."""
    for bb in range(max(lo, 0), min(hi, len(stamp) - 1) + 1):
        if stamp[bb] != k:
            stamp[bb] = k
            todo[nt] = bb
            nt += 1
    return nt


@numba.njit(cache=True, nogil=True)
def _shift_id(shifts, nsh, s):
    for q in range(nsh):
        if shifts[q] == s:
            return q
    return -1


@numba.njit(cache=True, nogil=True)
def _describe(desc, bb, lo, hi, s0, n, r_lo, r_hi, r_shift, r_alt, r_alt0, alt_off, alt_len):
    """desc[:m] = bin bb and each run's part in [lo, hi) relative to s0 (reference: its shift; ALT: its allele's
    bases and their start), all that ``_fill`` reads for that range; returns m. Equal descriptions, equal bases."""
    desc[0] = bb
    m = 1
    for i in range(n):
        a, b = max(r_lo[i], lo), min(r_hi[i], hi)
        if a >= b:
            continue
        e = r_alt[i]
        desc[m], desc[m + 1] = a - s0, b - s0
        if e < 0:
            desc[m + 2], desc[m + 3], desc[m + 4], desc[m + 5] = 0, r_shift[i], 0, 0
        else:
            desc[m + 2], desc[m + 3], desc[m + 4], desc[m + 5] = 1, alt_off[e], alt_len[e], r_alt0[i] - s0
        m += 6
    return m


@numba.njit(cache=True, nogil=True)
def _hash(desc, m):
    """FNV-1a of desc[:m] (a collision only costs a region scanned twice: _same decides)."""
    h = np.uint64(1469598103934665603)
    for i in range(m):
        h = (h ^ np.uint64(desc[i] & 0xFFFFFFFFFFFF)) * np.uint64(1099511628211)
    return np.int64(h >> np.uint64(1))


@numba.njit(cache=True, nogil=True)
def _same(store, a, b, desc, m):
    """store[a:b] == desc[:m]."""
    if b - a != m:
        return False
    for i in range(m):  # noqa: SIM110 (a plain loop compiles; all() over a generator does not)
        if store[a + i] != desc[i]:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def touched_rows(offsets, start, end, delta, alt_off, alt_len, alt, tss, plus, nl, L, bs, crop, nout, W, pad,
                 idx, e0, r_lo, r_hi, r_shift, r_alt, r_alt0):
    """Each key's bins that differ from the reference, in bin order, as codes: >= 0 ``sid * nout + bin``, the bin
    shifted by shifts[sid]; <= -2 a dirty bin, whose bases (with pad bases each side, N outside its reach) are
    regions[-2 - code]. Returns (flat codes, offsets [keys + 1] of each key's, shifts, regions, dbins (the bin of
    each region))."""
    nk = len(offsets) - 1
    codes = np.full(nout, -1, dtype=np.int64)  # the current key's codes (-1: the reference bin), reset per key
    flat, fo = np.empty(max(nk, 1) * 64, dtype=np.int64), np.zeros(nk + 1, dtype=np.int64)
    shifts = np.empty(max(nk, 1) * 4 + 64, dtype=np.int64)
    nsh, nd, width = 0, 0, bs + 2 * pad
    regions = np.empty((1024, width), dtype=np.uint8)
    dbins = np.empty(1024, dtype=np.int64)
    stamp = np.full(nout, -1, dtype=np.int64)  # stamp[b] == k: bin b is already in key k's dirty list
    todo = np.empty(nout, dtype=np.int64)
    desc = np.empty(1 + 6 * len(r_lo), dtype=np.int64)  # a dirty bin's runs, which decide its bases (_describe)
    dstore, doff = np.empty(1 << 14, dtype=np.int64), np.zeros(1025, dtype=np.int64)  # each region's description
    seen = numba.typed.Dict.empty(numba.types.int64, numba.types.int64)  # description hash -> its first region
    for k in range(nk):
        n = key_runs(k, offsets, start, end, delta, alt_len, tss, plus, nl, L, r_lo, r_hi, r_shift, r_alt, r_alt0)
        nt = 0
        for i in range(n):
            a, b, s = r_lo[i], r_hi[i], r_shift[i]
            if r_alt[i] >= 0:  # bins within reach of ALT bases
                nt = _mark(stamp, k, todo, nt, (a - W) // bs - crop, (b + W - 1) // bs - crop)
                continue
            if i > 0:  # a junction: bins whose reach crosses it
                nt = _mark(stamp, k, todo, nt, (a - W) // bs - crop, (a + W - 1) // bs - crop)
            if s == 0:
                continue
            sid = _shift_id(shifts, nsh, s)
            if sid < 0:
                if nsh == len(shifts):
                    shifts = np.concatenate((shifts, np.empty(len(shifts), dtype=np.int64)))
                shifts[nsh] = s
                sid = nsh
                nsh += 1
            for bb in range(max((a - W) // bs - crop, 0), min((b + W - 1) // bs - crop + 1, nout)):
                codes[bb] = sid * nout + bb
            if a == 0:  # a shifted run at the window edge: bins whose reach leaves the window
                nt = _mark(stamp, k, todo, nt, (-W) // bs - crop, (W - 1) // bs - crop)
            if b == L:
                nt = _mark(stamp, k, todo, nt, (L - W) // bs - crop, (L + W - 1) // bs - crop)
        for t in range(nt):
            bb = todo[t]
            s0 = (crop + bb) * bs
            m = _describe(desc, bb, s0 - W, s0 + bs + W, s0, n, r_lo, r_hi, r_shift, r_alt, r_alt0, alt_off,
                          alt_len)
            h = _hash(desc, m)
            hit = seen[h] if h in seen else -1  # noqa: SIM401 (numba types get() as Optional)
            if hit >= 0 and _same(dstore, doff[hit], doff[hit + 1], desc, m):  # the same bases: one region
                codes[bb] = -2 - hit
                continue
            if nd == len(dbins):
                regions = np.concatenate((regions, np.empty_like(regions)))
                dbins = np.concatenate((dbins, np.empty_like(dbins)))
                doff = np.concatenate((doff, np.empty(len(dbins) + 1 - len(doff), dtype=np.int64)))
            if doff[nd] + m > len(dstore):
                dstore = np.concatenate((dstore, np.empty(len(dstore) + m, dtype=np.int64)))
            dstore[doff[nd] : doff[nd] + m] = desc[:m]
            doff[nd + 1] = doff[nd] + m
            if hit < 0:
                seen[h] = nd
            regions[nd, :] = 4
            _fill(regions[nd], s0 - W, s0 + bs + W, s0 - pad, n, r_lo, r_hi, r_shift, r_alt, r_alt0, idx, e0,
                  alt, alt_off, alt_len, plus)
            dbins[nd] = bb
            codes[bb] = -2 - nd
            nd += 1
        if fo[k] + nout > len(flat):
            flat = np.concatenate((flat, np.empty(len(flat) + nout, dtype=np.int64)))
        n = fo[k]
        for bb in range(nout):  # this key's codes in bin order into flat, and reset
            if codes[bb] != -1:
                flat[n] = codes[bb]
                codes[bb] = -1
                n += 1
        fo[k + 1] = n
    return flat[: fo[nk]].copy(), fo, shifts[:nsh].copy(), regions[:nd].copy(), dbins[:nd].copy()


@numba.njit(cache=True, nogil=True)
def pool(mx, hits, x0, bs, out_max, out_cnt):
    """Max and hit count of each track window [x0[i], x0[i] + bs)."""
    m = mx.shape[1]
    for i in range(len(x0)):
        for j in range(m):
            best = mx[x0[i], j]
            cnt = 0
            for c in range(x0[i], x0[i] + bs):
                v = mx[c, j]
                if v > best:
                    best = v
                if hits[c, j]:
                    cnt += 1
            out_max[i, j] = best
            out_cnt[i, j] = cnt


@numba.njit(cache=True, nogil=True)
def gc_counts(idx, first, bs):
    """int64 [n]: the C and G bases (codes 1, 2) of idx[first[i] : first[i] + bs]."""
    out = np.zeros(len(first), dtype=np.int64)
    for i in range(len(first)):
        c = 0
        for p in range(first[i], first[i] + bs):
            c += (idx[p] == 1) | (idx[p] == 2)
        out[i] = c
    return out



@numba.njit(cache=True, nogil=True)
def code_rows(flat, n_codes, ctx_inv):
    """(the distinct shifted codes of ``flat``, sorted; each entry's row in the value table of
    :meth:`MotifEdits._assemble`): a shifted code (>= 0) its index among the distinct shifted codes, a dirty one
    (<= -2) the number of those plus ``ctx_inv`` of its region."""
    used = np.zeros(n_codes, dtype=np.bool_)
    for c in flat:
        if c >= 0:
            used[c] = True
    rank = np.empty(n_codes, dtype=np.int64)
    n = 0
    for c in range(n_codes):
        rank[c] = n
        n += used[c]
    pairs = np.empty(n, dtype=np.int64)
    for c in range(n_codes):
        if used[c]:
            pairs[rank[c]] = c
    rows = np.empty(len(flat), dtype=np.int64)
    for i in range(len(flat)):
        c = flat[i]
        rows[i] = rank[c] if c >= 0 else n + ctx_inv[-2 - c]
    return pairs, rows
