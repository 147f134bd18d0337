"""Variant effect prediction: for every ALT allele of a VCF inside a gene's input window, the predicted change in
that gene's expression (ALT minus REF, one haplotype carrying the allele, the rest reference).

The VCF is streamed once in file order (records sorted by position, as an indexed VCF is). A gene's reference
features and prediction are computed once, when its first variant arrives, and reused for all its variants. An
ALT window is built with the haplotype rules of :mod:`gta.io.haplotypes` (TSS-anchored, indels included) and
re-encoded only where it can change: local encoders (motif) recompute the bins within reach of the edit
(``encode_region``), global ones (Enformer) encode whole windows in batches. Features are rounded to the training
store's dtype, as ``gta extract`` stores them, so an allele that changes no stored feature has an effect of 0.

Output (``out``, TSV): ``variant`` (chrom:pos:ref:alt, chrom as in the VCF), ``gene_id``, ``symbol``,
``distance_to_tss`` (REF start minus TSS, signed in the direction of transcription), ``ref_pred``, ``alt_pred``,
``effect``, ``id`` (VCF ID). Multi-allelic records give one row per ALT. Alleles that are not scored go to
``<out stem>.skipped.tsv`` (``variant, reason, detail``) and are counted in the summary: outside every gene window,
REF not matching the genome (``strict``: an error naming the file and chrom:pos), symbolic/unsupported ALT.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from gta.atomic import atomic_path, atomic_write_text
from gta.errors import GtaInputError
from gta.features.alleles import encode_alleles, round_to, tss_distance
from gta.geometry import Geometry
from gta.io.alleles import allele_label
from gta.io.types import Gene
from gta.io.variants import HaplotypePolicy, VariantReader

log = logging.getLogger(__name__)
COLUMNS = ["variant", "gene_id", "symbol", "distance_to_tss", "ref_pred", "alt_pred", "effect", "id"]
SKIP_COLUMNS = ["variant", "reason", "detail"]
OUTSIDE = "outside every gene window"
REF_MISMATCH = "REF does not match the genome"
UNSUPPORTED = "unsupported ALT allele"
NO_CHROM = "chromosome not in the genome"
_ALLELE = re.compile(r"^[ACGTN]+$")

Predict = Callable[[np.ndarray, Gene], np.ndarray]


@dataclass
class ScoreSummary:
    """What ``score_variants`` did: counts, files and (simulated data) the metrics against the truth."""

    out: Path
    skipped_path: Path
    records: int = 0
    alleles: int = 0
    rows: int = 0
    genes: int = 0
    skipped: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    metrics: dict[str, Any] | None = None

    def __str__(self) -> str:
        lines = [f"scored {self.rows} (variant, gene) pairs over {self.genes} gene(s) from {self.records} records "
                 f"({self.alleles} ALT alleles) in {self.seconds:.1f} s -> {self.out}"]
        if self.skipped:
            what = ", ".join(f"{n} {reason}" for reason, n in self.skipped.most_common())
            lines.append(f"skipped alleles: {what} (listed in {self.skipped_path})")
        if self.metrics:
            o = self.metrics["overall"]
            lines.append(f"vs truth: {self.metrics['n_matched']} matched, pearson {_fmt(o['pearson'])}, "
                         f"causal sign agreement {_fmt(o['sign_agreement'])} (n={o['n_causal']})")
        return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def skipped_path_for(out: str | Path) -> Path:
    """Where the skipped alleles of the effects table ``out`` go: ``<stem>.skipped.tsv`` beside it."""
    return _beside(out, "skipped.tsv")


def metrics_path_for(out: str | Path) -> Path:
    """Where the comparison with the simulator's truth goes: ``<stem>.metrics.json`` beside ``out``."""
    return _beside(out, "metrics.json")


def _beside(out: str | Path, suffix: str) -> Path:
    out = Path(out)
    return out.with_name(f"{out.name.split('.')[0] or 'effects'}.{suffix}")


@dataclass
class _Task:
    label: str
    vid: str
    chrom: str
    start: int
    ref: str
    alt: str


class _Windows:
    """Gene input windows per chromosome, for overlap queries (all windows have the same length)."""

    def __init__(self, genes: Sequence[Gene], geometry: Geometry) -> None:
        self.length = geometry.input_len
        by_chrom: dict[str, list[tuple[int, Gene]]] = {}
        for g in genes:
            by_chrom.setdefault(g.chrom, []).append((geometry.window(g.tss, g.strand).start, g))
        self.starts: dict[str, np.ndarray] = {}
        self.genes: dict[str, list[Gene]] = {}
        for c, items in by_chrom.items():
            items.sort(key=lambda t: t[0])
            self.starts[c] = np.array([s for s, _ in items], dtype=np.int64)
            self.genes[c] = [g for _, g in items]

    def overlapping(self, chrom: str, start: int, end: int) -> list[Gene]:
        starts = self.starts.get(chrom)
        if starts is None:
            return []
        lo = int(np.searchsorted(starts, start - self.length, side="right"))
        hi = int(np.searchsorted(starts, max(end, start + 1), side="left"))
        return self.genes[chrom][lo:hi]


