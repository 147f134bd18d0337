"""sha256 in one place: of a file (data fingerprints, LLM provenance, checkpoint integrity), of several files in a row
(pretrained weights with their config), of a JSON-safe object (encoder configs, store attributes) and of a state dict
(weights held in memory only)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

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


def sha256_files(paths: Iterable[str | Path]) -> str:
    """sha256 (hex) of the files' bytes one after the other (as if concatenated)."""
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as fh:
            while block := fh.read(CHUNK):
                h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """sha256 (hex) of a JSON-safe object: keys sorted, anything else as ``str``."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def sha256_state_dict(state: Mapping[str, Any], dtype: Any = None) -> str:
    """sha256 (hex) of a torch state dict: each name, then the tensor's raw bytes (C order), names sorted. ``dtype``
    (e.g. ``torch.float32``) casts each tensor first, so a hash does not depend on the precision it was loaded in."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(state.items()):
        t = t.detach().cpu()
        if dtype is not None:
            t = t.to(dtype)
        h.update(name.encode())
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()

