"""Per-bin values of one gene's window as genome tracks: bedGraph and bigWig (pyBigWig).

Bins map to the genome through :meth:`gta.geometry.Geometry.bin_to_genome`, so a minus-strand gene's bin 0 (the
upstream end of its window) is the rightmost interval. Intervals are written sorted by start and clipped to the
chromosome (bins past a chromosome end are dropped).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from gta.atomic import atomic_path
from gta.geometry import Geometry
from gta.io.types import Gene

TrackRow = tuple[str, int, int, float]  # (chrom, start, end, value) of a bedGraph line, 0-based half-open


def bin_intervals(gene: Gene, geometry: Geometry, n_bins: int | None = None) -> np.ndarray:
    """int64 [n, 2]: genome interval [start, end) of each output bin (index order = bin order)."""
    n = geometry.output_bins if n_bins is None else n_bins
    return np.array([tuple(geometry.bin_to_genome(b, gene.tss, gene.strand)) for b in range(n)], dtype=np.int64)


def importance_track(values: Sequence[float], gene: Gene, geometry: Geometry,
                     chrom_length: int | None = None) -> list[TrackRow]:
    """(chrom, start, end, value) of every bin, sorted by start, clipped to [0, chrom_length)."""
    values = np.asarray(values, dtype=np.float64)
    spans = bin_intervals(gene, geometry, len(values))
    rows: list[TrackRow] = []
    for (a, b), v in zip(spans.tolist(), values.tolist(), strict=True):
        a, b = max(a, 0), (b if chrom_length is None else min(b, chrom_length))
        if b > a and math.isfinite(v):
            rows.append((gene.chrom, a, b, v))
    rows.sort(key=lambda r: r[1])
    return rows


def write_bedgraph(path: str | Path, rows: Sequence[TrackRow], name: str | None = None,
                   description: str | None = None) -> Path:
    """A bedGraph (0-based half-open, with a ``track`` line when ``name`` is given), written atomically."""
    path = Path(path)
    lines = []
    if name:
        desc = f' description="{description}"' if description else ""
        lines.append(f'track type=bedGraph name="{name}"{desc}')
    lines += [f"{c}\t{a}\t{b}\t{v:.6g}" for c, a, b, v in rows]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path


def write_bigwig(path: str | Path, rows: Sequence[TrackRow], chrom_sizes: Mapping[str, int]) -> Path:
    """A bigWig with a header of all ``chrom_sizes`` (genome order) and the given intervals, written atomically."""
    import pyBigWig

    path = Path(path)
    order = {c: i for i, c in enumerate(chrom_sizes)}
    rows = sorted(rows, key=lambda r: (order[r[0]], r[1]))
    with atomic_path(path) as tmp:
        bw = pyBigWig.open(str(tmp), "w")
        try:
            bw.addHeader([(c, int(n)) for c, n in chrom_sizes.items()])
            if rows:
                bw.addEntries([r[0] for r in rows], [int(r[1]) for r in rows], ends=[int(r[2]) for r in rows],
                              values=[float(r[3]) for r in rows])
        finally:
            bw.close()
    return path
