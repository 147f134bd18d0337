"""Compiled (numba) helpers of :class:`gta.features.store.PartWriter`: which candidate rows differ from the
stored reference, and each key's kept (bin, distinct row) pairs, in one pass each instead of a dozen numpy
passes over every key's rows (a gene of the bench preset has about 20,000 of them)."""

from __future__ import annotations

import numba
import numpy as np

# per store dtype: (unsigned view, mask of the magnitude bits, bits of +inf)
FLOAT_BITS = {
    np.dtype("float16"): (np.uint16, np.uint16(0x7FFF), np.uint16(0x7C00)),
    np.dtype("float32"): (np.uint32, np.uint32(0x7FFFFFFF), np.uint32(0x7F800000)),
}


@numba.njit(cache=True, nogil=True)
def changed_rows(new, ref, value_bins, mag, inf):
    """bool [n]: row i of ``new`` differs from ``ref[value_bins[i]]`` as floats (arrays of the floats' bits, of
    one width), two NaNs counting as equal: equal bits, two zeros (+0 == -0) or two NaNs are the same value."""
    n, d = new.shape
    out = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        b = value_bins[i]
        for j in range(d):
            x, y = new[i, j], ref[b, j]
            if x == y:
                continue
            ax, ay = x & mag, y & mag
            if (ax == 0 and ay == 0) or (ax > inf and ay > inf):
                continue
            out[i] = True
            break
    return out


@numba.njit(cache=True, nogil=True)
def kept_rows(rows, offsets, differs, value_bins):
    """(rows kept per key, the distinct rows kept in increasing order, int32 [m, 2] (bin, index among those
    distinct rows) of every kept entry of ``rows`` in order), keeping the entries whose row ``differs``."""
    n = len(differs)
    rank = np.zeros(n, dtype=np.int64)
    m = 0
    for p in range(len(rows)):
        r = rows[p]
        if differs[r]:
            rank[r] = 1
            m += 1
    nu = 0
    for i in range(n):
        if rank[i]:
            rank[i] = nu
            nu += 1
        else:
            rank[i] = -1
    used = np.empty(nu, dtype=np.int64)
    for i in range(n):
        if rank[i] >= 0:
            used[rank[i]] = i
    rowtab = np.empty((m + 1, 2), dtype=np.int32)  # (a spare row: entries are written before they are kept)
    nk = len(offsets) - 1
    counts = np.zeros(nk, dtype=np.int64)
    tiled = offsets[0] == 0 and offsets[nk] == len(rows)  # the keys' rows one after another, all of them
    for j in range(nk):
        tiled = tiled and offsets[j] <= offsets[j + 1]
    q = 0
    if tiled:
        for j in range(nk):
            q0 = q
            for p in range(offsets[j], offsets[j + 1]):  # branch-free: about a third of the rows are dropped
                r = rows[p]
                rowtab[q, 0] = value_bins[r]
                rowtab[q, 1] = rank[r]
                q += differs[r]
            counts[j] = q - q0
        return counts, used, rowtab[:m]
    kept = np.empty(len(rows) + 1, dtype=np.int64)
    kept[0] = 0
    for p in range(len(rows)):
        r = rows[p]
        if differs[r]:
            rowtab[q, 0] = value_bins[r]
            rowtab[q, 1] = rank[r]
            q += 1
        kept[p + 1] = q
    for j in range(nk):
        counts[j] = kept[offsets[j + 1]] - kept[offsets[j]]
    return counts, used, rowtab[:m]
