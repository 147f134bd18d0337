"""``gta demo --quick`` end to end: simulate -> validate -> extract -> benchmark -> report, and every number in the
report recomputed from the saved predictions."""

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fixtures import load_script
from gta.evaluate.benchmark import noise_free_signal
from gta.evaluate.metrics import noise_ceiling
from gta.evaluate.report import MODEL_FIELDS, fmt, lookup
from gta.evaluate.results import load_predictions, model_tables, read_results, recompute_metrics, verify_results
from gta.geometry import Geometry
from gta.interpret.evaluate import importance_metrics, read_truth_table, variant_effect_metrics
from gta.io.dataset import open_dataset

ROOT = Path(__file__).resolve().parents[1]
KINDS = {path: kind for path, kind in MODEL_FIELDS.values()}


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
    page = (bench / "report.html").read_text()
    assert "report.html" in proc.stdout
    res = read_results(bench / "results.json")
    names = {m.name: m for m in res.models}
    assert {"GTA", "GTA random LLM", "Ridge (all bins)", "eQTL elastic net"} <= set(names)
    assert names["Enformer readout"].status == "not run" and names["Enformer readout"].reason
    assert names["GTA"].status == "ok"
    # cross-individual rows exist for held-out individuals, so every feature model is scored across individuals
    assert names["GTA"].metrics["cross_individual"]["unseen"]["n_genes"] > 0
    assert res.noise_ceiling["available"] and res.noise_ceiling["cross_gene_spearman"] > 0.5
    assert verify_results(bench / "results.json", bench / "predictions") == []
    # every number the page shows is tagged with where it comes from in results.json
    shown = re.findall(r'data-key="([^"]+)"', page)
    assert len(shown) > 20
    raw = json.loads((bench / "results.json").read_text())
    assert raw["dataset"]["simulated"] is True
    # the benchmark interprets GTA and GTA random LLM against the planted truth, and the page shows those numbers
    for name in ("GTA", "GTA random LLM"):
        entry = res.interpretation[name]
        assert set(entry["importance"]) == {"attention", "gradxinput", "occlusion"}
        assert 0 <= entry["importance"]["gradxinput"]["auprc"] <= 1
        assert entry["variant_effects"]["n_matched"] > 0
        assert f'data-key="interpretation|{name}.importance.occlusion.auprc"' in page
        assert (bench / entry["variant_effects_table"]).exists()
    ridge = res.interpretation["Ridge (all bins)"]  # the linear baseline, interpreted the same way
    assert set(ridge["importance"]) == {"gradxinput"} and ridge["genes"] == res.interpretation["GTA"]["genes"]
    assert ridge["variant_effects"]["n_matched"] == res.interpretation["GTA"]["variant_effects"]["n_matched"]
    assert "## Interpretation" in (bench / "results.md").read_text()
    # the last stage interprets held-out genes: figures, tracks and AUPRC against the planted elements
    metrics = json.loads((out / "interpret" / "interpret_metrics.json").read_text())
    assert metrics and list((out / "interpret" / "plots").glob("*.png"))
    assert list((out / "interpret" / "tracks").glob("*.bw"))
    # the stage costs docs/demo.md shows are written by the run itself
    clock = json.loads((out / "demo_timings.json").read_text())
    assert list(clock["stages"]) == ["simulate", "validate", "extract", "benchmark", "interpret"]
    assert clock["total_s"] == pytest.approx(sum(clock["stages"].values()), abs=0.5) and clock["peak_rss_mb"] > 100
    assert clock["preset"] == "tiny" and clock["commit"]


