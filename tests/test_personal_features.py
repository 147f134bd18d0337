"""Personal motif features computed from edits (gta.encoders.motif_edits) equal a direct ``encode()`` of each full
haplotype window, bit for bit, for every haplotype of a data set dense with SNVs, MNPs and indels: indels over
the TSS, across the window edges and at chromosome ends, both strands, and a geometry whose edge bins reach past
the window. The compiled runs equal ``GeneHaplotypes.runs``, whose join is ``sequence()``."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import yaml

from fixtures import CHROM_LENGTHS, default_sequences, make_dataset, write_manifest, write_vcf
from gta.encoders import MotifEncoder
from gta.encoders.motif_edits import MotifEdits, runs_of
from gta.features import FeatureStore, extract
from gta.geometry import Geometry
from gta.io.dataset import open_dataset
from gta.io.haplotypes import gene_haplotypes
from gta.io.jaspar import load_motifs
from gta.io.variants import VariantReader

SAMPLES = [f"S{i}" for i in range(10)]
CROPPED = Geometry(input_len=2048, bin_size=128, output_bins=12)  # 256 bp cropped each side
UNCROPPED = Geometry(input_len=2048, bin_size=128, output_bins=16)  # edge bins reach past the window


def _records(seed: int) -> list[tuple[str, int, str, str, list[str]]]:
    """Dense random SNVs, MNPs, insertions and deletions, plus indels placed over TSSs and window edges."""
    rng = random.Random(seed)
    seqs = default_sequences(0)
    placed = {  # (chrom, 1-based pos, kind, length): over a TSS, across window edges, at chromosome ends
        ("chr1", 2998, "del", 5), ("chr1", 3000 - 1024 - 2, "del", 6), ("chr1", 3000 + 1023, "ins", 4),
        ("chr3", 2599, "ins", 3), ("chr3", 2600 - 1024 + 1, "del", 4), ("chr4", 2898, "del", 3),
        ("chr4", 499, "del", 8), ("chr1", 1998, "ins", 5), ("chr2", 2502, "mnp", 2),
    }
    out = []
    for chrom, length in CHROM_LENGTHS.items():
        seq = seqs[chrom].upper()
        pos = 3 + rng.randrange(8)
        fixed = {p: (k, n) for c, p, k, n in placed if c == chrom}
        while pos < length - 12:
            kind, n = fixed.get(pos) or (rng.choice(["snv", "snv", "snv", "mnp", "ins", "del"]), rng.randint(1, 7))
            ref = seq[pos - 1]
            if kind == "snv":
                alt = rng.choice([b for b in "ACGT" if b != ref])
            elif kind == "mnp":
                ref = seq[pos - 1 : pos + 1]
                alt = "".join(rng.choice([b for b in "ACGT" if b != x]) for x in ref)
            elif kind == "ins":
                alt = ref + "".join(rng.choice("ACGT") for _ in range(n))
            else:
                ref = seq[pos - 1 : pos + n]
                alt = ref[0]
            if "N" not in ref:
                gts = [f"{int(rng.random() < 0.3)}|{int(rng.random() < 0.3)}" for _ in SAMPLES]
                out.append((chrom, pos, ref, alt, gts))
            nxt = pos + len(ref) + 2 + rng.randrange(40)
            pos = min([nxt] + [p for p in fixed if pos < p <= nxt + 5])
    return out


def _dataset(folder: Path, geometry: Geometry, seed: int) -> Path:
    manifest = make_dataset(folder, gene_format="tsv", geometry=geometry.to_dict())
    vcf = write_vcf(folder / "variants.vcf.gz", CHROM_LENGTHS, SAMPLES, _records(seed))
    entries = yaml.safe_load(manifest.read_text())
    entries["variants"] = vcf.name
    return write_manifest(folder, **entries)


@pytest.fixture(scope="module")
def motif_geometry_sets(tmp_path_factory):
    motifs = load_motifs({"SPI1": "MA0080", "CTCF": "MA0139", "SP1": "MA0079"})
    out = []
    for geometry, seed in ((CROPPED, 1), (UNCROPPED, 2)):
        manifest = _dataset(tmp_path_factory.mktemp(f"personal{seed}"), geometry, seed)
        out.append((manifest, MotifEncoder(geometry, motifs=motifs), geometry))
    return out


def _haplotypes(manifest: Path, geometry: Geometry):
    ds = open_dataset(manifest)
    reader = VariantReader(ds.variants_path, ds.genome)
    return ds, [gene_haplotypes(reader, gene, geometry) for gene in ds.genes]


def test_runs_are_the_haplotype_window(motif_geometry_sets):
    seen = {"tss_in_indel": 0, "shifted_minus": 0, "shift_at_edge": 0, "alt_at_edge": 0}
    for manifest, _, geometry in motif_geometry_sets:
        ds, all_haps = _haplotypes(manifest, geometry)
        big = geometry.input_len
        for haps in all_haps:
            keys = haps.keys
            ed = haps.edit_arrays(keys)
            nl = geometry.tss_index if haps.gene.strand == "+" else big - geometry.tss_index - 1
            ext = haps.ref_extended(-big, 2 * big)
            for j, key in enumerate(keys):
                runs = haps.runs(key)
                assert runs_of(ed, j, haps.gene.tss, haps.gene.strand, nl, big) == runs
                joined = "".join(ext[a + w + big : b + w + big] if isinstance(w, int) else w for a, b, w in runs)
                assert joined == haps.sequence(key), (haps.gene.gene_id, key)
                shifts = [(a, b, w) for a, b, w in runs if isinstance(w, int) and w]
                seen["tss_in_indel"] += haps.window_info(key).tss_in_edit
                seen["shifted_minus"] += bool(shifts) and haps.gene.strand == "-"
                seen["shift_at_edge"] += any(a == 0 or b == big for a, b, _ in shifts)
                seen["alt_at_edge"] += any(isinstance(w, str) and (a == 0 or b == big) for a, b, w in runs)
    assert all(seen.values()), seen


def test_edit_features_equal_direct_encoding(motif_geometry_sets):
    for manifest, enc, geometry in motif_geometry_sets:
        ds, all_haps = _haplotypes(manifest, geometry)
        edits = MotifEdits(enc)
        n = 0
        for gene, haps in zip(ds.genes, all_haps, strict=True):
            keys = haps.keys
            gf = edits.gene(haps, keys)
            np.testing.assert_array_equal(gf.ref, enc.encode([ds.genome.gene_window(gene, geometry)])[0])
            direct = enc.encode([haps.sequence(k) for k in keys])
            for j, key in enumerate(keys):
                np.testing.assert_array_equal(gf.full(j), direct[j], err_msg=f"{gene.gene_id} {key}")
                n += 1
        assert n > 150


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_store_equals_direct_encoding_of_every_haplotype(motif_geometry_sets, tmp_path, dtype):
    for i, (manifest, enc, geometry) in enumerate(motif_geometry_sets):
        out = tmp_path / f"f{i}.zarr"
        summary = extract(manifest, encoder=enc, out=out, individuals="all", dtype=dtype, progress=False)
        store = FeatureStore.open(out)
        ds, all_haps = _haplotypes(manifest, geometry)
        n = 0
        for gene, haps in zip(ds.genes, all_haps, strict=True):
            assert store.sample_haps(gene.gene_id) == haps.sample_keys
            keys = sorted({k for pair in haps.sample_keys.values() for k in pair})
            direct = enc.encode([haps.sequence(k) for k in keys]).astype(dtype).astype(np.float32)
            batch = store.read_haps(gene.gene_id, keys)
            for j, key in enumerate(keys):
                np.testing.assert_array_equal(store.read_hap(gene.gene_id, key), direct[j], err_msg=key)
                np.testing.assert_array_equal(batch[j], direct[j], err_msg=key)
                n += key != "ref"
        assert n == summary.unique_haplotypes > 150
        assert 0 < summary.bins_stored < n * geometry.output_bins


def test_interrupted_run_keeps_finished_genes_and_resumes_to_the_same_store(motif_geometry_sets, tmp_path,
                                                                            monkeypatch):
    import gta.encoders.motif_edits as me

    manifest, enc, _ = motif_geometry_sets[0]
    whole = tmp_path / "whole.zarr"
    extract(manifest, encoder=enc, out=whole, individuals="all", progress=False)
    calls = {"n": 0}
    real = me.MotifEdits.gene

    def gene_then_stop(self, haps, keys):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(self, haps, keys)

    out = tmp_path / "resumed.zarr"
    monkeypatch.setattr(me.MotifEdits, "gene", gene_then_stop)
    with pytest.raises(KeyboardInterrupt):
        extract(manifest, encoder=enc, out=out, individuals="all", progress=False)
    monkeypatch.setattr(me.MotifEdits, "gene", real)
    partial = FeatureStore.open(out)
    done = partial.done_keys(partial.gene_ids)
    assert sum(len(k - {"ref"}) for k in done.values()) > 0  # the genes finished before the interruption were kept
    again = extract(manifest, encoder=enc, out=out, individuals="all", progress=False)
    assert again.skipped["already in store"] > 0
    a, b = FeatureStore.open(whole), FeatureStore.open(out)
    for g in a.gene_ids:
        assert a.sample_haps(g) == b.sample_haps(g)
        keys = sorted({k for pair in a.sample_haps(g).values() for k in pair})
        np.testing.assert_array_equal(a.read_haps(g, keys), b.read_haps(g, keys), err_msg=g)


def test_other_local_encoders_take_the_full_window_path(motif_geometry_sets, tmp_path):
    """The torch backend has no edit path: each haplotype's window is encoded within reach of its changes, and
    the parts hold the same deltas (to the tolerance of test_extract's store-equality test)."""
    manifest, enc, geometry = motif_geometry_sets[1]
    torch_enc = MotifEncoder(geometry, motifs=enc.motifs, backend="torch")
    out = tmp_path / "torch.zarr"
    extract(manifest, encoder=torch_enc, out=out, individuals="all", dtype="float32", progress=False)
    store = FeatureStore.open(out)
    ds, all_haps = _haplotypes(manifest, geometry)
    for gene, haps in list(zip(ds.genes, all_haps, strict=True))[:4]:
        keys = sorted({k for pair in haps.sample_keys.values() for k in pair})
        direct = torch_enc.encode([haps.sequence(k) for k in keys])
        np.testing.assert_allclose(store.read_haps(gene.gene_id, keys), direct, atol=1e-5)


def test_compiled_helpers_equal_their_numpy_forms():
    """segment_order is a stable per-segment sort by (start, end) (np.lexsort); code_rows maps codes to value
    rows as the numpy form of MotifEdits._assemble did."""
    from gta.encoders._edit_kernels import code_rows
    from gta.io._segments import segment_order

    rng = np.random.default_rng(3)
    for _ in range(50):
        lens = rng.integers(0, 6, int(rng.integers(0, 20)))
        offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        start = rng.integers(0, 4, int(offsets[-1]))
        end = start + rng.integers(0, 3, len(start))
        seg = np.repeat(np.arange(len(lens)), lens)
        np.testing.assert_array_equal(segment_order(offsets, start, end), np.lexsort((end, start, seg)))
        n_codes, ctx_inv = int(rng.integers(1, 30)), rng.integers(0, 5, 8)
        flat = np.where(rng.random(40) < 0.5, rng.integers(0, n_codes, 40), -2 - rng.integers(0, 8, 40))
        shifted = flat >= 0
        used = np.zeros(n_codes, dtype=bool)
        used[flat[shifted]] = True
        rows = np.empty(len(flat), dtype=np.int64)
        rows[shifted] = (np.cumsum(used) - 1)[flat[shifted]]
        rows[~shifted] = used.sum() + ctx_inv[-2 - flat[~shifted]]
        pairs, got = code_rows(flat, n_codes, ctx_inv)
        np.testing.assert_array_equal(pairs, np.flatnonzero(used))
        np.testing.assert_array_equal(got, rows)


def test_pooled_scan_equals_the_simd_kernel_bit_for_bit():
    """MotifEdits.scan_windows (each centre scored once, windows pooled from the scores) gives _scan_at's
    features for any bins, overlapping or not, in any order, their motif windows reaching past the ends of the
    bases (N) (a bin's own bases, which its GC counts, lie inside them)."""
    enc = MotifEncoder(geometry=CROPPED)
    if enc.kernel != "simd":
        pytest.skip("the pooled scan is the simd kernel's")
    me = MotifEdits(enc)
    rng = np.random.default_rng(7)
    idx = rng.integers(0, 5, 3000).astype(np.uint8)
    for block_bins in (1, 3, 16):
        first = rng.integers(0, len(idx) - 128 + 1, 300)
        first[:20] = np.arange(20) * 128  # a run of consecutive bins
        first[20:23] = 0, 1, len(idx) - 128
        np.testing.assert_array_equal(me.scan_windows(idx, first, block_bins).view(np.uint32),
                                      me._scan_at(idx, first).view(np.uint32))