class VariantScorer:
    """Scores VCF alleles for a model given as ``predict(features [B, bins, d], gene) -> [B]`` and an encoder.

    ``ref_features(gene)`` may return stored reference features (None: encode the reference window); ``dtype`` is
    the feature store dtype the model was trained on (features are rounded to it)."""

    def __init__(self, dataset, encoder, predict: Predict, ref_features: Callable[[Gene], np.ndarray | None] | None
                 = None, dtype: str | None = "float16", batch_size: int = 8, genes: Sequence[Gene] | None = None
                 ) -> None:
        self.dataset, self.encoder, self.predict = dataset, encoder, predict
        self.geometry: Geometry = dataset.manifest.geometry
        if encoder.geometry != self.geometry:
            raise GtaInputError(f"the encoder's geometry {encoder.geometry} differs from the data set's "
                                f"{self.geometry}", path=dataset.manifest.path)
        self.ref_source = ref_features
        self.dtype = np.dtype(dtype) if dtype else None
        self.batch_size = max(int(batch_size), 1)
        self.windows = _Windows(list(dataset.genes) if genes is None else list(genes), self.geometry)
        self.ref_calls = 0  # reference predictions made (one per gene with variants)

    def _reference(self, gene: Gene) -> np.ndarray:
        feats = self.ref_source(gene) if self.ref_source is not None else None
        if feats is None:
            feats = self.encoder.encode([self.dataset.genome.gene_window(gene, self.geometry)])[0]
        return round_to(feats, self.dtype)

    def _alt_features(self, gene: Gene, ref: np.ndarray, tasks: list[_Task]) -> np.ndarray:
        return encode_alleles(self.encoder, self.dataset.genome, gene, self.geometry, ref,
                              [(t.chrom, t.start, t.ref, t.alt, t.vid) for t in tasks], self.dtype, self.batch_size)

    def score_gene(self, gene: Gene, tasks: list[_Task]) -> list[list[Any]]:
        """Rows of the effects table for one gene's alleles (reference predicted once)."""
        ref = self._reference(gene)
        ref_pred = float(self.predict(ref[None], gene)[0])
        self.ref_calls += 1
        rows = []
        for s in range(0, len(tasks), self.batch_size):
            chunk = tasks[s : s + self.batch_size]
            alt = self._alt_features(gene, ref, chunk)
            changed = ~(alt == ref[None]).all(axis=(1, 2))  # an allele that changes no feature: no forward pass
            alt_pred = np.full(len(chunk), ref_pred)
            if changed.any():
                alt_pred[changed] = self.predict(alt[changed], gene)
            for t, a in zip(chunk, alt_pred.tolist(), strict=True):
                rows.append([t.label, gene.gene_id, gene.symbol, tss_distance(gene, t.start), ref_pred, float(a),
                             float(a) - ref_pred, t.vid])
        return rows

    def score_vcf(self, vcf: str | Path, out: str | Path, strict: bool = False, progress: bool = True
                  ) -> ScoreSummary:
        """Stream ``vcf``, score every allele inside a gene window, write ``out`` and the skipped list."""
        t0 = time.perf_counter()
        out = Path(out)
        summary = ScoreSummary(out=out, skipped_path=skipped_path_for(out))
        policy = HaplotypePolicy(samples=(), ref_mismatch="error" if strict else "skip")
        reader = VariantReader(vcf, self.dataset.genome, policy)
        genome = self.dataset.genome
        pending: dict[str, tuple[Gene, list[_Task]]] = {}
        seen_chroms: list[str] = []
        last = (None, -1)
        bar = tqdm(desc="score variants", unit="record", disable=not progress)
        with atomic_path(out) as tmp_out, atomic_path(summary.skipped_path) as tmp_skip, \
                open(tmp_out, "w") as fh, open(tmp_skip, "w") as sk:
            fh.write("\t".join(COLUMNS) + "\n")
            sk.write("\t".join(SKIP_COLUMNS) + "\n")

            def skip(label: str, reason: str, detail: str = "") -> None:
                summary.skipped[reason] += 1
                sk.write(f"{label}\t{reason}\t{detail}\n")

            def flush(keep: Callable[[Gene], bool]) -> None:
                for gid in [g for g, (gene, _) in pending.items() if not keep(gene)]:
                    gene, tasks = pending.pop(gid)
                    for row in self.score_gene(gene, tasks):
                        fh.write("\t".join(_cell(x) for x in row) + "\n")
                        summary.rows += 1
                    summary.genes += 1

            for calls in reader.iter_regions():
                chrom, vchrom = calls.chrom, calls.vcf_chrom or calls.chrom
                if chrom != last[0]:
                    flush(lambda g: False)
                    if chrom in seen_chroms:
                        raise GtaInputError(f"records of {vchrom} are not contiguous (the VCF is not sorted)",
                                            path=vcf, hint="sort it: bcftools sort -Oz -o sorted.vcf.gz FILE")
                    seen_chroms.append(chrom)
                    last = (chrom, -1)
                known = chrom in genome.lengths
                for i in range(len(calls)):
                    start, end, ref = int(calls.starts[i]), int(calls.ends[i]), calls.refs[i]
                    if start < last[1]:
                        raise GtaInputError(f"record {vchrom}:{start + 1} comes after {vchrom}:{last[1] + 1} (the "
                                            "VCF is not sorted)", path=vcf,
                                            hint="sort it: bcftools sort -Oz -o sorted.vcf.gz FILE")
                    last = (chrom, start)
                    summary.records += 1
                    alts = calls.alts[i] or ()
                    summary.alleles += len(alts)
                    genes = self.windows.overlapping(chrom, start, end) if known else []
                    for alt in alts:
                        label = allele_label(vchrom, start + 1, ref, alt)
                        if not known:
                            skip(label, NO_CHROM, f"{vchrom} is not a chromosome of {genome.path.name}")
                        elif calls.status[i] == "ref_mismatch":
                            have = genome.fetch(chrom, start, end)
                            skip(label, REF_MISMATCH, f"{reader.path.name} has REF {ref} at {vchrom}:{start + 1}, "
                                 f"the genome has {have}")
                        elif calls.status[i] != "ok":
                            skip(label, calls.status[i])
                        elif not _ALLELE.match(alt.upper()) or alt.upper() == ref.upper():
                            skip(label, UNSUPPORTED, f"ALT {alt!r} is not a sequence allele differing from REF")
                        elif not genes:
                            skip(label, OUTSIDE, f"no gene's {self.geometry.input_len}-bp input window holds it")
                        else:
                            task = _Task(label, calls.ids[i], chrom, start, ref.upper(), alt.upper())
                            for g in genes:
                                pending.setdefault(g.gene_id, (g, []))[1].append(task)
                    bar.update(1)
                position = last[1]
                flush(lambda g, p=position: self.geometry.window(g.tss, g.strand).end > p)
            flush(lambda g: False)
        bar.close()
        if summary.skipped[REF_MISMATCH]:
            log.warning("%s: %d allele(s) skipped because their REF does not match the genome (see %s)",
                        Path(vcf).name, summary.skipped[REF_MISMATCH], summary.skipped_path)
        summary.seconds = time.perf_counter() - t0
        return summary


