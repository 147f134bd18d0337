"""Streaming personal haplotypes from a 1000-Genomes-sized phased VCF.

Builds (once, cached in --workdir) a random 20 Mb genome and a bgzipped, indexed, phased VCF of 2,504 samples and
200,000 records (90% SNVs, 5% insertions, 5% deletions; allele frequencies skewed to rare as in real cohorts),
then reads the haplotypes of 1,000 gene windows (196,608 bp, genes in genome order, both strands) for all samples
with ``gene_haplotypes``, and builds the sequences of every distinct haplotype of the first few genes. The read
phase runs in a child process so its peak memory is its own.

Then, on the same VCF and windows, a GenVarLoader row (PyPI ``genvarloader``): ``gvl.write`` converts the VCF into
its own dataset (one-off, timed apart), and the dataset yields every sample's two haplotypes of each window. It runs
in child processes of ``--gvl-python`` (a separate environment: genvarloader brings ~80 packages of its own), or of
this Python if that can import it; when neither can, the row records why. Every haplotype of the first few genes is
compared between the two (hashes of the sequences, exact and after aligning the two windows' anchors).

    .venv/bin/python benchmarks/bench_vcf_streaming.py [--records 200000] [--samples 2504] [--genes 1000]
        [--gvl-python /path/to/venv-with-genvarloader/bin/python] [--gvl-genes 100]

Writes benchmarks/results/vcf_streaming.json and .md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
INPUT_LEN = 196_608  # gta's default Geometry().input_len; the GVL children do not import gta


def _hash(b: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(b, digest_size=8).digest(), "little")


def aligned_slices(d: int, strand: str, length: int = INPUT_LEN) -> tuple[slice, slice]:
    """(gta slice, GenVarLoader slice) of the bases both windows of one haplotype hold. gta anchors its window at
    the TSS (index length // 2), GenVarLoader at the region's left end (plus strand), so gta's window sits ``d``
    haplotype bases right of GenVarLoader's, ``d`` being the net length change of the applied alleles left of the
    TSS (plus strand); minus-strand windows are the reverse complements, so the slices mirror."""
    a, b = ((0, length - d), (d, length)) if d >= 0 else ((-d, length), (0, length + d))
    if strand == "-":
        a, b = (length - a[1], length - a[0]), (length - b[1], length - b[0])
    return slice(*a), slice(*b)


def _child_env(threads: int) -> dict:
    """One thread for every pool either side may start (the comparison is single-core against single-core)."""
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
              "POLARS_MAX_THREADS", "RAYON_NUM_THREADS", "GVL_NUM_THREADS"):
        env[k] = str(threads)
    return env


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


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


def bench_genes(length: int, n: int, geo) -> list:
    """The benchmark's genes: TSSs drawn once (seed 1) and sorted, strands alternating."""
    from gta.io.types import Gene

    rng = np.random.default_rng(1)
    tss = np.sort(rng.integers(geo.input_len // 2, length - geo.input_len // 2, n))
    return [Gene(f"G{i:04d}", f"G{i}", "chr1", int(t), "+-"[i % 2]) for i, t in enumerate(tss)]


def read_phase(args) -> dict:
    """Runs in the child: gene_haplotypes for every gene, sequences for the distinct keys of a few genes.

    For those genes it also writes ``gta_check.npz``: per sample and haplotype, the anchor shift against a
    left-anchored window (see :func:`aligned_slices`) and hashes of the whole sequence and of the aligned part."""
    from tqdm import tqdm

    from gta.geometry import Geometry
    from gta.io.genome import Genome
    from gta.io.haplotypes import gene_haplotypes
    from gta.io.variants import VariantReader

    work = Path(args.workdir)
    genome = Genome(work / "genome.fa")
    geo = Geometry()
    assert geo.input_len == INPUT_LEN
    genes = bench_genes(genome.lengths["chr1"], args.genes, geo)
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
    n_check = min(args.seq_genes, len(genes))
    n_samples = len(reader.samples)
    shift = np.zeros((n_check, n_samples, 2), np.int64)
    h_exact = np.zeros((n_check, n_samples, 2), np.uint64)
    h_aligned = np.zeros((n_check, n_samples, 2), np.uint64)
    tss_in_indel = np.zeros((n_check, n_samples, 2), bool)
    start = time.perf_counter()
    keys_per_gene, alleles_per_key = [], []
    seq_keys, seq_time, seq_resolve_time, check_time, overlap_dropped = 0, 0.0, 0.0, 0.0, 0
    for i, gene in enumerate(tqdm(genes, desc="genes", unit="gene", mininterval=5)):
        t0 = time.perf_counter()
        gh = gene_haplotypes(reader, gene, geo)
        keys_per_gene.append(len(gh.alleles))
        if i < n_check:  # materialising every key's alleles costs more than resolving them: sample
            seq_resolve_time += time.perf_counter() - t0
            overlap_dropped += gh.skipped.get("overlap", 0)
            alleles_per_key.append(np.mean([len(v) for v in gh.alleles.values()]))
            per_key = {}
            for key in gh.alleles:
                t0 = time.perf_counter()
                s = gh.sequence(key)
                t1 = time.perf_counter()
                seq_time += t1 - t0
                assert len(s) == geo.input_len
                # the check's hashes, timed apart and left out of the wall time. The TSS base's haplotype index
                # minus its reference position is how far gta's TSS-anchored window sits from a left-anchored one
                d = gh._lay(key).anchor - gene.tss
                centre = any(e.start <= gene.tss < e.end and e.delta for e in gh.edits[key])
                b = s.encode()
                per_key[key] = (d, _hash(b), _hash(b[aligned_slices(d, gene.strand)[0]]), centre)
                check_time += time.perf_counter() - t1
            seq_keys += len(gh.alleles)
            t1 = time.perf_counter()
            for j, name in enumerate(reader.samples):
                for h, key in enumerate(gh.sample_keys[name]):
                    shift[i, j, h], h_exact[i, j, h], h_aligned[i, j, h], tss_in_indel[i, j, h] = per_key[key]
            check_time += time.perf_counter() - t1
    wall = time.perf_counter() - start - check_time
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB on Linux
    np.savez(work / "gta_check.npz", samples=np.array(reader.samples), shift=shift, exact=h_exact,
             aligned=h_aligned, tss_in_indel=tss_in_indel, strands=np.array([g.strand for g in genes[:n_check]]))
    seq_haps = 2 * n_samples * n_check
    return {
        "genes": len(genes),
        "samples": n_samples,
        "haplotypes": 2 * n_samples * len(genes),
        "records_read": reader.records_read,
        "wall_s": round(wall, 2),
        "records_per_s": round(reader.records_read / wall, 1),
        "parse_s": round(fetch_s[0], 2),
        "records_per_parse_s": round(reader.records_read / fetch_s[0], 1),
        "genes_per_s": round(len(genes) / wall, 3),
        "haplotypes_per_s": round(2 * n_samples * len(genes) / wall, 1),
        "distinct_keys_per_gene_median": float(np.median(keys_per_gene)),
        "distinct_keys_total": int(np.sum(keys_per_gene)),
        "alleles_per_key_mean": round(float(np.mean(alleles_per_key)), 2),
        "sequence_build_keys": seq_keys,
        "sequence_build_s": round(seq_time, 2),
        "sequences_per_s": round(seq_keys / seq_time, 1) if seq_time else None,
        "sequence_genes": n_check,
        "sequence_genes_resolve_s": round(seq_resolve_time, 2),
        "sequence_genes_haplotypes": seq_haps,
        "sequence_genes_haplotype_sequences_per_s": round(seq_haps / (seq_resolve_time + seq_time), 1)
        if seq_time else None,
        "sequence_genes_overlap_alleles_dropped": int(overlap_dropped),
        "check_hashing_s": round(check_time, 2),
        "peak_rss_mib": round(peak, 1),
        "skipped": dict(reader.stats),
    }


# -- GenVarLoader (children run by --gvl-python; they import genvarloader, never gta) ------------------------------
def _gvl_bed(work: Path):
    import polars as pl

    return pl.read_csv(work / "windows.bed", separator="\t", has_header=False,
                       new_columns=["chrom", "chromStart", "chromEnd", "name", "score", "strand"])


def gvl_write_phase(args) -> dict:
    """One-off conversion: genoray's index of the VCF, then ``gvl.write`` of the genotypes in the windows."""
    import shutil

    import genvarloader as gvl
    from genoray import VCF

    work = Path(args.workdir)
    vcf_path, ds_path = work / "variants.vcf.gz", work / "gvl.gvl"
    for old in work.glob("variants.vcf.gz.gvi*"):  # time the index too: it is part of the conversion
        old.unlink()
    shutil.rmtree(ds_path, ignore_errors=True)
    bed = _gvl_bed(work)
    t0 = time.perf_counter()
    vcf = VCF(vcf_path)
    index_s = None
    if hasattr(vcf, "_write_gvi_index") and hasattr(vcf, "_load_index"):  # genoray internals: else timed in write
        vcf._write_gvi_index()
        vcf._load_index()
        index_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    gvl.write(ds_path, bed, variants=vcf, max_mem=args.gvl_max_mem, overwrite=True)
    t2 = time.perf_counter()

    def size(p: Path) -> float:
        files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]
        return round(sum(f.stat().st_size for f in files) / 1e6, 1)

    return {
        "index_s": round(index_s, 2) if index_s is not None else None,
        "write_s": round(t2 - t1, 2),
        "conversion_s": round(t2 - t0, 2),
        "dataset_mb": size(ds_path),
        "index_mb": round(sum(size(f) for f in work.glob("variants.vcf.gz.gvi*")), 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def gvl_read_phase(args) -> dict:
    """Every sample's two haplotypes of the first --gvl-genes windows, in batches of --gvl-batch samples; for the
    genes gta checked, hashes of each haplotype, whole and aligned to gta's anchor (untimed)."""
    import genvarloader as gvl

    work = Path(args.workdir)
    for old in work.glob("genome.fa.gvlfa*"):  # GVL's FASTA cache, built on open: time it with the open
        if old.is_dir():
            import shutil

            shutil.rmtree(old)
        else:
            old.unlink()
    t0 = time.perf_counter()
    ds = gvl.Dataset.open(work / "gvl.gvl", reference=work / "genome.fa")
    ds = ds.with_len(INPUT_LEN).with_seqs("haplotypes")
    open_s = time.perf_counter() - t0
    names = ds.regions["name"].to_list()
    assert names == _gvl_bed(work)["name"].to_list(), "GenVarLoader reordered the regions"
    strands = ds.regions["strand"].to_list()
    chk = dict(np.load(work / "gta_check.npz"))  # arrays, not the lazy npz
    gta_index = {s: i for i, s in enumerate(chk["samples"].tolist())}
    n = len(ds.samples)
    cols = np.array([gta_index[s] for s in ds.samples])  # GVL sorts samples by name; align to gta's order
    n_check = chk["shift"].shape[0]
    n_genes = min(max(args.gvl_genes, n_check), len(names))
    exact = np.zeros((n_check, n, 2), bool)
    aligned = np.zeros((n_check, n, 2), bool)
    per_gene_s, first_batch_s, haps = [], None, 0
    for r in range(n_genes):
        gene_s = 0.0
        for lo in range(0, n, args.gvl_batch):
            idx = np.arange(lo, min(lo + args.gvl_batch, n))
            t0 = time.perf_counter()
            h = ds[r, idx].reshape(-1, 2, INPUT_LEN)  # (1, samples, ploidy, length) for one region
            dt = time.perf_counter() - t0
            gene_s += dt
            first_batch_s = dt if first_batch_s is None else first_batch_s
            assert h.shape == (len(idx), 2, INPUT_LEN), h.shape
            haps += h.shape[0] * h.shape[1]
            if r < n_check:
                u8 = h.view(np.uint8).reshape(h.shape)
                for j, s in enumerate(idx.tolist()):
                    c = cols[s]
                    for p in range(2):
                        seq = u8[j, p]
                        exact[r, c, p] = _hash(seq.tobytes()) == chk["exact"][r, c, p]
                        sl = aligned_slices(int(chk["shift"][r, c, p]), strands[r])[1]
                        aligned[r, c, p] = _hash(seq[sl].tobytes()) == chk["aligned"][r, c, p]
            del h
        per_gene_s.append(gene_s)
    np.savez(work / "gvl_check.npz", exact=exact, aligned=aligned)
    read_s = float(np.sum(per_gene_s))
    checked_s = float(np.sum(per_gene_s[:n_check]))
    return {
        "open_s": round(open_s, 2),
        "genes": n_genes,
        "samples": n,
        "haplotypes": haps,
        "read_s": round(read_s, 2),
        "haplotypes_per_s": round(haps / read_s, 1),
        "mb_per_s": round(haps * INPUT_LEN / read_s / 1e6, 1),
        "first_batch_s": round(first_batch_s, 3),
        "check_genes_read_s": round(checked_s, 2),
        "check_genes_haplotypes_per_s": round(2 * n * n_check / checked_s, 1),
        "batch_samples": args.gvl_batch,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


_GVL_PROBE = ("import json, platform, resource, importlib.metadata as m; import genvarloader; "
              "print(json.dumps({p: m.version(p) for p in ('genvarloader', 'genoray', 'numpy', 'polars', 'numba')}"
              " | {'python': platform.python_version(), 'packages_in_env': len(list(m.distributions())),"
              " 'import_rss_mib': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))")


def run_gvl(args, work: Path, env: dict) -> dict:
    """The GenVarLoader row: versions, conversion, read, or the reason it did not run."""
    py = args.gvl_python or os.environ.get("GTA_BENCH_GVL_PYTHON") or sys.executable
    row: dict = {"python": py}
    try:
        probe = subprocess.run([py, "-c", _GVL_PROBE], capture_output=True, text=True, env=env, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        return row | {"status": "not run", "reason": f"cannot start {py}: {e}"}
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return row | {"status": "not run",
                      "reason": f"genvarloader is not importable by {py} ({last}); install it (pip install "
                                "genvarloader) in a separate environment and pass --gvl-python"}
    row["versions"] = json.loads(probe.stdout.strip().splitlines()[-1])
    for phase in ("write", "read"):
        row[f"load_before_{phase}"] = _load()
        child = subprocess.run([py, __file__, "--gvl-child", phase, *sys.argv[1:]], capture_output=True,
                               text=True, env=env)
        if child.returncode != 0:
            err = [x for x in child.stderr.splitlines() if "| INFO" not in x and x.strip()]
            return row | {"status": "failed", "reason": f"gvl {phase} failed: " + "\n".join(err[-12:])}
        row[phase] = json.loads(child.stdout.strip().splitlines()[-1])
    row["load_after"] = _load()
    row["status"] = "ok"
    return row


def equality(work: Path) -> dict:
    """gta against GenVarLoader, every haplotype of the checked genes."""
    gta, gvl = np.load(work / "gta_check.npz"), np.load(work / "gvl_check.npz")
    shift, exact, aligned, centre = gta["shift"], gvl["exact"], gvl["aligned"], gta["tss_in_indel"]
    zero = shift == 0
    return {
        "genes": int(shift.shape[0]),
        "haplotypes": int(shift.size),
        "equal": int(exact.sum()),
        "no_indel_left_of_tss": int(zero.sum()),
        "equal_without_indel_left_of_tss": int((exact & zero).sum()),
        "equal_after_aligning_anchor": int(aligned.sum()),
        "tss_in_indel": int(centre.sum()),
        "shift_bp_abs_median": float(np.median(np.abs(shift))),
        "shift_bp_abs_max": int(np.abs(shift).max(initial=0)),
        "unexplained": int((~aligned).sum()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--samples", type=int, default=2504)
    ap.add_argument("--genes", type=int, default=1000)
    ap.add_argument("--genome-mb", type=float, default=20.0)
    ap.add_argument("--seq-genes", type=int, default=3, help="genes whose distinct haplotype sequences are built")
    ap.add_argument("--workdir", default="/tmp/gta-bench-vcf")
    ap.add_argument("--results", default=str(RESULTS), help="folder for vcf_streaming.json and .md")
    ap.add_argument("--threads", type=int, default=1, help="threads of every pool, both sides")
    ap.add_argument("--gvl-python", default=None,
                    help="a Python that imports genvarloader (default: $GTA_BENCH_GVL_PYTHON, else this one)")
    ap.add_argument("--gvl-genes", type=int, default=100, help="windows GenVarLoader reads (all samples)")
    ap.add_argument("--gvl-batch", type=int, default=256, help="samples per GenVarLoader read")
    ap.add_argument("--gvl-max-mem", default="2g", help="gvl.write's memory budget")
    ap.add_argument("--no-gvl", action="store_true", help="skip the GenVarLoader row")
    ap.add_argument("--render-only", action="store_true", help="rewrite the .md from the .json, measure nothing")
    ap.add_argument("--read-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--gvl-child", choices=["write", "read"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = Path(args.workdir)
    if args.read_only:
        print(json.dumps(read_phase(args)))
        return
    if args.gvl_child:
        print(json.dumps(gvl_write_phase(args) if args.gvl_child == "write" else gvl_read_phase(args)))
        return
    if args.render_only:
        write_markdown(Path(args.results))
        return
    from gta.atomic import atomic_write_text
    from gta.geometry import Geometry

    work.mkdir(parents=True, exist_ok=True)
    stamp = work / f"made_{args.records}_{args.samples}_{args.genome_mb}.json"
    if not stamp.exists():
        for old in work.glob("made_*.json"):  # another size's files are overwritten below
            old.unlink()
        t0 = time.perf_counter()
        make_genome(work / "genome.fa", int(args.genome_mb * 1e6), seed=0)
        gen_s = make_vcf(work / "variants.vcf.gz", work / "genome.fa", args.records, args.samples, seed=0)
        stamp.write_text(json.dumps({"genome_and_vcf_s": round(time.perf_counter() - t0, 1), "vcf_s": round(gen_s, 1)}))
    made = json.loads(stamp.read_text())
    geo = Geometry()
    length = int(args.genome_mb * 1e6)
    bed = []
    for g in bench_genes(length, args.genes, geo):
        a, b = geo.window(g.tss, g.strand)
        bed.append(f"chr1\t{a}\t{b}\t{g.gene_id}\t0\t{g.strand}\n")
    (work / "windows.bed").write_text("".join(bed))
    env = _child_env(args.threads)
    load_before = _load()
    child = subprocess.run([sys.executable, __file__, "--read-only", *sys.argv[1:]], capture_output=True, text=True,
                           env=env)
    if child.returncode != 0:
        sys.exit(child.stderr[-3000:])
    res = json.loads(child.stdout.strip().splitlines()[-1])
    res["load_before"], res["load_after"] = load_before, _load()
    gvl = {"status": "not run", "reason": "--no-gvl"} if args.no_gvl else run_gvl(args, work, env)
    if gvl["status"] == "ok":
        gvl["equality"] = equality(work)
        rd, wr = gvl["read"], gvl["write"]
        gvl["projected_all_haplotype_sequences_s"] = round(
            wr["conversion_s"] + rd["open_s"] + res["haplotypes"] / rd["haplotypes_per_s"], 1)
    res["projected_all_haplotype_sequences_s"] = round(
        res["wall_s"] - res["sequence_build_s"] + res["distinct_keys_total"] / res["sequences_per_s"], 1)

    result = {
        "benchmark": "vcf_streaming",
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {os.cpu_count()} cores, "
                   f"python {platform.python_version()}",
        "threads": args.threads,
        "vcf": {"records": args.records, "samples": args.samples, "genome_bp": length,
                "size_mb": round((work / "variants.vcf.gz").stat().st_size / 1e6, 1), **made},
        "geometry": {"input_len": INPUT_LEN},
        **res,
        "memory_limit_mib": 2048,
        "within_memory_limit": res["peak_rss_mib"] < 2048,
        "genvarloader": gvl,
    }
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "vcf_streaming.json", json.dumps(result, indent=2) + "\n")
    write_markdown(out)


def write_markdown(out: Path) -> None:
    """vcf_streaming.md from vcf_streaming.json (``--render-only`` redoes just this)."""
    from gta.atomic import atomic_write_text

    res = json.loads((out / "vcf_streaming.json").read_text())
    vcf = res["vcf"]
    md = [
        "# Streaming personal haplotypes from a phased VCF",
        "",
        f"Synthetic phased VCF: {vcf['records']:,} records x {vcf['samples']:,} samples on a "
        f"{vcf['genome_bp'] / 1e6:g} Mb chromosome ({vcf['size_mb']} MB bgzipped; written in "
        f"{vcf['vcf_s']} s). {res['genes']:,} gene windows of 196,608 bp in genome order, both strands, all "
        f"samples, one process on {res['machine']}, {res['threads']} thread(s) per pool; load average "
        f"{res['load_before']} before, {res['load_after']} after gta's read (1, 5, 15 min; other people's jobs "
        "share the cores).",
        "",
        "## gta",
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
        f"| alleles per key (mean, first {res['sequence_genes']} genes) | {res['alleles_per_key_mean']} |",
        f"| 196 kb sequences built / s | {res['sequences_per_s']} ({res['sequence_build_keys']} keys) |",
        f"| peak RSS of the read phase | {res['peak_rss_mib']} MiB (limit 2048) |",
        "",
        "Records are parsed once: consecutive windows reuse what the reader already holds. "
        "Sequences are built only for distinct keys, on demand.",
        "",
    ]
    md += gvl_markdown(res, res["genvarloader"])
    atomic_write_text(out / "vcf_streaming.md", "\n".join(md) + "\n")
    print("\n".join(md))


def _encoder_rates() -> dict | None:
    """Sequences/s of the encoders that consume the windows (benchmarks/results/encoders.json), if measured."""
    try:
        enc = json.loads((RESULTS / "encoders.json").read_text())
        return {"motif": enc["motif"]["mbps_best"]["motif_numba"] * 1e6 / INPUT_LEN,
                "enformer": enc["enformer"]["sequences_per_s"]}
    except (OSError, KeyError, ValueError):
        return None


def gvl_markdown(res: dict, gvl: dict) -> list[str]:
    md = ["## GenVarLoader on the same VCF and windows", ""]
    if gvl["status"] != "ok":
        return md + [f"Not measured: {gvl['reason']}"]
    v, wr, rd, eq = gvl["versions"], gvl["write"], gvl["read"], gvl["equality"]
    n_chk = res["sequence_genes"]
    index = f"{wr['index_s']} s genoray index + {wr['write_s']} s gvl.write; " if wr["index_s"] is not None else ""
    gta_rate, gvl_rate = res["sequence_genes_haplotype_sequences_per_s"], rd["check_genes_haplotypes_per_s"]
    md += [
        f"genvarloader {v['genvarloader']} (genoray {v['genoray']}, numpy {v['numpy']}, polars {v['polars']}, "
        f"numba {v['numba']}, python {v['python']}) in its own environment, run right after gta's read in the same "
        f"invocation, {res['threads']} thread(s) per pool; load average {gvl['load_before_write']} before its "
        f"conversion, {gvl['load_after']} after its read.",
        "",
        "| measure | gta | GenVarLoader |",
        "|---|---:|---:|",
        f"| one-off conversion of the VCF | none: reads the .vcf.gz | {wr['conversion_s']} s ({index}"
        f"{wr['dataset_mb']} MB dataset + {wr['index_mb']} MB index; peak RSS {wr['peak_rss_mib']} MiB) |",
        f"| opening (GVL: incl. building its FASTA cache) | - | {rd['open_s']} s |",
        f"| what a window yields | the distinct haplotype keys ({res['distinct_keys_per_gene_median']:g} per gene, "
        f"median, for {2 * res['samples']:,} haplotypes), each key's sequence on demand, TSS at index 98,304 | "
        f"a (samples, 2, 196,608) byte array, every sample's two haplotypes, window anchored at its left end |",
        f"| resolving all {res['genes']:,} genes, all samples, no sequences | {res['wall_s']} s "
        f"({res['haplotypes_per_s']:,} haplotypes/s) | - (no such step) |",
        f"| haplotype sequences / s, first {n_chk} genes, all samples (gta: resolve + build every key; GVL: read) | "
        f"{gta_rate:,} | {gvl_rate:,} |",
        f"| haplotype sequences / s, longer runs (gta: distinct keys of the first {n_chk} genes; GVL: first "
        f"{rd['genes']} genes in batches of {rd['batch_samples']} samples) | {res['sequences_per_s']:,} | "
        f"{rd['haplotypes_per_s']:,} ({rd['mb_per_s']:,} MB/s) |",
        f"| every haplotype sequence of all {res['genes']:,} genes, projected from the rates above (GVL: incl. "
        f"conversion and opening) | {res['projected_all_haplotype_sequences_s']:,} s | "
        f"{gvl['projected_all_haplotype_sequences_s']:,} s |",
        f"| peak RSS of the read | {res['peak_rss_mib']} MiB | {rd['peak_rss_mib']} MiB |",
        "",
        f"**Equality**, every haplotype of the first {eq['genes']} genes ({eq['haplotypes']:,}, compared by hashes "
        f"of the sequences): {eq['equal']:,} identical. gta anchors a window at the TSS, GenVarLoader at the "
        f"region's left end, so alleles that change the length left of the TSS shift one window against the other "
        f"(median |shift| {eq['shift_bp_abs_median']:g} bp, max {eq['shift_bp_abs_max']}); "
        f"{eq['no_indel_left_of_tss']:,} haplotypes have no shift and {eq['equal_without_indel_left_of_tss']:,} of "
        f"them are identical. With the shift taken out, {eq['equal_after_aligning_anchor']:,} of "
        f"{eq['haplotypes']:,} agree on every base the two windows share ({eq['unexplained']} unexplained; "
        f"{eq['tss_in_indel']} with an indel over the TSS): the same alleles and indels applied alike"
        + (f", {res['sequence_genes_overlap_alleles_dropped']:,} alleles dropped by the overlap rule among them."
           if "sequence_genes_overlap_alleles_dropped" in res else "."),
        "",
    ]
    ratio = gvl_rate / gta_rate
    shifted = 100 * (1 - eq["no_indel_left_of_tss"] / eq["haplotypes"])
    enc = _encoder_rates()
    md += [
        "**Should gta read haplotypes through GenVarLoader? No, not now.**",
        "",
        f"- Speed: after a one-off conversion of {wr['conversion_s']:g} s, GenVarLoader yields {ratio:.1f}x the "
        f"haplotype sequences per second gta builds ({gvl_rate:,.0f} against {gta_rate:,.0f}, one thread each); "
        f"every haplotype of all {res['genes']:,} genes would take {gvl['projected_all_haplotype_sequences_s']:,.0f} "
        f"s, conversion included, against gta's {res['projected_all_haplotype_sequences_s']:,.0f} s. gta builds "
        "sequences only on demand, though, and they feed an encoder:"
        + (" no encoder rate is on record (benchmarks/results/encoders.json)." if enc is None else
           f" the fastest here, the motif scanner, takes {enc['motif']:.0f} "
           f"windows/s and the Enformer trunk {enc['enformer']:.3f} on this CPU (encoders.json), so with the motif "
           f"scanner GenVarLoader would cut the time per window by "
           f"{100 * (1 / gta_rate - 1 / gvl_rate) / (1 / gta_rate + 1 / enc['motif']):.0f}%, with Enformer by "
           f"{100 * (1 / gta_rate - 1 / gvl_rate) / (1 / gta_rate + 1 / enc['enformer']):.3f}%."),
        f"- Windows: gta's keep the TSS at index 98,304 and equal `bcftools consensus` cut around it; "
        f"GenVarLoader's start at the region's left end, so {shifted:.0f}% of the haplotypes here are shifted "
        f"(up to {eq['shift_bp_abs_max']} bp): their TSS is not at index 98,304. "
        "Reading through it would need its ragged or annotated output (reference coordinates per base) re-cut "
        "around the TSS of every haplotype, which gives back part of the speed.",
        f"- Keys: gta resolves the haplotypes of a window into distinct keys ({res['haplotypes_per_s']:,.0f} "
        "haplotypes/s, no sequence built) and builds each key once; GenVarLoader hands out every sample's "
        "sequence with no key, so gta would hash 196 kb per haplotype or rebuild the keys from GenVarLoader's "
        "variants output to deduplicate.",
        f"- Cost: a conversion per set of windows ({wr['conversion_s']:g} s and {wr['dataset_mb']:g} MB here, "
        f"where the windows cover the chromosome {res['genes'] * INPUT_LEN / res['vcf']['genome_bp']:.1f} times "
        "over and each window's genotypes are stored apart; redone when the windows change), a second "
        f"environment ({v['packages_in_env']} packages, numba, polars and pyarrow among them, kept apart from "
        f"gta's), and {rd['peak_rss_mib']:.0f} MiB peak RSS against "
        f"gta's {res['peak_rss_mib']:.0f} ({v['import_rss_mib']:.0f} MiB of it on import).",
        "",
        "Revisit if building sequences becomes the bottleneck (an encoder that takes more windows per second than "
        "gta builds), through GenVarLoader's annotated output re-cut at the TSS; genvarloader stays out of gta's "
        "dependencies.",
    ]
    return md


if __name__ == "__main__":
    main()
