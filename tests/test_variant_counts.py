"""The prompts' variant counts (``VariantReader.count_records`` through ``train.prompts.VariantCounter``) equal,
gene by gene, those of the cyvcf2 counter they replaced (kept here as the oracle): on the simulator's tiny data,
with the VCF's chromosomes renamed ``chr1`` -> ``1`` (aliasing), with a chromosome dropped, and without an index."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pysam
import pytest

from gta.io.dataset import open_dataset
from gta.io.genome import canonical_chrom_aliases
from gta.sim import simulate
from gta.train.prompts import VariantCounter, window_stats
from test_sim import stand_in_table


class _OldCounter:
    """train/prompts.py:_VariantCounter as it was (a cyvcf2 region query with its own alias rule)."""

    def __init__(self, path: Path) -> None:
        from cyvcf2 import VCF

        self.vcf = VCF(str(path), lazy=True, threads=1)
        self.seqnames = set(self.vcf.seqnames)

    def count(self, chrom: str, start: int, end: int) -> int | None:
        if self.vcf is None:
            return None
        name = next((c for c in [chrom, *canonical_chrom_aliases(chrom)] if c in self.seqnames), None)
        if name is None:
            return 0 if self.seqnames else None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return sum(1 for _ in self.vcf(f"{name}:{max(start, 0) + 1}-{end}"))
        except Exception:  # noqa: BLE001 - as the old counter: no index, no count
            self.vcf = None
            return None


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    return simulate("tiny", 3, tmp_path_factory.mktemp("sim") / "s", gene_table=stand_in_table(), progress=False)


def _rewrite(src: Path, dst: Path, rename, index: bool = True) -> Path:
    """The VCF at ``src`` with each chromosome name passed through ``rename`` (None: drop its records)."""
    lines = []
    with pysam.BGZFile(str(src), "rb") as fh:
        for line in fh.read().decode().splitlines():
            if line.startswith("##contig=<ID="):
                name = line[len("##contig=<ID="):].split(",")[0]
                new = rename(name)
                line = None if new is None else line.replace(f"ID={name},", f"ID={new},")
            elif not line.startswith("#"):
                chrom, rest = line.split("\t", 1)
                line = None if rename(chrom) is None else f"{rename(chrom)}\t{rest}"
            if line is not None:
                lines.append(line)
    plain = dst.with_suffix("")
    plain.write_text("\n".join(lines) + "\n")
    pysam.tabix_compress(str(plain), str(dst), force=True)
    plain.unlink()
    if index:
        pysam.tabix_index(str(dst), preset="vcf", force=True)
    return dst


def _counts(dataset, vcf: Path) -> tuple[list, list]:
    geometry = dataset.manifest.geometry
    old, new = _OldCounter(vcf), VariantCounter(vcf, dataset.genome)
    windows = [(g.chrom, *geometry.window(g.tss, g.strand)) for g in dataset.genes]
    windows += [(g.chrom, g.tss - 10, g.tss + 10) for g in dataset.genes]  # small windows too (many empty)
    return [old.count(*w) for w in windows], [new.count(*w) for w in windows]


def test_counts_equal_the_old_counter_on_simulated_data(sim, tmp_path):
    dataset = open_dataset(sim)
    vcf = dataset.variants_path
    old, new = _counts(dataset, vcf)
    assert new == old and sum(new) > 0 and 0 in new
    gene = dataset.genes[0]
    assert window_stats(dataset, gene)["n_variants"] == old[0]


def test_counts_equal_the_old_counter_with_chromosome_aliases(sim, tmp_path):
    dataset = open_dataset(sim)
    names = sorted({g.chrom for g in dataset.genes})
    assert all(c.startswith("chr") for c in names)  # the simulator's genome says chr1; the VCF below says 1
    bare = _rewrite(dataset.variants_path, tmp_path / "bare.vcf.gz", lambda c: c[3:])
    old, new = _counts(dataset, bare)
    assert new == old and sum(new) > 0
    dropped = _rewrite(dataset.variants_path, tmp_path / "dropped.vcf.gz", lambda c: None if c == names[0] else c)
    old, new = _counts(dataset, dropped)
    assert new == old and sum(new) > 0
    chroms = [g.chrom for g in dataset.genes] * 2  # the order of the windows _counts asks about
    assert all(n == 0 for n, c in zip(new, chroms, strict=True) if c == names[0])


def test_no_index_no_count(sim, tmp_path):
    dataset = open_dataset(sim)
    bare = tmp_path / "noindex.vcf.gz"
    shutil.copy(dataset.variants_path, bare)
    old, new = _counts(dataset, bare)
    assert new == old == [None] * len(old)
    assert not Path(str(bare) + ".tbi").exists() and not Path(str(bare) + ".csi").exists()  # nothing was indexed
    assert VariantCounter(None).count("chr1", 0, 10) is None
    assert VariantCounter(tmp_path / "missing.vcf.gz").count("chr1", 0, 10) is None
