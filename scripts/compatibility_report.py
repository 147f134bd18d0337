"""Run gta's readers over real-world files nobody here wrote and write docs/compatibility.md.

The corpora are Debian test packages unpacked by scripts/fetch_test_corpora.sh into tests/corpora/root. Every
VCF/BCF, GTF/GFF and FASTA found there is read by gta (VariantReader, read_genes, Genome) from a temporary copy
(indexes made by gta never land in the corpus) in a worker process with a per-file timeout. Each file is either
read (counts) or rejected with a one-line GtaInputError; anything else (another exception, a hang) is a bug.

    .venv/bin/python scripts/compatibility_report.py [--root tests/corpora/root] [--out docs/compatibility.md]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT / "tests" / "corpora" / "root"
_INDEX = re.compile(r"\.(tbi|csi|fai|gzi|db)(\.gz)?$")
KINDS = {
    "vcf": re.compile(r"\.(vcf|bcf)(\d+)?(\.|$)", re.I),
    "genes": re.compile(r"\.(gtf|gff|gff2|gff3)(\.|$)", re.I),
    "fasta": re.compile(r"\.(fa|fasta|fna|fas)(\.|$)", re.I),
}


def discover(root: Path) -> list[tuple[str, str]]:
    """(kind, path relative to root) of every file whose name says VCF/BCF, GTF/GFF or FASTA."""
    out = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or _INDEX.search(path.name):
            continue
        for kind, pattern in KINDS.items():
            if pattern.search(path.name):
                out.append((kind, str(path.relative_to(root))))
                break
    return out


def _copy(path: Path, folder: Path) -> Path:
    """The file and its index files, copied into ``folder``."""
    dst = folder / path.name
    shutil.copyfile(path, dst)
    for ext in (".tbi", ".csi", ".fai", ".gzi"):
        side = Path(str(path) + ext)
        if side.exists():
            shutil.copyfile(side, Path(str(dst) + ext))
    return dst


def _check_vcf(path: Path) -> dict:
    """Read under ``unphased='ref'`` (the reader's capability, counted); the verdict of the default policy
    ``unphased='auto'`` on the file is a count of its own (``unphased_auto``)."""
    from gta.errors import GtaInputError
    from gta.io.variants import HaplotypePolicy, VariantReader

    auto = "ok"
    try:
        VariantReader(path).check_phasing()
    except GtaInputError as e:
        if "unphased VCF" not in e.message:
            raise
        auto = "refused (unphased samples)"
    policy = HaplotypePolicy(unphased="ref")
    reader = VariantReader(path, policy=policy)
    per_contig: dict[str, list[int]] = {}
    counts = {"records": 0, "samples": len(reader.samples), "multiallelic": 0, "calls": 0, "phased_calls": 0}
    for calls in reader.iter_regions():
        reader.stats.update(calls.skipped)
        counts["records"] += len(calls)
        counts["multiallelic"] += sum(len(a) > 1 for a in calls.alts)
        counts["calls"] += calls.raw.shape[0] * calls.raw.shape[1]
        counts["phased_calls"] += int((calls.raw[:, :, 2] != 0).sum()) if calls.raw.size else 0
        c = per_contig.setdefault(calls.vcf_chrom, [0, 0])
        c[0] += len(calls)
        c[1] = max(c[1], int(calls.ends.max()) if len(calls) else 0)
    counts["contigs"] = len(per_contig)
    counts["kind"] = reader.kind
    counts["unphased_het"] = reader.stats.get("unphased", 0)
    counts["unphased_auto"] = auto
    counts["symbolic_calls"] = reader.stats.get("unsupported_allele", 0)
    counts["htslib_notes"] = sum(reader.htslib_notes.values())
    reader.close()
    # region queries through the index (made by gta when missing), one per contig, must find the same records
    try:
        indexed = VariantReader(path, policy=policy)
        for contig, (n, end) in per_contig.items():
            got = len(indexed.region(contig, 0, end + 1))
            if got != n:
                raise AssertionError(f"region query of {contig} found {got} records, the scan {n}")
        counts["region_queries"] = "ok"
    except GtaInputError as e:
        counts["region_queries"] = "refused: " + e.one_line()
    return counts


def _check_genes(path: Path) -> dict:
    from gta.io.genes import read_genes

    table = read_genes(path, None, progress=False)
    genes = list(table)
    return {"genes": len(genes), "plus": sum(g.strand == "+" for g in genes),
            "skipped": dict(getattr(table, "skipped", {}) or {})}


def _check_fasta(path: Path) -> dict:
    from gta.io.genome import Genome

    g = Genome(path)
    first = g.contigs[0]
    window = g.fetch(first, -5, 20)
    assert len(window) == 25 and window.startswith("NNNNN")
    out = {"contigs": len(g.contigs), "bases": sum(g.lengths.values())}
    g.close()
    return out


CHECKS = {"vcf": _check_vcf, "genes": _check_genes, "fasta": _check_fasta}
GEOMETRY = {"input_len": 2048, "bin_size": 128, "output_bins": 12}
_PROGRESS = re.compile(r"\d+%\|")  # a tqdm progress-bar fragment


def _vcf_extents(path: Path) -> dict[str, tuple[int, int]]:
    """contig -> (first, last) 1-based position of its records (empty when gta cannot read the file)."""
    from gta.errors import GtaInputError
    from gta.io.variants import HaplotypePolicy, VariantReader

    out: dict[str, tuple[int, int]] = {}
    try:
        for calls in VariantReader(path, policy=HaplotypePolicy(unphased="ref")).iter_regions():
            if len(calls):
                lo, hi = out.get(calls.vcf_chrom, (int(calls.starts.min()) + 1, 0))
                out[calls.vcf_chrom] = (lo, max(hi, int(calls.ends.max())))
    except GtaInputError:
        pass
    return out


def _run_cli(args: list[str]) -> tuple[int | str, str, str]:
    """(exit code or 'traceback: ...', stdout, stderr) of ``gta ARGS`` run in this process (file descriptors 1
    and 2 captured, so htslib's own lines are seen)."""
    import traceback

    from gta.cli import main

    saved = (os.dup(1), os.dup(2))
    argv = sys.argv
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(out.fileno(), 1), os.dup2(err.fileno(), 2)
        sys.argv = ["gta", *args]
        try:
            main()
            code: int | str = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException as e:  # a traceback: a bug
            code = f"traceback: {type(e).__name__}: {' '.join(str(e).split())[:200]}"
            traceback.print_exc()
        finally:
            sys.argv = argv
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])
        out.seek(0), err.seek(0)
        return code, out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")


