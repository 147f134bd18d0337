"""The allele vocabulary every stage shares: the key of the reference haplotype and the ``chrom:pos:REF:ALT``
label of an allele, which :func:`gta.io.haplotypes.hap_key` hashes. Each is defined here only."""

from __future__ import annotations

REF_KEY = "ref"  # the hap_key of the reference haplotype (no ALT allele in the window); stored in features.zarr


def allele_label(chrom: str, pos: int, ref: str, alt: str) -> str:
    """``chrom:pos:REF:ALT`` of one ALT allele; ``pos`` is 1-based (VCF). Bases are written as given (callers
    upper-case them where the label feeds ``hap_key``)."""
    return f"{chrom}:{pos}:{ref}:{alt}"
