"""``extract``: encode every gene window (and personal haplotypes) of a data set into a ``FeatureStore``.

Items, in one fixed order that every worker computes identically: for each selected gene (data set order), its
reference, then each distinct non-reference hap_key its samples carry (sorted). Worker ``k`` of ``N`` takes the
items with ``i % N == k`` (``RANK``/``WORLD_SIZE`` are read when ``worker``/``n_workers`` are not given, so
``torchrun`` works), so the union of all workers equals one worker's run. An item already flagged done in the store
is skipped, which makes an interrupted run (Ctrl-C, kill -9) resume where it stopped; an item cut off mid-write has
no done flag and is recomputed. The sample -> hap_key table of a gene is written by the worker owning its reference.

Local encoders (``receptive_field_bp`` an int) store sparse deltas: the motif encoder (numba backend) computes a
gene's haplotypes from their edits (:mod:`gta.encoders.motif_edits`: no haplotype window is built; each distinct
shifted or edited bin is scanned once per gene), other local encoders recompute each haplotype's full window
within reach of its changed spans. A worker's sparse haplotypes of many genes go to the store in one part
(``PartWriter``), so an interrupted run recomputes at most the genes not yet written. Global encoders recompute
and store each haplotype in full. Identical haplotypes (one hap_key) are encoded once per gene, however many
samples carry them.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gta.encoders import get_encoder
from gta.errors import GtaInputError
from gta.features.store import FeatureStore, PartWriter
from gta.io.alleles import REF_KEY
from gta.memory import peak_rss_mb


@dataclass
class ExtractSummary:
    out: str
    encoder: str
    worker: int
    n_workers: int
    items_total: int = 0  # all workers
    items_mine: int = 0
    computed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    genes: int = 0
    samples: int = 0
    unique_haplotypes: int = 0
    bins_stored: int = 0  # personal bins written (sparse stores: changed bins only)
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0
    interrupted: bool = False
    variant_skips: str | None = None  # what the haplotype policy dropped, in words (None: no VCF was read)

    def __str__(self) -> str:
        skipped = ", ".join(f"{v} {k}" for k, v in self.skipped.items() if v and not k.startswith("variants: "))
        state = "INTERRUPTED (rerun the same command to resume)" if self.interrupted else "done"
        return (
            f"extract {state}: {self.computed} items encoded by worker {self.worker}/{self.n_workers} "
            f"({self.items_mine} of {self.items_total} items; {self.genes} genes, {self.samples} samples, "
            f"{self.unique_haplotypes} unique personal haplotypes); skipped: {skipped or 'none'}; "
            + (f"variants: {self.variant_skips or 'nothing dropped'}; " if self.variant_skips is not None else "")
            + f"{self.wall_s:.1f} s, peak memory {self.peak_rss_mb:.0f} MB -> {self.out}"
        )


def _worker_env(worker: int | None, n_workers: int | None) -> tuple[int, int]:
    if n_workers is None:
        n_workers = int(os.environ.get("WORLD_SIZE", "1"))
    if worker is None:
        worker = int(os.environ.get("RANK", "0"))
    if n_workers < 1 or not 0 <= worker < n_workers:
        raise GtaInputError(f"worker {worker} of {n_workers} is not valid", hint="0 <= --worker < --workers")
    return worker, n_workers


def _parse_individuals(individuals: str | Sequence[str] | None) -> list[str] | None | bool:
    """False = no personal haplotypes; None = all samples; a list = those samples."""
    if individuals is None:
        return False
    if isinstance(individuals, str):
        text = individuals.strip()
        if text.lower() in ("", "none"):
            return False
        if text.lower() == "all":
            return None
        p = Path(text)
        if p.is_file():
            return [ln.strip() for ln in p.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        return [s.strip() for s in text.split(",") if s.strip()]
    return list(individuals)


def _default_haplotypes(dataset: Any, geometry: Any, samples: list[str] | None) -> Callable[[Any], Any]:
    from gta.io.haplotypes import gene_haplotypes
    from gta.io.variants import VariantReader

    path = getattr(dataset, "variants_path", None)
    if path is None:
        raise GtaInputError(
            "personal haplotypes were asked for, but the manifest names no 'variants' file",
            getattr(getattr(dataset, "manifest", None), "path", None),
            hint="add variants: FILE.vcf.gz to the manifest, or drop -s/--samples",
        )
    reader = VariantReader(path, dataset.genome, getattr(dataset, "variant_policy", None))
    if samples is not None:  # checked now, before a store is created
        known = set(reader.header_samples)
        missing = [s for s in samples if s not in known]
        if missing:
            import difflib

            close = difflib.get_close_matches(missing[0], reader.header_samples, n=3)
            raise GtaInputError(
                f"sample {missing[0]!r} is not in the VCF ({len(missing)} of {len(samples)} asked for are not; "
                f"it has {len(known)} samples)", path,
                hint=f"did you mean {', '.join(close)}?" if close else "check -s/--samples or -S/--samples-file",
            )
    reader.check_phasing()  # an unphased VCF is refused before any progress bar starts

    def source(gene: Any) -> Any:
        return gene_haplotypes(reader, gene, geometry, samples=samples)

    source.reader = reader  # type: ignore[attr-defined]  # its counts go into the summary
    return source


def _gc_frozen(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``fn`` with the objects alive at its start moved out of the cyclic collector's reach (``gc.freeze``),
    undone at its end: planning keeps many haplotype objects alive, and each full collection they trigger would
    otherwise rescan every object of the process (numba's included), about 0.15 s each on the bench preset.
    Nested calls leave an outer freeze alone."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        if gc.get_freeze_count():
            return fn(*args, **kwargs)
        gc.freeze()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.unfreeze()

    return run


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic collection inside, and what it leaves alive frozen too (under :func:`_gc_frozen`, undone with
    it): planning only adds long-lived, acyclic objects (haplotype tables), so the collections it would trigger
    (several full ones on the bench preset, about 0.1 s in all) and those that would later walk its objects find
    nothing to free. The collector's state before is restored."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count():
            gc.freeze()
        if was:
            gc.enable()


@_gc_frozen
def extract(
    data: str | Path | Any,
    encoder: str | Any = "motif",
    weights: str | Path | None = None,
    out: str | Path = "features.zarr",
    individuals: str | Sequence[str] | None = "none",
    worker: int | None = None,
    n_workers: int | None = None,
    batch_size: int = 4,
    genes: Sequence[str] | None = None,
    gene_type: str | Sequence[str] | None = None,
    dtype: str = "float16",
    encoder_options: dict[str, Any] | None = None,
    haplotypes: Callable[[Any], Any] | None = None,
    progress: bool = True,
) -> ExtractSummary:
    """Encode a data set's gene windows (and personal haplotypes) into ``out``; resumable and shardable.

    ``data``: a manifest path (or an opened Dataset). ``encoder``: a registered name or an encoder instance.
    ``individuals``: "none", "all", a comma-separated list, a file with one sample per line, or a list.
    ``gene_type``: encode only genes of these types ("protein_coding", a comma-separated string or a list; "all" or
    None, the default here, keeps every gene; ``gta extract`` defaults to protein_coding unless --genes names the
    genes; an annotation without gene types keeps every gene); the genes it leaves out are counted in the summary.
    Like ``genes`` it selects what is encoded: the store lists every gene of the data set, so a later run with
    another selection fills in the same store.

    Everything the command line names (genes, samples, ``out``) is checked before the store is created, so a bad
    value leaves no store behind; a store this call created is removed again when planning fails before anything
    was encoded (a store that existed before is never removed).
    ``haplotypes``: optional ``gene -> GeneHaplotypes`` source (default: the manifest's VCF via gta.io.haplotypes,
    read with the manifest's ``variant_policy``).
    """
    t0 = time.perf_counter()
    dataset = _open_dataset(data)
    geometry = dataset.manifest.geometry
    enc = _resolve_encoder(encoder, geometry, weights, encoder_options)
    worker, n_workers = _worker_env(worker, n_workers)
    out = _check_out(out)
    all_genes, selected, type_skipped = _select_genes(dataset, genes, gene_type)
    hap_source = _haplotype_source(dataset, geometry, individuals, haplotypes)
    existed = (out / "zarr.json").exists()
    store = _open_store(out, dataset, enc, all_genes, dtype)
    summary = ExtractSummary(out=str(out), encoder=enc.name, worker=worker, n_workers=n_workers)
    summary.skipped.update(type_skipped)
    summary.genes = len(selected)
    items, gene_haps, samples = _plan_or_remove(selected, hap_source, store, summary, worker, n_workers, progress,
                                                out, existed)
    _record_variant_skips(summary, hap_source)
    summary.samples = len(samples)
    todo = _my_todo(items, store, summary, worker, n_workers)
    bar = _bar(len(todo), f"extract {enc.name} (worker {worker}/{n_workers})", progress)
    writer = _Writer(dataset, enc, store, gene_haps, summary, bar)
    try:
        if writer.local:
            writer.encode_local(todo, batch_size)
        else:
            writer.encode_batches(todo, batch_size)
    except KeyboardInterrupt:
        summary.interrupted = True
        raise
    finally:
        writer.close()
        _finish(summary, t0, progress)
    return summary


def _open_dataset(data: str | Path | Any) -> Any:
    """A manifest path opened as a Dataset; an already opened Dataset as it is."""
    if isinstance(data, str | Path):
        from gta.io.dataset import open_dataset

        return open_dataset(data)
    return data


def _resolve_encoder(encoder: str | Any, geometry: Any, weights: str | Path | None,
                     encoder_options: dict[str, Any] | None) -> Any:
    """The encoder a registered name (with ``weights`` and options) names, or an instance checked for geometry."""
    if isinstance(encoder, str):
        opts = dict(encoder_options or {})
        if weights is not None:
            opts["weights"] = weights
        return get_encoder(encoder, geometry=geometry, **opts)
    if encoder.geometry != geometry:
        raise GtaInputError(f"encoder geometry {encoder.geometry} differs from the data set's {geometry}")
    return encoder


def _check_out(out: str | Path) -> Path:
    """``out`` as a Path, refused when it names a file rather than a (new or existing) store folder."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GtaInputError("--out names a file, not a feature store folder", out,
                            hint="pass a new folder name (e.g. features.zarr), or an existing store to resume")
    return out