def _cell(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.8g}"
    return str(x)


def score_variants(run: str | Path, data, vcf: str | Path, out: str | Path = "effects.tsv", features=None,
                   weights: str | Path | None = None, genes: Sequence[str] | str | None = None, strict: bool = False,
                   batch_size: int = 16, evaluate: bool | None = None, llm=None, device: str = "auto",
                   progress: bool = True, mirror_average: bool | None = None) -> ScoreSummary:
    """Predicted effect of every VCF allele on the expression of each gene whose input window holds it.

    ``features``: the run's feature store (optional; its reference features are reused, else reference windows are
    encoded). ``weights``: the encoder's weights folder (Enformer). ``genes``: restrict to these ids/symbols.
    ``evaluate``: compare with the simulator's truth/variants.tsv (default: when the manifest has one) and write
    ``<out stem>.metrics.json``. ``mirror_average``: False scores each window once, in half the time (None: the
    run's setting)."""
    from gta.encoders.rebuild import rebuild_encoder
    from gta.interpret.context import open_run
    from gta.interpret.evaluate import variant_effect_metrics

    ctx = open_run(run, data, features, llm=llm, device=device, mirror_average=mirror_average)
    attrs = ctx.store.attrs if ctx.store is not None else ctx.store_attrs
    if not attrs:
        raise GtaInputError("the run records no feature store settings", path=Path(run) / "config.yaml",
                            hint="pass --features STORE (the store the run was trained on)")
    encoder = rebuild_encoder(attrs, weights)
    chosen = None
    if genes:
        queries = genes.split(",") if isinstance(genes, str) else list(genes)
        chosen = [ctx.dataset.gene(q.strip()) for q in queries if q.strip()]

    def predict(feats: np.ndarray, gene: Gene) -> np.ndarray:
        prompt = ctx.prompts([gene.gene_id])[gene.gene_id] if ctx.model.cfg.use_prompt else None
        return ctx.predict(feats, prompt)

    scorer = VariantScorer(ctx.dataset, encoder, predict, ctx.ref_features, attrs.get("dtype", "float16"),
                           batch_size, chosen)
    summary = scorer.score_vcf(vcf, out, strict=strict, progress=progress)
    truth = ctx.dataset.manifest.truth
    has_truth = truth is not None and (Path(truth) / "variants.tsv").exists()
    if evaluate and not has_truth:
        raise GtaInputError("the data set has no simulator truth (truth/variants.tsv)", path=ctx.dataset.manifest.path,
                            hint="--evaluate needs simulated data (gta simulate)")
    if has_truth and evaluate is not False:
        summary.metrics = variant_effect_metrics(out, Path(truth) / "variants.tsv")
        atomic_write_text(metrics_path_for(out), json.dumps(summary.metrics, indent=1))
    return summary
