"""gta's readers over real-world files nobody here wrote (Debian test packages; scripts/fetch_test_corpora.sh).

Every VCF/BCF, GTF/GFF and FASTA is read (counts) or rejected with a one-line GtaInputError naming the file:
never another exception, never a crash, never a hang (each file runs in a worker process with a timeout, see
scripts/compatibility_report.py). A VCF/BCF that bcftools reads must be read by gta too (plain gzip included: gta
reads it through a temporary BGZF copy), and its indexed region queries must find what the scan found.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures import load_script
from gta.io.variants import sniff_format

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpora" / "root"
report = load_script("scripts/compatibility_report.py")

FILES = report.discover(CORPUS) if CORPUS.exists() else []
# gta's documented refusals of files bcftools reads (docs/haplotypes.md): policies, not reader failures
POLICY_REFUSALS = ("records are not sorted", "gta reads diploid and haploid calls only")
pytestmark = pytest.mark.skipif(
    not FILES, reason=f"no test corpora in {CORPUS} (run scripts/fetch_test_corpora.sh; needs apt-get)"
)


class _CachedPool:
    """One worker for the module; each file is checked once (reader verdict and CLI run together)."""

    def __init__(self) -> None:
        self.pool = report.WorkerPool(timeout=120)
        self.seen: dict[tuple[str, str], dict] = {}

    def check(self, kind: str, path: Path) -> dict:
        key = (kind, str(path))
        if key not in self.seen:
            self.seen[key] = self.pool.check(kind, path)
        return self.seen[key]

    def close(self) -> None:
        self.pool.close()


@pytest.fixture(scope="module")
def pool():
    p = _CachedPool()
    yield p
    p.close()


def _bcftools_reads(path: Path) -> bool | None:
    if shutil.which("bcftools") is None:
        return None
    res = subprocess.run(["bcftools", "view", "-H", str(path)], capture_output=True, timeout=60)
    return res.returncode == 0


@pytest.mark.parametrize(("kind", "rel"), FILES or [("none", "none")], ids=[f"{k}:{r}" for k, r in FILES] or None)
def test_file_is_read_or_rejected_cleanly(pool, kind, rel):
    path = CORPUS / rel
    res = pool.check(kind, path)
    if res["verdict"] == "skipped":
        pytest.skip(res["message"])
    assert res["verdict"] in ("read", "rejected"), res
    if res["verdict"] == "rejected":
        msg = res["message"]
        assert "\n" not in msg and path.name in msg, msg
    if kind != "vcf":
        return
    if res["verdict"] == "read":
        region = res["counts"]["region_queries"]
        assert region == "ok" or ("refused" in region and "sort" in region), region
        return
    assert "not BGZF, so it cannot be indexed" not in res["message"], res  # plain gzip is read, not refused
    if _bcftools_reads(path) and not any(p in res["message"] for p in POLICY_REFUSALS):
        pytest.fail(f"bcftools reads {rel} but gta rejects it: {res['message']}")


@pytest.mark.parametrize(("kind", "rel"), [f for f in FILES if f[0] == "vcf"] or [("none", "none")],
                         ids=[r for k, r in FILES if k == "vcf"] or None)
def test_validate_and_extract_exit_cleanly(pool, kind, rel):
    """gta validate and gta extract --individuals all on a data set around the file: exit 0, or exit 2 with at
    most three lines naming the file; no traceback, no signal, no hang (scripts/compatibility_report.check_cli)."""
    if kind == "none":
        pytest.skip("no corpus")
    res = pool.check(kind, CORPUS / rel)
    assert res["verdict"] not in ("error", "hang"), res
    cli = res["cli"]
    assert cli["validate"] in (0, 2) and cli["extract"] in (0, 2) and cli["problem"] is None, cli


def test_plain_gzip_vcfs_are_read(pool):
    """The corpus's plain-gzip VCFs (Debian gzips test files itself) are read through a BGZF copy, with working
    region queries; one that is refused is one that bcftools refuses too."""
    gz = [rel for kind, rel in FILES if kind == "vcf" and sniff_format(CORPUS / rel) == "gzip"]
    assert len(gz) >= 20
    read = 0
    for rel in gz:
        res = pool.check("vcf", CORPUS / rel)
        if res["verdict"] == "read":
            assert res["counts"]["kind"] == "gzip" and res["counts"]["region_queries"] == "ok", (rel, res)
            read += 1
        else:
            assert res["verdict"] == "rejected" and _bcftools_reads(CORPUS / rel) is not True, (rel, res)
    assert read >= 0.8 * len(gz), f"{read} of {len(gz)} plain-gzip VCFs read"  # the rest bcftools refuses too


def test_corpus_has_all_kinds():
    kinds = {k for k, _ in FILES}
    assert kinds == {"vcf", "genes", "fasta"}
    assert sum(k == "vcf" for k in kinds) and len([f for f in FILES if f[0] == "vcf"]) > 150


def test_compatibility_doc_is_current(tmp_path):
    """docs/compatibility.md is what the script writes from today's readers (regenerate it when a verdict moves)."""
    out = tmp_path / "compatibility.md"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "compatibility_report.py"), "--root", str(CORPUS),
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.read_text() == (ROOT / "docs" / "compatibility.md").read_text(), (
        "docs/compatibility.md is stale: run python scripts/compatibility_report.py")
