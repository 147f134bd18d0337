"""``FeatureStore``: per-bin encoder features of reference and personal haplotypes in one zarr (v3) folder.

Layout::

    features.zarr/
      zarr.json             attrs: format, gta_version, encoder, encoder_config, weights_hash, dataset_hash,
                            geometry, dtype, n_bins, n_features, feature_names, gene_ids, hap_storage
      ref       [genes, bins, d]   one gene per chunk, zstd; NaN until written
      ref_done  [genes] bool       one flag per chunk, written only after the gene's ref chunk
      haps/_part.{id}              sparse haplotypes (local encoders) of many genes: per gene, its distinct rows
                                   [n, d]; attrs genes, keys (per gene), counts (rows per key), values (distinct
                                   rows per gene), done. ``_part.{id}.rows`` [m, 2] int32: (bin, distinct row)
                                   of each key's changed bins, key by key, bins increasing. Written by
                                   ``PartWriter`` in large batches of genes; haplotypes sharing a changed bin
                                   value share its row
      haps/_samples.{id}           sample -> hap_key tables of many genes (JSON bytes; later arrays win)
      haps/{g}/{hap_key}           full (global encoders): [bins, d]; attrs done = true once the data is written
                                   (g = the gene's index in gene_ids). Stores written before parts hold sparse
                                   haplotypes here too ([n_changed, d], attrs bins) and the sample tables in
                                   haps/{g} attrs sample_keys; both are still read.

Every item (a gene's reference, a part, or one full (gene, hap_key)) is written data first, then its done flag;
the local zarr store writes each file atomically (temporary file + rename), so a crash leaves an item either
complete or not flagged, and concurrent workers never write the same file (part ids are random). Sparse deltas
hold exactly the bins whose stored value (in the store dtype) differs from the stored reference, so ``read_hap``
returns the same array a full store would; ``read_haps`` reads many keys of a gene with one read per part.

``dtype`` is float16 by default: motif scores (|x| < 64 bits), counts (<= bin size) and Enformer embeddings fit
its range, at 3 significant digits; pass ``float32`` for exact storage. Reads always return float32.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from gta.errors import GtaInputError
from gta.geometry import Geometry
from gta.io.alleles import REF_KEY

FORMAT = 1
CHECKED = ("encoder", "encoder_config", "weights_hash", "dataset_hash", "geometry", "dtype")
REQUIRED = ("encoder", "encoder_config", "weights_hash", "dataset_hash", "geometry")
PART = "_part."  # haps/ arrays of sparse haplotypes of many genes (hap_keys are hex digests)
SAMPLES = "_samples."  # haps/ arrays of sample -> hap_key tables of many genes (JSON bytes)
_FAST = (zarr.codecs.ZstdCodec(level=1),)  # parts and tables are large and written in batches: fast zstd


def _norm(value: Any) -> Any:
    """JSON round trip, so tuples/lists and int/float keys compare as zarr stores them."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _describe_diff(field: str, stored: Any, expected: Any) -> str:
    if isinstance(stored, dict) and isinstance(expected, dict):
        keys = sorted(k for k in set(stored) | set(expected) if stored.get(k) != expected.get(k))
        parts = [f"{field}.{k}: store has {stored.get(k)!r}, this run has {expected.get(k)!r}" for k in keys[:3]]
        return "; ".join(parts)
    return f"{field}: store has {stored!r}, this run has {expected!r}"


