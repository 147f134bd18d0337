"""Text views of what the encoder is given, for people: ``gta sequence`` (a gene's input window as FASTA, reference
or one haplotype of a sample) and ``gta variants`` (the records in that window and what the policy did with each
genotype). They open a data set (:func:`gta.io.dataset.open_dataset`); the readers in ``gta.io`` do not."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gta.errors import GtaInputError
from gta.io.alleles import REF_KEY, allele_label
from gta.io.dataset import open_dataset
from gta.io.haplotypes import gene_haplotypes, reference_haplotypes
from gta.io.variants import HaplotypePolicy, VariantReader

__all__ = ["sequence", "variants"]


def _open_for_inspection(data, gene: str, need_variants: bool, policy: HaplotypePolicy | None,
                         sample: str | None = None, overrides: dict[str, Any] | None = None):
    """(dataset, gene, reader). The reader's policy: ``policy`` when given, else the manifest's ``variant_policy``
    with ``overrides`` (fields set explicitly on the command line) applied."""
    ds = open_dataset(data)
    g = ds.gene(gene)
    reader = None
    if need_variants:
        if ds.variants_path is None:
            raise GtaInputError("the manifest names no variants file", ds.manifest.path,
                                hint="add 'variants: FILE.vcf.gz' to ask for a sample's haplotypes")
        if policy is None:
            policy = replace(ds.variant_policy, **{k: v for k, v in (overrides or {}).items() if v is not None})
        if sample is not None:  # parse only that sample's genotypes
            policy = replace(policy, samples=(sample,))
        reader = VariantReader(ds.variants_path, ds.genome, policy)
    return ds, g, reader


def _wrap(seq: str, width: int = 60) -> str:
    return "\n".join(seq[i : i + width] for i in range(0, len(seq), width))


def sequence(data, gene: str, sample: str | None = None, haplotype: int = 1, flank: int | None = None,
             policy: HaplotypePolicy | None = None, overrides: dict[str, Any] | None = None) -> str:
    """The exact input window of a gene (reference, or one haplotype of a sample) as FASTA text. The header
    names the gene, the plus-strand reference span, strand, sample, haplotype, hap_key, the applied variants
    and any indel shift or N padding. ``flank``: only the TSS and ``flank`` bases on each side. ``policy``: the
    haplotype policy (default: the manifest's ``variant_policy`` with ``overrides`` applied; None values ignored)."""
    if haplotype not in (1, 2):
        raise GtaInputError(f"haplotype must be 1 or 2, got {haplotype}")
    ds, g, reader = _open_for_inspection(data, gene, sample is not None, policy, sample, overrides)
    geo = ds.manifest.geometry
    if reader is None:
        gh = reference_haplotypes(g, geo, ds.genome)
        key = REF_KEY
    else:
        gh = gene_haplotypes(reader, g, geo, samples=[sample])
        key = gh.sample_keys[sample][haplotype - 1]
    seq = gh.sequence(key)
    info = gh.window_info(key)
    lo, hi = 0, len(seq)
    if flank is not None:
        lo, hi = max(0, geo.tss_index - flank), min(len(seq), geo.tss_index + flank + 1)
    alleles = gh.alleles[key]
    shown = ",".join(f"{a.label}@{a.offset:+d}" for a in alleles[:20]) + (" ..." if len(alleles) > 20 else "")
    span = f"{gh.chrom}:{(info.ref_start or 0) + 1}-{info.ref_end or 0}"
    header = [
        f">{g.gene_id}|{g.symbol}", span, f"strand={g.strand}", f"tss={g.chrom}:{g.tss + 1}",
        f"sample={sample or 'reference'}", f"haplotype={haplotype if sample else '-'}", f"key={key}",
        f"variants={len(alleles)}" + (f"[{shown}]" if alleles else ""),
        f"indel_shift_upstream={info.shift_upstream:+d}", f"indel_shift_downstream={info.shift_downstream:+d}",
        f"pad_N_upstream={info.pad_upstream}", f"pad_N_downstream={info.pad_downstream}",
        f"tss_index={geo.tss_index}", f"window={lo}-{hi}" if (lo, hi) != (0, len(seq)) else f"length={len(seq)}",
    ]
    if info.tss_in_edit:
        header.append("tss_in_indel=yes")
    ds.close()
    return " ".join(header) + "\n" + _wrap(seq[lo:hi]) + "\n"


def _gt_text(raw_row) -> str:
    a1, a2, ph = (int(x) for x in raw_row)
    one = "." if a1 < 0 else str(a1)
    if a2 == -2:
        return one
    return one + ("|" if ph else "/") + ("." if a2 < 0 else str(a2))


def variants(data, gene: str, sample: str | None = None, policy: HaplotypePolicy | None = None,
             max_samples: int = 8, overrides: dict[str, Any] | None = None) -> str:
    """The variants in a gene's window as a text table: position (1-based), offset from the TSS in the direction
    of transcription, REF/ALT, record status, and each sample's genotype as written with what the policy did
    with it and which haplotypes (h1/h2) carry the allele in their window. ``policy``/``overrides``: as for
    :func:`sequence`."""
    ds, g, reader = _open_for_inspection(data, gene, True, policy, sample, overrides)
    geo = ds.manifest.geometry
    samples = [sample] if sample else reader.samples[:max_samples]
    gh = gene_haplotypes(reader, g, geo, samples=samples)
    ws, we = geo.window(g.tss, g.strand)
    calls = reader.region(gh.chrom, ws, we)
    carried = {s: [{a.label for a in gh.alleles[k]} for k in gh.sample_keys[s]] for s in samples}
    idx = [calls.sample_index(s) for s in samples]
    pol = reader.policy
    rows = [["pos", "offset", "ref", "alt", "status", *samples]]
    for i in range(len(calls)):
        pos = int(calls.starts[i]) + 1
        offset = pos - 1 - g.tss if g.strand == "+" else g.tss - (pos - 1)
        row = [f"{gh.chrom}:{pos}", f"{offset:+d}", calls.refs[i], ",".join(calls.alts[i]), calls.status[i]]
        for s, j in zip(samples, idx, strict=True):
            raw = calls.raw[i, j]
            cell = _gt_text(raw)
            a1, a2, ph = (int(x) for x in raw)
            if calls.status[i] != "ok":
                cell += " (not used)"
            elif not ph and a2 != -2 and a1 != a2:
                cell += " (unphased: " + ("reference" if pol.unphased_mode == "ref" else "read as phased") + ")"
            elif a1 == -1 or a2 == -1:
                cell += " (missing: reference)"
            on = [f"h{h + 1}" for h in (0, 1)
                  for k in [int(calls.gt[i, j, h])]
                  if k and allele_label(gh.chrom, pos, calls.refs[i].upper(), calls.alts[i][k - 1].upper())
                  in carried[s][h]]
            cell += " -> " + ("+".join(on) if on else "-")
            row.append(cell)
        rows.append(row)
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = [f"# {g.gene_id} ({g.symbol}) {gh.chrom}:{ws + 1}-{we} strand {g.strand}, TSS {gh.chrom}:{g.tss + 1}; "
             f"{len(calls)} record(s) in the window"]
    lines += ["  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append(f"# policy: {pol.to_dict()}")
    lines.append("# keys: " + "; ".join(f"{s}={gh.sample_keys[s][0]},{gh.sample_keys[s][1]}" for s in samples))
    if gh.skipped:
        lines.append("# skipped: " + ", ".join(f"{k}={v}" for k, v in sorted(gh.skipped.items())))
    if not sample and len(reader.samples) > max_samples:
        lines.append(f"# showing {max_samples} of {len(reader.samples)} samples (--sample S for another)")
    ds.close()
    return "\n".join(lines) + "\n"
