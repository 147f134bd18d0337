"""gta's readers over real-world files nobody here wrote (Debian test packages; scripts/fetch_test_corpora.sh).

Every VCF/BCF, GTF/GFF and FASTA is read (counts) or rejected with a one-line GtaInputError naming the file:
never another exception, never a crash, never a hang (each file runs in a worker process with a timeout, see
scripts/compatibility_report.py). A VCF/BCF that bcftools reads must be read by gta too, unless it is plain gzip
(refused by design: it cannot be indexed), and its indexed region queries must find what the scan found.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

from gta.io.variants import sniff_format

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpora" / "root"
_spec = importlib.util.spec_from_file_location("compatibility_report", ROOT / "scripts" / "compatibility_report.py")
report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report)

FILES = report.discover(CORPUS) if CORPUS.exists() else []
pytestmark = pytest.mark.skipif(
    not FILES, reason=f"no test corpora in {CORPUS} (run scripts/fetch_test_corpora.sh; needs apt-get)"
)


@pytest.fixture(scope="module")
def pool():
    p = report.WorkerPool(timeout=60)
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
    if sniff_format(path) == "gzip":  # refused by design, with the fix in the message
        assert "bgzip -c" in res["message"] and "bcftools index" in res["message"]
        return
    if _bcftools_reads(path):
        pytest.fail(f"bcftools reads {rel} but gta rejects it: {res['message']}")


def test_corpus_has_all_kinds():
    kinds = {k for k, _ in FILES}
    assert kinds == {"vcf", "genes", "fasta"}
    assert sum(k == "vcf" for k in kinds) and len([f for f in FILES if f[0] == "vcf"]) > 30
