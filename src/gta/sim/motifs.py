"""Motif helpers for the simulator: JASPAR PWMs as log-odds tables, site sampling, scoring and occupancy.

Sequences here are uint8 codes (A, C, G, T = 0..3). A site's score is its log-odds (bits) against the
genome-wide background read on its own strand; occupancy is a logistic function of that score.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from gta.io.jaspar import ARCHITECTURE_MOTIFS, LCL_MOTIFS, PROMOTER_MOTIFS, REPRESSOR_MOTIFS, load_motifs

SIM_MOTIFS = {**LCL_MOTIFS, **PROMOTER_MOTIFS, **ARCHITECTURE_MOTIFS, **REPRESSOR_MOTIFS}
BASES = np.frombuffer(b"ACGT", dtype=np.uint8)


@dataclass(frozen=True)
class PWM:
    name: str
    matrix_id: str
    probs: np.ndarray  # [4, w]
    log_odds: np.ndarray  # [4, w] bits

    @property
    def width(self) -> int:
        return self.probs.shape[1]

    @property
    def max_score(self) -> float:
        return float(self.log_odds.max(axis=0).sum())


@functools.lru_cache(maxsize=2)
def motif_table() -> dict[str, PWM]:
    """The simulator's motifs by name (JASPAR through gta.io.jaspar)."""
    return {m.name: PWM(m.name, m.matrix_id, m.probs, m.log_odds()) for m in load_motifs(SIM_MOTIFS)}


def revcomp_codes(codes: np.ndarray) -> np.ndarray:
    return (3 - codes)[::-1]


def score(pwm: PWM, codes: np.ndarray, strand: str) -> float:
    """Log-odds of ``codes`` (length = width, genome orientation) read on ``strand``."""
    if len(codes) != pwm.width or (codes > 3).any():
        return float("-inf")
    seq = codes if strand == "+" else revcomp_codes(codes)
    return float(pwm.log_odds[seq, np.arange(pwm.width)].sum())


def scan(pwm: PWM, codes: np.ndarray) -> np.ndarray:
    """[2, L - w + 1] log-odds at every start on the + and - strands (genome coordinates of the site start)."""
    w = pwm.width
    n = len(codes) - w + 1
    if n <= 0:
        return np.full((2, 0), -np.inf)
    idx = np.arange(n)[:, None] + np.arange(w)[None, :]
    win = codes[idx]
    fwd = pwm.log_odds[win, np.arange(w)[None, :]].sum(axis=1)
    rc = pwm.log_odds[::-1, ::-1]  # complement rows, reversed columns
    rev = rc[win, np.arange(w)[None, :]].sum(axis=1)
    return np.stack([fwd, rev])


def sample_site(pwm: PWM, rng: np.random.Generator, min_frac: float, strand: str = "+", tries: int = 200) -> np.ndarray:
    """A site drawn from the sharpened PWM (p^2) whose log-odds is at least ``min_frac`` of the maximum.

    Returned in genome orientation for ``strand``.
    """
    p = pwm.probs**2
    p = p / p.sum(axis=0, keepdims=True)
    cum = np.cumsum(p, axis=0)
    need = min_frac * pwm.max_score
    best = pwm.probs.argmax(axis=0).astype(np.uint8)
    for _ in range(tries):
        u = rng.random(pwm.width)
        codes = (u[None, :] > cum).sum(axis=0).clip(0, 3).astype(np.uint8)
        if score(pwm, codes, "+") >= need:
            best = codes
            break
    return best if strand == "+" else revcomp_codes(best)


def breaking_change(pwm: PWM, codes: np.ndarray, strand: str) -> tuple[int, int]:
    """(offset in genome orientation, new base) of the single substitution that lowers the score most."""
    seq = codes if strand == "+" else revcomp_codes(codes)
    cur = pwm.log_odds[seq, np.arange(pwm.width)]
    drop = cur[None, :] - pwm.log_odds  # [4, w]
    drop[seq, np.arange(pwm.width)] = -np.inf
    base, j = np.unravel_index(int(np.argmax(drop)), drop.shape)
    if strand == "+":
        return int(j), int(base)
    return pwm.width - 1 - int(j), 3 - int(base)


def occupancy(llr: float | np.ndarray, pwm: PWM, theta_frac: float, temperature: float) -> float | np.ndarray:
    """Logistic occupancy: 1/2 at ``theta_frac`` x the motif's maximum log-odds."""
    z = (np.asarray(llr, dtype=np.float64) - theta_frac * pwm.max_score) / temperature
    out = 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))
    return float(out) if np.ndim(out) == 0 else out