def _message_lines(stderr: str) -> list[str]:
    """stderr without progress bars, one entry per line."""
    parts = (x.strip() for x in re.split(r"[\r\n]", stderr))
    return [x for x in parts if x and not _PROGRESS.search(x)]


def check_cli(path: Path) -> dict:
    """``gta validate`` and ``gta extract --individuals all`` on a data set built around the VCF (a FASTA of N
    over its contigs, which every REF matches, and one gene at the first record of each contig). Acceptable:
    exit 0, or exit 2 with at most three lines on stderr whose error line names the file (for validate, an
    ``error`` row of the report names it instead); never a traceback, a signal or a hang."""
    folder = path.parent / "ds"
    folder.mkdir()
    ext = _vcf_extents(path) or {"chr1": (1000, 1000)}
    ext = dict(list(ext.items())[:30])
    cap = 1_000_000
    with open(folder / "genome.fa", "w") as fh:
        for contig, (_lo, hi) in ext.items():
            n = min(hi + 5000, cap)
            fh.write(f">{contig}\n")
            fh.writelines("N" * min(60, n - i) + "\n" for i in range(0, n, 60))
    rows = ["gene_id\tsymbol\tchrom\ttss\tstrand"]
    rows += [f"G{i}\tG{i}\t{c}\t{min(lo - 1, cap - 1)}\t+" for i, (c, (lo, _hi)) in enumerate(ext.items())]
    (folder / "genes.tsv").write_text("\n".join(rows) + "\n")
    import yaml

    (folder / "dataset.yaml").write_text(yaml.safe_dump(
        {"name": "corpus", "genome": "genome.fa", "genes": "genes.tsv", "variants": str(path),
         "geometry": GEOMETRY}, sort_keys=False))
    out: dict = {}
    problems = []
    for name, args in (("validate", ["validate", "--quick", "--data", str(folder / "dataset.yaml")]),
                       ("extract", ["extract", "--data", str(folder / "dataset.yaml"), "--individuals", "all",
                                    "--out", str(folder / "f.zarr")])):
        code, stdout, stderr = _run_cli(args)
        out[name] = code
        lines = _message_lines(stderr)
        if code == 0:
            continue
        if code != 2:
            problems.append(f"{name}: exit {code}")
            continue
        errors = [x for x in lines if x.startswith("gta: error:")]
        named = any(path.name in x for x in errors) or (name == "validate" and not errors and
                                                          path.name in stdout and "error" in stdout)
        if len(lines) > 3 or not named:
            problems.append(f"{name}: exit 2 with {len(lines)} line(s): {' / '.join(lines)[:300]}")
    out["problem"] = "; ".join(problems) or None
    return out