def _select_genes(dataset: Any, genes: Sequence[str] | None,
                  gene_type: str | Sequence[str] | None) -> tuple[list[Any], list[Any], dict[str, int]]:
    """(every gene of the data set, the genes to encode, genes left out by type): ``--genes`` must pass
    ``--gene-type``, and some gene must."""
    all_genes = list(dataset.genes)
    type_skipped: dict[str, int] = {}
    typed = filter_gene_types(all_genes, gene_type, type_skipped)
    if not typed:
        raise GtaInputError(f"no gene passes --gene-type {_types_text(gene_type)}",
                            getattr(dataset.manifest, "genes", None),
                            hint="use --gene-type all, or the types the annotation has")
    kept = {g.gene_id for g in typed}
    selected = typed if genes is None else [dataset.gene(q) for q in genes]
    dropped = [g for g in selected if g.gene_id not in kept]
    if dropped:
        raise GtaInputError(f"--genes {dropped[0].symbol} is a {dropped[0].gene_type or 'untyped'} gene, which "
                            f"--gene-type {_types_text(gene_type)} leaves out",
                            hint="add --gene-type all (or its type) to encode it")
    return all_genes, selected, type_skipped


def _haplotype_source(dataset: Any, geometry: Any, individuals: str | Sequence[str] | None,
                      haplotypes: Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
    """The ``gene -> GeneHaplotypes`` source of the asked-for individuals; None when none are asked for."""
    wanted = _parse_individuals(individuals)
    if wanted is False:
        return None
    return haplotypes or _default_haplotypes(dataset, geometry, wanted)


def _open_store(out: Path, dataset: Any, enc: Any, all_genes: list[Any], dtype: str) -> FeatureStore:
    """The store at ``out`` for this encoder and data set, created (listing every gene) when it does not exist."""
    geometry = dataset.manifest.geometry
    attrs = {
        "encoder": enc.name,
        "encoder_config": enc.config,
        "weights_hash": enc.weights_hash(),
        "dataset_hash": dataset.fingerprint(),
        "geometry": geometry.to_dict(),
    }
    return FeatureStore.open_or_create(
        out,
        attrs,
        gene_ids=[g.gene_id for g in all_genes],
        n_bins=geometry.output_bins,
        n_features=enc.n_features,
        dtype=dtype,
        feature_names=enc.feature_names,
        hap_storage="sparse" if enc.receptive_field_bp is not None else "full",
    )


def _plan_or_remove(selected: list[Any], hap_source: Callable[[Any], Any] | None, store: FeatureStore,
                    summary: ExtractSummary, worker: int, n_workers: int, progress: bool, out: Path,
                    existed: bool) -> tuple[list[tuple[Any, str]], dict[str, Any], set[str]]:
    """:func:`_plan`; a store this call created is removed again when planning fails or is interrupted before
    any reference of the selected genes was written."""
    try:
        with _gc_paused():
            return _plan(selected, hap_source, store, summary, worker, n_workers, progress)
    except (GtaInputError, KeyboardInterrupt):
        if not existed and not any(store.has_ref(g.gene_id) for g in selected):
            _remove_new_store(out)
        raise


def _record_variant_skips(summary: ExtractSummary, hap_source: Callable[[Any], Any] | None) -> None:
    """What the haplotype policy dropped, in the VCF's records of the selected genes, into the summary."""
    reader = getattr(hap_source, "reader", None)
    if reader is None:
        return
    from gta.io.variants import describe_skips

    counts = {k: v for k, v in reader.stats.items() if k != "contig_absent" and v}
    summary.variant_skips = describe_skips(counts, reader.policy)
    summary.skipped.update({f"variants: {k}": v for k, v in counts.items()})


def _my_todo(items: list[tuple[Any, str]], store: FeatureStore, summary: ExtractSummary, worker: int,
             n_workers: int) -> list[tuple[Any, str]]:
    """This worker's share of the items (``i % n_workers == worker``), less those already done in the store."""
    summary.items_total = len(items)
    mine = [it for i, it in enumerate(items) if i % n_workers == worker]
    summary.items_mine = len(mine)
    done = store.done_keys(list({it[0].gene_id: None for it in mine}))
    todo = [it for it in mine if it[1] not in done[it[0].gene_id]]
    summary.skipped["already in store"] = len(mine) - len(todo)
    return todo


class _Writer:
    """Encodes items and writes them into the store, counting them in the summary and on the progress bar."""

    def __init__(self, dataset: Any, enc: Any, store: FeatureStore, gene_haps: dict[str, Any],
                 summary: ExtractSummary, bar: Any) -> None:
        self.dataset, self.enc, self.store, self.gene_haps = dataset, enc, store, gene_haps
        self.summary, self.bar = summary, bar
        self.geometry = dataset.manifest.geometry
        self.local = enc.receptive_field_bp is not None
        self.ref_cache: dict[str, np.ndarray] = {}
        self.parts: PartWriter | None = None
        self.edits: Any = None

    def window(self, gene: Any, key: str) -> str:
        """The sequence of a gene's reference window or of one of its personal haplotypes."""
        if key == REF_KEY:
            return self.dataset.genome.gene_window(gene, self.geometry)
        return self.gene_haps[gene.gene_id].sequence(key)

    def write(self, gene: Any, key: str, feats: np.ndarray, ref: np.ndarray | None = None) -> None:
        """One item's features into the store."""
        if key == REF_KEY:
            self.store.write_ref(gene.gene_id, feats)
        else:
            self.summary.bins_stored += self.store.write_hap(gene.gene_id, key, feats, ref=ref)
        self.summary.computed += 1
        self.bar.update(1)

    def reference(self, gene: Any) -> np.ndarray:
        """A gene's reference features, read from the store or encoded (the last gene's are kept)."""
        gid = gene.gene_id
        if gid not in self.ref_cache:
            self.ref_cache.clear()  # items come gene by gene: keep one
            if self.store.has_ref(gid):
                self.ref_cache[gid] = self.store.read_ref(gid)
            else:
                self.ref_cache[gid] = self.enc.encode([self.window(gene, REF_KEY)])[0]
        return self.ref_cache[gid]

    def encode_batches(self, items: list[tuple[Any, str]], batch_size: int) -> None:
        """Encode full windows ``batch_size`` at a time and write each."""
        for s in range(0, len(items), batch_size):
            batch = items[s : s + batch_size]
            feats = self.enc.encode([self.window(g, k) for g, k in batch])
            for (g, k), f in zip(batch, feats, strict=True):
                self.write(g, k, f)

    def encode_local(self, todo: list[tuple[Any, str]], batch_size: int) -> None:
        """A local encoder's items: genes with only a reference in batches, the others gene by gene as deltas."""
        from gta.encoders.motif_edits import MotifEdits, supports

        self.edits = MotifEdits(self.enc) if supports(self.enc) else None
        self.parts = PartWriter(self.store) if self.store.sparse else None
        by_gene: dict[str, tuple[Any, list[str]]] = {}
        for g, k in todo:
            by_gene.setdefault(g.gene_id, (g, []))[1].append(k)
        self.encode_batches([(g, REF_KEY) for g, ks in by_gene.values() if ks == [REF_KEY]], batch_size)
        for g, ks in by_gene.values():
            keys = [k for k in ks if k != REF_KEY]
            if keys:
                self.write_gene(g, keys, with_ref=REF_KEY in ks)

    def write_gene(self, gene: Any, keys: list[str], with_ref: bool) -> None:
        """A gene's personal haplotypes ``keys`` (and its reference) in one write."""
        if self.edits is not None:
            gf = self.edits.gene(self.gene_haps[gene.gene_id], keys)
            ref, rows, offsets, values, value_bins = gf.ref, gf.rows, gf.offsets, gf.values, gf.value_bins
        else:
            ref = self.reference(gene)
            hap = self.gene_haps[gene.gene_id]
            values = np.concatenate(
                [self.enc.encode_region(self.window(gene, k), ref, hap.changed_span(k)) for k in keys])
            n = self.geometry.output_bins
            rows, offsets, value_bins = np.arange(len(values)), np.arange(len(keys) + 1) * n, np.arange(len(values)) % n
        if with_ref:
            self.write(gene, REF_KEY, ref)
        self.summary.bins_stored += self.parts.add(gene.gene_id, keys, rows, offsets, values, value_bins, ref=ref)
        self.summary.computed += len(keys)
        self.bar.update(len(keys))

    def close(self) -> None:
        """Flush the sparse part (genes encoded before an interruption are kept) and close the progress bar."""
        if self.parts is not None:
            self.parts.flush()
        self.bar.close()


def _finish(summary: ExtractSummary, t0: float, progress: bool) -> None:
    """Time and peak memory into the summary, printed when the bar was shown or the run was interrupted."""
    summary.wall_s = time.perf_counter() - t0
    summary.peak_rss_mb = peak_rss_mb()
    if progress or summary.interrupted:
        print(str(summary), file=sys.stderr)


def _plan(selected: list[Any], hap_source: Callable[[Any], Any] | None, store: FeatureStore,
          summary: ExtractSummary, worker: int, n_workers: int, progress: bool):
    """The item list (every worker computes the same), the haplotypes this worker encodes, and the samples."""
    items: list[tuple[Any, str]] = []
    gene_haps: dict[str, Any] = {}
    samples: set[str] = set()
    tables: dict[str, dict[str, tuple[str, str]]] = {}  # sample tables to record, written in batches
    plan_bar = _bar(len(selected) if hap_source else 0, "planning haplotypes", progress)
    try:
        for gene in selected:
            owner_of_ref = len(items) % n_workers == worker
            items.append((gene, REF_KEY))
            if hap_source is None:
                continue
            haps = hap_source(gene)
            keys = sorted({k for pair in haps.sample_keys.values() for k in pair if k != REF_KEY})
            samples.update(haps.sample_keys)
            summary.unique_haplotypes += len(keys)
            first = len(items)
            items.extend((gene, k) for k in keys)
            if owner_of_ref and store.sample_haps(gene.gene_id) != haps.sample_keys:
                tables[gene.gene_id] = haps.sample_keys
                if len(tables) >= 256:
                    store.set_sample_haps_many(tables)
                    tables = {}
            if len(keys) >= n_workers or any((first + j) % n_workers == worker for j in range(len(keys))):
                gene_haps[gene.gene_id] = haps
            plan_bar.update(1)
        if tables:
            store.set_sample_haps_many(tables)
    finally:
        plan_bar.close()  # (an error line starts on a line of its own)
    return items, gene_haps, samples


def filter_gene_types(genes: list[Any], gene_type: str | Sequence[str] | None,
                      skipped: dict[str, int] | None = None) -> list[Any]:
    """The genes whose ``gene_type`` is one of ``gene_type`` ("all"/None: every gene); genes left out are counted
    in ``skipped`` by type. An annotation without any gene types (all empty or "unknown") keeps every gene."""
    types = _types(gene_type)
    if types is None:
        return genes
    if not any(g.gene_type and g.gene_type != "unknown" for g in genes):
        return genes
    kept = [g for g in genes if g.gene_type in types]
    if skipped is not None:
        for g in genes:
            if g.gene_type not in types:
                key = f"{g.gene_type or 'untyped'} genes (--gene-type)"
                skipped[key] = skipped.get(key, 0) + 1
    return kept


def _types(gene_type: str | Sequence[str] | None) -> set[str] | None:
    if gene_type is None:
        return None
    parts = [t.strip() for t in gene_type.split(",")] if isinstance(gene_type, str) else [str(t) for t in gene_type]
    parts = [t for t in parts if t]
    if not parts or "all" in (t.lower() for t in parts):
        return None
    return set(parts)


def _types_text(gene_type: str | Sequence[str] | None) -> str:
    return gene_type if isinstance(gene_type, str) else ",".join(map(str, gene_type or []))


def _remove_new_store(out: Path) -> None:
    """Remove a store this call created and never wrote into (a failed first run leaves nothing behind)."""
    import shutil

    if (out / "zarr.json").exists():
        shutil.rmtree(out, ignore_errors=True)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int, desc: str, enabled: bool) -> Any:
    if not enabled or total == 0:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="item", dynamic_ncols=True, file=sys.stderr)
