"""Streaming personal haplotypes from a 1000-Genomes-sized phased VCF.

Builds (once, cached in --workdir) a random 20 Mb genome and a bgzipped, indexed, phased VCF of 2,504 samples and
200,000 records (90% SNVs, 5% insertions, 5% deletions; allele frequencies skewed to rare as in real cohorts),
then reads the haplotypes of 1,000 gene windows (196,608 bp, genes in genome order, both strands) for all samples
with ``gene_haplotypes``, and builds the sequences of every distinct haplotype of the first few genes. The read
phase runs in a child process so its peak memory is its own.

    .venv/bin/python benchmarks/bench_vcf_streaming.py [--records 200000] [--samples 2504] [--genes 1000]

Writes benchmarks/results/vcf_streaming.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
BASES = np.frombuffer(b"ACGT", dtype=np.uint8)


def make_genome(path: Path, length: int, seed: int) -> None:
    import pysam

    rng = np.random.default_rng(seed)
    seq = BASES[rng.integers(0, 4, length)]
    width = 60
    n_full = length // width
    lines = np.concatenate([seq[: n_full * width].reshape(n_full, width), np.full((n_full, 1), 10, np.uint8)], 1)
    tail = seq[n_full * width :].tobytes()
    path.write_bytes(b">chr1 synthetic\n" + lines.tobytes() + (tail + b"\n" if tail else b""))
    pysam.faidx(str(path))


def make_vcf(path: Path, genome: Path, n_records: int, n_samples: int, seed: int) -> float:
    """Write the VCF straight into BGZF in chunks (numpy builds the genotype text), then index it."""
    import pysam
    from pysam.libcbgzf import BGZFile

    from gta.io.genome import Genome

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    g = Genome(genome)
    length = g.lengths["chr1"]
    seq = np.frombuffer(g.fetch("chr1", 0, length).encode(), np.uint8)
    pos0 = np.sort(rng.choice(np.arange(100, length - 100), n_records, replace=False))
    kind = rng.choice(3, n_records, p=[0.9, 0.05, 0.05])  # snv, insertion, deletion
    af = np.clip(rng.beta(0.08, 1.5, n_records), 1.0 / (2 * n_samples), 0.95)
    samples = "\t".join(f"HG{i:05d}" for i in range(n_samples))
    header = (
        "##fileformat=VCFv4.2\n"
        f"##contig=<ID=chr1,length={length}>\n"
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Phased genotype">\n'
        f"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{samples}\n"
    )
    out = BGZFile(str(path), "wb")
    out.write(header.encode())
    chunk = 2000
    for lo in range(0, n_records, chunk):
        hi = min(lo + chunk, n_records)
        n = hi - lo
        alleles = (rng.random((n, n_samples, 2)) < af[lo:hi, None, None]).astype(np.uint8)
        gt = np.empty((n, n_samples, 4), np.uint8)
        gt[:, :, 0] = alleles[:, :, 0] + ord("0")
        gt[:, :, 1] = ord("|")
        gt[:, :, 2] = alleles[:, :, 1] + ord("0")
        gt[:, :, 3] = ord("\t")
        gt[:, -1, 3] = ord("\n")
        rows = gt.reshape(n, -1)
        parts = []
        for i in range(n):
            p, k = int(pos0[lo + i]), int(kind[lo + i])
            ref = chr(seq[p])
            if k == 0:
                alt = "ACGT"[(("ACGT".index(ref) if ref in "ACGT" else 0) + 1 + int(rng.integers(0, 3))) % 4]
            elif k == 1:
                alt = ref + "".join(rng.choice(list("ACGT"), int(rng.integers(1, 6))))
            else:
                d = int(rng.integers(1, 12))
                ref, alt = seq[p : p + d + 1].tobytes().decode(), ref
            parts.append(f"chr1\t{p + 1}\t.\t{ref}\t{alt}\t.\tPASS\t.\tGT\t".encode() + rows[i].tobytes())
        out.write(b"".join(parts))
    out.close()
    pysam.tabix_index(str(path), preset="vcf", force=True)
    return time.perf_counter() - start


def read_phase(args) -> dict:
    """Runs in the child: gene_haplotypes for every gene, sequences for the distinct keys of a few genes."""
    from tqdm import tqdm

    from gta.geometry import Geometry
    from gta.io.genome import Genome
    from gta.io.haplotypes import gene_haplotypes
    from gta.io.types import Gene
    from gta.io.variants import VariantReader

    work = Path(args.workdir)
    genome = Genome(work / "genome.fa")
    geo = Geometry()
    length = genome.lengths["chr1"]
    rng = np.random.default_rng(1)
    tss = np.sort(rng.integers(geo.input_len // 2, length - geo.input_len // 2, args.genes))
    genes = [Gene(f"G{i:04d}", f"G{i}", "chr1", int(t), "+-"[i % 2]) for i, t in enumerate(tss)]
    reader = VariantReader(work / "variants.vcf.gz", genome)
    fetch_s = [0.0]
    fetch = reader._fetch  # time the parsing (cyvcf2/htslib) apart from the haplotype resolution

    def timed_fetch(*a, **kw):
        t0 = time.perf_counter()
        try:
            return fetch(*a, **kw)
        finally:
            fetch_s[0] += time.perf_counter() - t0

    reader._fetch = timed_fetch
    start = time.perf_counter()
    keys_per_gene, alleles_per_key = [], []
    seq_keys, seq_time = 0, 0.0
    for i, gene in enumerate(tqdm(genes, desc="genes", unit="gene", mininterval=5)):
        gh = gene_haplotypes(reader, gene, geo)
        keys_per_gene.append(len(gh.alleles))
        if i < args.seq_genes:  # materialising every key's alleles costs more than resolving them: sample
            alleles_per_key.append(np.mean([len(v) for v in gh.alleles.values()]))
            t0 = time.perf_counter()
            for key in gh.alleles:
                s = gh.sequence(key)
                assert len(s) == geo.input_len
            seq_time += time.perf_counter() - t0
            seq_keys += len(gh.alleles)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB on Linux
    return {
        "genes": len(genes),
        "samples": len(reader.samples),
        "haplotypes": 2 * len(reader.samples) * len(genes),
        "records_read": reader.records_read,
        "wall_s": round(wall, 2),
        "records_per_s": round(reader.records_read / wall, 1),
        "parse_s": round(fetch_s[0], 2),
        "records_per_parse_s": round(reader.records_read / fetch_s[0], 1),
        "genes_per_s": round(len(genes) / wall, 3),
        "haplotypes_per_s": round(2 * len(reader.samples) * len(genes) / wall, 1),
        "distinct_keys_per_gene_median": float(np.median(keys_per_gene)),
        "alleles_per_key_mean": round(float(np.mean(alleles_per_key)), 2),
        "sequence_build_keys": seq_keys,
        "sequence_build_s": round(seq_time, 2),
        "sequences_per_s": round(seq_keys / seq_time, 1) if seq_time else None,
        "peak_rss_mib": round(peak, 1),
        "skipped": dict(reader.stats),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--samples", type=int, default=2504)
    ap.add_argument("--genes", type=int, default=1000)
    ap.add_argument("--genome-mb", type=float, default=20.0)
    ap.add_argument("--seq-genes", type=int, default=3, help="genes whose distinct haplotype sequences are built")
    ap.add_argument("--workdir", default="/tmp/gta-bench-vcf")
    ap.add_argument("--read-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = Path(args.workdir)
    if args.read_only:
        print(json.dumps(read_phase(args)))
        return
    work.mkdir(parents=True, exist_ok=True)
    stamp = work / f"made_{args.records}_{args.samples}_{args.genome_mb}.json"
    if not stamp.exists():
        t0 = time.perf_counter()
        make_genome(work / "genome.fa", int(args.genome_mb * 1e6), seed=0)
        gen_s = make_vcf(work / "variants.vcf.gz", work / "genome.fa", args.records, args.samples, seed=0)
        stamp.write_text(json.dumps({"genome_and_vcf_s": round(time.perf_counter() - t0, 1), "vcf_s": round(gen_s, 1)}))
    made = json.loads(stamp.read_text())
    child = subprocess.run([sys.executable, __file__, "--read-only", *sys.argv[1:]], capture_output=True, text=True)
    if child.returncode != 0:
        sys.exit(child.stderr[-3000:])
    res = json.loads(child.stdout.strip().splitlines()[-1])
    from gta.atomic import atomic_write_text

    result = {
        "benchmark": "vcf_streaming",
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}",
        "vcf": {"records": args.records, "samples": args.samples, "genome_bp": int(args.genome_mb * 1e6),
                "size_mb": round((work / "variants.vcf.gz").stat().st_size / 1e6, 1), **made},
        "geometry": {"input_len": 196_608},
        **res,
        "memory_limit_mib": 2048,
        "within_memory_limit": res["peak_rss_mib"] < 2048,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / "vcf_streaming.json", json.dumps(result, indent=2) + "\n")
    md = [
        "# Streaming personal haplotypes from a phased VCF",
        "",
        f"Synthetic phased VCF: {args.records:,} records x {args.samples:,} samples on a "
        f"{args.genome_mb:g} Mb chromosome ({result['vcf']['size_mb']} MB bgzipped; written in "
        f"{made['vcf_s']} s). {res['genes']:,} gene windows of 196,608 bp in genome order, both strands, all "
        f"samples, one process on {result['machine']}.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| wall time, all genes (incl. sequences below) | {res['wall_s']} s |",
        f"| records parsed | {res['records_read']:,} |",
        f"| records / s, end to end (parse + resolve all haplotypes) | {res['records_per_s']:,} |",
        f"| records / s, parsing alone (cyvcf2, {res['samples']:,} samples) | {res['records_per_parse_s']:,} |",
        f"| genes / s | {res['genes_per_s']} |",
        f"| haplotypes resolved / s | {res['haplotypes_per_s']:,} |",
        f"| distinct haplotype keys per gene (median) | {res['distinct_keys_per_gene_median']:g} |",
        f"| alleles per key (mean, first {args.seq_genes} genes) | {res['alleles_per_key_mean']} |",
        f"| 196 kb sequences built / s | {res['sequences_per_s']} ({res['sequence_build_keys']} keys) |",
        f"| peak RSS of the read phase | {res['peak_rss_mib']} MiB (limit 2048) |",
        "",
        "Records are parsed once: consecutive windows reuse what the reader already holds. "
        "Sequences are built only for distinct keys, on demand.",
    ]
    atomic_write_text(RESULTS / "vcf_streaming.md", "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
