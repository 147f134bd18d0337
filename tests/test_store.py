"""FeatureStore: round trip, sparse and full haplotypes, done flags, refusal of mismatched stores."""

from __future__ import annotations

import numpy as np
import pytest

from gta.errors import GtaInputError
from gta.features import FeatureStore
from gta.geometry import Geometry

GEOM = Geometry(input_len=2048, bin_size=128, output_bins=8)
ATTRS = {
    "encoder": "motif",
    "encoder_config": {"motifs": {"SPI1": "MA0080.7"}, "pvalue": 1e-4},
    "weights_hash": "abc123",
    "dataset_hash": "data1",
    "geometry": GEOM.to_dict(),
}
GENES = ["ENSG1", "ENSG2", "ENSG3"]


def make(path, hap_storage="sparse", dtype="float16"):
    return FeatureStore.create(path, ATTRS, GENES, n_bins=8, n_features=3, dtype=dtype, hap_storage=hap_storage)


def test_round_trip_reference(tmp_path):
    store = make(tmp_path / "f.zarr")
    rng = np.random.default_rng(0)
    a = rng.normal(size=(8, 3)).astype(np.float32)
    assert not store.has_ref("ENSG2") and store.ref_done_mask().tolist() == [False] * 3
    store.write_ref("ENSG2", a)
    again = FeatureStore.open(tmp_path / "f.zarr", expect={**ATTRS, "dtype": "float16"})
    assert again.gene_ids == GENES and again.n_bins == 8 and again.n_features == 3
    assert again.geometry == GEOM and again.feature_names == ["f0", "f1", "f2"]
    assert again.has_ref("ENSG2") and not again.has_ref("ENSG1")
    got = again.read_ref("ENSG2")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, a.astype(np.float16).astype(np.float32))
    assert again.read_refs(["ENSG2", "ENSG2"]).shape == (2, 8, 3)
    with pytest.raises(GtaInputError, match="no reference features"):
        again.read_ref("ENSG1")
    with pytest.raises(GtaInputError, match="not in the feature store"):
        again.read_ref("ENSG9")
    with pytest.raises(GtaInputError, match="already exists"):
        make(tmp_path / "f.zarr")


@pytest.mark.parametrize("storage", ["sparse", "full"])
def test_personal_haplotypes(tmp_path, storage):
    store = make(tmp_path / "f.zarr", hap_storage=storage, dtype="float32")
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(8, 3)).astype(np.float32)
    alt = ref.copy()
    alt[3, 1] += 1.0
    alt[4] -= 2.0
    store.write_ref("ENSG1", ref)
    store.set_sample_haps("ENSG1", {"S1": ("ref", "k1"), "S2": ("k1", "k2")})
    n = store.write_hap("ENSG1", "k1", alt)
    assert n == (2 if storage == "sparse" else 8)  # sparse stores only the changed bins
    assert store.hap_keys("ENSG1") == ["k1", "ref"]  # k2 is not written yet
    assert not store.hap_done("ENSG1", "k2") and store.hap_done("ENSG1", "k1")
    store.write_hap("ENSG1", "k2", ref)  # identical to the reference: an empty delta
    reopened = FeatureStore.open(tmp_path / "f.zarr")
    np.testing.assert_array_equal(reopened.read_hap("ENSG1", "k1"), alt)
    np.testing.assert_array_equal(reopened.read_hap("ENSG1", "k2"), ref)
    np.testing.assert_array_equal(reopened.read_hap("ENSG1", "ref"), ref)
    assert reopened.sample_haps("ENSG1") == {"S1": ("ref", "k1"), "S2": ("k1", "k2")}
    assert reopened.samples == ["S1", "S2"] and reopened.sample_haps("ENSG2") == {}
    store.set_sample_haps("ENSG3", {"S3": ("ref", "ref")})  # merging tables across genes and calls
    store.set_sample_haps("ENSG1", {"S3": ("k2", "ref")})
    again = FeatureStore.open(tmp_path / "f.zarr")
    assert again.samples == ["S1", "S2", "S3"] and again.sample_haps("ENSG1")["S3"] == ("k2", "ref")
    with pytest.raises(GtaInputError, match="not in the feature store"):
        again.read_hap("ENSG1", "k9")


