"""A compiled per-segment sort for the haplotype tables (the readers' own kernel: io imports no encoder)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def segment_order(offsets, start, end):
    """The permutation that sorts each segment ``[offsets[i], offsets[i + 1])`` by (start, end), stably (as
    ``np.lexsort((end, start, segment))``): an insertion sort per segment (a haplotype's few edits)."""
    order = np.arange(len(start))
    for i in range(len(offsets) - 1):
        for p in range(offsets[i] + 1, offsets[i + 1]):
            x = order[p]
            q = p
            while q > offsets[i]:
                y = order[q - 1]
                if start[y] < start[x] or (start[y] == start[x] and end[y] <= end[x]):
                    break
                order[q] = y
                q -= 1
            order[q] = x
    return order