def check_file(kind: str, path: Path) -> dict:
    """Verdict for one file: read (with counts), rejected (GtaInputError, one line), skipped (reader not
    importable yet) or error (any other exception: a bug). A VCF/BCF also gets ``cli``: what ``gta validate`` and
    ``gta extract`` do with it (``check_cli``)."""
    from gta.errors import GtaInputError

    start = time.perf_counter()
    cli = None
    try:
        with tempfile.TemporaryDirectory(prefix="gta-corpus-") as tmp:
            copy = _copy(path, Path(tmp))
            try:
                if kind == "vcf" and os.environ.get("GTA_CORPUS_CLI", "1") != "0":
                    cli = check_cli(copy)
                counts = CHECKS[kind](copy)
            except GtaInputError as e:  # name the corpus file, not the temporary copy
                raise GtaInputError(e.one_line().replace(str(copy), path.name)) from None
        res = {"verdict": "read", "counts": counts}
    except GtaInputError as e:
        res = {"verdict": "rejected", "message": e.one_line()}
    except ImportError as e:
        res = {"verdict": "skipped", "message": f"reader not importable: {e}"}
    except Exception as e:  # a bug: report it, do not hide it
        res = {"verdict": "error", "message": f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"}
    if cli is not None:
        res["cli"] = cli
    res["seconds"] = round(time.perf_counter() - start, 3)
    return res


def _worker() -> None:
    """Read 'kind<TAB>path' lines on stdin, answer one JSON line each."""
    for line in sys.stdin:
        kind, path = line.rstrip("\n").split("\t", 1)
        print(json.dumps(check_file(kind, Path(path))), flush=True)


class WorkerPool:
    """One worker process; a file that takes longer than ``timeout`` seconds is a hang: the worker is killed
    and a fresh one takes the next file."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        return subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)

    def check(self, kind: str, path: Path) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        self.proc.stdin.write(f"{kind}\t{path}\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            try:
                code = self.proc.wait(timeout=0 if not ready else 10)
            except subprocess.TimeoutExpired:
                code = None
            self.close()
            if code is None:
                return {"verdict": "hang", "message": f"no answer within {self.timeout:g} s", "seconds": self.timeout}
            return {"verdict": "error", "message": f"the reader crashed the process (exit code {code})",
                    "seconds": None}
        return json.loads(line)

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None


def run_all(root: Path, timeout: float = 60.0, progress: bool = True) -> list[dict]:
    files = discover(root)
    pool = WorkerPool(timeout)
    rows = []
    try:
        iterator = files
        if progress:
            from tqdm import tqdm

            iterator = tqdm(files, desc="corpus files", unit="file")
        for kind, rel in iterator:
            rows.append({"file": rel, "kind": kind, **pool.check(kind, root / rel)})
    finally:
        pool.close()
    return rows


def _counts_text(counts: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in counts.items() if v not in ({}, None, ""))


def render(rows: list[dict], root: Path) -> str:
    from collections import Counter

    tally = Counter((r["kind"], r["verdict"]) for r in rows)
    lines = [
        "# Compatibility with real-world files",
        "",
        "Generated by `scripts/compatibility_report.py` (do not edit by hand) from the Debian test packages that "
        "`scripts/fetch_test_corpora.sh` unpacks (htslib-test, python-pysam-tests, python3-gffutils, "
        "python-pyfaidx-examples, python-pyvcf-examples, python3-cyvcf2, r-bioc-variantannotation, "
        "vcfanno-examples). Each file is read from a temporary copy by gta's own readers: VCF/BCF with "
        "`gta.io.variants.VariantReader` under `unphased='ref'` (a full sequential scan, then one indexed region "
        "query per contig that must find the same records; `unphased_auto` says whether the default policy "
        "`unphased='auto'` accepts the file), GTF/GFF with `gta.io.genes.read_genes`, FASTA with "
        "`gta.io.genome.Genome`. A file is **read** (counts) or **rejected** with a one-line `GtaInputError`; "
        "**error** or **hang** would be a bug. Every VCF/BCF also goes through `gta validate` and "
        "`gta extract --individuals all` on a data set built around it (a FASTA of N over its contigs, one gene "
        "at the first record of each contig): each must exit 0, or exit 2 with at most three lines that name the "
        "file, never a traceback, a signal or a hang (`BUG:` marks a file where one did not).",
        "",
        "| kind | read | rejected | skipped | error | hang |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind in KINDS:
        lines.append(f"| {kind} | " + " | ".join(str(tally[(kind, v)]) for v in
                                                 ("read", "rejected", "skipped", "error", "hang")) + " |")
    lines += ["", "| file | kind | verdict | counts or message |", "|---|---|---|---|"]
    for r in rows:
        detail = _counts_text(r["counts"]) if r["verdict"] == "read" else r.get("message", "")
        cli = r.get("cli")
        if cli:
            detail += f"; gta validate: exit {cli['validate']}, gta extract: exit {cli['extract']}"
            if cli.get("problem"):
                detail += f" (BUG: {cli['problem']})"
        detail = detail.replace("|", "\\|")
        lines.append(f"| `{r['file']}` | {r['kind']} | {r['verdict']} | {detail} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    if "--worker" in sys.argv:
        _worker()
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "compatibility.md")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per file before it counts as a hang")
    args = ap.parse_args()
    if not args.root.exists():
        sys.exit(f"no corpora at {args.root}: run scripts/fetch_test_corpora.sh first")
    rows = run_all(args.root, args.timeout)
    from gta.atomic import atomic_write_text

    atomic_write_text(args.out, render(rows, args.root))
    bad = [r for r in rows if r["verdict"] in ("error", "hang") or (r.get("cli") or {}).get("problem")]
    print(f"wrote {args.out}: {len(rows)} files, {len(bad)} errors/hangs")
    for r in bad:
        print(f"  {r['verdict']}: {r['file']}: {r.get('message')} {(r.get('cli') or {}).get('problem') or ''}")


if __name__ == "__main__":
    main()