@pytest.mark.parametrize("storage", ["sparse", "full"])
def test_a_damaged_chunk_is_one_line_naming_the_store_and_gene(tmp_path, storage):
    store = make(tmp_path / "f.zarr", hap_storage=storage)
    ref = np.ones((8, 3), np.float32)
    store.write_ref("ENSG1", ref)
    store.set_sample_haps("ENSG1", {"S1": ("k1", "ref")})
    store.write_hap("ENSG1", "k1", ref * 2)
    before = {p: p.read_bytes() for p in (tmp_path / "f.zarr").rglob("*") if p.is_file() and "c" in p.parts}
    reopened = FeatureStore.open(tmp_path / "f.zarr")
    np.testing.assert_array_equal(reopened.read_hap("ENSG1", "k1"), ref * 2)
    for path, data in before.items():  # every chunk file cut short in turn: the reads that touch it say so
        path.write_bytes(data[: len(data) // 2])
        fresh = FeatureStore.open(tmp_path / "f.zarr")
        try:
            fresh.read_hap("ENSG1", "k1")
        except GtaInputError as e:
            assert "f.zarr" in str(e) and "damaged chunk" in str(e), e
        path.write_bytes(data)
    ref_chunks = [p for p in before if "ref" in p.parts and "ref_done" not in p.parts]
    assert ref_chunks
    ref_chunks[0].write_bytes(before[ref_chunks[0]][:5])
    with pytest.raises(GtaInputError, match="damaged chunk of gene 'ENSG1'"):
        FeatureStore.open(tmp_path / "f.zarr").read_ref("ENSG1")
    ref_chunks[0].unlink()  # gone altogether: zarr would read its fill value as if it were features
    with pytest.raises(GtaInputError, match="features of gene 'ENSG1' hold NaN: missing from the store"):
        FeatureStore.open(tmp_path / "f.zarr").read_ref("ENSG1")


def test_sparse_delta_is_exact_in_float16(tmp_path):
    store = make(tmp_path / "f.zarr", dtype="float16")
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(8, 3)).astype(np.float32)
    alt = ref + 1e-5  # below float16 resolution almost everywhere
    alt[6, 0] += 3.0
    store.write_ref("ENSG1", ref)
    store.write_hap("ENSG1", "k1", alt)
    got = store.read_hap("ENSG1", "k1")
    np.testing.assert_array_equal(got, alt.astype(np.float16).astype(np.float32))


def test_sparse_delta_treats_nan_as_equal_to_nan(tmp_path):
    """A bin is stored when its value differs from the reference's; NaN in both is the same value."""
    store = make(tmp_path / "f.zarr", dtype="float32")
    ref = np.zeros((8, 3), np.float32)
    ref[2, 1] = np.nan
    alt = ref.copy()
    alt[5, 0] = np.nan  # differs from 0
    store.write_ref("ENSG1", ref)
    assert store.write_hap("ENSG1", "k1", alt) == 1  # bin 2 (NaN in both) is not stored, bin 5 is
    with pytest.raises(GtaInputError, match="hold NaN"):  # and NaN is never handed on as features
        store.read_hap("ENSG1", "k1")



@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_part_kernels_follow_the_float_rule(dtype):
    """PartWriter's compiled row selection equals the numpy rule on zeros of both signs, NaNs, infinities, and
    key row lists that do not tile the rows."""
    from gta.features._part_kernels import FLOAT_BITS, changed_rows, kept_rows

    rng = np.random.default_rng(5)
    pool = np.array([0.0, -0.0, np.nan, -np.nan, 1.0, 2.5, np.inf, -np.inf, 1.0001], np.float32)
    view, mag, inf = FLOAT_BITS[np.dtype(dtype)]
    for _ in range(100):
        n, d = int(rng.integers(0, 30)), int(rng.integers(1, 5))
        ref = rng.choice(pool, (8, d)).astype(dtype)
        new = rng.choice(pool, (n, d)).astype(dtype)
        bins = rng.integers(0, 8, n)
        old = ref[bins]
        want = ((new != old) & ~(np.isnan(new) & np.isnan(old))).any(axis=1)
        got = changed_rows(new.view(view), ref.view(view), bins, mag, inf)
        np.testing.assert_array_equal(got, want)
        rows = rng.integers(0, n, int(rng.integers(0, 40))) if n else np.zeros(0, np.int64)
        for offsets in (np.array([0, len(rows) // 3, len(rows)]), np.array([len(rows) // 2, len(rows)])):
            counts, used, rowtab = kept_rows(rows, offsets, want, bins)
            keep = want[rows]
            kept = np.concatenate([[0], np.cumsum(keep)])
            np.testing.assert_array_equal(counts, kept[offsets[1:]] - kept[offsets[:-1]])
            mark = np.zeros(n, bool)
            mark[rows[keep]] = True
            np.testing.assert_array_equal(used, np.flatnonzero(mark))
            inv = (np.cumsum(mark) - 1)[rows[keep]]
            np.testing.assert_array_equal(rowtab, np.stack([bins[rows[keep]], inv], axis=1).astype(np.int32))

def test_half_written_part_is_not_read(tmp_path):
    """A part cut off before its done flag (which comes with its key lists) is skipped."""
    store = make(tmp_path / "f.zarr")
    store.write_ref("ENSG1", np.zeros((8, 3), np.float32))
    store.set_sample_haps("ENSG1", {"S1": ("ref", "k1")})
    store._haps_group().create_array("_part.cut", shape=(1, 3), chunks=(1, 3), dtype="float16",
                                     attributes={"done": False})  # crash here
    reopened = FeatureStore.open(tmp_path / "f.zarr")
    assert reopened.hap_keys("ENSG1") == ["ref"]
    assert not reopened.hap_done("ENSG1", "k1")


def test_half_written_item_is_not_readable(tmp_path):
    store = make(tmp_path / "f.zarr", hap_storage="full")
    store.write_ref("ENSG1", np.zeros((8, 3), np.float32))
    grp = store._gene_group("ENSG1", create=True)
    grp.create_array("k1", shape=(8, 3), chunks=(8, 3), dtype="float16", attributes={"done": False})  # crash here
    assert not store.hap_done("ENSG1", "k1") and store.hap_keys("ENSG1") == []
    with pytest.raises(GtaInputError):
        store.read_hap("ENSG1", "k1")


@pytest.mark.parametrize(
    "field, value, shown",
    [
        ("encoder", "enformer", "encoder: store has 'motif', this run has 'enformer'"),
        ("encoder_config", {"motifs": {"SPI1": "MA0080.7"}, "pvalue": 1e-3}, "encoder_config.pvalue"),
        ("weights_hash", "zzz", "weights_hash"),
        ("dataset_hash", "data2", "dataset_hash: store has 'data1', this run has 'data2'"),
        ("geometry", Geometry(2048, 128, 4).to_dict(), "geometry.output_bins: store has 8, this run has 4"),
        ("dtype", "float32", "dtype: store has 'float16', this run has 'float32'"),
    ],
)
def test_mismatch_is_refused_naming_the_field(tmp_path, field, value, shown):
    make(tmp_path / "f.zarr")
    expect = {**ATTRS, "dtype": "float16", field: value}
    with pytest.raises(GtaInputError) as err:
        FeatureStore.open(tmp_path / "f.zarr", expect=expect)
    assert shown in str(err.value) and "another --out" in str(err.value)


def test_open_or_create_reuses_only_a_matching_store(tmp_path):
    kw = dict(gene_ids=GENES, n_bins=8, n_features=3)
    a = FeatureStore.open_or_create(tmp_path / "f.zarr", ATTRS, **kw)
    a.write_ref("ENSG3", np.ones((8, 3), np.float32))
    b = FeatureStore.open_or_create(tmp_path / "f.zarr", ATTRS, **kw)
    assert b.has_ref("ENSG3")
    with pytest.raises(GtaInputError, match="another gene list"):
        FeatureStore.open_or_create(tmp_path / "f.zarr", ATTRS, **{**kw, "gene_ids": ["ENSG1"]})
    with pytest.raises(GtaInputError, match="feature store not found"):
        FeatureStore.open(tmp_path / "nothing.zarr")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    with pytest.raises(GtaInputError, match="not a feature store"):
        FeatureStore.open_or_create(tmp_path / "junk", ATTRS, **kw)


def test_sparse_stores_written_before_parts_still_read(tmp_path):
    """The earlier layout: one [n_changed, d] array per (gene, hap_key) with attrs bins, sample tables in the
    gene group's attrs."""
    store = make(tmp_path / "f.zarr", dtype="float32")
    ref = np.arange(24, dtype=np.float32).reshape(8, 3)
    store.write_ref("ENSG1", ref)
    grp = store._root.require_group("haps/0")
    grp.attrs.update({"gene_id": "ENSG1", "sample_keys": {"S1": ["ref", "k1"]}})
    arr = grp.create_array("k1", shape=(2, 3), chunks=(2, 3), dtype="float32", attributes={"bins": [2, 5]})
    arr[...] = -np.ones((2, 3), np.float32)
    arr.update_attributes({"done": True})
    old = FeatureStore.open(tmp_path / "f.zarr")
    want = ref.copy()
    want[[2, 5]] = -1
    assert old.sample_haps("ENSG1") == {"S1": ("ref", "k1")} and old.hap_keys("ENSG1") == ["k1", "ref"]
    np.testing.assert_array_equal(old.read_hap("ENSG1", "k1"), want)
    np.testing.assert_array_equal(old.read_haps("ENSG1", ["k1", "ref"]), np.stack([want, ref]))
    assert old.done_keys(["ENSG1"]) == {"ENSG1": {"k1", "ref"}}
