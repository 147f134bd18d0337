"""``gta demo --quick`` end to end: simulate -> validate -> extract -> benchmark -> report, and every number in the
report recomputed from the saved predictions."""

import json
import re
import subprocess
import sys

import pytest

from gta.evaluate.results import read_results, verify_results


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    proc = subprocess.run([sys.executable, "-m", "gta", "demo", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_quick_demo_writes_a_report_whose_numbers_come_from_the_predictions(quick_demo):
    out, proc = quick_demo
    bench = out / "benchmark"
    html = (bench / "report.html").read_text()
    assert "report.html" in proc.stdout
    res = read_results(bench / "results.json")
    names = {m.name: m for m in res.models}
    assert {"GTA", "GTA no LLM", "Ridge (all bins)", "eQTL elastic net"} <= set(names)
    assert names["Enformer readout"].status == "not run" and names["Enformer readout"].reason
    assert names["GTA"].status == "ok"
    # cross-individual rows exist for held-out individuals, so every feature model is scored across individuals
    assert names["GTA"].metrics["cross_individual"]["unseen"]["n_genes"] > 0
    assert res.noise_ceiling["available"] and res.noise_ceiling["cross_gene_spearman"] > 0.5
    assert verify_results(bench / "results.json", bench / "predictions") == []
    # every number the page shows is tagged with where it comes from in results.json
    shown = re.findall(r'data-key="([^"]+)"', html)
    assert len(shown) > 20
    raw = json.loads((bench / "results.json").read_text())
    assert raw["dataset"]["simulated"] is True
    # the benchmark interprets GTA and GTA no LLM against the planted truth, and the page shows those numbers
    for name in ("GTA", "GTA no LLM"):
        entry = res.interpretation[name]
        assert set(entry["importance"]) == {"attention", "gradxinput", "occlusion"}
        assert 0 <= entry["importance"]["gradxinput"]["auprc"] <= 1
        assert entry["variant_effects"]["n_matched"] > 0
        assert f'data-key="interpretation|{name}.importance.occlusion.auprc"' in html
        assert (bench / entry["variant_effects_table"]).exists()
    assert "## Interpretation" in (bench / "results.md").read_text()
    # the last stage interprets held-out genes: figures, tracks and AUPRC against the planted elements
    metrics = json.loads((out / "interpret" / "interpret_metrics.json").read_text())
    assert metrics and list((out / "interpret" / "plots").glob("*.png"))
    assert list((out / "interpret" / "tracks").glob("*.bw"))


def test_demo_resumes_without_recomputing(quick_demo):
    out, _ = quick_demo
    proc = subprocess.run([sys.executable, "-m", "gta", "demo", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "reusing" in proc.stderr and "0 items encoded" in proc.stderr
