"""JASPAR motifs through pyjaspar (the database ships inside the wheel; nothing is downloaded).

A ``Motif`` holds a probability matrix [4, width] (A, C, G, T rows) with a pseudocount already applied, and
its log-odds against a background. The default sets are the lymphoblastoid-relevant and core-promoter factors.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from gta.errors import GtaInputError

# Matrix IDs checked in JASPAR2026 (see shared/notes/data.md); the version-less ID takes the latest version.
LCL_MOTIFS = {
    "SPI1": "MA0080", "IRF4": "MA1419", "EBF1": "MA0154", "PAX5": "MA0014", "RUNX3": "MA0684",
    "RELA": "MA0107", "NFKB1": "MA0105", "POU2F2": "MA0507", "MEF2C": "MA0497", "IRF8": "MA0652",
}
PROMOTER_MOTIFS = {
    "TBP": "MA0108", "NFYA": "MA0060", "SP1": "MA0079", "ELK1": "MA0028", "NRF1": "MA0506", "YY1": "MA0095",
    "GABPA": "MA0062",
}
ARCHITECTURE_MOTIFS = {"CTCF": "MA0139"}
REPRESSOR_MOTIFS = {"BCL6": "MA0463"}
DEFAULT_MOTIFS = {**LCL_MOTIFS, **PROMOTER_MOTIFS, **ARCHITECTURE_MOTIFS, **REPRESSOR_MOTIFS}
BACKGROUND = np.array([0.295, 0.205, 0.205, 0.295])  # human-like A, C, G, T


@dataclass(frozen=True)
class Motif:
    name: str
    matrix_id: str
    probs: np.ndarray  # [4, width], columns sum to 1

    @property
    def width(self) -> int:
        return self.probs.shape[1]

    def log_odds(self, background: np.ndarray = BACKGROUND) -> np.ndarray:
        """[4, width] log2(p / background)."""
        return np.log2(self.probs / background[:, None])

    def consensus(self) -> str:
        return "".join("ACGT"[i] for i in self.probs.argmax(axis=0))


@functools.lru_cache(maxsize=4)
def _db(release: str):
    from pyjaspar import jaspardb

    return jaspardb(release=release)


def load_motif(key: str, name: str | None = None, release: str = "JASPAR2026", pseudocount: float = 0.8) -> Motif:
    """A motif by matrix ID (``MA0080`` or ``MA0080.7``) or by TF name (``SPI1``), case-insensitive."""
    db = _db(release)
    hit = db.fetch_motif_by_id(key) if key.upper().startswith("MA") else None
    if hit is None:
        hits = db.fetch_motifs_by_name(key) or db.fetch_motifs_by_name(key.capitalize())
        hit = hits[0] if hits else None
    if hit is None:
        raise GtaInputError(f"motif {key!r} is not in {release}", hint="give a JASPAR matrix ID such as MA0080")
    counts = np.array([hit.counts[b] for b in "ACGT"], dtype=np.float64)
    counts = counts / counts.sum(axis=0, keepdims=True) * 100.0  # JASPAR2026 stores huge counts for some matrices
    probs = (counts + pseudocount * BACKGROUND[:, None]) / (counts.sum(axis=0, keepdims=True) + pseudocount)
    return Motif(name=(name or hit.name).upper(), matrix_id=hit.matrix_id, probs=probs.astype(np.float64))


def load_motifs(keys: dict[str, str] | list[str] | None = None, release: str = "JASPAR2026") -> list[Motif]:
    """Motifs by {name: matrix_id} or a list of names/IDs; the default set when None."""
    keys = DEFAULT_MOTIFS if keys is None else keys
    if isinstance(keys, dict):
        return [load_motif(mid, name=name, release=release) for name, mid in keys.items()]
    return [load_motif(k, release=release) for k in keys]
