"""Background sequence: GC isochores, CpG depletion, CpG islands, interspersed repeats and microsatellites.

A chromosome is a pair of arrays: ``codes`` (uint8, A C G T = 0..3) and ``mask`` (bool, soft-masked repeat).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from gta.sim.config import GenomeConfig

# (name, consensus length, GC, share of copies, median fragment length or None for full-length copies)
REPEAT_FAMILIES = (("SINE", 310, 0.56, 0.5, None), ("LINE", 6000, 0.40, 0.25, 900),
                   ("LTR", 480, 0.47, 0.15, None), ("DNA", 260, 0.42, 0.10, None))
MICROSATELLITES = ("CA", "A", "AT", "GGAA", "AAAT", "CCG", "TTTG")
_UPPER = np.frombuffer(b"ACGT", dtype=np.uint8)
_LOWER = np.frombuffer(b"acgt", dtype=np.uint8)


def random_codes(gc: np.ndarray | float, n: int, rng: np.random.Generator) -> np.ndarray:
    """i.i.d. bases with the given GC share (scalar or per base), A = T and C = G."""
    gc = np.broadcast_to(np.asarray(gc, dtype=np.float64), (n,))
    u = rng.random(n)
    a = (1.0 - gc) / 2.0
    return ((u >= a).astype(np.uint8) + (u >= 0.5) + (u >= 0.5 + gc / 2.0)).astype(np.uint8)


def deplete_cpg(codes: np.ndarray, share: float, rng: np.random.Generator) -> None:
    """Mutate ``share`` of CpG dinucleotides in place (C>T or G>A, as methylated-CpG deamination does)."""
    idx = np.flatnonzero((codes[:-1] == 1) & (codes[1:] == 2))
    hit = idx[rng.random(len(idx)) < share]
    c_to_t = rng.random(len(hit)) < 0.5
    codes[hit[c_to_t]] = 3
    codes[hit[~c_to_t] + 1] = 0


def repeat_consensi(rng: np.random.Generator) -> list[np.ndarray]:
    """One random consensus per family (SINEs end in a poly-A tail)."""
    out = []
    for name, length, gc, _, _ in REPEAT_FAMILIES:
        seq = random_codes(gc, length, rng)
        if name == "SINE":
            seq[-20:] = 0
        out.append(seq)
    return out


@dataclass
class Chromosome:
    name: str
    codes: np.ndarray
    mask: np.ndarray

    def __len__(self) -> int:
        return len(self.codes)


def background(name: str, length: int, cfg: GenomeConfig, consensi: list[np.ndarray], protect: list[tuple[int, int]],
               rng: np.random.Generator) -> Chromosome:
    """Isochores + CpG depletion + repeats (never overlapping the ``protect`` intervals)."""
    codes = np.empty(length, dtype=np.uint8)
    weights = np.asarray(cfg.isochore_weights) / sum(cfg.isochore_weights)
    pos = 0
    while pos < length:  # one isochore at a time keeps memory flat
        seg = min(int(rng.exponential(cfg.isochore_mean_len)) + 20_000, length - pos)
        codes[pos:pos + seg] = random_codes(float(rng.choice(cfg.isochore_gc, p=weights)), seg, rng)
        pos += seg
    deplete_cpg(codes, cfg.cpg_depletion, rng)
    mask = np.zeros(length, dtype=bool)
    ivs = sorted(protect)
    starts = np.array([a for a, _ in ivs], dtype=np.int64)
    reach = np.maximum.accumulate(np.array([b for _, b in ivs], dtype=np.int64)) if ivs else np.zeros(0, np.int64)

    def free(lo: int, hi: int) -> bool:
        k = int(np.searchsorted(starts, hi))  # intervals that start before hi
        return k == 0 or reach[k - 1] <= lo

    shares = np.array([f[3] for f in REPEAT_FAMILIES])
    mean_len = sum(s * (f[4] or f[1]) for s, f in zip(shares, REPEAT_FAMILIES, strict=True))
    n_copies = int(cfg.repeat_fraction * length / mean_len)
    fam = rng.choice(len(REPEAT_FAMILIES), size=n_copies, p=shares / shares.sum())
    where = rng.integers(0, length - 8000, size=n_copies)
    for f, at in zip(fam, where, strict=True):
        cons = consensi[f]
        frag_median = REPEAT_FAMILIES[f][4]
        if frag_median:
            flen = int(min(len(cons), max(150, rng.lognormal(np.log(frag_median), 0.6))))
            seq = cons[len(cons) - flen:].copy()  # 5'-truncated
        else:
            seq = cons.copy()
        if not free(int(at), int(at) + len(seq)):
            continue
        div = rng.uniform(0.03, 0.25)
        hits = rng.random(len(seq)) < div
        seq[hits] = (seq[hits] + rng.integers(1, 4, size=int(hits.sum()))) % 4
        if rng.random() < 0.5:
            seq = (3 - seq)[::-1]
        codes[at:at + len(seq)] = seq
        mask[at:at + len(seq)] = True
    n_ms = int(cfg.microsatellites_per_mb * length / 1e6)
    for _ in range(n_ms):
        unit = np.frombuffer(MICROSATELLITES[int(rng.integers(len(MICROSATELLITES)))].encode(), dtype=np.uint8)
        unit = _encode(unit)
        n = int(rng.integers(20, 81))
        at = int(rng.integers(0, length - 100))
        if not free(at, at + n):
            continue
        seq = np.resize(unit, n)
        codes[at:at + n] = seq
        mask[at:at + n] = True
    return Chromosome(name, codes, mask)


def _encode(ascii_codes: np.ndarray) -> np.ndarray:
    lut = np.zeros(256, dtype=np.uint8)
    for i, b in enumerate(b"ACGT"):
        lut[b] = i
    return lut[ascii_codes]


def cpg_island(chrom: Chromosome, lo: int, hi: int, gc: float, rng: np.random.Generator) -> None:
    """Overwrite [lo, hi) with GC-rich sequence without CpG depletion (unmasked)."""
    chrom.codes[lo:hi] = random_codes(gc, hi - lo, rng)
    chrom.mask[lo:hi] = False


def to_ascii(chrom: Chromosome) -> bytes:
    """The chromosome as ASCII, repeats in lower case."""
    return np.where(chrom.mask, _LOWER[chrom.codes], _UPPER[chrom.codes]).tobytes()


def write_fasta_record(fh: BinaryIO, chrom: Chromosome, line_width: int) -> tuple[str, int, int, int, int]:
    """Append one record; returns its .fai row (name, length, offset, line bases, line bytes)."""
    header = f">{chrom.name}\n".encode()
    fh.write(header)
    offset = fh.tell()
    seq = to_ascii(chrom)
    n = len(seq)
    full = n // line_width
    body = np.frombuffer(seq[: full * line_width], dtype=np.uint8).reshape(full, line_width)
    nl = np.full((full, 1), ord("\n"), dtype=np.uint8)
    fh.write(np.hstack([body, nl]).tobytes())
    if n % line_width:
        fh.write(seq[full * line_width:] + b"\n")
    return chrom.name, n, offset, line_width, line_width + 1


def write_fai(path: Path, rows: list[tuple[str, int, int, int, int]]) -> None:
    from gta.atomic import atomic_write_text

    atomic_write_text(path, "".join("\t".join(str(v) for v in r) + "\n" for r in rows))