class FeatureStore:
    """Read (and, for ``gta.features.extract``, write) a features.zarr folder."""

    def __init__(self, path: str | Path, group: zarr.Group) -> None:
        self.path = Path(path)
        self._root = group
        self.attrs: dict[str, Any] = dict(group.attrs)
        if self.attrs.get("format") != FORMAT:
            raise GtaInputError(
                f"not a gta feature store (format {self.attrs.get('format')!r}, expected {FORMAT})", self.path
            )
        self.gene_ids: list[str] = list(self.attrs["gene_ids"])
        self._index = {g: i for i, g in enumerate(self.gene_ids)}
        self._ref = group["ref"]
        self._ref_done = group["ref_done"]
        self.dtype = np.dtype(self.attrs["dtype"])
        self.sparse = self.attrs.get("hap_storage") == "sparse"
        self._blocks: dict[str, list[tuple[str, int, int, int, list[str], list[int]]]] | None = None
        self._groups: set[str] | None = None
        self._gene_keys: dict[str, dict[str, tuple[str, int, int]]] = {}
        self._part_cache: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}

    # -- creation / opening --------------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        attrs: dict[str, Any],
        gene_ids: list[str],
        n_bins: int,
        n_features: int,
        dtype: str = "float16",
        feature_names: list[str] | None = None,
        hap_storage: str = "sparse",
    ) -> FeatureStore:
        """Create a store atomically (built in a temporary folder, then renamed); refuses an existing path."""
        path = Path(path)
        missing = [k for k in REQUIRED if k not in attrs]
        if missing:
            raise ValueError(f"FeatureStore attrs lack {missing}")
        if len(set(gene_ids)) != len(gene_ids):
            raise GtaInputError("duplicate gene ids; a feature store needs unique gene_id", path)
        if hap_storage not in ("sparse", "full"):
            raise ValueError(f"hap_storage must be sparse or full, got {hap_storage!r}")
        if path.exists():
            raise GtaInputError("feature store already exists", path, hint="open it, or pass another --out")
        from gta import __version__

        names = list(feature_names) if feature_names is not None else list(attrs.get("feature_names") or [])
        names = names or [f"f{i}" for i in range(n_features)]
        if len(names) != n_features:
            raise ValueError(f"{len(names)} feature names for {n_features} features")
        meta = {
            **_norm(attrs),
            "format": FORMAT,
            "gta_version": __version__,
            "dtype": np.dtype(dtype).name,
            "n_bins": int(n_bins),
            "n_features": int(n_features),
            "feature_names": names,
            "gene_ids": list(gene_ids),
            "hap_storage": hap_storage,
        }
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        G = max(len(gene_ids), 1)
        root.create_array(
            "ref", shape=(G, n_bins, n_features), chunks=(1, n_bins, n_features), dtype=dtype, fill_value=np.nan
        )
        root.create_array("ref_done", shape=(G,), chunks=(1,), dtype=bool, fill_value=False)
        root.create_group("haps")
        root.attrs.update(meta)
        try:
            os.rename(tmp, path)
        except OSError:  # another worker created it first
            shutil.rmtree(tmp, ignore_errors=True)
            if not path.exists():
                raise
        return cls.open(path, mode="r+")

    @classmethod
    def open(cls, path: str | Path, expect: dict[str, Any] | None = None, mode: str = "r") -> FeatureStore:
        """Open a store; with ``expect``, refuse any difference in encoder, its config, weights, data set,
        geometry or dtype (a GtaInputError naming the field and both values)."""
        path = Path(path)
        if not (path / "zarr.json").exists():
            raise GtaInputError("feature store not found", path, hint="run gta extract --data D --out PATH first")
        try:
            group = zarr.open_group(str(path), mode="r+" if mode != "r" else "r", zarr_format=3)
        except Exception as e:  # noqa: BLE001 - a broken folder is a user problem
            raise GtaInputError(f"cannot open feature store: {e}", path) from None
        store = cls(path, group)
        if expect:
            store.check(expect)
        return store

    @classmethod
    def open_or_create(cls, path: str | Path, attrs: dict[str, Any], **create_kw: Any) -> FeatureStore:
        """Open an existing store built with the same attrs, or create it (safe when workers race)."""
        path = Path(path)
        if not (path / "zarr.json").exists():
            if path.exists() and any(path.iterdir()):
                raise GtaInputError("the output folder exists but is not a feature store", path)
            if path.exists():
                path.rmdir()
            cls.create(path, attrs, **create_kw)
        expect = {**attrs, "dtype": np.dtype(create_kw.get("dtype", "float16")).name}
        store = cls.open(path, expect=expect, mode="r+")
        if store.gene_ids != list(create_kw.get("gene_ids", store.gene_ids)):
            raise GtaInputError(
                "the feature store was built for another gene list", path, hint="use another --out for this data set"
            )
        return store

    def check(self, expect: dict[str, Any]) -> None:
        for field in CHECKED:
            if field not in expect:
                continue
            stored, wanted = self.attrs.get(field), _norm(expect[field])
            if field == "dtype":
                wanted = np.dtype(wanted).name
            if stored != wanted:
                raise GtaInputError(
                    f"feature store mismatch in {_describe_diff(field, stored, wanted)}",
                    self.path,
                    hint="extract into another --out, or delete this store to rebuild it",
                )

    # -- metadata ------------------------------------------------------------------------------------------------
    @property
    def geometry(self) -> Geometry:
        return Geometry.from_dict(self.attrs["geometry"])

    @property
    def n_bins(self) -> int:
        return int(self.attrs["n_bins"])

    @property
    def n_features(self) -> int:
        return int(self.attrs["n_features"])

    @property
    def feature_names(self) -> list[str]:
        return list(self.attrs["feature_names"])

    def gene_index(self, gene_id: str) -> int:
        try:
            return self._index[gene_id]
        except KeyError:
            raise GtaInputError(f"gene {gene_id!r} is not in the feature store", self.path) from None

    # -- reference -----------------------------------------------------------------------------------------------
    def ref_done_mask(self) -> np.ndarray:
        with self._readable():
            return np.asarray(self._ref_done[: len(self.gene_ids)], dtype=bool)

    def has_ref(self, gene_id: str) -> bool:
        i = self.gene_index(gene_id)
        with self._readable(gene_id):
            return bool(self._ref_done[i])

    def read_ref(self, gene_id: str, finite: bool = True) -> np.ndarray:
        """float32 [bins, d]. The array's fill value is NaN, so a chunk file that is gone (deleted, or a copy cut
        short) under a gene marked done reads as NaN: that, or NaN an encoder wrote, is an error, not features
        (``finite=False``: as stored, for the writers' diffs)."""
        i = self.gene_index(gene_id)
        with self._readable(gene_id):
            if not self._ref_done[i]:
                raise GtaInputError(f"gene {gene_id!r} has no reference features yet", self.path,
                                    hint="run gta extract")
            out = np.asarray(self._ref[i], dtype=np.float32)
        if finite and np.isnan(out).any():
            raise GtaInputError(f"the reference features of gene {gene_id!r} hold NaN: missing from the store (a "
                                "chunk file deleted, or a copy cut short) or written so by the encoder", self.path,
                                hint="copy the store again, or extract into a new folder")
        return out

    @contextlib.contextmanager
    def _readable(self, gene_id: str | None = None):
        """Reads of the store's chunks: one that does not decode (truncated, overwritten) is a GtaInputError naming
        the store (and the gene), not a codec's traceback."""
        try:
            yield
        except (RuntimeError, ValueError) as e:
            of = f" of gene {gene_id!r}" if gene_id is not None else ""
            raise GtaInputError(f"damaged chunk{of} ({e})", self.path,
                                hint="copy the store again, or extract into a new folder") from None

    def read_refs(self, gene_ids: list[str]) -> np.ndarray:
        """float32 [G, bins, d]."""
        if not gene_ids:
            return np.zeros((0, self.n_bins, self.n_features), dtype=np.float32)
        return np.stack([self.read_ref(g) for g in gene_ids])

    def write_ref(self, gene_id: str, features: np.ndarray) -> None:
        i = self.gene_index(gene_id)
        self._check_shape(features)
        self._ref[i] = np.asarray(features).astype(self.dtype)
        self._ref_done[i] = True  # after the data: the flag never points at a half-written chunk

    # -- personal haplotypes -----------------------------------------------------------------------------------
    def _gene_group(self, gene_id: str, create: bool = False) -> zarr.Group | None:
        """haps/{g}: full haplotypes, and sparse ones and sample tables of stores written before parts."""
        i = str(self.gene_index(gene_id))
        if self._groups is None:  # listed once: most genes of a store written with parts have no group
            self._groups = set(self._root["haps"].group_keys())
        if i not in self._groups:
            if not create:
                return None
            self._groups.add(i)
            return self._root.require_group(f"haps/{i}")
        return self._root[f"haps/{i}"]  # type: ignore[return-value]

    def _haps_group(self) -> zarr.Group:
        return self._root["haps"]  # type: ignore[return-value]

    def set_sample_haps(self, gene_id: str, sample_keys: dict[str, tuple[str, str]]) -> None:
        """Record (merge) which hap_keys each sample carries for a gene."""
        self.set_sample_haps_many({gene_id: sample_keys})

    def set_sample_haps_many(self, tables: dict[str, dict[str, tuple[str, str]]]) -> None:
        """Record (merge) the sample -> hap_key tables of many genes in one write (a ``_samples.*`` array)."""
        for g in tables:
            self.gene_index(g)
        plain = all(type(k) is tuple and len(k) == 2 and type(k[0]) is str and type(k[1]) is str
                    for t in tables.values() for k in t.values())  # as extract passes them: json writes them as is
        payload = tables if plain else {g: {s: (str(k[0]), str(k[1])) for s, k in t.items()}
                                        for g, t in tables.items()}
        raw = np.frombuffer(json.dumps(payload, separators=(",", ":")).encode(), dtype=np.uint8)
        name = f"{SAMPLES}{time.time_ns():020d}.{uuid.uuid4().hex[:8]}"  # names sort in write order
        arr = self._haps_group().create_array(name, shape=raw.shape, chunks=(max(len(raw), 1),), dtype="uint8",
                                              attributes={"done": False}, compressors=_FAST)
        if len(raw):
            arr[...] = raw
        arr.update_attributes({"done": True})
        self.__dict__.pop("samples", None)
        loaded = self.__dict__.get("_sample_tables")
        if loaded is not None:  # merged into the tables already read, not read back (json of every gene again)
            for g, t in payload.items():
                loaded.setdefault(g, {}).update({s: (k[0], k[1]) for s, k in t.items()})

    @functools.cached_property
    def _sample_tables(self) -> dict[str, dict[str, tuple[str, str]]]:
        """gene_id -> sample -> keys, from every ``_samples.*`` array in write order."""
        out: dict[str, dict[str, tuple[str, str]]] = {}
        haps = self._root["haps"]
        for name in sorted(n for n in haps.array_keys() if n.startswith(SAMPLES)):
            arr = haps[name]
            if not arr.attrs.get("done"):
                continue
            with self._readable():
                table = json.loads(np.asarray(arr[...]).tobytes() or b"{}")
            for g, t in table.items():
                out.setdefault(g, {}).update({s: (k[0], k[1]) for s, k in t.items()})
        return out

    def sample_haps(self, gene_id: str) -> dict[str, tuple[str, str]]:
        grp = self._gene_group(gene_id)  # stores written before _samples arrays keep tables here
        old = {} if grp is None else {s: (k[0], k[1]) for s, k in grp.attrs.get("sample_keys", {}).items()}
        return {**old, **self._sample_tables.get(gene_id, {})}

    @functools.cached_property
    def samples(self) -> list[str]:
        """Every sample with haplotypes recorded for at least one gene, in first-seen order."""
        seen: dict[str, None] = {}
        for g in self.gene_ids:
            for s in self.sample_haps(g):
                seen.setdefault(s, None)
        return list(seen)

    def _hap_array(self, gene_id: str, key: str) -> zarr.Array | None:
        grp = self._gene_group(gene_id)
        if grp is None:
            return None
        try:
            return grp[key]  # type: ignore[return-value]
        except KeyError:
            return None

    def _part_blocks(self, refresh: bool = False) -> dict[str, list[tuple[str, int, int, int, list[str], list[int]]]]:
        """gene_id -> its blocks in finished parts: (part, first value, values, first row, keys, rows per key)."""
        if self._blocks is not None and not refresh:
            return self._blocks
        blocks: dict[str, list[tuple[str, int, int, int, list[str], list[int]]]] = {}
        haps = self._root["haps"] if self.sparse else None
        names = sorted(n for n in haps.array_keys() if n.startswith(PART) and not n.endswith(".rows")) if haps else []
        for name in names:
            attrs = haps[name].attrs  # type: ignore[index]
            if not attrs.get("done"):
                continue
            v0 = r0 = 0
            for g, keys, counts, nv in zip(attrs["genes"], attrs["keys"], attrs["counts"], attrs["values"],
                                           strict=True):
                blocks.setdefault(g, []).append((name, v0, int(nv), r0, list(keys), [int(c) for c in counts]))
                v0, r0 = v0 + int(nv), r0 + sum(int(c) for c in counts)
        self._blocks = blocks
        self._gene_keys.clear()
        return blocks

    def _parts(self, gene_id: str, refresh: bool = False) -> dict[str, tuple[str, int, int]]:
        """key -> (part name, first row within the gene's block, rows) of a gene's haplotypes in parts."""
        if refresh or gene_id not in self._gene_keys:
            index: dict[str, tuple[str, int, int]] = {}
            for name, _, _, _, keys, counts in self._part_blocks(refresh).get(gene_id, []):
                first = 0
                for key, n in zip(keys, counts, strict=True):
                    index[key] = (name, first, n)
                    first += n
            self._gene_keys[gene_id] = index
        return self._gene_keys[gene_id]

    def _gene_block(self, gene_id: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(rows int64 [m, 2] of (bin, value), distinct values float32 [n, d]) of a gene in a part (cached)."""
        hit = self._part_cache.get((gene_id, name))
        if hit is None:
            v0, nv, r0, nr = next((v, n, r, sum(c)) for p, v, n, r, _, c in self._part_blocks()[gene_id] if p == name)
            haps = self._root["haps"]
            with self._readable(gene_id):
                hit = (np.asarray(haps[name + ".rows"][r0 : r0 + nr], dtype=np.int64),
                       np.asarray(haps[name][v0 : v0 + nv], dtype=np.float32))
            self._part_cache[(gene_id, name)] = hit
            while len(self._part_cache) > 64:
                self._part_cache.pop(next(iter(self._part_cache)))
        return hit

    def hap_done(self, gene_id: str, key: str) -> bool:
        if key == REF_KEY:
            return self.has_ref(gene_id)
        if key in self._parts(gene_id):
            return True
        arr = self._hap_array(gene_id, key)
        return bool(arr is not None and arr.attrs.get("done"))

    def done_keys(self, gene_ids: list[str]) -> dict[str, set[str]]:
        """Per gene, the hap_keys that can be read now (``REF_KEY`` included once the reference is written)."""
        self._part_blocks(refresh=True)
        self._groups = None
        refs = self.ref_done_mask()
        out = {}
        for g in gene_ids:
            keys = set(self._parts(g))
            grp = self._gene_group(g)
            if grp is not None:  # full haplotypes (and sparse ones of stores written before parts)
                keys |= {n for n in grp.array_keys() if grp[n].attrs.get("done")}
            out[g] = keys | ({REF_KEY} if refs[self.gene_index(g)] else set())
        return out

    def hap_keys(self, gene_id: str) -> list[str]:
        """The distinct hap_keys the gene's samples carry that can be read now (``REF_KEY`` included)."""
        keys = sorted({k for pair in self.sample_haps(gene_id).values() for k in pair})
        return [k for k in keys if self.hap_done(gene_id, k)]

    def write_hap(self, gene_id: str, key: str, features: np.ndarray, ref: np.ndarray | None = None) -> int:
        """Write one haplotype's features [bins, d]; sparse stores keep only bins that differ from the stored
        reference (``ref``: the reference to diff against when it is not stored yet). Returns bins stored."""
        if key == REF_KEY:
            raise ValueError("write the reference with write_ref")
        self._check_shape(features)
        if self.sparse:
            every = np.arange(self.n_bins)
            return self.write_haps(gene_id, [key], every, np.array([0, self.n_bins]), np.asarray(features), every,
                                   ref=ref)
        grp = self._gene_group(gene_id, create=True)
        assert grp is not None
        data = np.asarray(features).astype(self.dtype)
        arr = grp.create_array(key, shape=data.shape, chunks=data.shape, dtype=self.dtype,
                               attributes={"done": False}, overwrite=True)
        arr[...] = data
        arr.update_attributes({"done": True})  # after the data
        return int(data.shape[0])

    def write_haps(self, gene_id: str, keys: list[str], rows: np.ndarray, offsets: np.ndarray, values: np.ndarray,
                   value_bins: np.ndarray, ref: np.ndarray | None = None) -> int:
        """Write many haplotypes of one gene as one part (sparse stores); see :class:`PartWriter`."""
        writer = PartWriter(self)
        n = writer.add(gene_id, keys, rows, offsets, values, value_bins, ref)
        writer.flush()
        return n

    def read_hap(self, gene_id: str, key: str) -> np.ndarray:
        """float32 [bins, d] of one haplotype (``REF_KEY`` = the reference)."""
        return self.read_haps(gene_id, [key])[0]

    def read_haps(self, gene_id: str, keys: list[str]) -> np.ndarray:
        """float32 [len(keys), bins, d] of haplotypes of one gene (``REF_KEY`` = the reference), one read per part."""
        out = np.empty((len(keys), self.n_bins, self.n_features), dtype=np.float32)
        if not keys:
            return out
        ref = self.read_ref(gene_id) if self.sparse or REF_KEY in keys else None
        parts = self._parts(gene_id)
        if any(k not in parts and k != REF_KEY for k in keys):
            parts = self._parts(gene_id, refresh=True)
        for i, key in enumerate(keys):
            if key == REF_KEY:
                out[i] = ref
            elif key in parts:
                name, first, n = parts[key]
                rows, values = self._gene_block(gene_id, name)
                out[i] = ref
                r = rows[first : first + n]
                out[i, r[:, 0]] = values[r[:, 1]]
            else:
                out[i] = self._read_single(gene_id, key, ref)
        return out

    def _read_single(self, gene_id: str, key: str, ref: np.ndarray | None) -> np.ndarray:
        """One (gene, key) array: a full haplotype, or a sparse delta of a store written before parts."""
        arr = self._hap_array(gene_id, key)
        if arr is None or not arr.attrs.get("done"):
            raise GtaInputError(
                f"haplotype {key!r} of gene {gene_id!r} is not in the feature store",
                self.path,
                hint="run gta extract --samples ... to add personal haplotypes",
            )
        with self._readable(gene_id):
            if not self.sparse:
                return np.asarray(arr[...], dtype=np.float32)
            out = np.array(ref, dtype=np.float32, copy=True)
            bins = np.asarray(arr.attrs["bins"], dtype=np.int64)
            if len(bins):
                out[bins] = np.asarray(arr[...], dtype=np.float32)
            return out

    def _check_shape(self, features: np.ndarray) -> None:
        if features.shape != (self.n_bins, self.n_features):
            raise ValueError(f"features of shape {features.shape}, store holds ({self.n_bins}, {self.n_features})")

    def __repr__(self) -> str:
        done = int(self.ref_done_mask().sum())
        return (
            f"FeatureStore({self.path}, encoder={self.attrs['encoder']}, genes={done}/{len(self.gene_ids)}, "
            f"bins={self.n_bins}, d={self.n_features}, dtype={self.dtype.name})"
        )


class PartWriter:
    """Collects sparse haplotypes of many genes and writes them as one part of ``haps/`` (two arrays: the genes'
    distinct rows, and (bin, row) per changed bin of each key) once ``max_rows`` rows are waiting, and on
    :meth:`flush`. A part is flagged done after its data, so an interrupted run loses at most the genes still
    waiting, which a rerun recomputes."""

    def __init__(self, store: FeatureStore, max_rows: int = 1 << 22, chunk_rows: int = 1 << 16) -> None:
        if not store.sparse:
            raise ValueError("parts hold sparse haplotypes; write full ones with write_hap")
        self.store, self.max_rows, self.chunk_rows = store, int(max_rows), int(chunk_rows)
        self._reset()

    def _reset(self) -> None:
        self._items: list[tuple[str, list[str], list[int], np.ndarray, np.ndarray]] = []  # one append per gene
        self._genes: set[str] = set()  # the genes of _items
        self._waiting = 0

    def add(self, gene_id: str, keys: list[str], rows: np.ndarray, offsets: np.ndarray, values: np.ndarray,
            value_bins: np.ndarray, ref: np.ndarray | None = None) -> int:
        """Queue one gene's haplotypes. ``values`` [n, d]: candidate rows, row i belonging to bin
        ``value_bins[i]``; ``keys[j]`` owns ``rows[offsets[j]:offsets[j + 1]]``, in increasing bin order; bins a
        key has no row for equal the reference. Rows equal to the stored reference (in the store dtype) are
        dropped. ``ref``: the reference to diff against when it is not stored yet. Returns the bins kept."""
        st = self.store
        if REF_KEY in keys:
            raise ValueError("write the reference with write_ref")
        st.gene_index(gene_id)
        if gene_id in self._genes:  # a part holds one block per gene
            self.flush()
        from gta.features._part_kernels import FLOAT_BITS, changed_rows, kept_rows

        value_bins = np.asarray(value_bins, dtype=np.int64)
        base = (st.read_ref(gene_id, finite=False) if ref is None else np.asarray(ref)).astype(st.dtype)
        new = np.asarray(values).astype(st.dtype)
        bits = FLOAT_BITS.get(st.dtype)
        if bits is not None:  # compared as the floats' bits, NaN == NaN (changed_rows)
            view, mag, inf = bits
            differs = changed_rows(new.view(view), base.view(view), value_bins, mag, inf)
        else:
            old = base[value_bins]
            ne = new != old
            nan = np.isnan(new)
            if nan.any():  # NaN in both: the same stored value
                ne &= ~(nan & np.isnan(old))
            differs = ne.any(axis=1)
        rows, offsets = np.asarray(rows, dtype=np.int64), np.asarray(offsets, dtype=np.int64)
        counts, used, rowtab = kept_rows(rows, offsets, differs, value_bins)
        self._items.append((gene_id, list(keys), counts.tolist(), new[used], rowtab))
        self._genes.add(gene_id)
        self._waiting += len(rowtab)
        if self._waiting >= self.max_rows:
            self.flush()
        return int(len(rowtab))

    def flush(self) -> None:
        """Write the waiting genes as one part (nothing when none wait)."""
        if not self._items:
            return
        st = self.store
        genes, keys, counts, vals, rowtabs = zip(*self._items, strict=True)
        values, rows = np.concatenate(vals), np.concatenate(rowtabs)
        haps = st._haps_group()
        name = f"{PART}{uuid.uuid4().hex[:12]}"
        attrs = {"genes": list(genes), "keys": list(keys), "counts": list(counts), "values": [len(v) for v in vals],
                 "done": True}
        arr = haps.create_array(name, shape=values.shape, chunks=(max(min(len(values), self.chunk_rows), 1),
                                                                   st.n_features),
                                dtype=st.dtype, attributes={"done": False}, compressors=_FAST)
        rarr = haps.create_array(name + ".rows", shape=rows.shape, chunks=(max(min(len(rows), self.chunk_rows), 1), 2),
                                 dtype="int32", compressors=_FAST)
        if len(values):
            arr[...] = values
        if len(rows):
            rarr[...] = rows
        arr.update_attributes(attrs)  # after the data, with done (the large key lists are written once)
        st._blocks = None
        self._reset()
