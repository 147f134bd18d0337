"""Streaming sha256 of a file: one function for data fingerprints, LLM provenance and checkpoint integrity."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 22


def sha256_file(path: str | Path, progress: bool = False) -> str:
    """sha256 (hex) of a file's bytes, read in 4 MiB chunks; a progress bar for big files when asked."""
    from tqdm.auto import tqdm

    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256()
    with open(path, "rb") as fh, tqdm(total=size, desc=f"hashing {path.name}", unit="B", unit_scale=True,
                                      disable=not progress or size < (256 << 20)) as bar:
        while block := fh.read(CHUNK):
            h.update(block)
            bar.update(len(block))
    return h.hexdigest()