def test_demo_resumes_without_recomputing(quick_demo):
    out, _ = quick_demo
    proc = subprocess.run([sys.executable, "-m", "gta", "demo", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "reusing" in proc.stderr and "0 items encoded" in proc.stderr


def test_full_demo_refuses_a_folder_holding_another_data_set(quick_demo):
    """The full demo's data set is not the quick one's: reusing it would benchmark the wrong data without a word."""
    out, _ = quick_demo
    before = (out / "demo_timings.json").read_text()
    proc = subprocess.run([sys.executable, "-m", "gta", "demo", "--out", str(out)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "other than this demo's (bench preset, 1000 genes, seed 0)" in proc.stderr
    assert "truth/config.yaml" in proc.stderr and "--out" in proc.stderr
    assert (out / "demo_timings.json").read_text() == before  # the quick demo's record is left alone


def _recomputed_interpretation(bench: Path, res, dataset) -> dict:
    """results.json's interpretation section recomputed from the saved importance arrays and effect tables."""
    truth = Path(dataset.manifest.truth)
    elements = read_truth_table(truth, "elements.tsv")
    out = {}
    for name, entry in res.interpretation.items():
        saved = np.load(bench / entry["importance_arrays"])
        methods = [k for k in saved.files if k != "gene_ids"]
        imps = {g: {m: saved[m][i] for m in methods} for i, g in enumerate(saved["gene_ids"])}
        metrics = importance_metrics(imps, elements, dataset.manifest.geometry or Geometry())
        effects = pd.read_csv(bench / entry["variant_effects_table"], sep="\t", dtype={"gene_id": str})
        out[name] = {"importance": metrics["methods"], "reference": metrics["reference"],
                     "variant_effects": variant_effect_metrics(effects, truth / "variants.tsv")}
    return out


def test_every_number_on_the_demo_report_is_recomputed_from_saved_outputs(quick_demo):
    """Model metrics from the prediction tables, the noise ceiling from the simulator's noise-free expression on the
    same rows, interpretation from the saved importance arrays and variant-effect tables: each shown text equals
    the recomputed value formatted the same way."""
    out, _ = quick_demo
    bench = out / "benchmark"
    res = read_results(bench / "results.json")
    dataset = open_dataset(out / "data" / "dataset.yaml")
    models = recompute_metrics(bench / "predictions", res.settings)
    tables = model_tables(bench / "predictions")
    observed = next(load_predictions(tables[m.table_key]) for m in res.models
                    if m.status == "ok" and m.table_key in tables
                    and (load_predictions(tables[m.table_key])["sample"] != "").any())
    ceiling = noise_ceiling(observed, noise_free_signal(dataset), min_samples=res.settings.min_samples)
    interp = _recomputed_interpretation(bench, res, dataset)
    page = (bench / "report.html").read_text()
    shown = {html.unescape(k): html.unescape(v) for k, v in re.findall(r'data-key="([^"]+)">([^<]*)<', page)}
    counted = {"model": 0, "noise_ceiling": 0, "interpretation": 0}
    for key, text in shown.items():
        owner, path = key.split("|", 1)
        if owner == "noise_ceiling":
            assert text == fmt(lookup(ceiling, path), "r"), key
        elif owner == "interpretation":
            kind = "pct" if path.endswith("sign_agreement") else "int" if path.split(".")[-1].startswith("n_") else "r"
            assert text == fmt(lookup(interp, path), kind), key
        elif owner in ("dataset", "settings"):  # counts describing the data set and the run settings
            assert text == fmt(lookup(getattr(res, owner), path), "int"), key
            continue
        elif path.startswith("@"):  # wall time, memory: measured, not recomputable
            continue
        else:
            assert text == fmt(lookup(models[res.model(owner).table_key], path), KINDS[path]), key
            owner = "model"
        counted[owner] += 1
    assert counted["model"] >= 4 * len(MODEL_FIELDS) and counted["noise_ceiling"] >= 3
    assert counted["interpretation"] >= 2 * 6


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed (apt-get install -y chromium)")
def test_demo_report_renders_in_headless_chromium(quick_demo, tmp_path):
    from PIL import Image

    out, _ = quick_demo
    shot = tmp_path / "demo.png"
    script, report = ROOT / "scripts" / "screenshot_report.sh", out / "benchmark" / "report.html"
    proc = subprocess.run(["bash", str(script), str(report), str(shot), "1400,2000"], capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr
    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert img.shape == (2000, 1400) and img.std() > 20 and 0.01 < (img < 128).mean() < 0.6


def test_update_demo_doc_writes_both_blocks_from_the_run(quick_demo, tmp_path, monkeypatch):
    """docs/demo.md's cost and result tables come from the run (scripts/update_demo_doc.py), never typed."""
    mod = load_script("scripts/update_demo_doc.py")
    out, _ = quick_demo
    doc = tmp_path / "demo.md"
    doc.write_text("intro\n<!-- BEGIN generated costs -->\nold\n<!-- END generated costs -->\nmiddle\n"
                   "<!-- BEGIN generated results x -->\nold\n<!-- END generated results -->\nend\n")
    monkeypatch.setattr(mod, "DOC", doc)
    monkeypatch.setattr(sys, "argv", ["update_demo_doc.py", "--run", str(out), "--seeds", str(tmp_path / "none")])
    mod.main()
    text = doc.read_text()
    clock = json.loads((out / "demo_timings.json").read_text())
    assert "old" not in text and text.startswith("intro\n") and "\nmiddle\n" in text and text.endswith("end\n")
    assert f"| benchmark | {clock['stages']['benchmark']:.0f} s |" in text
    assert clock["commit"] in text and "| GTA |" in text and "Seed-to-seed" not in text
    # the spread shown is the learning curve's point whose data set is the demo's (tiny, 30 genes, seed 0), no other
    point = {"models": {"GTA": {"seeds": [0.5, 0.25, 0.75], "mean": 0.5, "min": 0.25, "max": 0.75},
                        "Ridge (all bins)": {"seeds": [0.4], "mean": 0.4, "min": 0.4, "max": 0.4}}}
    other = {"models": {"GTA": {"seeds": [0.9, 0.8], "mean": 0.85, "min": 0.8, "max": 0.9}}}
    rec = {"preset": "tiny", "sim_seed": 0, "seeds": [0, 1, 2], "commit": "abc1234", "date": "2026-12-06 10:00",
           "points": [{"n_genes": 40, **other}, {"n_genes": 30, **point}]}
    curve = tmp_path / "learning_curve.json"
    curve.write_text(json.dumps(rec))
    monkeypatch.setattr(sys, "argv", ["update_demo_doc.py", "--run", str(out), "--seeds", str(curve)])
    mod.main()
    text = doc.read_text()
    assert "| GTA | 0.500, 0.250, 0.750 | 0.500 | 0.250 | 0.750 |" in text and "0.850" not in text
    assert "commit abc1234" in text and "| Ridge (all bins) | 0.400" not in text  # one seed is no spread
    curve.write_text(json.dumps({**rec, "sim_seed": 1}))  # another simulator seed: another data set
    mod.main()
    assert "Seed-to-seed" not in doc.read_text()
