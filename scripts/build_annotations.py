#!/usr/bin/env python
"""Build gta's shipped human gene table from Debian's Bioconductor annotation packages (no R needed).

    python scripts/build_annotations.py                      # apt-get download into a temp folder, unpack, build
    python scripts/build_annotations.py --debs-dir DIR       # use r-bioc-org.hs.eg.db / r-bioc-go.db .deb files
    python scripts/build_annotations.py --sqlite-dir DIR     # use already unpacked SQLite files

Writes ``src/gta/data/human_genes.tsv.gz`` and ``human_genes.meta.json`` atomically (see ``gta.io.annotations``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from gta.errors import GtaInputError
from gta.io.annotations import build_annotations, load_human_genes

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "gta" / "data" / "human_genes.tsv.gz"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--debs-dir", type=Path, help="folder with the two .deb files (default: apt-get download)")
    ap.add_argument("--sqlite-dir", type=Path, help="folder holding org.Hs.eg.sqlite and GO.sqlite (searched)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output .tsv.gz (default: {DEFAULT_OUT})")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        out = build_annotations(sqlite_dir=args.sqlite_dir, out=args.out, debs_dir=args.debs_dir)
    except GtaInputError as e:
        print(f"build_annotations: error: {e.one_line()}", file=sys.stderr)
        return 2
    table = load_human_genes.__wrapped__(out)
    n_pc = int((table["gene_type"] == "protein_coding").sum())
    size_mb, secs = out.stat().st_size / 1e6, time.perf_counter() - t0
    print(f"wrote {out} ({size_mb:.1f} MB): {len(table)} genes, {n_pc} protein-coding, {secs:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
