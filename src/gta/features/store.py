"""``FeatureStore``: per-bin encoder features of reference and personal haplotypes in one zarr (v3) folder.

Layout::

    features.zarr/
      zarr.json             attrs: format, gta_version, encoder, encoder_config, weights_hash, dataset_hash,
                            geometry, dtype, n_bins, n_features, feature_names, gene_ids, hap_storage
      ref       [genes, bins, d]   one gene per chunk, zstd; NaN until written
      ref_done  [genes] bool       one flag per chunk, written only after the gene's ref chunk
      haps/{g}/                    g = the gene's index in gene_ids; attrs: gene_id, sample_keys {sample: [k1, k2]}
      haps/{g}/{hap_key}           sparse (local encoders): [n_changed, d] with attrs bins = changed bin indices;
                                   full (global encoders): [bins, d]; attrs done = true once the data is written

Every item (a gene's reference, or one (gene, hap_key)) is written data first, then its done flag; the local zarr
store writes each file atomically (temporary file + rename), so a crash leaves an item either complete or not
flagged, and concurrent workers never write the same file. Sparse deltas hold exactly the bins whose stored value
(in the store dtype) differs from the stored reference, so ``read_hap`` returns the same array a full store would.

``dtype`` is float16 by default: motif scores (|x| < 64 bits), counts (<= bin size) and Enformer embeddings fit
its range, at 3 significant digits; pass ``float32`` for exact storage. Reads always return float32.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from gta.errors import GtaInputError
from gta.geometry import Geometry

FORMAT = 1
CHECKED = ("encoder", "encoder_config", "weights_hash", "dataset_hash", "geometry", "dtype")
REQUIRED = ("encoder", "encoder_config", "weights_hash", "dataset_hash", "geometry")


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
        return np.asarray(self._ref_done[: len(self.gene_ids)], dtype=bool)

    def has_ref(self, gene_id: str) -> bool:
        return bool(self._ref_done[self.gene_index(gene_id)])

    def read_ref(self, gene_id: str) -> np.ndarray:
        """float32 [bins, d]."""
        i = self.gene_index(gene_id)
        if not self._ref_done[i]:
            raise GtaInputError(f"gene {gene_id!r} has no reference features yet", self.path, hint="run gta extract")
        return np.asarray(self._ref[i], dtype=np.float32)

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
        name = f"haps/{self.gene_index(gene_id)}"
        try:
            return self._root[name]  # type: ignore[return-value]
        except KeyError:
            if not create:
                return None
            return self._root.require_group(name)

    def set_sample_haps(self, gene_id: str, sample_keys: dict[str, tuple[str, str]]) -> None:
        """Record (merge) which hap_keys each sample carries for a gene."""
        grp = self._gene_group(gene_id, create=True)
        assert grp is not None
        table = dict(grp.attrs.get("sample_keys", {}))
        table.update({s: [str(k[0]), str(k[1])] for s, k in sample_keys.items()})
        grp.attrs.update({"gene_id": gene_id, "sample_keys": table})
        self.__dict__.pop("samples", None)

    def sample_haps(self, gene_id: str) -> dict[str, tuple[str, str]]:
        grp = self._gene_group(gene_id)
        if grp is None:
            return {}
        return {s: (k[0], k[1]) for s, k in grp.attrs.get("sample_keys", {}).items()}

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

    def hap_done(self, gene_id: str, key: str) -> bool:
        if key == "ref":
            return self.has_ref(gene_id)
        arr = self._hap_array(gene_id, key)
        return bool(arr is not None and arr.attrs.get("done"))

    def hap_keys(self, gene_id: str) -> list[str]:
        """The distinct hap_keys the gene's samples carry that can be read now ("ref" included)."""
        keys = sorted({k for pair in self.sample_haps(gene_id).values() for k in pair})
        return [k for k in keys if self.hap_done(gene_id, k)]

    def write_hap(self, gene_id: str, key: str, features: np.ndarray, ref: np.ndarray | None = None) -> int:
        """Write one haplotype's features [bins, d]; sparse stores keep only bins that differ from the stored
        reference (``ref``: the reference to diff against when it is not stored yet). Returns bins stored."""
        if key == "ref":
            raise ValueError("write the reference with write_ref")
        self._check_shape(features)
        grp = self._gene_group(gene_id, create=True)
        assert grp is not None
        new = np.asarray(features).astype(self.dtype)
        if self.sparse:
            base = self.read_ref(gene_id) if ref is None else np.asarray(ref)
            base = base.astype(self.dtype)
            diff = (new != base) & ~(np.isnan(new) & np.isnan(base))
            bins = np.flatnonzero(diff.any(axis=1))
            data, attrs = new[bins], {"bins": [int(b) for b in bins], "done": False}
        else:
            data, attrs = new, {"done": False}
        arr = grp.create_array(
            key,
            shape=data.shape,
            chunks=(max(data.shape[0], 1), data.shape[1]),
            dtype=self.dtype,
            attributes=attrs,
            overwrite=True,
        )
        if data.size:
            arr[...] = data
        arr.update_attributes({"done": True})  # after the data
        return int(data.shape[0])

    def read_hap(self, gene_id: str, key: str) -> np.ndarray:
        """float32 [bins, d] of one haplotype ("ref" = the reference)."""
        if key == "ref":
            return self.read_ref(gene_id)
        arr = self._hap_array(gene_id, key)
        if arr is None or not arr.attrs.get("done"):
            raise GtaInputError(
                f"haplotype {key!r} of gene {gene_id!r} is not in the feature store",
                self.path,
                hint="run gta extract --individuals ... to add personal haplotypes",
            )
        if not self.sparse:
            return np.asarray(arr[...], dtype=np.float32)
        out = self.read_ref(gene_id)
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
